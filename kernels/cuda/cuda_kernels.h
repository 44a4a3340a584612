// tfhost's CUDA kernels, as launchers on device pointers and a stream (built only with
// TFH_HAVE_CUDA): the transformer ops (float, float16 and bfloat16 data; every reduction and
// accumulation in fp32) and the general tensor ops fused graphs keep (Cast, broadcasting
// arithmetic, Gather, strided copies, Where, reductions: the types each one states). kernels.cc
// makes them the CUDA session's kernels; tests/cuda compares each one with tfhost's CPU kernel for
// the same op.
//
// Element type codes are TfhDataType's. Launchers check their arguments on the host and throw
// tfh::kernels::cuda::CudaError (a std::runtime_error) with the kernel's name and CUDA's
// message; they never synchronise the stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tfhost/abi.h"

namespace tfh::kernels::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws CudaError "<what>: <CUDA's message>" unless `e` is cudaSuccess.
void check(cudaError_t e, const char* what);
// Whether the environment variable `var` is `value` (a choice of kernel for comparisons), saying
// so on stderr with `effect` when it is. Callers keep the answer (read once per process).
bool env_choice(const char* var, const char* value, const char* effect);
// The note env_choice writes: "tfhost: note: <var>=<value>: <effect>" on stderr.
void env_note(const char* var, const std::string& value, const std::string& effect);

// ---- element-wise -------------------------------------------------------------------------------
// y = x + bias (bias: `cols` values, broadcast over rows), optionally + residual (same as x).
void add_bias(TfhDataType t, const void* x, const void* bias, const void* residual, void* y,
              int64_t rows, int64_t cols, cudaStream_t s);
// Cast n elements between float, float16, bfloat16, double, int32, int64, uint8, int8 and bool
// (float to integer truncates toward zero; to bool is "!= 0").
bool cast_supported(TfhDataType from, TfhDataType to);
void cast(TfhDataType from, TfhDataType to, const void* x, void* y, int64_t n, cudaStream_t s);

// y = a op b with NumPy broadcasting: float, float16 or bfloat16 (computed in float), int32 or
// int64 (exact; not Pow). `dims` is the output shape; each input's strides are its element strides
// at the output's rank, 0 where it broadcasts (a dense input whose dims match the output has the
// output's strides).
enum class BinaryOp { Add, Sub, Mul, Div, Pow };
struct Broadcast {
  static constexpr int kMaxRank = 6;
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t a_strides[kMaxRank] = {};
  int64_t b_strides[kMaxRank] = {};
};
void binary(TfhDataType t, BinaryOp op, const void* a, const void* b, void* y, const Broadcast& bc,
            cudaStream_t s);
// y = a op b (bool) with NumPy broadcasting as in binary: float, float16, bfloat16, int32, int64
// (and bool for Equal).
enum class CompareOp { Equal, Less, Greater, LessOrEqual, GreaterOrEqual };
void compare(TfhDataType t, CompareOp op, const void* a, const void* b, bool* y,
             const Broadcast& bc, cudaStream_t s);
void logical_not(const bool* x, bool* y, int64_t n, cudaStream_t s);
// Running sums along the middle axis of x [outer, len, inner] (ONNX CumSum: `exclusive` leaves each
// element out of its own sum, `reverse` sums from the end): float, float16, bfloat16 (summed in
// float), int32, int64.
void cumsum(TfhDataType t, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
            bool exclusive, bool reverse, cudaStream_t s);
enum class UnaryOp { Tanh, Relu, Sigmoid, Erf, Sqrt, Exp, Log, Neg, Abs, Reciprocal };
void unary(TfhDataType t, UnaryOp op, const void* x, void* y, int64_t n, cudaStream_t s);
// y[dst_offset + sum c_d dst_strides[d]] = x[src_offset + sum c_d src_strides[d]] for every
// coordinate c of `dims` (element strides; a source stride may be 0): Transpose, and each input of
// a Concat, for elements of 1, 2, 4 or 8 bytes.
struct StridedCopy {
  static constexpr int kMaxRank = 8;
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t src_strides[kMaxRank] = {};
  int64_t dst_strides[kMaxRank] = {};
  int64_t src_offset = 0, dst_offset = 0;
};
void strided_copy(size_t elem_bytes, const void* x, void* y, const StridedCopy& c, cudaStream_t s);
// y = cond ? x : y_else, with NumPy broadcasting of the three (strides as in Broadcast; c_strides
// for the bool condition), for elements of 1, 2, 4 or 8 bytes.
struct WhereBroadcast {
  static constexpr int kMaxRank = 6;
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t c_strides[kMaxRank] = {};
  int64_t x_strides[kMaxRank] = {};
  int64_t y_strides[kMaxRank] = {};
};
void where(size_t elem_bytes, const bool* cond, const void* x, const void* y_else, void* out,
           const WhereBroadcast& bc, cudaStream_t s);
// Per row of [rows, cols]: the sum (or the mean) of the row, for float/float16/bfloat16
// (accumulated in float) and int32/int64 (accumulated in int64; a mean divides as integers).
bool reduce_supported(TfhDataType t);
void reduce_rows(TfhDataType t, bool mean, const void* x, void* y, int64_t rows, int64_t cols,
                 cudaStream_t s);
// ArgMax (max) / ArgMin of x viewed as [outer, n, inner] along n, int64 indices [outer, inner]:
// float/float16/bfloat16 compared in float, int32/int64 as integers; ties to the first index (the
// last with select_last); a NaN is the extreme (NumPy's argmax/argmin). n must be > 0.
bool arg_extreme_supported(TfhDataType t);
void arg_extreme(TfhDataType t, bool max, bool select_last, const void* x, int64_t* y,
                 int64_t outer, int64_t n, int64_t inner, cudaStream_t s);
// Gather along one axis of x viewed as [outer, axis_dim, inner]: y[o, j, r] = x[o, idx[j], r],
// for elements of 1, 2, 4 or 8 bytes; indices int32 or int64, negative ones counting from the
// end. An index outside [-axis_dim, axis_dim) gives zeros (the kernel cannot raise an error).
void gather(size_t elem_bytes, const void* x, TfhDataType idx_type, const void* idx, void* y,
            int64_t outer, int64_t axis_dim, int64_t n_idx, int64_t inner, cudaStream_t s);

// ---- activations
// ----------------------------------------------------------------------------------
enum class GeluKind { Erf, Tanh };
// y = gelu(x [+ bias]) (bias: `cols` values broadcast over rows, or null).
void gelu(TfhDataType t, GeluKind kind, const void* x, const void* bias, void* y, int64_t rows,
          int64_t cols, cudaStream_t s);

// ---- normalisation
// -------------------------------------------------------------------------------- Per row of
// `cols`: sum = x [+ skip] [+ bias]; y = (sum - mean) / sqrt(var + eps) * gamma [+ beta]; `sum_out`
// (nullable) receives sum (SkipLayerNormalization's 4th output). Statistics in fp32.
void layer_norm(TfhDataType t, const void* x, const void* skip, const void* bias, const void* gamma,
                const void* beta, float eps, void* y, void* sum_out, int64_t rows, int64_t cols,
                cudaStream_t s);
// Softmax over the last axis of [rows, cols], in fp32.
void softmax(TfhDataType t, const void* x, void* y, int64_t rows, int64_t cols, cudaStream_t s);

// ---- attention
// ------------------------------------------------------------------------------------ The
// attention masks of ONNX Runtime's Attention, int32 (filter added where a key is masked):
//   Raw2D       [B, T]     0 masks, > 0 keeps
//   Ends        [B]        keys at or after the row's end position are masked (right padding)
//   EndsStarts  [2B]       ends, then starts: keys before the start are masked too (left padding)
//   Raw3D       [B, S, T]  a raw mask per query
enum class MaskKind { None, Raw2D, Ends, EndsStarts, Raw3D };

// Scaled dot-product attention over heads, fused (tiled, online softmax: no S x T score matrix in
// global memory). Q: [B, S, N, D] rows of the packed QKV (q_stride between tokens); K and V: [B, N,
// T, D] (the present cache layout: past then new), or with kv_token_stride set, rows of tokens at
// any strides (the packed QKV itself, when no cache is kept). mask: see MaskKind; attention_bias:
// an additive [B or 1, N or 1, S, T] bias of the data type (strides 0 where broadcast); causal:
// query i (position past + i) sees keys up to past + i. Output [B, S, N, D].
struct AttentionArgs {
  TfhDataType type = TFH_TYPE_FLOAT;
  const void* q = nullptr;
  int64_t q_token_stride = 0;  // elements between consecutive tokens of Q (N * D when unpacked)
  const void* k = nullptr;
  const void* v = nullptr;
  // K and V element (b, h, key, d) at b * kv_batch_stride + h * kv_head_stride + key *
  // kv_token_stride + d; kv_token_stride 0: the cache layout [B, N, rows, D]. (Not with a
  // shared buffer.)
  int64_t kv_token_stride = 0, kv_head_stride = 0, kv_batch_stride = 0;
  void* out = nullptr;  // [B, S, N * D]
  const int32_t* mask = nullptr;
  MaskKind mask_kind = MaskKind::None;
  const void* attention_bias = nullptr;
  int64_t bias_batch_stride = 0, bias_head_stride = 0;  // elements; rows are [S, T]
  int64_t batch = 0, heads = 0, seq = 0, total = 0, head_size = 0;
  bool causal = false;
  float scale = 0;        // 0: 1/sqrt(head_size)
  float filter = -10000;  // added for masked keys, as ONNX Runtime does
  // A key/value buffer shared by past and present (past_present_share_buffer): K and V are
  // [B, N, cache_rows, D], and `past_len` (one int32 in device memory, read by the kernels, so
  // one captured CUDA graph serves every decoding step) says how many rows precede the new
  // ones: the kernels then attend over past_len + seq keys (at most cache_rows), and `total`
  // is only the bound the launch is sized for (cache_rows). 0 / null: K and V have `total` rows.
  int64_t cache_rows = 0;
  const int32_t* past_len = nullptr;
  // Decoding into a shared buffer (seq 1): the new token's key and value, which the decode
  // kernels write into row *past_len of K and V (the caller's writable cache) before they read
  // it, instead of a launch of their own: (b, h)'s key row at new_k + b * new_token_stride +
  // h * head_size, its value row likewise at new_v. Null: the rows are in the cache already.
  const void* new_k = nullptr;
  const void* new_v = nullptr;
  int64_t new_token_stride = 0;
  // Row length of a Raw2D / Raw3D mask (0: total). Keys at or after it count as masked.
  int64_t mask_width = 0;
  // Which prefill kernel: Tiled (a thread per query, K/V tiles in shared memory: for many
  // queries), PerQueryWarp (a warp per query, head dims across its lanes: the low-latency one
  // when batch x heads x sequence is too small to fill the GPU with tiles), TensorCores (flash
  // attention on mma.sync: float16 / bfloat16, head size 32, 64 or 128, sm_80 on; an error
  // otherwise), or Auto: TensorCores where it runs (unless TFH_CUDA_PREFILL_ATTENTION=simt),
  // else Tiled or PerQueryWarp by size.
  //
  // Which decode kernel (decode_attention): DecodeBlock (one block per (batch, head), a thread
  // per key, then a thread per output dimension over every key), DecodeVector (one block per
  // (batch, head), each key's row read by a few lanes 16 bytes at a time, for the scores and
  // again for the values, many keys at once: head size 32, 64 or 128 with 16-byte aligned rows;
  // an error otherwise), Auto (DecodeVector where it runs, unless
  // TFH_CUDA_DECODE_ATTENTION=block, else DecodeBlock) or SplitKeys (flash-decoding: the keys in
  // chunks of kDecodeChunk, a block per (batch, head, chunk), the partial softmax results merged
  // by a second kernel: more blocks when batch x heads is small and the past long; needs
  // `workspace`).
  enum class Algo {
    Auto,
    Tiled,
    PerQueryWarp,
    SplitKeys,
    TensorCores,
    DecodeBlock,
    DecodeVector
  } algo = Algo::Auto;
  float* workspace = nullptr;  // SplitKeys: decode_split_workspace(...) floats
  // TensorCores: warps (16 queries each) per block, 1, 2 or 4; 0: the default (4). For the
  // kernel benchmark's comparison.
  int mma_warps = 0;
  // DecodeVector: threads per block, 128, 256 or 512; 0: Auto's choice, 128, or with
  // TFH_CUDA_DECODE_ATTENTION=wide, while batch x heads blocks leave SMs idle, the fewest that
  // read every key in one pass (up to 512: fewer dependent trips to memory per block).
  int decode_threads = 0;
};
constexpr int64_t kDecodeChunk = 64;
// Floats of workspace the SplitKeys decode needs for these sizes (total: the keys, or the bound
// cache_rows with a shared buffer).
inline int64_t decode_split_workspace(int64_t batch, int64_t heads, int64_t total, int64_t head_size) {
  return batch * heads * ((total + kDecodeChunk - 1) / kDecodeChunk) * (head_size + 2);
}
// Prefill / any S: the fused kernels (online softmax, no S x T matrix). head_size up to 128.
void attention(const AttentionArgs& a, cudaStream_t s);
// One new token per row over a long past (S == 1): one block per (batch, head), or split keys.
void decode_attention(const AttentionArgs& a, cudaStream_t s);
// The vectorised decode kernel's threads per block for `a`: a.decode_threads when set, else
// 128, or with `wide` (TFH_CUDA_DECODE_ATTENTION=wide) while batch x heads < `sms`, the fewest
// of 128, 256, 512 that read every key in one trip.
int decode_vector_threads(const AttentionArgs& a, bool wide, int sms);

// Splits a packed QKV [B, S, 3, N, D] (the QKV GEMM's output, bias added) into Q (left in place:
// read with q_token_stride 3 * N * D) and the present cache [2, B, N, P + S, D]: past K/V
// ([2, B, N, P, D], or null when P == 0) copied in front of the new keys and values.
void split_kv_into_present(TfhDataType t, const void* qkv, const void* past, void* present,
                           int64_t batch, int64_t seq, int64_t past_len, int64_t heads,
                           int64_t head_size, cudaStream_t s);
// The shared buffer's form: the new keys and values of a packed QKV written in place into the
// cache [2, B, N, cache_rows, D] at rows [P, P + S), P read on the device from `past_len` (rows
// that would fall past cache_rows are not written).
void append_kv_to_cache(TfhDataType t, const void* qkv, void* cache, int64_t batch, int64_t seq,
                        int64_t cache_rows, const int32_t* past_len, int64_t heads,
                        int64_t head_size, cudaStream_t s);

class LtGemm;
// com.microsoft.Attention on the device, as the CPU kernel computes it: qkv = x @ W + bias
// (cuBLASLt, bias epilogue), present = past ++ new K/V, then the fused attention (or the decode
// kernel for one new token), output [B, S, N * D]. `mask`: any MaskKind over T = P + S keys.
// Scratch: qkv (B * S * 3 * N * D elements of t). Without a past and with present null (no
// present output wanted) the attention reads K and V where the QKV GEMM left them: no copy.
struct AttentionOpArgs {
  TfhDataType type = TFH_TYPE_FLOAT;
  const void* x = nullptr;        // [B, S, H]
  const void* weights = nullptr;  // [H, 3 * N * D]
  const void* bias = nullptr;     // [3 * N * D]
  const int32_t* mask = nullptr;  // see mask_kind
  MaskKind mask_kind = MaskKind::None;
  const void* attention_bias = nullptr;  // [B or 1, N or 1, S, P + S] or null
  int64_t bias_batch_stride = 0, bias_head_stride = 0;
  const void* past = nullptr;     // [2, B, N, P, D] or null
  void* present = nullptr;        // [2, B, N, P + S, D]; may be null without a past
  // The shared buffer (past_present_share_buffer): present is [2, B, N, cache_rows, D] and
  // already holds the past (past is not read); past_len_dev (device int32) gives P.
  int64_t cache_rows = 0;
  const int32_t* past_len_dev = nullptr;
  int64_t mask_width = 0;  // Raw2D/Raw3D row length (0: P + S)
  // One new token (S == 1) with this workspace (decode_split_workspace floats): the split-keys
  // decode kernel instead of one block per head.
  float* decode_workspace = nullptr;
  void* out = nullptr;            // [B, S, N * D]
  void* qkv_scratch = nullptr;    // B * S * 3 * N * D elements
  int64_t batch = 0, seq = 0, past_len = 0, hidden = 0, heads = 0, head_size = 0;
  bool unidirectional = false;
  float scale = 0, filter = -10000;
};
void attention_op(LtGemm& gemm, const AttentionOpArgs& a, void* workspace, size_t workspace_bytes,
                  cudaStream_t s);

// ---- GEMM through cuBLASLt
// ------------------------------------------------------------------------ Gelu/BiasGelu:
// cuBLASLt's GELU epilogue, the tanh approximation (com.microsoft.FastGelu), applied to the fp32
// accumulator before the result is rounded.
enum class Epilogue { None, Bias, Gelu, BiasGelu };

// Whether the kernels that may (the LayerNorm, GELU and prefill/decode attention ones) are
// launched with programmatic dependent launch: TFH_CUDA_PDL=on (read at the first launch; a
// note says so), or what set_pdl_enabled said last (for tests and the kernel benchmark).
bool pdl_enabled();
void set_pdl_enabled(bool on);

// Asks L2 for up to kMaxL2Ranges ranges of device memory (16-byte aligned starts), in chunks of
// kL2PrefetchChunk bytes, a thread each: a kernel that fetches nothing into registers and ends
// once it has asked. The runtime's weight prefetch (Session, TFH_CUDA_PREFETCH_WEIGHTS) launches
// it on a stream beside the model's, so that a step's weights come from L2.
constexpr int kMaxL2Ranges = 8;
constexpr uint64_t kL2PrefetchChunk = 16 * 1024;
struct L2Ranges {
  const void* data[kMaxL2Ranges] = {};
  uint64_t bytes[kMaxL2Ranges] = {};
  int count = 0;
};
void prefetch_l2(const L2Ranges& r, cudaStream_t s);

// tfhost's own few-row product (decoding's products, batch 1 to 4), which LtGemm's tuning times
// next to cuBLASLt's algorithms: C[m, N] = A[m, K] @ B[K, N] with the same epilogues (GELU's
// tanh form, as cuBLASLt's), fp32 sums, for 1 to kSkinnyMaxRows rows of float16 or bfloat16, B
// row-major, N a multiple of 8 and B 16-byte aligned (skinny_gemm_fits; an error otherwise).
constexpr int64_t kSkinnyMaxRows = 4;
bool skinny_gemm_fits(TfhDataType t, int64_t m, int64_t n, int64_t k, const void* b,
                      bool b_transposed, int64_t batch);
void skinny_gemm(TfhDataType t, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                 void* c, Epilogue epilogue, const void* bias, cudaStream_t s);
// Whether LtGemm's tuning offers it: yes unless TFH_CUDA_FEW_ROW_GEMM=off (read once; a note says
// so), which times whole models with cuBLASLt's algorithms alone.
bool skinny_gemm_offered();

// One product shape as LtGemm tuned it (see LtGemm::Tuning).
struct GemmTuning {
  TfhDataType type = TFH_TYPE_FLOAT;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  bool b_transposed = false;
  Epilogue epilogue = Epilogue::None;
  // Candidates timed: the algorithms cuBLASLt's heuristic offered, in its order, then tfhost's
  // few-row kernel (skinny_gemm) when the product fits it (`skinny`). 1: no choice.
  int offered = 0;
  bool skinny = false;
  int ran = 0;      // of them, those that ran when timed
  int chosen = 0;   // the one kept, as an index into the offered (0: the heuristic's pick)
  bool chose_skinny() const { return skinny && chosen == offered - 1; }
  // One product with the heuristic's pick and with the one kept, as timed (in replayed CUDA
  // graphs); negative when that one did not run, 0 when nothing was timed (one offered).
  double first_us = 0, chosen_us = 0;
};

// Every MatMul/Gemm of the CUDA runtime goes through one of these: C[M, N] = A[M, K] @ B[K, N]
// (row-major, B optionally transposed) with an optional bias/GELU epilogue, fp16 data on Tensor
// Cores with fp32 accumulation (or fp32 data). Plans (layouts, algorithm) are made once per
// shape/type/epilogue and cached, immutable; the workspace is passed per call.
//
// Tuning (Tuning::On, or TFH_CUDA_GEMM_TUNING=on for the environment's LtGemm; off by default:
// measured on an H200, whole models ran slower tuned, docs/PERFORMANCE.md): when a product
// shape is first met on a stream that is not capturing a CUDA graph, the algorithms cuBLASLt's
// heuristic offers for it (up to kTuningCandidates), and tfhost's few-row kernel where the
// product fits it (skinny_gemm: decoding), are each timed on the call's own operands (once the
// stream's work so far is done, on a stream of LtGemm's own, each as a replayed CUDA graph of
// products; a plain product's on copies of B that overflow L2, as a model's run meets its weights
// in memory: TFH_CUDA_GEMM_TUNING=l2 times them on B in L2), and the fastest is kept for every
// later plan of that shape, type,
// epilogue and alignment — the heuristic's first unless another is more than 3 % faster. The
// products' values depend on it only through the summation order (which may then differ between
// processes; off is reproducible). A plan made while its stream captures keeps the heuristic's
// first (a capture cannot wait for timings) and is replaced by a tuned one when next called
// outside a capture.
class LtGemm {
 public:
  enum class Tuning { FromEnvironment, On, Off };
  static constexpr int kTuningCandidates = 8;

  explicit LtGemm(Tuning tuning = Tuning::FromEnvironment);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // batch > 1: that many independent products of contiguous matrices (A's M x K, B's K x N and
  // C's M x N elements apart: batched MatMul, unfused attention's Q K^T and P V).
  void run(TfhDataType t, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
           bool b_transposed, void* c, Epilogue epilogue, const void* bias, void* workspace,
           size_t workspace_bytes, cudaStream_t s, int64_t batch = 1);
  size_t cached_plans() const;
  bool tuning_enabled() const;
  // The shapes tuned so far, in the order they were met.
  std::vector<GemmTuning> tuned() const;

  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace tfh::kernels::cuda
