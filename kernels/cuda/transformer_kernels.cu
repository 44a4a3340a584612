// The element-wise, activation, normalisation and attention kernels of cuda_kernels.h.
// One template per kernel over the storage type (float, __half or __nv_bfloat16); arithmetic in
// float.
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace tfh::kernels::cuda {

void env_note(const char* var, const std::string& value, const std::string& effect) {
  std::fprintf(stderr, "tfhost: note: %s=%s: %s\n", var, value.c_str(), effect.c_str());
}
bool env_choice(const char* var, const char* value, const char* effect) {
  const char* v = std::getenv(var);
  const bool on = v && std::string(v) == value;
  if (on) env_note(var, value, effect);
  return on;
}

namespace {
std::atomic<int> g_pdl{-1};  // -1: TFH_CUDA_PDL not read yet
}  // namespace
bool pdl_enabled() {
  int on = g_pdl.load(std::memory_order_relaxed);
  if (on < 0) {
    static const bool from_env = env_choice("TFH_CUDA_PDL", "on",
                                            "LayerNorm, GELU and attention kernels are launched "
                                            "with programmatic dependent launch");
    int unread = -1;
    g_pdl.compare_exchange_strong(unread, from_env ? 1 : 0);
    on = g_pdl.load(std::memory_order_relaxed);
  }
  return on == 1;
}
void set_pdl_enabled(bool on) { g_pdl.store(on ? 1 : 0); }
#ifndef TFH_CUDA_EMULATED
bool pdl_supported() {
  static const bool sm90 = [] {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return major >= 9;
  }();
  return sm90;
}
#endif

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::string msg = std::string(what) + ": " + cudaGetErrorString(e);
  switch (e) {  // faults of a running kernel: reported at a later call, not by their own launch
    case cudaErrorIllegalAddress:
    case cudaErrorMisalignedAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorInvalidPc:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
      msg += " (a fault while a kernel ran, reported asynchronously: it may come from an earlier "
             "kernel; CUDA_LAUNCH_BLOCKING=1 runs each kernel to its end before the next launch, "
             "so that the error names the kernel at fault)";
      break;
    default:
      break;
  }
  throw CudaError(msg);
}

namespace {

void check_type(TfhDataType t, const char* what) {
  if (t != TFH_TYPE_FLOAT && t != TFH_TYPE_FLOAT16 && t != TFH_TYPE_BFLOAT16)
    throw CudaError(std::string(what) + ": only float, float16 and bfloat16 tensors run on CUDA");
}

// Calls f(T()) with T float, __half or __nv_bfloat16.
template <typename F>
void by_type(TfhDataType t, const char* what, F&& f) {
  check_type(t, what);
  if (t == TFH_TYPE_FLOAT) f(float());
  else if (t == TFH_TYPE_FLOAT16) f(__half());
  else f(__nv_bfloat16());
}

// ---- element-wise ---------------------------------------------------------------------------------

// i % cols, in 32 bits where both fit (a 64-bit division is a long software routine on a GPU,
// tens of instructions per element of a kernel that is otherwise a load, an add and a store).
__device__ __forceinline__ int64_t column(int64_t i, int64_t cols) {
  return ((i | cols) >> 32) == 0 ? int64_t(uint32_t(i) % uint32_t(cols)) : i % cols;
}

template <typename T>
__global__ void add_bias_kernel(const T* x, const T* bias, const T* res, T* y, int64_t n,
                                int64_t cols) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = ld(x, i);
    if (bias) v += ld(bias, column(i, cols));
    if (res) v += ld(res, i);
    st(y, i, v);
  }
}

__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_tanh(float x) {
  return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

template <typename T>
__global__ void gelu_kernel(const T* x, const T* bias, T* y, int64_t n, int64_t cols, bool tanh_form) {
  pdl_wait();  // (a PDL launch: x is the product just before)
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = ld(x, i);
    if (bias) v += ld(bias, column(i, cols));
    st(y, i, tanh_form ? gelu_tanh(v) : gelu_erf(v));
  }
}

// ---- block reductions -----------------------------------------------------------------------------

struct SumOp {
  static constexpr float kIdentity = 0.f;
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  static constexpr float kIdentity = -INFINITY;
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Every thread of the block gets the block's reduction of v. `shared`: 32 floats.
template <typename Op>
__device__ float block_reduce(float v, float* shared, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < warps ? shared[threadIdx.x] : Op::kIdentity;
  if (warp == 0) v = warp_reduce(v, op);
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  return shared[0];
}
__device__ float block_sum(float v, float* shared) { return block_reduce(v, shared, SumOp()); }
__device__ float block_max(float v, float* shared) { return block_reduce(v, shared, MaxOp()); }

// ---- layer norm / softmax: one block per row --------------------------------------------------------

// (Skip)LayerNorm's input at column c of the row starting at element `at`: x (+ skip) (+ bias).
template <typename T>
__device__ __forceinline__ float ln_input(const T* x, const T* skip, const T* bias, int64_t at,
                                          int64_t c) {
  float v = ld(x, at + c);
  if (skip) v += ld(skip, at + c);
  if (bias) v += ld(bias, c);
  return v;
}
// Writes column c of that row: the input v normalised (and v itself to sum_out, when asked).
template <typename T>
__device__ __forceinline__ void ln_output(float v, float mean, float inv, const T* gamma,
                                          const T* beta, T* y, T* sum_out, int64_t at, int64_t c) {
  if (sum_out) st(sum_out + at, c, v);
  float o = (v - mean) * inv * ld(gamma, c);
  if (beta) o += ld(beta, c);
  st(y + at, c, o);
}

template <typename T>
__global__ void layer_norm_kernel(const T* x, const T* skip, const T* bias, const T* gamma,
                                  const T* beta, float eps, T* y, T* sum_out, int64_t cols) {
  TFH_SHARED(float, red, [32]);
  pdl_wait();  // (a PDL launch: x is the product just before)
  const int64_t at = blockIdx.x * cols;
  auto in = [&](int64_t c) { return ln_input(x, skip, bias, at, c); };
  float s = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += in(c);
  const float mean = block_sum(s, red) / static_cast<float>(cols);
  float q = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float d = in(c) - mean;
    q += d * d;
  }
  const float inv = rsqrtf(block_sum(q, red) / static_cast<float>(cols) + eps);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    ln_output(in(c), mean, inv, gamma, beta, y, sum_out, at, c);
}

// The same with the row in registers (cols <= PT x blockDim.x, PT columns per thread, in the
// same order as above, so the same sums): x, skip and bias read once instead of three times.
// gamma and beta are read at the start with the row, not after the two reductions: they are
// weights, which a decoding step finds in memory rather than in L2 (the whole model's weights
// pass through L2 each step), so their reads then wait alongside the row's instead of after it.
template <typename T, int PT>
__global__ void layer_norm_reg_kernel(const T* x, const T* skip, const T* bias, const T* gamma,
                                      const T* beta, float eps, T* y, T* sum_out, int64_t cols) {
  TFH_SHARED(float, red, [32]);
  const int64_t at = blockIdx.x * cols;
  float v[PT], g[PT], bt[PT];  // the row, gamma, beta
  float s = 0.f;
  // (a PDL launch: gamma and beta are weights in the models tfhost makes, but an ONNX graph may
  // compute them, so nothing is read before the kernels before have finished)
  pdl_wait();
#pragma unroll
  for (int i = 0; i < PT; ++i) {
    const int64_t c = threadIdx.x + int64_t(i) * blockDim.x;
    g[i] = c < cols ? ld(gamma, c) : 0.f;
    bt[i] = c < cols && beta ? ld(beta, c) : 0.f;
  }
#pragma unroll
  for (int i = 0; i < PT; ++i) {
    const int64_t c = threadIdx.x + int64_t(i) * blockDim.x;
    const float e = c < cols ? ln_input(x, skip, bias, at, c) : 0.f;
    v[i] = e;
    s += e;
  }
  const float mean = block_sum(s, red) / static_cast<float>(cols);
  float q = 0.f;
#pragma unroll
  for (int i = 0; i < PT; ++i) {
    const int64_t c = threadIdx.x + int64_t(i) * blockDim.x;
    if (c < cols) {
      const float d = v[i] - mean;
      q += d * d;
    }
  }
  const float inv = rsqrtf(block_sum(q, red) / static_cast<float>(cols) + eps);
#pragma unroll
  for (int i = 0; i < PT; ++i) {
    const int64_t c = threadIdx.x + int64_t(i) * blockDim.x;
    if (c >= cols) continue;
    if (sum_out) st(sum_out + at, c, v[i]);
    st(y + at, c, (v[i] - mean) * inv * g[i] + bt[i]);
  }
}

template <typename T>
__global__ void softmax_kernel(const T* x, T* y, int64_t cols) {
  TFH_SHARED(float, red, [32]);
  const T* xr = x + blockIdx.x * cols;
  T* yr = y + blockIdx.x * cols;
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, ld(xr, c));
  m = block_max(m, red);
  float s = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += __expf(ld(xr, c) - m);
  const float inv = 1.f / block_sum(s, red);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) st(yr, c, __expf(ld(xr, c) - m) * inv);
}

// ---- attention ------------------------------------------------------------------------------------

constexpr int kQueryTile = 64;  // queries per block of the tiled kernel
constexpr int kKeyTile = 32;    // keys staged in shared memory at a time

// Whether query i (of the S new ones) of row b must not see `key` under the mask (MaskKind).
// `total`: the keys this run attends over (a.total, or past_len + seq with a shared buffer).
__device__ __forceinline__ bool masked(const AttentionArgs& a, int64_t total, int64_t b, int64_t i,
                                       int64_t key) {
  const int64_t width = a.mask_width ? a.mask_width : total;
  switch (a.mask_kind) {
    case MaskKind::Raw2D:
      return key >= width || a.mask[b * width + key] <= 0;
    case MaskKind::Ends:
      return key >= min(max(int64_t(a.mask[b]), int64_t(0)), total);
    case MaskKind::EndsStarts:
      return key >= min(max(int64_t(a.mask[b]), int64_t(0)), total) ||
             key < min(max(int64_t(a.mask[a.batch + b]), int64_t(0)), total);
    case MaskKind::Raw3D:
      return key >= width || a.mask[(b * a.seq + i) * width + key] <= 0;
    default:
      return false;
  }
}

// The additive attention bias for (b, h, query i, key), 0 without one.
template <typename T>
__device__ __forceinline__ float bias_at(const AttentionArgs& a, int64_t total, int64_t b,
                                         int64_t h, int64_t i, int64_t key) {
  if (!a.attention_bias) return 0.f;
  return ld(static_cast<const T*>(a.attention_bias),
            b * a.bias_batch_stride + h * a.bias_head_stride + i * total + key);
}

// The keys of this run: a.total, or with a shared past/present buffer past_len + seq read on the
// device (clamped to the buffer).
__device__ __forceinline__ int64_t keys_of(const AttentionArgs& a) {
  if (!a.past_len) return a.total;
  return min(max(int64_t(*a.past_len), int64_t(0)) + a.seq, a.cache_rows);
}
// Rows per (batch, head) in K and V.
__device__ __forceinline__ int64_t rows_of(const AttentionArgs& a) {
  return a.cache_rows ? a.cache_rows : a.total;
}
// Where (b, h)'s keys start in K and V, and the elements from one key to the next.
__device__ __forceinline__ int64_t kv_start(const AttentionArgs& a, int64_t b, int64_t h) {
  return a.kv_token_stride ? b * a.kv_batch_stride + h * a.kv_head_stride
                           : (b * a.heads + h) * rows_of(a) * a.head_size;
}
__device__ __forceinline__ int64_t kv_step(const AttentionArgs& a) {
  return a.kv_token_stride ? a.kv_token_stride : a.head_size;
}

// The base of an online softmax's exponentials: its running max, or 0 while that is -inf (every
// score so far -inf, from a -inf filter or bias): exp(-inf - -inf) would be NaN, exp(-inf - 0)
// is the 0 those scores weigh.
__device__ __forceinline__ float exp_base(float running_max) {
  return running_max == -INFINITY ? 0.f : running_max;
}

// x rounded to the storage type T (and back to float).
template <typename T>
__device__ __forceinline__ float rounded(T, float x) {
  T r[1];
  st(r, 0, x);
  return ld(r, 0);
}

// The tiled prefill kernel: kQueryTile queries per block; K and V tiles of kKeyTile keys in shared
// memory; an online softmax (running max and sum, the output rescaled as the max grows): the
// scores never leave registers. MaxD: the head size (Exact) or a bound on it (the head size is
// then read at run time, for the sizes without their own instantiation).
// Split threads per query: 1, or 2 when MaxD is 128 (each thread holds half of q and of the
// output accumulator and the pair sums its halves of a score with one shuffle: one thread
// holding all 128 dims of both needs more than a thread's 255 registers and spills). Every
// thread runs every key tile, an inactive one (past the last query) on zeros, so that warps
// stay whole for the shuffle. The head dims loops run to the compile-time bound (unrolled, q and
// o stay in registers) and skip dims at or past D when the head size is read at run time.
template <typename T, int MaxD, bool Exact, int Split>
__global__ void attention_kernel(AttentionArgs a) {
  static_assert(MaxD % Split == 0 && (Split == 1 || Split == 2), "a query over 1 or 2 threads");
  constexpr int Dh = MaxD / Split;  // head dims per thread
  TFH_SHARED(float, ks, [kKeyTile][MaxD]);
  TFH_SHARED(float, vs, [kKeyTile][MaxD]);
  const int D = Exact ? MaxD : static_cast<int>(a.head_size);
  const int64_t total = keys_of(a), past = total - a.seq;
  const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads;
  const int64_t i = blockIdx.y * int64_t(kQueryTile) + threadIdx.x / Split;  // query in [0, seq)
  const int d0 = static_cast<int>(threadIdx.x % Split) * Dh;  // this thread's first head dim
  const bool active = i < a.seq;
  const T* kc = static_cast<const T*>(a.k) + kv_start(a, b, h);
  const T* vc = static_cast<const T*>(a.v) + kv_start(a, b, h);
  const int64_t step = kv_step(a);
  const float scale = a.scale != 0 ? a.scale : rsqrtf(static_cast<float>(D));
  float qr[Dh], o[Dh];
  const T* qp = static_cast<const T*>(a.q) + (b * a.seq + i) * a.q_token_stride + h * D;
#pragma unroll
  for (int d = 0; d < Dh; ++d) {
    qr[d] = active && (Exact || d0 + d < D) ? ld(qp, d0 + d) * scale : 0.f;
    o[d] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const int64_t pos = past + i;
  for (int64_t t0 = 0; t0 < total; t0 += kKeyTile) {
    const int64_t n = min(int64_t(kKeyTile), total - t0);
    for (int64_t e = threadIdx.x; e < n * D; e += blockDim.x) {
      ks[e / D][e % D] = ld(kc, (t0 + e / D) * step + e % D);
      vs[e / D][e % D] = ld(vc, (t0 + e / D) * step + e % D);
    }
    __syncthreads();
    for (int64_t j = 0; j < n; ++j) {
      const int64_t key = t0 + j;
      float sc = 0.f;
#pragma unroll
      for (int d = 0; d < Dh; ++d)
        if (Exact || d0 + d < D) sc += qr[d] * ks[j][d0 + d];
      if constexpr (Split == 2) sc += __shfl_xor_sync(0xffffffffu, sc, 1);
      if (active) {
        if (masked(a, total, b, i, key)) sc += a.filter;
        sc += bias_at<T>(a, total, b, h, i, key);
      }
      if (a.causal && key > pos) sc += a.filter;
      const float mn = fmaxf(m, sc), base = exp_base(mn);
      const float corr = __expf(m - base), p = __expf(sc - base);
      l = l * corr + p;
#pragma unroll
      for (int d = 0; d < Dh; ++d)
        if (Exact || d0 + d < D) o[d] = o[d] * corr + p * vs[j][d0 + d];
      m = mn;
    }
    __syncthreads();
  }
  if (active) {
    T* out = static_cast<T*>(a.out) + ((b * a.seq + i) * a.heads + h) * D;
    const float inv = 1.f / l;
#pragma unroll
    for (int d = 0; d < Dh; ++d)
      if (Exact || d0 + d < D) st(out, d0 + d, o[d] * inv);
  }
}

// A warp per query (b, h, i): lane l holds head dims l, l + 32, ... (up to 4); each key's score is
// a warp sum; online softmax in registers. Without a mask or bias, keys after the query's
// position are skipped when causal: key 0 is always visible then, so their weight,
// exp(score + filter - max), is 0 in float. (With a mask every visible key may be masked too,
// and the CPU's softmax then spreads over all keys: they are all computed.)
constexpr int kWarpsPerBlock = 4;
template <typename T>
__global__ void attention_warp_kernel(AttentionArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = blockIdx.x * int64_t(kWarpsPerBlock) + (threadIdx.x >> 5);
  if (warp >= a.batch * a.heads * a.seq) return;  // whole warps leave together
  const int64_t total = keys_of(a), past = total - a.seq;
  const int64_t i = warp % a.seq, bh = warp / a.seq, b = bh / a.heads, h = bh % a.heads;
  const int64_t D = a.head_size;
  const T* qp = static_cast<const T*>(a.q) + (b * a.seq + i) * a.q_token_stride + h * D;
  const T* kc = static_cast<const T*>(a.k) + kv_start(a, b, h);
  const T* vc = static_cast<const T*>(a.v) + kv_start(a, b, h);
  const int64_t step = kv_step(a);
  const float scale = a.scale != 0 ? a.scale : rsqrtf(static_cast<float>(D));
  float q[4], o[4];
  for (int r = 0; r < 4; ++r) {
    const int64_t d = lane + 32 * r;
    q[r] = d < D ? ld(qp, d) * scale : 0.f;
    o[r] = 0.f;
  }
  const int64_t pos = past + i;
  const bool skip_future = a.causal && a.mask_kind == MaskKind::None && !a.attention_bias;
  const int64_t last = skip_future ? min(pos + 1, total) : total;
  float m = -INFINITY, l = 0.f;
  for (int64_t key = 0; key < last; ++key) {
    float part = 0.f;
    for (int r = 0; r < 4; ++r) {
      const int64_t d = lane + 32 * r;
      if (d < D) part += q[r] * ld(kc, key * step + d);
    }
    float sc = warp_reduce(part, SumOp());
    if (masked(a, total, b, i, key)) sc += a.filter;
    if (a.causal && key > pos) sc += a.filter;
    sc += bias_at<T>(a, total, b, h, i, key);
    const float mn = fmaxf(m, sc), base = exp_base(mn);
    const float corr = __expf(m - base), p = __expf(sc - base);
    l = l * corr + p;
    for (int r = 0; r < 4; ++r) {
      const int64_t d = lane + 32 * r;
      if (d < D) o[r] = o[r] * corr + p * ld(vc, key * step + d);
    }
    m = mn;
  }
  T* out = static_cast<T*>(a.out) + ((b * a.seq + i) * a.heads + h) * D;
  const float inv = 1.f / l;
  for (int r = 0; r < 4; ++r) {
    const int64_t d = lane + 32 * r;
    if (d < D) st(out, d, o[r] * inv);
  }
}

// ---- the tensor-core prefill kernel (float16 / bfloat16) -----------------------------------------
//
// Flash attention on mma.sync m16n8k16: a warp takes 16 queries, a block 1 to 4 warps; K and V
// tiles of kMmaKeys keys go to shared memory in the storage type (V transposed, so that both
// products read their B fragments as 32-bit words), and per tile each warp computes its 16 x 64
// scores S = Q K^T on the tensor cores (float accumulator), scales and masks them in registers,
// updates its rows' running max and sum (online softmax, rows reduced over the four lanes that
// share them), and adds P V, P rounded to the storage type, on the tensor cores again. The score
// fragment of two adjacent 8-key tiles is exactly the A fragment of a 16-key product, so P never
// leaves registers. The masks, the attention bias and the causal filter are those of the other
// kernels, applied per score; keys past the last one weigh 0.
constexpr int kMmaKeys = 64;      // keys per shared-memory tile
constexpr int kMmaMaxWarps = 4;   // warps per block (16 queries each)

__device__ __forceinline__ uint32_t ld_u32(const uint16_t* p) {  // p: 4-byte aligned
#ifdef TFH_CUDA_EMULATED
  emu_check_aligned(p, 4);
  uint32_t u;
  memcpy(&u, p, 4);
  return u;
#else
  return *reinterpret_cast<const uint32_t*>(p);
#endif
}
// 16 bytes from p (16-byte aligned) into out, in one vector load.
__device__ __forceinline__ void load16(const void* p, void* out) {
#ifdef TFH_CUDA_EMULATED
  emu_check_aligned(p, 16);
  memcpy(out, p, 16);
#else
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  memcpy(out, &v, 16);
#endif
}
__device__ __forceinline__ void ld_8(const uint16_t* p, uint16_t (&out)[8]) { load16(p, out); }
// Asks for the line holding p in L2 (no register waits for it).
__device__ __forceinline__ void prefetch_l2(const void* p) {
#ifdef TFH_CUDA_EMULATED
  (void)p;
#else
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}
__device__ __forceinline__ void st_8(uint16_t* p, const uint16_t (&in)[8]) {  // p: 16-byte aligned
#ifdef TFH_CUDA_EMULATED
  emu_check_aligned(p, 16);
  memcpy(p, in, 16);
#else
  uint4 v;
  memcpy(&v, in, 16);
  *reinterpret_cast<uint4*>(p) = v;
#endif
}

// D: the head size (a multiple of 16). wide: K and V rows start 16-byte aligned at every key,
// head and batch, so they are read 8 elements at a time.
template <typename T, int D>
__global__ void __launch_bounds__(32 * kMmaMaxWarps) attention_mma_kernel(AttentionArgs a, bool wide) {
  static_assert(D % 16 == 0 && D <= 128, "a head size that is a multiple of 16, up to 128");
  constexpr int KP = D + 8;         // K row pitch (elements): fragment reads hit 32 banks
  constexpr int VP = kMmaKeys + 8;  // V^T row pitch
  constexpr int KT = D / 16;        // k steps of Q K^T
  constexpr int NT = kMmaKeys / 8;  // 8-key score tiles
  TFH_SHARED(__align__(16) uint16_t, ks, [kMmaKeys * KP]);
  TFH_SHARED(__align__(16) uint16_t, vt, [D * VP]);
  // Per key of the tile, what every row adds to its score: the filter where a mask that depends
  // on the key alone (raw 2-D, ends, ends and starts) hides it, -inf past the last key.
  TFH_SHARED(float, key_add, [kMmaKeys]);
  const bool key_mask = a.mask_kind != MaskKind::None && a.mask_kind != MaskKind::Raw3D;
  pdl_wait();  // (a PDL launch: Q, K, V and the past length are read after the kernels before)
  const T zero{};
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int warps = static_cast<int>(blockDim.x >> 5), g = lane >> 2, t = lane & 3;
  const int64_t total = keys_of(a), past = total - a.seq;
  const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads;
  const int64_t block_q0 = int64_t(blockIdx.y) * warps * 16, q0 = block_q0 + warp * 16;
  const int64_t r0 = q0 + g, r1 = r0 + 8;  // this lane's two query rows
  const bool live = q0 < a.seq;          // (the same for the whole warp)
  const uint16_t* kc = reinterpret_cast<const uint16_t*>(static_cast<const T*>(a.k) + kv_start(a, b, h));
  const uint16_t* vc = reinterpret_cast<const uint16_t*>(static_cast<const T*>(a.v) + kv_start(a, b, h));
  const int64_t step = kv_step(a);
  const float scale = a.scale != 0 ? a.scale : rsqrtf(static_cast<float>(D));

  uint32_t qf[KT][4];  // Q as A fragments, rows past the sequence 0
  {
    const T* qb = static_cast<const T*>(a.q) + h * D;
    auto q = [&](int64_t row, int d) {
      return row < a.seq ? ld(qb + (b * a.seq + row) * a.q_token_stride, d) : 0.f;
    };
#pragma unroll
    for (int kk = 0; kk < KT; ++kk) {
      const int d = 16 * kk + 2 * t;
      qf[kk][0] = pack2(zero, q(r0, d), q(r0, d + 1));
      qf[kk][1] = pack2(zero, q(r1, d), q(r1, d + 1));
      qf[kk][2] = pack2(zero, q(r0, d + 8), q(r0, d + 9));
      qf[kk][3] = pack2(zero, q(r1, d + 8), q(r1, d + 9));
    }
  }
  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // rows r0 and r1 (l: this lane's part)

  // Causal without a mask or bias: keys after a query's position weigh 0 in float (key 0 is
  // always visible; see attention_warp_kernel), so tiles past the block's (warp's) last query
  // are not read (computed).
  const bool skip_future = a.causal && a.mask_kind == MaskKind::None && !a.attention_bias;
  const int64_t block_end = skip_future ? min(total, past + min(a.seq, block_q0 + warps * 16)) : total;
  const int64_t warp_end = skip_future ? min(total, past + min(a.seq, q0 + 16)) : total;
  for (int64_t t0 = 0; t0 < block_end; t0 += kMmaKeys) {
    const int64_t n = min(int64_t(kMmaKeys), total - t0);
    {  // The next tile's K and V rows asked into L2 before this one's reads wait: its reads then
       // find them there (a tile's rows come from memory; BERT at sequence 128 has two tiles).
      constexpr int kLines = (D * 2 + 127) / 128;  // 128-byte lines per row (16-bit elements)
      const int64_t next = t0 + kMmaKeys, rows = min(int64_t(kMmaKeys), block_end - next);
      for (int e = threadIdx.x; e < rows * kLines; e += blockDim.x) {
        const int64_t j = next + e / kLines;
        const int64_t at = j * step + (e % kLines) * 64;  // (64 elements: 128 bytes)
        prefetch_l2(kc + at), prefetch_l2(vc + at);
      }
    }
    if (wide) {
      constexpr int kChunks = D / 8, kPer = kMmaKeys * kChunks;
      // kLoads chunks of K and of V per thread in flight before any is stored: the tile's reads
      // come from memory, and one at a time per thread they would take the kernel's time.
      constexpr int kLoads = 4;
      for (int e0 = threadIdx.x; e0 < kPer; e0 += kLoads * blockDim.x) {
        uint16_t x[kLoads][8], y[kLoads][8];
#pragma unroll
        for (int u = 0; u < kLoads; ++u) {
          const int e = e0 + u * static_cast<int>(blockDim.x);
          // K: consecutive threads along a row (coalesced reads, conflict-free 16-byte stores)
          const int j = e / kChunks, c = (e % kChunks) * 8;
          // V: consecutive threads along the keys (their transposed stores are consecutive)
          const int jv = e % kMmaKeys, cv = (e / kMmaKeys) * 8;
#pragma unroll
          for (int i = 0; i < 8; ++i) x[u][i] = y[u][i] = 0;
          if (e < kPer && j < n) ld_8(kc + (t0 + j) * step + c, x[u]);
          if (e < kPer && jv < n) ld_8(vc + (t0 + jv) * step + cv, y[u]);
        }
#pragma unroll
        for (int u = 0; u < kLoads; ++u) {
          const int e = e0 + u * static_cast<int>(blockDim.x);
          if (e >= kPer) continue;
          const int j = e / kChunks, c = (e % kChunks) * 8;
          const int jv = e % kMmaKeys, cv = (e / kMmaKeys) * 8;
          st_8(&ks[j * KP + c], x[u]);
#pragma unroll
          for (int i = 0; i < 8; ++i) vt[(cv + i) * VP + jv] = y[u][i];
        }
      }
    } else {
      for (int e = threadIdx.x; e < kMmaKeys * D; e += blockDim.x) {
        const int j = e / D, d = e % D, jv = e % kMmaKeys, dv = e / kMmaKeys;
        ks[j * KP + d] = j < n ? kc[(t0 + j) * step + d] : uint16_t(0);
        vt[dv * VP + jv] = jv < n ? vc[(t0 + jv) * step + dv] : uint16_t(0);
      }
    }
    for (int j = threadIdx.x; j < kMmaKeys; j += blockDim.x) {
      const int64_t key = t0 + j;
      key_add[j] = key >= total ? -INFINITY
                                : key_mask && masked(a, total, b, 0, key) ? a.filter : 0.f;
    }
    __syncthreads();
    if (live && t0 < warp_end) {
      float sc[NT][4];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
        const uint16_t* kr = &ks[(nt * 8 + g) * KP + 2 * t];
#pragma unroll
        for (int kk = 0; kk < KT; ++kk) {
          const uint32_t kf[2] = {ld_u32(kr + 16 * kk), ld_u32(kr + 16 * kk + 8)};
          mma_16x8x16<T>(sc[nt], qf[kk], kf);
        }
      }
      float x0 = -INFINITY, x1 = -INFINITY;  // the tile's row maxima
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = nt * 8 + 2 * t + (e & 1);
          const int64_t row = e < 2 ? r0 : r1, key = t0 + j;
          float v = sc[nt][e] * scale + key_add[j];
          if (row < a.seq && key < total) {
            if (a.mask_kind == MaskKind::Raw3D && masked(a, total, b, row, key)) v += a.filter;
            v += bias_at<T>(a, total, b, h, row, key);
          }
          if (a.causal && key > past + row) v += a.filter;
          sc[nt][e] = v;
          if (e < 2) x0 = fmaxf(x0, v);
          else x1 = fmaxf(x1, v);
        }
      x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
      x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
      x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
      x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
      const float n0 = fmaxf(m0, x0), n1 = fmaxf(m1, x1), b0 = exp_base(n0), b1 = exp_base(n1);
      const float c0 = __expf(m0 - b0), c1 = __expf(m1 - b1);
      m0 = n0, m1 = n1, l0 *= c0, l1 *= c1;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) o[dt][0] *= c0, o[dt][1] *= c0, o[dt][2] *= c1, o[dt][3] *= c1;
#pragma unroll
      for (int kk = 0; kk < kMmaKeys / 16; ++kk) {
        float p[2][4];
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          // (each weight rounded as P V reads it, so that they sum to the divisor exactly)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            p[hf][e] = rounded(zero, __expf(sc[2 * kk + hf][e] - (e < 2 ? b0 : b1)));
          l0 += p[hf][0] + p[hf][1], l1 += p[hf][2] + p[hf][3];
        }
        const uint32_t pf[4] = {pack2(zero, p[0][0], p[0][1]), pack2(zero, p[0][2], p[0][3]),
                                pack2(zero, p[1][0], p[1][1]), pack2(zero, p[1][2], p[1][3])};
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          const uint16_t* vr = &vt[(dt * 8 + g) * VP + 16 * kk + 2 * t];
          const uint32_t vf[2] = {ld_u32(vr), ld_u32(vr + 8)};
          mma_16x8x16<T>(o[dt], pf, vf);
        }
      }
    }
    __syncthreads();
  }
  if (!live) return;
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float i0 = 1.f / l0, i1 = 1.f / l1;
  T* out = static_cast<T*>(a.out) + h * D;
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const int d = dt * 8 + 2 * t;
    if (r0 < a.seq) {
      T* o0 = out + (b * a.seq + r0) * a.heads * D;
      st(o0, d, o[dt][0] * i0), st(o0, d + 1, o[dt][1] * i0);
    }
    if (r1 < a.seq) {
      T* o1 = out + (b * a.seq + r1) * a.heads * D;
      st(o1, d, o[dt][2] * i1), st(o1, d + 1, o[dt][3] * i1);
    }
  }
}

// The new token's key and value rows of (b, h) into row *past_len of the shared buffer (when
// the buffer has that row), block-wide. Every reader of the row is in this block and reads it
// after decode_softmax's first barrier.
template <typename T>
__device__ void append_new_row(const AttentionArgs& a, int64_t b, int64_t h) {
  const int64_t D = a.head_size, P = max(int64_t(*a.past_len), int64_t(0));
  if (P >= a.cache_rows) return;
  T* k = const_cast<T*>(static_cast<const T*>(a.k)) + kv_start(a, b, h) + P * kv_step(a);
  T* v = const_cast<T*>(static_cast<const T*>(a.v)) + kv_start(a, b, h) + P * kv_step(a);
  const T* nk = static_cast<const T*>(a.new_k) + b * a.new_token_stride + h * D;
  const T* nv = static_cast<const T*>(a.new_v) + b * a.new_token_stride + h * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) k[d] = nk[d], v[d] = nv[d];
}

// One decoding query (b, h) over the keys [j0, j0 + n) of the run's `total`, block-wide (every
// thread of the block calls it: it has barriers): the scaled query into qs, exp(score - m) into
// sc[0, n) (scores masked, biased and causal as the prefill kernels make them), their max m and
// sum l. The sum's barriers order the writes of sc before any reads after it.
template <typename T>
__device__ void decode_softmax(const AttentionArgs& a, int64_t total, int64_t b, int64_t h,
                               int64_t j0, int64_t n, float* qs, float* sc, float* red, float& m,
                               float& l) {
  const int64_t D = a.head_size, past = total - 1;
  const T* qp = static_cast<const T*>(a.q) + b * a.q_token_stride + h * D;
  const T* kc = static_cast<const T*>(a.k) + kv_start(a, b, h);
  const int64_t step = kv_step(a);
  const float scale = a.scale != 0 ? a.scale : rsqrtf(static_cast<float>(D));
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) qs[d] = ld(qp, d) * scale;
  __syncthreads();
  m = -INFINITY;
  for (int64_t t = threadIdx.x; t < n; t += blockDim.x) {
    const int64_t j = j0 + t;
    float v = 0.f;
    for (int64_t d = 0; d < D; ++d) v += qs[d] * ld(kc, j * step + d);
    if (masked(a, total, b, 0, j)) v += a.filter;
    v += bias_at<T>(a, total, b, h, 0, j);
    if (a.causal && j > past) v += a.filter;
    sc[t] = v;
    m = fmaxf(m, v);
  }
  m = block_max(m, red);
  l = 0.f;
  for (int64_t t = threadIdx.x; t < n; t += blockDim.x) {
    const float p = __expf(sc[t] - m);
    sc[t] = p;
    l += p;
  }
  l = block_sum(l, red);
}

// Output dimension d of that query's keys [j0, j0 + n): sum of sc[t] v[j0 + t][d].
template <typename T>
__device__ float decode_values(const AttentionArgs& a, int64_t b, int64_t h, const float* sc,
                               int64_t j0, int64_t n, int64_t d) {
  const T* vc = static_cast<const T*>(a.v) + kv_start(a, b, h);
  const int64_t step = kv_step(a);
  float o = 0.f;
  for (int64_t t = 0; t < n; ++t) o += sc[t] * ld(vc, (j0 + t) * step + d);
  return o;
}

// S == 1: one block per (batch, head). Scores for every key in shared memory (T floats), a block
// max and sum, then each output dimension summed over the keys by a slice of the block.
template <typename T>
__global__ void decode_attention_kernel(AttentionArgs a) {
  TFH_DYNAMIC_SHARED(float, smem);  // [D] query, [a.total] scores (the bound), [32] reduction
  const int64_t D = a.head_size, total = keys_of(a);
  float* qs = smem;
  float* sc = smem + D;
  float* red = sc + a.total;
  const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads;
  if (a.new_k) append_new_row<T>(a, b, h);
  float m, l;
  decode_softmax<T>(a, total, b, h, 0, total, qs, sc, red, m, l);
  const float inv = 1.f / l;
  T* out = static_cast<T*>(a.out) + (b * a.heads + h) * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
    st(out, d, decode_values<T>(a, b, h, sc, 0, total, d) * inv);
}

// DecodeVector: one block per (batch, head) of Threads threads (128, 256 or 512). A key's row is
// read by L = D / VEC lanes, VEC elements (16 bytes) each, so a warp reads 32 / L whole rows with
// one coalesced load and the block G = Threads / L rows at a time (D = 64 in float16, 128
// threads: 8 lanes a row, 16 rows per step): the scores (each row's dot product summed over its L
// lanes with shuffles) into shared memory, the block's max and sum, then the values the same way
// (each group of L lanes accumulating its rows' weighted values over VEC dimensions), the G
// groups' partial outputs summed at the end. Against DecodeBlock, whose threads each walk a whole
// key row, then a dimension over every key, one element at a time. More threads: more rows in
// flight at once, so fewer dependent trips to memory (each group reads kDecodeVecRows rows a
// trip); the same work.
constexpr int kDecodeVecThreads = 128;  // the default
constexpr int kDecodeVecRows = 4;

template <typename T>
__device__ __forceinline__ void ld_vec(const T* p, float (&out)[16 / sizeof(T)]) {  // 16-byte aligned
  constexpr int N = 16 / sizeof(T);
  T x[N];
  load16(p, x);
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = ld(x, i);
}

template <typename T, int D, int Threads>
__global__ void __launch_bounds__(Threads) decode_vec_kernel(AttentionArgs a) {
  constexpr int VEC = 16 / static_cast<int>(sizeof(T)), L = D / VEC;
  constexpr int G = Threads / L;  // key rows the block reads at a time
  static_assert(D % VEC == 0 && L <= 32 && 32 % L == 0, "a head size of 32, 64 or 128");
  static_assert(Threads % 32 == 0 && Threads >= D && Threads <= 1024, "whole warps, D or more");
  TFH_DYNAMIC_SHARED(float, smem);  // [G][D] partial outputs, [32] reduction, [a.total] scores
  float* po = smem;
  float* red = po + G * D;
  float* sc = red + 32;
  const int lane = static_cast<int>(threadIdx.x & 31), part = lane % L;
  const int group = static_cast<int>(threadIdx.x) / L;  // (the rows of one group share a warp)
  const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads;
  const T* kc = static_cast<const T*>(a.k) + kv_start(a, b, h) + part * VEC;
  const T* vc = static_cast<const T*>(a.v) + kv_start(a, b, h) + part * VEC;
  const int64_t step = kv_step(a);
  // Every key and value row (and a 2-D mask's row) this block reads, asked into L2 at once
  // before anything waits: they come from memory, and the reads below then find them in L2
  // rather than each waiting its turn for memory.
  // (In a PDL launch this may run before the kernel before has finished: `rows` is only a hint
  // here, re-read below, and a prefetch changes nothing.)
  const int64_t rows = keys_of(a);
  for (int64_t j = group; j < rows; j += G) prefetch_l2(kc + j * step), prefetch_l2(vc + j * step);
  if (a.mask_kind == MaskKind::Raw2D) {
    const int64_t width = a.mask_width ? a.mask_width : rows;
    for (int64_t j = int64_t(threadIdx.x) * 32; j < width; j += int64_t(blockDim.x) * 32)
      prefetch_l2(a.mask + b * width + j);  // (32 int32 a line)
  }
  // (a PDL launch: the past rows are asked for above while the QKV product finishes; q, the
  // new row and the past length are read after it)
  pdl_wait();
  const int64_t total = keys_of(a);
  const float scale = a.scale != 0 ? a.scale : rsqrtf(static_cast<float>(D));
  float q[VEC];
  const T* qp = static_cast<const T*>(a.q) + b * a.q_token_stride + h * D + part * VEC;
#pragma unroll
  for (int i = 0; i < VEC; ++i) q[i] = ld(qp, i) * scale;
  if (a.new_k) append_new_row<T>(a, b, h);
  __syncthreads();  // (the new row, read below)
  float m = -INFINITY;
  // kRows rows per group at a time, their loads all in flight before the sums (the keys come
  // from memory: one load at a time per thread, the reads' latency would be the kernel's time).
  constexpr int kRows = kDecodeVecRows;
  for (int64_t j0 = 0; j0 < total; j0 += kRows * G) {  // (the same trips for every lane: shuffles)
    float s[kRows];
    float k[kRows][VEC];
#pragma unroll
    for (int u = 0; u < kRows; ++u) {
      const int64_t j = j0 + u * G + group;
      if (j < total) ld_vec(kc + j * step, k[u]);
    }
#pragma unroll
    for (int u = 0; u < kRows; ++u) {
      const int64_t j = j0 + u * G + group;
      s[u] = 0.f;
      if (j < total) {
#pragma unroll
        for (int i = 0; i < VEC; ++i) s[u] += q[i] * k[u][i];
      }
    }
#pragma unroll
    for (int u = 0; u < kRows; ++u) {
#pragma unroll
      for (int off = L / 2; off > 0; off /= 2) s[u] += __shfl_xor_sync(0xffffffffu, s[u], off);
      const int64_t j = j0 + u * G + group;
      if (j < total && part == 0) {
        if (masked(a, total, b, 0, j)) s[u] += a.filter;
        s[u] += bias_at<T>(a, total, b, h, 0, j);  // (causal hides no key from the last query)
        sc[j] = s[u];
        m = fmaxf(m, s[u]);
      }
    }
  }
  m = block_max(m, red);
  float l = 0.f;
  for (int64_t t = threadIdx.x; t < total; t += blockDim.x) {
    const float p = __expf(sc[t] - m);
    sc[t] = p;
    l += p;
  }
  l = block_sum(l, red);  // (its barriers order the weights' writes before the reads below)
  float o[VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) o[i] = 0.f;
  for (int64_t j0 = group; j0 < total; j0 += kRows * G) {
    float v[kRows][VEC];
#pragma unroll
    for (int u = 0; u < kRows; ++u)
      if (j0 + u * G < total) ld_vec(vc + (j0 + u * G) * step, v[u]);
#pragma unroll
    for (int u = 0; u < kRows; ++u) {
      if (j0 + u * G >= total) break;
      const float p = sc[j0 + u * G];
#pragma unroll
      for (int i = 0; i < VEC; ++i) o[i] += p * v[u][i];
    }
  }
#pragma unroll
  for (int i = 0; i < VEC; ++i) po[group * D + part * VEC + i] = o[i];
  __syncthreads();
  // The G groups' partial outputs summed in two steps: each of the S = Threads / D slices of the
  // block sums VEC of them (G = S x VEC), then D threads the S slices' sums (fewer reads one
  // after another than one thread per dimension over all G).
  constexpr int S = Threads / D;
  const int d = static_cast<int>(threadIdx.x) % D, slice = static_cast<int>(threadIdx.x) / D;
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < VEC; ++i) sum += po[(slice + i * S) * D + d];
  if constexpr (S > 1) {
    __syncthreads();  // (every partial output read before the slices' sums overwrite them)
    po[slice * D + d] = sum;
    __syncthreads();
    if (slice == 0) {
#pragma unroll
      for (int i = 1; i < S; ++i) sum += po[i * D + d];
    }
  }
  if (slice == 0) {
    T* out = static_cast<T*>(a.out) + (b * a.heads + h) * D;
    st(out, d, sum / l);
  }
}

// SplitKeys decode, step 1: block (b, h, chunk c) over keys [c * kDecodeChunk, ..) of this
// run's keys: its max m, sum l of exp(score - m) and o[d] = sum exp(score - m) v[d], written to
// part[(b * heads + h) * chunks + c] as [o[0..D), m, l]. A chunk past the keys writes m = -inf,
// l = 0, o = 0 (a shared buffer's chunks are sized for its rows, the keys are read on the device).
template <typename T>
__global__ void decode_split_kernel(AttentionArgs a, float* part) {
  TFH_SHARED(float, qs, [128]);
  TFH_SHARED(float, sc, [kDecodeChunk]);
  TFH_SHARED(float, red, [32]);
  const int64_t D = a.head_size, total = keys_of(a);
  const int64_t bh = blockIdx.x, b = bh / a.heads, h = bh % a.heads, c = blockIdx.y;
  const int64_t j0 = c * kDecodeChunk, n = min(int64_t(kDecodeChunk), total - j0);
  float* out = part + (bh * gridDim.y + c) * (D + 2);
  auto nothing = [&] {  // (the whole block leaves: m and n are the block's)
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) out[d] = 0.f;
    if (threadIdx.x == 0) out[D] = -INFINITY, out[D + 1] = 0.f;
  };
  if (n <= 0) return nothing();
  if (a.new_k && j0 + n == total) append_new_row<T>(a, b, h);  // the chunk with the new row
  float m, l;
  decode_softmax<T>(a, total, b, h, j0, n, qs, sc, red, m, l);
  if (m == -INFINITY) return nothing();  // every score -inf (a -inf bias or filter)
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) out[d] = decode_values<T>(a, b, h, sc, j0, n, d);
  if (threadIdx.x == 0) out[D] = m, out[D + 1] = l;
}

// SplitKeys decode, step 2: per (b, h) the chunks merged: M = max m_c, L = sum l_c e^(m_c - M),
// out[d] = sum o_c[d] e^(m_c - M) / L.
template <typename T>
__global__ void decode_combine_kernel(AttentionArgs a, const float* part, int64_t chunks) {
  const int64_t D = a.head_size, bh = blockIdx.x;
  const float* pc = part + bh * chunks * (D + 2);
  float M = -INFINITY;
  for (int64_t c = 0; c < chunks; ++c) M = fmaxf(M, pc[c * (D + 2) + D]);
  float L = 0.f;
  for (int64_t c = 0; c < chunks; ++c) L += pc[c * (D + 2) + D + 1] * __expf(pc[c * (D + 2) + D] - M);
  const float inv = 1.f / L;
  T* out = static_cast<T*>(a.out) + bh * D;  // (S == 1: row b, head h)
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (int64_t c = 0; c < chunks; ++c) o += pc[c * (D + 2) + d] * __expf(pc[c * (D + 2) + D] - M);
    st(out, d, o * inv);
  }
}

void check_attention(const AttentionArgs& a, const char* what) {
  check_type(a.type, what);
  if (!a.q || !a.k || !a.v || !a.out) throw CudaError(std::string(what) + ": null tensor");
  if (a.mask_kind != MaskKind::None && !a.mask) throw CudaError(std::string(what) + ": a mask kind without a mask");
  if (a.batch <= 0 || a.heads <= 0 || a.seq <= 0 || a.total < a.seq || a.head_size <= 0)
    throw CudaError(std::string(what) + ": bad sizes (batch " + std::to_string(a.batch) +
                    ", heads " + std::to_string(a.heads) + ", seq " + std::to_string(a.seq) +
                    ", total " + std::to_string(a.total) + ", head size " +
                    std::to_string(a.head_size) + ")");
  if (a.new_k && (!a.new_v || !a.past_len || a.seq != 1 || a.kv_token_stride))
    throw CudaError(std::string(what) + ": new key/value rows are for decoding (seq 1) into a "
                    "shared buffer");
  if (a.past_len && (a.cache_rows < a.seq || a.total != a.cache_rows))
    throw CudaError(std::string(what) + ": a shared buffer of " + std::to_string(a.cache_rows) +
                    " rows needs total == rows >= seq " + std::to_string(a.seq));
  if (a.kv_token_stride && (a.kv_token_stride < a.head_size || a.kv_head_stride < 0 ||
                            a.kv_batch_stride < 0 || a.cache_rows || a.past_len))
    throw CudaError(std::string(what) + ": key/value strides (token " +
                    std::to_string(a.kv_token_stride) + ", head " + std::to_string(a.kv_head_stride) +
                    ", batch " + std::to_string(a.kv_batch_stride) +
                    ") must hold a head's row, and not with a shared buffer");
}

// What the launches need to know of the GPU (the current device's, read once).
struct GpuTraits {
  bool tensor_cores = false;  // mma.sync for float16 and bfloat16: sm_80 on
  int sms = 132;
};
const GpuTraits& gpu_traits() {
  static const GpuTraits traits = [] {
    GpuTraits g;
    int dev = 0;
    cudaDeviceProp p{};
    if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&p, dev) == cudaSuccess) {
      g.tensor_cores = p.major >= 8;
      if (p.multiProcessorCount > 0) g.sms = p.multiProcessorCount;
    } else {
      cudaGetLastError();
    }
    return g;
  }();
  return traits;
}

// TFH_CUDA_PREFILL_ATTENTION=simt: Auto keeps to the kernels without tensor cores (to time both
// on whole models; the kernel benchmark times each).
bool prefill_simt_only() {
  static const bool simt = env_choice("TFH_CUDA_PREFILL_ATTENTION", "simt",
                                      "attention over several tokens runs without tensor cores");
  return simt;
}

// TFH_CUDA_DECODE_ATTENTION=block: Auto's one-token attention is DecodeBlock, not DecodeVector
// (=split is read by the op kernels, kernels.cc).
bool decode_block_only() {
  static const bool block = env_choice("TFH_CUDA_DECODE_ATTENTION", "block",
                                       "one-token attention steps use the one-block-per-head "
                                       "scalar kernel");
  return block;
}

// TFH_CUDA_DECODE_ATTENTION=wide: Auto's vectorised decode kernel gets up to 512 threads a block
// while batch x heads leaves SMs idle (AttentionArgs::decode_threads), to time whole models both
// ways.
bool decode_wide() {
  static const bool wide = env_choice("TFH_CUDA_DECODE_ATTENTION", "wide",
                                      "one-token attention steps over few heads use blocks of up "
                                      "to 512 threads");
  return wide;
}

// Whether every key and value row of `a` starts 16-byte aligned (at each key, head and batch), so
// that the kernels may read them 16 bytes at a time; `elems`: elements in 16 bytes.
bool kv_rows_aligned16(const AttentionArgs& a, int64_t elems) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return aligned(a.k) && aligned(a.v) && a.head_size % elems == 0 &&
         (a.kv_token_stride == 0 || (a.kv_token_stride % elems == 0 &&
                                     a.kv_head_stride % elems == 0 &&
                                     a.kv_batch_stride % elems == 0));
}

bool tensor_core_attention_fits(const AttentionArgs& a) {
  return (a.type == TFH_TYPE_FLOAT16 || a.type == TFH_TYPE_BFLOAT16) &&
         (a.head_size == 32 || a.head_size == 64 || a.head_size == 128) && gpu_traits().tensor_cores;
}

template <typename T, int D>
void launch_attention_mma(const AttentionArgs& a, cudaStream_t s) {
  const bool wide = kv_rows_aligned16(a, 8);  // 16-byte reads of K and V rows
  // 4 warps per block: measured on an H200 (docs/PERFORMANCE.md), 4 beat 2 and 1 even at BERT
  // batch 1 (24 blocks for 132 SMs): a block's key tiles come from memory, and more threads
  // have more of those reads in flight; fewer warps per block gave more blocks but slower ones.
  const int64_t heads = a.batch * a.heads;
  int warps = kMmaMaxWarps;
  if (a.mma_warps == 1 || a.mma_warps == 2 || a.mma_warps == 4)
    warps = a.mma_warps;
  else if (a.mma_warps != 0)
    throw CudaError("attention: mma_warps is 1, 2 or 4 (or 0: the default, 4), not " +
                    std::to_string(a.mma_warps));
  const int64_t tiles = (a.seq + 16 * warps - 1) / (16 * warps);
  if (tiles > 65535 || heads > 0x7fffffff)
    throw CudaError("attention: too many queries for one launch");
  dim3 grid(static_cast<unsigned>(heads), static_cast<unsigned>(tiles));
  TFH_LAUNCH_PDL(grid, 32 * warps, 0, s, attention_mma_kernel<T, D>)(a, wide);
}

template <typename T, int D, bool Exact = true>
void launch_attention(const AttentionArgs& a, cudaStream_t s) {
  constexpr int kSplit = D == 128 ? 2 : 1;
  const int64_t tiles = (a.seq + kQueryTile - 1) / kQueryTile;
  if (tiles > 65535) throw CudaError("attention: sequence too long for one launch");
  dim3 grid(static_cast<unsigned>(a.batch * a.heads), static_cast<unsigned>(tiles));
  TFH_LAUNCH(grid, kQueryTile * kSplit, 0, s, attention_kernel<T, D, Exact, kSplit>)(a);
}

}  // namespace

void add_bias(TfhDataType t, const void* x, const void* bias, const void* residual, void* y,
              int64_t rows, int64_t cols, cudaStream_t s) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  by_type(t, "add_bias", [&](auto tag) {
    using T = decltype(tag);
    TFH_LAUNCH(blocks_for(n), kThreads, 0, s, add_bias_kernel<T>)(
        static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<const T*>(residual),
        static_cast<T*>(y), n, cols);
  });
  launched("add_bias");
}

void gelu(TfhDataType t, GeluKind kind, const void* x, const void* bias, void* y, int64_t rows,
          int64_t cols, cudaStream_t s) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  by_type(t, "gelu", [&](auto tag) {
    using T = decltype(tag);
    TFH_LAUNCH_PDL(blocks_for(n), kThreads, 0, s, gelu_kernel<T>)(static_cast<const T*>(x),
                                                      static_cast<const T*>(bias),
                                                      static_cast<T*>(y), n, cols,
                                                      kind == GeluKind::Tanh);
  });
  launched("gelu");
}

void layer_norm(TfhDataType t, const void* x, const void* skip, const void* bias, const void* gamma,
                const void* beta, float eps, void* y, void* sum_out, int64_t rows, int64_t cols,
                cudaStream_t s) {
  if (rows == 0 || cols == 0) return;
  if (!gamma) throw CudaError("layer_norm: gamma is required");
  if (rows > 0x7fffffff) throw CudaError("layer_norm: too many rows for one launch");
  by_type(t, "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const auto* xt = static_cast<const T*>(x);
    const auto* st = static_cast<const T*>(skip);
    const auto* bt = static_cast<const T*>(bias);
    const auto* gt = static_cast<const T*>(gamma);
    const auto* et = static_cast<const T*>(beta);
    auto* yt = static_cast<T*>(y);
    auto* ot = static_cast<T*>(sum_out);
    const unsigned blocks = static_cast<unsigned>(rows);
    // Rows of up to 16 x kThreads columns in registers; longer ones read three times.
    const int64_t per_thread = (cols + kThreads - 1) / kThreads;
    if (per_thread <= 1)
      TFH_LAUNCH_PDL(blocks, kThreads, 0, s, layer_norm_reg_kernel<T, 1>)(xt, st, bt, gt, et, eps, yt, ot, cols);
    else if (per_thread <= 2)
      TFH_LAUNCH_PDL(blocks, kThreads, 0, s, layer_norm_reg_kernel<T, 2>)(xt, st, bt, gt, et, eps, yt, ot, cols);
    else if (per_thread <= 4)
      TFH_LAUNCH_PDL(blocks, kThreads, 0, s, layer_norm_reg_kernel<T, 4>)(xt, st, bt, gt, et, eps, yt, ot, cols);
    else if (per_thread <= 8)
      TFH_LAUNCH_PDL(blocks, kThreads, 0, s, layer_norm_reg_kernel<T, 8>)(xt, st, bt, gt, et, eps, yt, ot, cols);
    else if (per_thread <= 16)
      TFH_LAUNCH_PDL(blocks, kThreads, 0, s, layer_norm_reg_kernel<T, 16>)(xt, st, bt, gt, et, eps, yt, ot, cols);
    else
      TFH_LAUNCH_PDL(blocks, kThreads, 0, s, layer_norm_kernel<T>)(xt, st, bt, gt, et, eps, yt, ot, cols);
  });
  launched("layer_norm");
}

void softmax(TfhDataType t, const void* x, void* y, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows == 0 || cols == 0) return;
  if (rows > 0x7fffffff) throw CudaError("softmax: too many rows for one launch");
  by_type(t, "softmax", [&](auto tag) {
    using T = decltype(tag);
    TFH_LAUNCH(static_cast<unsigned>(rows), kThreads, 0, s, softmax_kernel<T>)(
        static_cast<const T*>(x), static_cast<T*>(y), cols);
  });
  launched("softmax");
}

namespace {
template <typename T>
__global__ void append_new_rows_kernel(AttentionArgs a) {
  append_new_row<T>(a, blockIdx.x / a.heads, blockIdx.x % a.heads);
}
}  // namespace

void attention(const AttentionArgs& a, cudaStream_t s) {
  if (a.new_k) {  // the prefill kernels read every key from the cache: the new row goes first
    check_attention(a, "attention");
    by_type(a.type, "attention", [&](auto tag) {
      using T = decltype(tag);
      TFH_LAUNCH(static_cast<unsigned>(a.batch * a.heads), 128, 0, s, append_new_rows_kernel<T>)(a);
    });
    AttentionArgs p = a;
    p.new_k = p.new_v = nullptr;
    return attention(p, s);
  }
  check_attention(a, "attention");
  if (a.head_size > 128)
    throw CudaError("attention: head size " + std::to_string(a.head_size) + " is over 128");
  using Algo = AttentionArgs::Algo;
  const bool mma = tensor_core_attention_fits(a);
  if (a.algo == Algo::TensorCores && !mma)
    throw CudaError("attention: the tensor-core kernel takes float16 or bfloat16, head size 32, "
                    "64 or 128, on sm_80 or newer (here: head size " +
                    std::to_string(a.head_size) + ")");
  if (a.algo == Algo::TensorCores || (a.algo == Algo::Auto && mma && !prefill_simt_only())) {
    auto run = [&](auto tag) {
      using T = decltype(tag);
      switch (a.head_size) {
        case 32: return launch_attention_mma<T, 32>(a, s);
        case 64: return launch_attention_mma<T, 64>(a, s);
        default: return launch_attention_mma<T, 128>(a, s);
      }
    };
    if (a.type == TFH_TYPE_FLOAT16) run(__half());
    else run(__nv_bfloat16());
    launched("attention");
    return;
  }
  // Tiles fill the GPU when there are two per SM or more (H100: 264); below that a warp per
  // query spreads the same work over many more SMs and finishes sooner.
  const int64_t tiles = a.batch * a.heads * ((a.seq + kQueryTile - 1) / kQueryTile);
  const bool warp_per_query = a.algo == AttentionArgs::Algo::PerQueryWarp ||
                              (a.algo == AttentionArgs::Algo::Auto && tiles < 2 * gpu_traits().sms);
  if (warp_per_query) {
    const int64_t warps = a.batch * a.heads * a.seq;
    const int64_t blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
    if (blocks > 0x7fffffff) throw CudaError("attention: too many queries for one launch");
    by_type(a.type, "attention", [&](auto tag) {
      using T = decltype(tag);
      TFH_LAUNCH(static_cast<unsigned>(blocks), 32 * kWarpsPerBlock, 0, s, attention_warp_kernel<T>)(a);
    });
    launched("attention");
    return;
  }
  by_type(a.type, "attention", [&](auto tag) {
    using T = decltype(tag);
    switch (a.head_size) {
      case 32: return launch_attention<T, 32>(a, s);
      case 64: return launch_attention<T, 64>(a, s);
      case 80: return launch_attention<T, 80>(a, s);
      case 96: return launch_attention<T, 96>(a, s);
      case 128: return launch_attention<T, 128>(a, s);
      default:  // any other size up to 128, read at run time
        if (a.head_size < 32) return launch_attention<T, 32, false>(a, s);
        if (a.head_size < 64) return launch_attention<T, 64, false>(a, s);
        if (a.head_size < 128) return launch_attention<T, 128, false>(a, s);
        throw CudaError("attention: head size " + std::to_string(a.head_size) +
                        " is over 128");
    }
  });
  launched("attention");
}

namespace {
// Elements of a 16-byte read in the vectorised decode kernel, and its dynamic shared memory at
// `threads` threads: the partial outputs (threads x 16 bytes), 32 floats of reduction, the scores.
int64_t decode_vec_elems(const AttentionArgs& a) { return a.type == TFH_TYPE_FLOAT ? 4 : 8; }
size_t decode_vec_smem(const AttentionArgs& a, int64_t threads) {
  return sizeof(float) * static_cast<size_t>(threads * decode_vec_elems(a) + 32 + a.total);
}
}  // namespace

int decode_vector_threads(const AttentionArgs& a, bool wide, int sms) {
  if (a.decode_threads) return a.decode_threads;
  int threads = kDecodeVecThreads;
  if (!wide || a.batch * a.heads >= sms) return threads;
  // The fewest threads whose groups (D / vec lanes a row, kDecodeVecRows rows a trip) read every
  // key in one trip, up to 512, while the scores and partial outputs fit 48 KiB.
  const int64_t lanes = std::max<int64_t>(1, a.head_size / decode_vec_elems(a));
  while (threads < 512 && threads / lanes * kDecodeVecRows < a.total &&
         decode_vec_smem(a, 2 * threads) <= 48 * 1024)
    threads *= 2;
  return threads;
}

void decode_attention(const AttentionArgs& a, cudaStream_t s) {
  check_attention(a, "decode_attention");
  if (a.seq != 1) throw CudaError("decode_attention: one new token per row (seq 1)");
  if (a.algo == AttentionArgs::Algo::SplitKeys) {
    if (!a.workspace) throw CudaError("decode_attention: SplitKeys needs a workspace");
    if (a.head_size > 128) throw CudaError("decode_attention: SplitKeys takes head sizes up to 128");
    const int64_t chunks = (a.total + kDecodeChunk - 1) / kDecodeChunk;
    if (chunks > 65535) throw CudaError("decode_attention: too many keys for one launch");
    by_type(a.type, "decode_attention", [&](auto tag) {
      using T = decltype(tag);
      const dim3 grid(static_cast<unsigned>(a.batch * a.heads), static_cast<unsigned>(chunks));
      TFH_LAUNCH(grid, 128, 0, s, decode_split_kernel<T>)(a, a.workspace);
      TFH_LAUNCH(static_cast<unsigned>(a.batch * a.heads), 128, 0, s, decode_combine_kernel<T>)(
          a, a.workspace, chunks);
    });
    launched("decode_attention");
    return;
  }
  using Algo = AttentionArgs::Algo;
  // DecodeVector: head size 32, 64 or 128, every K and V row 16-byte aligned, the scores and the
  // partial outputs (threads x 16 bytes) in 48 KiB of shared memory.
  const int64_t vec = decode_vec_elems(a), D = a.head_size;
  if (a.decode_threads != 0 && a.decode_threads != 128 && a.decode_threads != 256 &&
      a.decode_threads != 512)
    throw CudaError("decode_attention: decode_threads is 128, 256 or 512 (or 0: the default), not " +
                    std::to_string(a.decode_threads));
  const int threads = decode_vector_threads(a, decode_wide(), gpu_traits().sms);
  const bool vec_fits = (D == 32 || D == 64 || D == 128) && kv_rows_aligned16(a, vec) &&
                        decode_vec_smem(a, threads) <= 48 * 1024;
  if (a.algo == Algo::DecodeVector && !vec_fits)
    throw CudaError("decode_attention: the vectorised kernel takes head size 32, 64 or 128, "
                    "16-byte aligned key/value rows and up to ~11,000 keys (fewer with more "
                    "threads; here: head size " + std::to_string(D) + ", " +
                    std::to_string(a.total) + " keys, " + std::to_string(threads) + " threads)");
  if (a.algo == Algo::DecodeVector ||
      (a.algo == Algo::Auto && vec_fits && !decode_block_only())) {
    by_type(a.type, "decode_attention", [&](auto tag) {
      using T = decltype(tag);
      auto launch = [&](auto threads_tag) {
        constexpr int kThreadsPerBlock = decltype(threads_tag)::value;
        const unsigned blocks = static_cast<unsigned>(a.batch * a.heads);
        const size_t bytes = decode_vec_smem(a, kThreadsPerBlock);
        switch (D) {
          case 32:
            TFH_LAUNCH_PDL(blocks, kThreadsPerBlock, bytes, s, decode_vec_kernel<T, 32, kThreadsPerBlock>)(a);
            break;
          case 64:
            TFH_LAUNCH_PDL(blocks, kThreadsPerBlock, bytes, s, decode_vec_kernel<T, 64, kThreadsPerBlock>)(a);
            break;
          default:
            TFH_LAUNCH_PDL(blocks, kThreadsPerBlock, bytes, s, decode_vec_kernel<T, 128, kThreadsPerBlock>)(a);
        }
      };
      if (threads == 512) launch(std::integral_constant<int, 512>());
      else if (threads == 256) launch(std::integral_constant<int, 256>());
      else launch(std::integral_constant<int, 128>());
    });
    launched("decode_attention");
    return;
  }
  const size_t smem = sizeof(float) * static_cast<size_t>(a.head_size + a.total + 32);
  if (smem > 48 * 1024) return attention(a, s);  // a past too long for the scores in shared memory
  by_type(a.type, "decode_attention", [&](auto tag) {
    using T = decltype(tag);
    TFH_LAUNCH(static_cast<unsigned>(a.batch * a.heads), 128, smem, s, decode_attention_kernel<T>)(a);
  });
  launched("decode_attention");
}

}  // namespace tfh::kernels::cuda

namespace tfh::kernels::cuda {
namespace {

// present[kv, b, n, t, d]: t < P from past[kv, b, n, t, d], else from qkv[b, t - P, 1 + kv, n, d].
template <typename T>
__global__ void split_kv_kernel(const T* qkv, const T* past, T* present, int64_t B, int64_t S,
                                int64_t P, int64_t N, int64_t D) {
  const int64_t T_ = P + S, total = 2 * B * N * T_ * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = i % D, t = (i / D) % T_, n = (i / (D * T_)) % N, b = (i / (D * T_ * N)) % B,
                  kv = i / (D * T_ * N * B);
    present[i] = t < P ? past[(((kv * B + b) * N + n) * P + t) * D + d]
                       : qkv[(((b * S + (t - P)) * 3 + 1 + kv) * N + n) * D + d];
  }
}

// cache[kv, b, n, P + t, d] = qkv[b, t, 1 + kv, n, d] for t < S (and P + t < M), P = *past_len.
template <typename T>
__global__ void append_kv_kernel(const T* qkv, T* cache, int64_t B, int64_t S, int64_t M,
                                 const int32_t* past_len, int64_t N, int64_t D) {
  const int64_t P = max(int64_t(*past_len), int64_t(0)), total = 2 * B * N * S * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = i % D, t = (i / D) % S, n = (i / (D * S)) % N, b = (i / (D * S * N)) % B,
                  kv = i / (D * S * N * B);
    if (P + t < M)
      cache[(((kv * B + b) * N + n) * M + P + t) * D + d] =
          qkv[(((b * S + t) * 3 + 1 + kv) * N + n) * D + d];
  }
}

}  // namespace

void append_kv_to_cache(TfhDataType t, const void* qkv, void* cache, int64_t batch, int64_t seq,
                        int64_t cache_rows, const int32_t* past_len, int64_t heads,
                        int64_t head_size, cudaStream_t s) {
  if (!past_len || !cache) throw CudaError("append_kv_to_cache: null tensor");
  const int64_t n = 2 * batch * heads * seq * head_size;
  if (n == 0) return;
  by_type(t, "append_kv_to_cache", [&](auto tag) {
    using T = decltype(tag);
    TFH_LAUNCH(blocks_for(n), kThreads, 0, s, append_kv_kernel<T>)(
        static_cast<const T*>(qkv), static_cast<T*>(cache), batch, seq, cache_rows, past_len,
        heads, head_size);
  });
  launched("append_kv_to_cache");
}

void split_kv_into_present(TfhDataType t, const void* qkv, const void* past, void* present,
                           int64_t batch, int64_t seq, int64_t past_len, int64_t heads,
                           int64_t head_size, cudaStream_t s) {
  if (past_len > 0 && !past) throw CudaError("split_kv_into_present: past length without past");
  const int64_t n = 2 * batch * heads * (past_len + seq) * head_size;
  if (n == 0) return;
  by_type(t, "split_kv_into_present", [&](auto tag) {
    using T = decltype(tag);
    TFH_LAUNCH(blocks_for(n), kThreads, 0, s, split_kv_kernel<T>)(
        static_cast<const T*>(qkv), static_cast<const T*>(past), static_cast<T*>(present), batch,
        seq, past_len, heads, head_size);
  });
  launched("split_kv_into_present");
}

void attention_op(LtGemm& gemm, const AttentionOpArgs& a, void* workspace, size_t workspace_bytes,
                  cudaStream_t s) {
  check_type(a.type, "attention_op");
  const int64_t W = 3 * a.heads * a.head_size, rows = a.batch * a.seq;
  const bool shared = a.past_len_dev != nullptr;
  if (!a.x || !a.weights || !a.out || !a.qkv_scratch || (!a.present && (a.past || shared)))
    throw CudaError("attention_op: null tensor");
  gemm.run(a.type, rows, W, a.hidden, a.x, a.weights, false, a.qkv_scratch,
           a.bias ? Epilogue::Bias : Epilogue::None, a.bias, workspace, workspace_bytes, s);
  // Decoding into the shared buffer, the attention kernel writes the new row itself.
  const bool kernel_appends = shared && a.seq == 1;
  if (shared && !kernel_appends)
    append_kv_to_cache(a.type, a.qkv_scratch, a.present, a.batch, a.seq, a.cache_rows,
                       a.past_len_dev, a.heads, a.head_size, s);
  else if (!shared && a.present)
    split_kv_into_present(a.type, a.qkv_scratch, a.past, a.present, a.batch, a.seq, a.past_len,
                          a.heads, a.head_size, s);
  const size_t elem = a.type == TFH_TYPE_FLOAT ? 4 : 2;
  const int64_t kv_rows = shared ? a.cache_rows : a.past_len + a.seq;
  const int64_t cache = a.batch * a.heads * kv_rows * a.head_size;
  AttentionArgs args;
  args.type = a.type;
  args.q = a.qkv_scratch;
  args.q_token_stride = W;
  // The new K and V in the packed QKV rows [B, S, 3, N, D].
  const char* qkv_k = static_cast<const char*>(a.qkv_scratch) + W / 3 * elem;
  const char* qkv_v = qkv_k + W / 3 * elem;
  if (a.present) {
    args.k = a.present;
    args.v = static_cast<char*>(a.present) + cache * elem;
  } else {  // no cache: K and V straight from the QKV rows
    args.k = qkv_k, args.v = qkv_v;
    args.kv_token_stride = W, args.kv_head_stride = a.head_size, args.kv_batch_stride = a.seq * W;
  }
  args.out = a.out;
  args.mask = a.mask;
  args.mask_kind = a.mask ? a.mask_kind : MaskKind::None;
  args.attention_bias = a.attention_bias;
  args.bias_batch_stride = a.bias_batch_stride, args.bias_head_stride = a.bias_head_stride;
  args.batch = a.batch, args.heads = a.heads, args.seq = a.seq;
  args.total = kv_rows, args.head_size = a.head_size;
  if (shared) args.cache_rows = a.cache_rows, args.past_len = a.past_len_dev;
  if (kernel_appends) args.new_k = qkv_k, args.new_v = qkv_v, args.new_token_stride = W;
  args.mask_width = a.mask_width;
  if (a.decode_workspace) args.algo = AttentionArgs::Algo::SplitKeys, args.workspace = a.decode_workspace;
  args.causal = a.unidirectional;
  args.scale = a.scale;
  args.filter = a.filter;
  if (a.seq == 1) decode_attention(args, s);
  else attention(args, s);
}


// ---- Few-row products (decoding): C[m, N] = A[m, K] @ B[K, N] (+ bias, GELU), m <= 4 --------------
// A decoding step multiplies one to four rows by every weight matrix: each product reads the
// whole of B once and does little else, so its time is B's bytes at the memory's bandwidth plus
// the latency of getting them in flight. Tensor-core GEMM tiles cover 64 or more rows and, at
// N = 768, only a few dozen column tiles, so few SMs fetch B. Here each thread owns 8 adjacent
// columns (one 16-byte load of a B row per step) and a slice of K (every TY-th row), so a block
// covers TX x 8 columns with 256 threads spread over K: N / 16 blocks at TX = 2 (48 for N = 768,
// 144 for 2304), each thread with a few independent loads in flight. The partial sums over K
// meet through shuffles within a warp, then shared memory across the block's 8 warps. LtGemm
// offers it to its tuning as one more candidate, so it only runs where it was timed faster
// (TFH_CUDA_FEW_ROW_GEMM=off: never offered, to time whole models without it).
namespace {
constexpr int kSkinnyThreads = 256;

template <typename T, int MR, int TX>
__global__ void __launch_bounds__(kSkinnyThreads)
    skinny_gemm_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c,
                       const T* __restrict__ bias, int m, int64_t n, int64_t k, bool gelu) {
  constexpr int TY = kSkinnyThreads / TX;  // threads along K
  constexpr int VEC = 8;                   // columns per thread: 16 bytes of T
  static_assert(sizeof(T) == 2 && 32 % TX == 0, "16-bit data, a power-of-two TX up to 32");
  TFH_SHARED(float, part, [kSkinnyThreads / 32][MR][TX * VEC]);
  const int tx = static_cast<int>(threadIdx.x) % TX, ty = static_cast<int>(threadIdx.x) / TX;
  const int64_t col = (static_cast<int64_t>(blockIdx.x) * TX + tx) * VEC;
  float acc[MR][VEC];
#pragma unroll
  for (int r = 0; r < MR; ++r)
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[r][j] = 0.f;
  if (col < n) {  // (n is a multiple of 8: a thread's columns are all in or all out)
    const T* bp = b + col;
    // (8 rows a trip: eight 16-byte loads in flight per thread; at N = 768 the grid is only 48
    // blocks, and the bytes in flight, not the bandwidth, set the time)
#pragma unroll 8
    for (int64_t kk = ty; kk < k; kk += TY) {
      float w[VEC];
      ld_vec(bp + kk * n, w);
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        if (r >= m) break;
        const float x = ld(a, r * k + kk);
#pragma unroll
        for (int j = 0; j < VEC; ++j) acc[r][j] += x * w[j];
      }
    }
  }
  // Within a warp, lanes tx, tx + TX, ... hold the same columns: their sums meet in lane tx.
#pragma unroll
  for (int off = TX; off < 32; off *= 2)
#pragma unroll
    for (int r = 0; r < MR; ++r)
#pragma unroll
      for (int j = 0; j < VEC; ++j) acc[r][j] += __shfl_xor_sync(0xffffffffu, acc[r][j], off);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) / 32;
  if (lane < TX)
#pragma unroll
    for (int r = 0; r < MR; ++r)
#pragma unroll
      for (int j = 0; j < VEC; ++j) part[warp][r][tx * VEC + j] = acc[r][j];
  __syncthreads();
  // Then across the warps: a thread per (row, column) of the block's part of C.
  for (int i = static_cast<int>(threadIdx.x); i < MR * TX * VEC; i += kSkinnyThreads) {
    const int r = i / (TX * VEC), cj = i % (TX * VEC);
    const int64_t cc = static_cast<int64_t>(blockIdx.x) * TX * VEC + cj;
    if (r >= m || cc >= n) continue;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kSkinnyThreads / 32; ++w) v += part[w][r][cj];
    if (bias) v += ld(bias, cc);
    st(c, r * n + cc, gelu ? gelu_tanh(v) : v);
  }
}

template <typename T, int TX>
void launch_skinny(const void* a, const void* b, void* c, const void* bias, int m, int64_t n,
                   int64_t k, bool gelu, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((n + TX * 8 - 1) / (TX * 8));
  const T *pa = static_cast<const T*>(a), *pb = static_cast<const T*>(b),
          *pbias = static_cast<const T*>(bias);
  T* pc = static_cast<T*>(c);
  if (m == 1) TFH_LAUNCH(blocks, kSkinnyThreads, 0, s, skinny_gemm_kernel<T, 1, TX>)(pa, pb, pc, pbias, m, n, k, gelu);
  else if (m == 2) TFH_LAUNCH(blocks, kSkinnyThreads, 0, s, skinny_gemm_kernel<T, 2, TX>)(pa, pb, pc, pbias, m, n, k, gelu);
  else TFH_LAUNCH(blocks, kSkinnyThreads, 0, s, skinny_gemm_kernel<T, 4, TX>)(pa, pb, pc, pbias, m, n, k, gelu);
}
}  // namespace

bool skinny_gemm_offered() {
  static const bool off = env_choice("TFH_CUDA_FEW_ROW_GEMM", "off",
                                     "GEMM tuning does not offer tfhost's few-row kernel");
  return !off;
}

bool skinny_gemm_fits(TfhDataType t, int64_t m, int64_t n, int64_t k, const void* b,
                      bool b_transposed, int64_t batch) {
  return (t == TFH_TYPE_FLOAT16 || t == TFH_TYPE_BFLOAT16) && batch == 1 && !b_transposed &&
         m >= 1 && m <= kSkinnyMaxRows && k >= 1 && n >= 8 && n % 8 == 0 &&
         n / 8 <= 0x7fffffff && reinterpret_cast<uintptr_t>(b) % 16 == 0;
}

void skinny_gemm(TfhDataType t, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                 void* c, Epilogue epilogue, const void* bias, cudaStream_t s) {
  if (!skinny_gemm_fits(t, m, n, k, b, false, 1))
    throw CudaError("skinny_gemm: takes 1 to " + std::to_string(kSkinnyMaxRows) +
                    " rows of float16/bfloat16, N a multiple of 8 and B 16-byte aligned (here " +
                    std::to_string(m) + "x" + std::to_string(k) + " @ " + std::to_string(k) + "x" +
                    std::to_string(n) + ")");
  const bool has_bias = epilogue == Epilogue::Bias || epilogue == Epilogue::BiasGelu;
  if (has_bias && !bias) throw CudaError("skinny_gemm: the bias epilogue needs a bias");
  const bool gelu = epilogue == Epilogue::Gelu || epilogue == Epilogue::BiasGelu;
  // Wide products (an LM head) have blocks to spare: 64 columns a block, K over 32 threads.
  const bool wide = n / 16 >= 8 * static_cast<int64_t>(gpu_traits().sms);
  const int rows = static_cast<int>(m);
  const void* bb = has_bias ? bias : nullptr;
  if (t == TFH_TYPE_FLOAT16) {
    if (wide) launch_skinny<__half, 8>(a, b, c, bb, rows, n, k, gelu, s);
    else launch_skinny<__half, 2>(a, b, c, bb, rows, n, k, gelu, s);
  } else {
    if (wide) launch_skinny<__nv_bfloat16, 8>(a, b, c, bb, rows, n, k, gelu, s);
    else launch_skinny<__nv_bfloat16, 2>(a, b, c, bb, rows, n, k, gelu, s);
  }
  launched("skinny_gemm");
}

}  // namespace tfh::kernels::cuda
