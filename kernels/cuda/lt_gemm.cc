// LtGemm: every GEMM of the CUDA runtime through cuBLASLt (cuda_kernels.h), or through tfhost's
// few-row kernel (skinny_gemm) where tuning timed it faster.
//
// Row-major C[M, N] = A[M, K] @ B[K, N] is computed as cuBLASLt's column-major
// C^T[N, M] = B^T[N, K] @ A^T[K, M]: the row-major buffers are exactly those column-major
// matrices, so nothing is copied, and the bias (N values, one per column of C) is the bias
// epilogue's per-row vector of C^T.
#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"

namespace tfh::kernels::cuda {
namespace {

void check_lt(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw CudaError(std::string("cuBLASLt ") + what + " failed (status " +
                    std::to_string(static_cast<int>(st)) + ")");
}

// (type, m, n, k, B transposed, epilogue, bias pointer, batch, alignments of A, B and C): a bias
// is a weight, fixed per node, so the plan can hold it and stay immutable (no descriptor is
// touched at run time).
using Key = std::tuple<int, int64_t, int64_t, int64_t, bool, int, uintptr_t, int64_t, int, int, int>;

// The heuristic assumes 256-byte aligned buffers unless told otherwise, and the algorithm it picks
// may then need that alignment: the session's own buffers have it (cudaMalloc), a caller's device
// tensor (IO binding) or a view into one may not. Plans are chosen for the alignment the pointers
// really have, up to 256 bytes; in a strided batch, the alignment every matrix of it has (the
// first one's, and that of the stride between them).
int alignment(const void* p, int64_t batch = 1, int64_t stride_bytes = 0) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (batch > 1) a |= static_cast<uintptr_t>(stride_bytes);
  int bytes = 1;
  while (bytes < 256 && (a & static_cast<uintptr_t>(bytes)) == 0) bytes *= 2;
  return bytes;
}

// `batch` matrices of `rows` x `cols` elements one after another.
void set_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t elements) {
  const int32_t count = static_cast<int32_t>(batch);
  check_lt(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                            sizeof count),
           "batch count");
  check_lt(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                            &elements, sizeof elements),
           "batch stride");
}

// The key of a product shape for tuning: a plan's key without its bias pointer (the algorithm
// does not depend on where the bias is; every layer's own bias then shares one tuning).
Key tuning_key(Key k) {
  std::get<6>(k) = 0;
  return k;
}

// TFH_CUDA_GEMM_TUNING, read once per LtGemm: off (or unset), on, or l2 (tuned, each product
// timed on its one B, replayed, B then in L2, not on copies that overflow L2 (ColdCopies): for
// measuring what that choice changes).
struct EnvironmentTuning {
  bool on = false, weights_in_l2 = false;
};
EnvironmentTuning tuning_from_environment() {
  const char* v = std::getenv("TFH_CUDA_GEMM_TUNING");
  const std::string value = v ? v : "";
  // Off by default: on an H200, BERT-base and GPT-2's decoding step ran slower tuned than with
  // the heuristic's picks, in every measurement (docs/PERFORMANCE.md, "GPU (issue 7)").
  if (value.empty() || value == "off") return {};
  if (value == "on" || value == "l2") return {true, value == "l2"};
  throw CudaError("TFH_CUDA_GEMM_TUNING: expected on, off or l2, got '" + value + "'");
}

// TFH_CUDA_GEMM_SPLIT_K, read once per LtGemm: which of cuBLASLt's split-K reduction schemes its
// heuristic may pick (CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK). Unset or "any": all, as
// cuBLASLt would (a decoding step's few-row products then often come as two kernels, the
// partial products and a separate reduction); "inplace": split-K only where the parts add up in
// the output itself (one kernel; the sums in the output's type); "off": no split-K. For timing
// whole models each way (scripts/gpu-profile.sh).
uint32_t reduction_mask_from_environment() {
  const char* v = std::getenv("TFH_CUDA_GEMM_SPLIT_K");
  const std::string value = v ? v : "";
  if (value.empty() || value == "any") return CUBLASLT_REDUCTION_SCHEME_MASK;
  if (value != "inplace" && value != "off")
    throw CudaError("TFH_CUDA_GEMM_SPLIT_K: expected any, inplace or off, got '" + value + "'");
  static std::once_flag said;
  std::call_once(said, [&] {
    env_note("TFH_CUDA_GEMM_SPLIT_K", value,
             value == "off" ? "cuBLASLt's algorithms that split K are left out"
                            : "cuBLASLt's split-K algorithms only where the parts add up in the "
                              "output");
  });
  if (value == "inplace") return CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_INPLACE;
  return CUBLASLT_REDUCTION_SCHEME_NONE;
}

// TFH_CUDA_FEW_ROW_GEMM=always, read once per LtGemm: every product tfhost's few-row kernel fits
// (1 to 4 rows of float16/bfloat16: decoding) runs it, untimed, instead of cuBLASLt's (=off, read
// by skinny_gemm_offered, keeps it out of tuning). For timing whole models each way, with the
// weights prefetched into L2 (TFH_CUDA_PREFETCH_WEIGHTS) and without.
bool few_row_always_from_environment() {
  const char* v = std::getenv("TFH_CUDA_FEW_ROW_GEMM");
  if (!v || std::string(v) != "always") return false;
  static std::once_flag said;
  std::call_once(said, [] {
    env_note("TFH_CUDA_FEW_ROW_GEMM", "always",
             "products of 1 to " + std::to_string(kSkinnyMaxRows) + " rows run tfhost's few-row kernel");
  });
  return true;
}

// Whether work launched on `s` now would be recorded into a graph rather than run (then
// nothing may wait for it). A failed query counts as capturing.
bool capturing(cudaStream_t s) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(s, &status) != cudaSuccess) {
    cudaGetLastError();
    return true;
  }
  return status != cudaStreamCaptureStatusNone;
}

// One immutable plan: descriptors and the algorithm the heuristic chose for the workspace size.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool skinny = false;  // tfhost's few-row kernel instead (it was timed faster)
  // Made while its stream was capturing a graph, with tuning on: the heuristic's first, to be
  // replaced by a tuned plan when next called outside a capture.
  bool untuned = false;
  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// Up to `count` algorithms cuBLASLt's heuristic offers for `plan` (its order: its pick first),
// for the workspace LtGemm passes, the alignments of `key`'s pointers and the split-K reduction
// schemes in `reductions` (a CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK).
std::vector<cublasLtMatmulAlgo_t> offered_algorithms(cublasLtHandle_t handle, const Plan& plan,
                                                     const Key& key, int count,
                                                     uint32_t reductions) {
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "preference");
  // cuBLASLt's A is our B, its B our A; C and D are both our C.
  const uint64_t ws = LtGemm::kWorkspaceBytes;
  const uint32_t align_a = static_cast<uint32_t>(std::get<9>(key)),
                 align_b = static_cast<uint32_t>(std::get<8>(key)),
                 align_c = static_cast<uint32_t>(std::get<10>(key));
  cublasStatus_t ps = CUBLAS_STATUS_SUCCESS;
  for (auto [attr, value, bytes] :
       {std::tuple<cublasLtMatmulPreferenceAttributes_t, const void*, size_t>{
            CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c},
        {CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reductions, sizeof reductions}})
    if (ps == CUBLAS_STATUS_SUCCESS) ps = cublasLtMatmulPreferenceSetAttribute(pref, attr, value, bytes);
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(count));
  int found = 0;
  const cublasStatus_t st =
      ps != CUBLAS_STATUS_SUCCESS
          ? ps
          : cublasLtMatmulAlgoGetHeuristic(handle, plan.op, plan.a, plan.b, plan.c, plan.c, pref,
                                           count, results.data(), &found);
  cublasLtMatmulPreferenceDestroy(pref);
  check_lt(ps, "preference (workspace, alignments, reduction schemes)");
  // NOT_SUPPORTED (or no result): no algorithm for this product; the caller says which.
  if (st != CUBLAS_STATUS_NOT_SUPPORTED) check_lt(st, "heuristic");
  std::vector<cublasLtMatmulAlgo_t> algos;
  for (int i = 0; st == CUBLAS_STATUS_SUCCESS && i < found && i < count; ++i)
    if (results[static_cast<size_t>(i)].state == CUBLAS_STATUS_SUCCESS)
      algos.push_back(results[static_cast<size_t>(i)].algo);
  return algos;
}

// Two CUDA events, destroyed with it.
struct EventPair {
  cudaEvent_t start = nullptr, stop = nullptr;
  bool ok = false;
  EventPair() {
    ok = cudaEventCreate(&start) == cudaSuccess && cudaEventCreate(&stop) == cudaSuccess;
    if (!ok) cudaGetLastError();
  }
  ~EventPair() {
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  // Milliseconds `f` (returning whether everything it launched was accepted) took on `s`;
  // negative when it failed.
  template <typename F>
  double time(cudaStream_t s, F&& f) {
    if (cudaEventRecord(start, s) != cudaSuccess) return -1;
    const bool launched = f();
    float ms = 0;
    if (cudaEventRecord(stop, s) != cudaSuccess || cudaEventSynchronize(stop) != cudaSuccess ||
        cudaEventElapsedTime(&ms, start, stop) != cudaSuccess || !launched)
      return -1;
    return ms;
  }
};

// Executable graphs, destroyed with it.
struct Graphs {
  std::vector<cudaGraphExec_t> execs;
  ~Graphs() {
    for (cudaGraphExec_t e : execs)
      if (e) cudaGraphExecDestroy(e);
  }
};

// Copies of a product's B that together overflow the L2 cache: a model reads each weight matrix
// once per run, and a run reads more weights than L2 holds, so its products meet their weights in
// device memory; timed on one B replayed, they would meet them in L2 (where a few-row product,
// reading nothing else, runs several times faster than from memory). Products timed in turn on
// the copies stream from memory as in the model. Empty (`count` 0) where B alone overflows L2,
// the products are not weights (`b_bytes` 0), or the memory is not there: then B itself.
struct ColdCopies {
  static constexpr int kMaxCopies = 64;
  void* base = nullptr;
  int count = 0;
  size_t stride = 0;
  ColdCopies(const void* b, size_t b_bytes, cudaStream_t s) {
    int dev = 0;
    cudaDeviceProp prop{};
    if (b_bytes == 0 || cudaGetDevice(&dev) != cudaSuccess ||
        cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    // One and a half times L2: a cycle through more than it holds misses on every product.
    const size_t target = static_cast<size_t>(prop.l2CacheSize) * 3 / 2;
    if (b_bytes >= target) return;
    const int n = static_cast<int>(std::min<size_t>((target + b_bytes - 1) / b_bytes, kMaxCopies));
    const size_t stride_ = (b_bytes + 255) / 256 * 256;  // as aligned as any B
    if (n < 2 || cudaMalloc(&base, stride_ * static_cast<size_t>(n)) != cudaSuccess) {
      cudaGetLastError();
      base = nullptr;
      return;
    }
    for (int i = 0; i < n; ++i)
      if (cudaMemcpyAsync(static_cast<char*>(base) + stride_ * static_cast<size_t>(i), b, b_bytes,
                          cudaMemcpyDeviceToDevice, s) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(base);
        base = nullptr;
        return;
      }
    count = n, stride = stride_;
  }
  ~ColdCopies() {
    if (base) cudaFree(base);
  }
  ColdCopies(const ColdCopies&) = delete;
  ColdCopies& operator=(const ColdCopies&) = delete;
  // The B of a candidate's r-th product.
  const void* b(const void* own, int r) const {
    return count ? static_cast<const char*>(base) + stride * static_cast<size_t>(r % count) : own;
  }
};

struct SkinnyCall {  // skinny_gemm's arguments but for the operands
  TfhDataType type;
  int64_t m, n, k;
  Epilogue epilogue;
  const void* bias;
};

// Times each candidate algorithm of `plan` on the call's operands, on `s` (a stream of LtGemm's
// own, idle), writing C each time (the caller's product then overwrites it), and returns the index
// of the one to keep, filling `us_per_product` (negative for a candidate that did not run). With
// `skinny` (a product of few rows), tfhost's skinny_gemm is one more candidate, after them. Each
// candidate's products are timed as one replayed CUDA graph, as the targets run them: the host's
// launch cost stays out of the comparison (a split-K algorithm's second kernel is not penalised
// for it) and only what the GPU does counts. With `b_bytes` (B is a weight matrix of that size),
// the products read B from memory, not from L2, as a model's run does (ColdCopies).
int fastest(cublasLtHandle_t handle, const Plan& plan,
            const std::vector<cublasLtMatmulAlgo_t>& candidates, const SkinnyCall* skinny,
            const void* a, const void* b, size_t b_bytes, void* c, void* workspace,
            size_t workspace_bytes, cudaStream_t s, std::vector<double>& us_per_product) {
  const size_t n = candidates.size() + (skinny ? 1 : 0);
  us_per_product.assign(n, -1);
  EventPair ev;
  if (!ev.ok) return 0;
  const ColdCopies cold(b, b_bytes, s);
  const float alpha = 1.f, beta = 0.f;
  auto run = [&](size_t i, int times) {
    for (int r = 0; r < times; ++r) {
      const void* br = cold.b(b, r);
      if (i == candidates.size()) {  // tfhost's few-row kernel
        try {
          skinny_gemm(skinny->type, skinny->m, skinny->n, skinny->k, a, br, c, skinny->epilogue,
                      skinny->bias, s);
        } catch (const CudaError&) {
          return false;
        }
      } else if (cublasLtMatmul(handle, plan.op, &alpha, br, plan.a, a, plan.b, &beta, c, plan.c,
                                c, plan.c, &candidates[i], workspace, workspace_bytes,
                                s) != CUBLAS_STATUS_SUCCESS) {
        return false;
      }
    }
    return true;
  };
  // Once each, eagerly: a warm-up (modules loaded), and what fails to run drops out.
  std::vector<bool> live(n);
  for (size_t i = 0; i < n; ++i) live[i] = run(i, 1);
  if (cudaStreamSynchronize(s) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  cudaGetLastError();  // (a candidate's refused launch is not the caller's error)
  // How many products per timing: about 0.1 ms of work (at most 20), from one warm eager product
  // of the first that ran (an overestimate: it includes the launch).
  double estimate_ms = -1;
  for (size_t i = 0; i < n && estimate_ms < 0; ++i)
    if (live[i]) estimate_ms = ev.time(s, [&] { return run(i, 1); });
  if (estimate_ms <= 0) return 0;
  // (With copies of B, one pass over them all, each replay then finding none in L2, unless that
  // would take over 2 ms: a product that slow reads its B from memory anyway.)
  const int reps = cold.count && cold.count * estimate_ms <= 2.0
                       ? cold.count
                       : static_cast<int>(std::clamp(0.1 / estimate_ms, 1.0, 20.0));
  // Each candidate's `reps` products captured as one graph.
  Graphs graphs;
  graphs.execs.assign(n, nullptr);
  for (size_t i = 0; i < n; ++i) {
    if (!live[i]) continue;
    cudaGraph_t graph = nullptr;
    bool ok = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess;
    if (ok) {
      const bool launched = run(i, reps);
      ok = cudaStreamEndCapture(s, &graph) == cudaSuccess && launched && graph &&
           cudaGraphInstantiate(&graphs.execs[i], graph, 0) == cudaSuccess;
    }
    if (graph) cudaGraphDestroy(graph);
    if (!ok) {
      live[i] = false;
      cudaGetLastError();
    }
  }
  // The best of 3 rounds, after one replay each (the graph's upload).
  for (size_t i = 0; i < n; ++i)
    if (live[i] && cudaGraphLaunch(graphs.execs[i], s) != cudaSuccess) live[i] = false;
  if (cudaStreamSynchronize(s) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < n; ++i) {
      if (!live[i]) continue;
      const double ms =
          ev.time(s, [&] { return cudaGraphLaunch(graphs.execs[i], s) == cudaSuccess; });
      if (ms < 0) {
        live[i] = false, us_per_product[i] = -1;
        cudaGetLastError();
        continue;
      }
      const double us = 1000.0 * ms / reps;
      if (us_per_product[i] < 0 || us < us_per_product[i]) us_per_product[i] = us;
    }
  size_t best = 0;
  for (size_t i = 0; i < n; ++i)
    if (us_per_product[i] >= 0 &&
        (us_per_product[best] < 0 || us_per_product[i] < us_per_product[best]))
      best = i;
  // The heuristic's pick unless another is clearly faster (not merely by the timings' noise).
  if (us_per_product[0] >= 0 && us_per_product[best] > 0.97 * us_per_product[0]) best = 0;
  return static_cast<int>(best);
}

}  // namespace

struct LtGemm::Impl {
  cublasLtHandle_t handle = nullptr;
  bool tune = true;
  bool weights_in_l2 = false;  // TFH_CUDA_GEMM_TUNING=l2
  uint32_t reductions = CUBLASLT_REDUCTION_SCHEME_MASK;  // TFH_CUDA_GEMM_SPLIT_K
  bool few_row_always = false;                          // TFH_CUDA_FEW_ROW_GEMM=always
  cudaStream_t tune_stream = nullptr;  // made at the first tuning
  mutable std::mutex mu;
  std::map<Key, std::unique_ptr<Plan>> plans;
  std::vector<std::unique_ptr<Plan>> retired;  // untuned plans replaced (a graph may hold them)
  struct Choice {
    cublasLtMatmulAlgo_t algo;
    bool skinny;
  };
  std::map<Key, Choice> algos;  // per tuning_key: the algorithm kept
  std::vector<GemmTuning> tuned;

  // Sets p.algo (or p.skinny) for the product `key` describes (a shape met before: its
  // algorithm; else the heuristic's, tuned when on and `s` is not capturing). Under mu.
  void choose_algorithm(Plan& p, const Key& key, GemmTuning rec, const void* a, const void* b,
                        void* c, const void* bias, void* workspace, size_t workspace_bytes,
                        cudaStream_t s) {
    const Key tkey = tuning_key(key);
    if (auto known = algos.find(tkey); known != algos.end()) {
      // this shape met before (another bias): its algorithm
      p.algo = known->second.algo, p.skinny = known->second.skinny;
      return;
    }
    // (B's alignment is in the key: every plan of this shape has B as aligned as this one's.)
    if (few_row_always &&
        skinny_gemm_fits(rec.type, rec.m, rec.n, rec.k, b, rec.b_transposed, rec.batch)) {
      p.skinny = true;
      algos.emplace(tkey, Choice{cublasLtMatmulAlgo_t{}, true});
      return;
    }
    std::vector<cublasLtMatmulAlgo_t> candidates = offered_algorithms(handle, p, key, 1, reductions);
    if (tune && !candidates.empty()) {
      // The heuristic's pick when asked for one first (what tuning off runs: asked for several,
      // it may put another first), then the others it offers.
      for (const cublasLtMatmulAlgo_t& x : offered_algorithms(handle, p, key, kTuningCandidates, reductions))
        if (std::memcmp(&x, &candidates[0], sizeof x) != 0) candidates.push_back(x);
      if (candidates.size() > static_cast<size_t>(kTuningCandidates))
        candidates.resize(static_cast<size_t>(kTuningCandidates));
    }
    if (candidates.empty())
      throw CudaError("gemm: cuBLASLt has no algorithm for " + std::to_string(rec.m) + "x" +
                      std::to_string(rec.k) + " @ " + std::to_string(rec.k) + "x" +
                      std::to_string(rec.n) +
                      (rec.batch > 1 ? " (batch " + std::to_string(rec.batch) + ")" : ""));
    p.algo = candidates[0];
    if (!tune) {
      algos.emplace(tkey, Choice{p.algo, false});
      return;
    }
    // A capture cannot wait for timings: the heuristic's first until next met outside one.
    if (capturing(s)) {
      p.untuned = true;
      return;
    }
    // (B's alignment is in the key: every plan of this tuning has B as aligned as this one's.)
    rec.skinny = skinny_gemm_offered() &&
                 skinny_gemm_fits(rec.type, rec.m, rec.n, rec.k, b, rec.b_transposed, rec.batch);
    const SkinnyCall call{rec.type, rec.m, rec.n, rec.k, rec.epilogue, bias};
    rec.offered = rec.ran = static_cast<int>(candidates.size()) + (rec.skinny ? 1 : 0);
    if (rec.offered > 1) {
      // On a stream of its own once the caller's work so far is done (the operands ready).
      if (!tune_stream &&
          cudaStreamCreateWithFlags(&tune_stream, cudaStreamNonBlocking) != cudaSuccess) {
        cudaGetLastError();
        tune_stream = nullptr;
      }
      std::vector<double> us(static_cast<size_t>(rec.offered), -1);
      if (tune_stream && cudaStreamSynchronize(s) == cudaSuccess) {
        // (A batched product's B is an activation, met in L2 as timed; a plain one's, weights.)
        const size_t b_bytes =
            rec.batch == 1 && !weights_in_l2
                ? static_cast<size_t>(rec.k * rec.n * (rec.type == TFH_TYPE_FLOAT ? 4 : 2))
                : 0;
        rec.chosen = fastest(handle, p, candidates, rec.skinny ? &call : nullptr, a, b, b_bytes,
                             c, workspace, workspace_bytes, tune_stream, us);
        cudaStreamSynchronize(tune_stream);
      }
      cudaGetLastError();
      rec.ran = static_cast<int>(std::count_if(us.begin(), us.end(), [](double u) { return u >= 0; }));
      rec.first_us = us[0], rec.chosen_us = us[static_cast<size_t>(rec.chosen)];
      p.skinny = rec.chose_skinny();
      if (!p.skinny) p.algo = candidates[static_cast<size_t>(rec.chosen)];
    }
    tuned.push_back(rec);
    algos.emplace(tkey, Choice{p.algo, p.skinny});
  }
};

LtGemm::LtGemm(Tuning tuning) : impl_(new Impl) {
  try {
    if (tuning == Tuning::FromEnvironment) {
      const EnvironmentTuning env = tuning_from_environment();
      impl_->tune = env.on, impl_->weights_in_l2 = env.weights_in_l2;
    } else {
      impl_->tune = tuning == Tuning::On;
    }
    impl_->reductions = reduction_mask_from_environment();
    impl_->few_row_always = few_row_always_from_environment();
    check_lt(cublasLtCreate(&impl_->handle), "create");
  } catch (...) {
    delete impl_;
    throw;
  }
}

LtGemm::~LtGemm() {
  impl_->plans.clear();
  impl_->retired.clear();
  if (impl_->tune_stream) cudaStreamDestroy(impl_->tune_stream);
  if (impl_->handle) cublasLtDestroy(impl_->handle);
  delete impl_;
}

size_t LtGemm::cached_plans() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->plans.size();
}

bool LtGemm::tuning_enabled() const { return impl_->tune; }

std::vector<GemmTuning> LtGemm::tuned() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->tuned;
}

void LtGemm::run(TfhDataType t, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                 bool b_transposed, void* c, Epilogue epilogue, const void* bias, void* workspace,
                 size_t workspace_bytes, cudaStream_t s, int64_t batch) {
  if (t != TFH_TYPE_FLOAT && t != TFH_TYPE_FLOAT16 && t != TFH_TYPE_BFLOAT16)
    throw CudaError("gemm: only float, float16 and bfloat16 tensors run on CUDA");
  if (m <= 0 || n <= 0 || batch <= 0) return;
  if (k <= 0) throw CudaError("gemm: K must be positive (an empty sum is the caller's zeros)");
  if (workspace_bytes < kWorkspaceBytes)  // plans chose their algorithm for that much
    throw CudaError("gemm: the workspace must hold LtGemm::kWorkspaceBytes");
  if (batch > 1 && epilogue != Epilogue::None)
    throw CudaError("gemm: a batched product takes no epilogue");
  if (batch > INT32_MAX) throw CudaError("gemm: more than 2^31 - 1 products in one batch");
  const bool has_bias = epilogue == Epilogue::Bias || epilogue == Epilogue::BiasGelu;
  if (has_bias && !bias) throw CudaError("gemm: the bias epilogue needs a bias");
  const cudaDataType_t dt = t == TFH_TYPE_FLOAT16    ? CUDA_R_16F
                           : t == TFH_TYPE_BFLOAT16 ? CUDA_R_16BF
                                                    : CUDA_R_32F;
  const int64_t elem = t == TFH_TYPE_FLOAT ? 4 : 2;
  const Key key{static_cast<int>(t), m, n, k, b_transposed, static_cast<int>(epilogue),
                reinterpret_cast<uintptr_t>(has_bias ? bias : nullptr), batch,
                alignment(a, batch, m * k * elem), alignment(b, batch, k * n * elem),
                alignment(c, batch, m * n * elem)};
  Plan* plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->plans.find(key);
    const bool retune = it != impl_->plans.end() && it->second->untuned && !capturing(s);
    if (it == impl_->plans.end() || retune) {
      auto p = std::make_unique<Plan>();
      // fp32 accumulation for every type: Tensor Cores for float16 and bfloat16, exact float32
      // otherwise.
      check_lt(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc");
      const cublasOperation_t ta = b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
      check_lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
               "transa");
      check_lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
               "transb");
      if (epilogue != Epilogue::None) {
        const cublasLtEpilogue_t e = epilogue == Epilogue::Bias   ? CUBLASLT_EPILOGUE_BIAS
                                     : epilogue == Epilogue::Gelu ? CUBLASLT_EPILOGUE_GELU
                                                                  : CUBLASLT_EPILOGUE_GELU_BIAS;
        check_lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e),
                 "epilogue");
      }
      if (has_bias)
        check_lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof bias),
                 "bias pointer");
      // Column-major views: "A" = B^T ([N, K], or B itself stored [N, K] when transposed),
      // "B" = A^T [K, M], C^T [N, M].
      check_lt(b_transposed ? cublasLtMatrixLayoutCreate(&p->a, dt, k, n, k)
                            : cublasLtMatrixLayoutCreate(&p->a, dt, n, k, n),
               "layout of B");
      check_lt(cublasLtMatrixLayoutCreate(&p->b, dt, k, m, k), "layout of A");
      check_lt(cublasLtMatrixLayoutCreate(&p->c, dt, n, m, n), "layout of C");
      if (batch > 1) {
        set_batch(p->a, batch, k * n);
        set_batch(p->b, batch, m * k);
        set_batch(p->c, batch, m * n);
      }
      GemmTuning rec;
      rec.type = t, rec.m = m, rec.n = n, rec.k = k, rec.batch = batch;
      rec.b_transposed = b_transposed, rec.epilogue = epilogue;
      impl_->choose_algorithm(*p, key, rec, a, b, c, has_bias ? bias : nullptr, workspace,
                              workspace_bytes, s);
      if (retune) {  // (the untuned plan stays alive: a captured graph may hold it)
        impl_->retired.push_back(std::move(it->second));
        it->second = std::move(p);
      } else {
        it = impl_->plans.emplace(key, std::move(p)).first;
      }
    }
    plan = it->second.get();
  }
  if (plan->skinny) return skinny_gemm(t, m, n, k, a, b, c, epilogue, bias, s);
  const float alpha = 1.f, beta = 0.f;
  check_lt(cublasLtMatmul(impl_->handle, plan->op, &alpha, b, plan->a, a, plan->b, &beta, c,
                          plan->c, c, plan->c, &plan->algo, workspace, workspace_bytes, s),
           "matmul");
}

}  // namespace tfh::kernels::cuda
