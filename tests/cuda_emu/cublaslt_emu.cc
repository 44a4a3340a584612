// cuBLASLt for the CPU emulator (cuda_emu.h): the descriptors and attributes tfhost's LtGemm
// sets, and cublasLtMatmul as a reference product (for pointers as aligned as the heuristic was
// told), D = alpha op(A) op(B) (+ beta C), column-major,
// accumulated in float, then the epilogue (bias per row of D, GELU's tanh form) and one rounding
// to D's type. Sizes that do not fit together, types or attributes it does not know are refused
// with CUBLAS_STATUS_INVALID_VALUE / NOT_SUPPORTED, as cuBLASLt would refuse them.
#include "cuda_emu.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

struct cublasLtContext {};

namespace tfh::emu {
namespace {

struct MatmulDesc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cublasOperation_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
};
struct Layout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
  int64_t stride = 0;  // elements between the batch's matrices
};
// The alignments (bytes) the caller promises for A, B, C and D: an algorithm the heuristic picks
// may rely on them, so the emulated heuristic writes them into the algorithm it returns and
// cublasLtMatmul refuses pointers less aligned than that (cuBLASLt itself may fail or fault).
struct Preference {
  uint32_t align[4] = {256, 256, 256, 256};
  uint32_t reductions = CUBLASLT_REDUCTION_SCHEME_MASK;
};
uint32_t last_reductions = CUBLASLT_REDUCTION_SCHEME_MASK;  // of the last heuristic query

std::vector<EmuGemmAlgo> algos_from_environment() {
  std::vector<EmuGemmAlgo> algos;
  const char* v = std::getenv("TFH_EMU_GEMM_ALGOS");
  std::string spec = v && *v ? v : "0";
  size_t at = 0;
  while (at <= spec.size()) {
    const size_t comma = std::min(spec.find(',', at), spec.size());
    const std::string item = spec.substr(at, comma - at);
    EmuGemmAlgo a;
    if (item == "x") a.fails = true;
    else a.delay_us = std::atoi(item.c_str());
    algos.push_back(a);
    at = comma + 1;
  }
  return algos;
}
std::vector<EmuGemmAlgo>& algorithms() {
  static std::vector<EmuGemmAlgo> algos = algos_from_environment();
  return algos;
}
// The slot of cublasLtMatmulAlgo_t::data holding the emulated algorithm's index (0-3: the
// alignments).
constexpr int kAlgoIndex = 4;

MatmulDesc* desc(cublasLtMatmulDesc_t d) { return reinterpret_cast<MatmulDesc*>(d); }
Layout* layout(cublasLtMatrixLayout_t l) { return reinterpret_cast<Layout*>(l); }

template <typename T>
cublasStatus_t set(T& field, const void* buf, size_t bytes) {
  if (!buf || bytes != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

float load(cudaDataType_t t, const void* p, int64_t i) {
  if (t == CUDA_R_16F) return __half2float(static_cast<const __half*>(p)[i]);
  if (t == CUDA_R_16BF) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  return static_cast<const float*>(p)[i];
}
void store(cudaDataType_t t, void* p, int64_t i, float v) {
  if (t == CUDA_R_16F) static_cast<__half*>(p)[i] = __float2half_rn(v);
  else if (t == CUDA_R_16BF) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else static_cast<float*>(p)[i] = v;
}

// The checks and the product: the descriptors as cublasLtMatmul receives them.
cublasStatus_t matmul(const MatmulDesc& op, float alpha, const void* a, const Layout& la,
                      const void* b, const Layout& lb, float beta, const void* c, const Layout& lc,
                      void* d, const Layout& ld, bool check_only = false) {
  for (const Layout* l : {&la, &lb, &lc, &ld})
    if ((l->type != CUDA_R_32F && l->type != CUDA_R_16F && l->type != CUDA_R_16BF) ||
        l->ld < static_cast<int64_t>(l->rows))
      return CUBLAS_STATUS_INVALID_VALUE;
  if (op.compute != CUBLAS_COMPUTE_32F || op.scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  // op(A) is m x k, op(B) k x n, D m x n.
  const bool ta = op.transa == CUBLAS_OP_T, tb = op.transb == CUBLAS_OP_T;
  const uint64_t m = ta ? la.cols : la.rows, k = ta ? la.rows : la.cols;
  const uint64_t kb = tb ? lb.cols : lb.rows, n = tb ? lb.rows : lb.cols;
  if (kb != k || ld.rows != m || ld.cols != n || lc.rows != m || lc.cols != n)
    return CUBLAS_STATUS_INVALID_VALUE;
  const int32_t batch = ld.batch;
  if (la.batch != batch || lb.batch != batch || lc.batch != batch) return CUBLAS_STATUS_INVALID_VALUE;
  const bool bias = op.epilogue == CUBLASLT_EPILOGUE_BIAS || op.epilogue == CUBLASLT_EPILOGUE_GELU_BIAS;
  const bool gelu = op.epilogue == CUBLASLT_EPILOGUE_GELU || op.epilogue == CUBLASLT_EPILOGUE_GELU_BIAS;
  if (!bias && !gelu && op.epilogue != CUBLASLT_EPILOGUE_DEFAULT) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (bias && !op.bias) return CUBLAS_STATUS_INVALID_VALUE;
  if (check_only) return CUBLAS_STATUS_SUCCESS;
  std::vector<float> at(m * k), bt(n * k);  // op(A) by rows, op(B) by columns: dot products
  for (int32_t q = 0; q < batch; ++q) {
    const int64_t oa = q * la.stride, ob = q * lb.stride, oc = q * lc.stride, od = q * ld.stride;
    for (uint64_t i = 0; i < m; ++i)
      for (uint64_t p = 0; p < k; ++p)
        at[i * k + p] = load(la.type, a, oa + (ta ? p + i * la.ld : i + p * la.ld));
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t p = 0; p < k; ++p)
        bt[j * k + p] = load(lb.type, b, ob + (tb ? j + p * lb.ld : p + j * lb.ld));
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t i = 0; i < m; ++i) {
        float acc = 0.f;
        const float* x = &at[i * k];
        const float* y = &bt[j * k];
        for (uint64_t p = 0; p < k; ++p) acc += x[p] * y[p];
        float v = alpha * acc;
        if (beta != 0.f) v += beta * load(lc.type, c, oc + i + j * lc.ld);
        if (bias) v += load(ld.type, op.bias, static_cast<int64_t>(i));  // the bias has D's type
        if (gelu) v = 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        store(ld.type, d, od + i + j * ld.ld, v);
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

void set_gemm_algorithms(std::vector<EmuGemmAlgo> algos) {
  algorithms() = algos.empty() ? std::vector<EmuGemmAlgo>(1) : std::move(algos);
}
std::vector<EmuGemmAlgo> gemm_algorithms() { return algorithms(); }
uint32_t heuristic_reduction_schemes() { return last_reductions; }
}  // namespace tfh::emu

using namespace tfh::emu;

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  *h = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  *d = reinterpret_cast<cublasLtMatmulDesc_t>(new MatmulDesc{compute, scale});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete desc(d);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return set(desc(d)->transa, buf, bytes);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set(desc(d)->transb, buf, bytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set(desc(d)->epilogue, buf, bytes);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set(desc(d)->bias, buf, bytes);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  *l = reinterpret_cast<cublasLtMatrixLayout_t>(new Layout{type, rows, cols, ld});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete layout(l);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t bytes) {
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return set(layout(l)->batch, buf, bytes);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return set(layout(l)->stride, buf, bytes);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  *p = reinterpret_cast<cublasLtMatmulPreference_t>(new Preference);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete reinterpret_cast<Preference*>(p);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* buf, size_t bytes) {
  Preference* pref = reinterpret_cast<Preference*>(p);
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      return buf && bytes == sizeof(uint64_t) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return set(pref->align[0], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return set(pref->align[1], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return set(pref->align[2], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return set(pref->align[3], buf, bytes);
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: return set(pref->reductions, buf, bytes);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatmulPreference_t p,
                                              int requested, cublasLtMatmulHeuristicResult_t results[],
                                              int* found) {
  if (requested < 1 || !p) return CUBLAS_STATUS_INVALID_VALUE;
  last_reductions = reinterpret_cast<Preference*>(p)->reductions;
  const int n = std::min(requested, static_cast<int>(tfh::emu::algorithms().size()));
  for (int r = 0; r < n; ++r) {
    results[r] = cublasLtMatmulHeuristicResult_t{};
    for (int i = 0; i < 4; ++i) results[r].algo.data[i] = reinterpret_cast<Preference*>(p)->align[i];
    results[r].algo.data[tfh::emu::kAlgoIndex] = static_cast<uint64_t>(r);
    results[r].state = CUBLAS_STATUS_SUCCESS;
  }
  *found = n;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t op, const void* alpha, const void* a,
                              cublasLtMatrixLayout_t la, const void* b, cublasLtMatrixLayout_t lb,
                              const void* beta, const void* c, cublasLtMatrixLayout_t lc, void* d,
                              cublasLtMatrixLayout_t ld, const cublasLtMatmulAlgo_t* algo, void*, size_t,
                              cudaStream_t stream) {
  // Without an algorithm cuBLASLt runs its own heuristic for these very pointers. Every matrix
  // of a strided batch is checked, not only the first.
  const void* buffers[4] = {a, b, c, d};
  const tfh::emu::Layout* layouts[4] = {layout(la), layout(lb), layout(lc), layout(ld)};
  for (int i = 0; algo && i < 4; ++i) {
    const size_t elem = layouts[i]->type == CUDA_R_32F ? 4 : 2;
    for (int32_t q = 0; q < layouts[i]->batch; ++q) {
      const uintptr_t at = reinterpret_cast<uintptr_t>(buffers[i]) +
                           static_cast<uintptr_t>(q * layouts[i]->stride) * elem;
      if (algo->data[i] > 1 && at % algo->data[i] != 0) return CUBLAS_STATUS_INVALID_VALUE;
    }
  }
  // alpha and beta are host floats (the default pointer mode); the descriptors are the caller's
  // and stay alive (a captured product reads them at every replay, as a graph's node holds them).
  // The algorithm: the heuristic's (its index), or the first when none is given.
  uint64_t index = 0;
  if (algo) {
    index = algo->data[tfh::emu::kAlgoIndex];
    if (index >= tfh::emu::algorithms().size()) return CUBLAS_STATUS_INVALID_VALUE;
  }
  const tfh::emu::EmuGemmAlgo chosen = tfh::emu::algorithms()[index];
  if (chosen.fails) return CUBLAS_STATUS_NOT_SUPPORTED;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  const MatmulDesc* o = desc(op);
  const Layout *pa = layout(la), *pb = layout(lb), *pc = layout(lc), *pd = layout(ld);
  std::function<void()> run = [=] {
    if (chosen.delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(chosen.delay_us));
    matmul(*o, al, a, *pa, b, *pb, be, c, *pc, d, *pd);
    if (index < tfh::emu::algorithms().size()) {
      ++tfh::emu::algorithms()[index].runs;
      tfh::emu::algorithms()[index].weights.insert(a);  // (cuBLASLt's A: LtGemm's B)
    }
  };
  // Checked now, as cuBLASLt checks when the call is made (captured or not).
  const cublasStatus_t st = matmul(*o, al, a, *pa, b, *pb, be, c, *pc, d, *pd, /*check_only=*/true);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  // A fault to inject (tests only): a GEMM that fails while its stream captures, as a library
  // call might on a GPU without saying that capture is the reason ("always": every GEMM fails).
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (const char* fail = std::getenv("TFH_EMU_GEMM_FAILS_WHILE_CAPTURING"))
    if (std::string(fail) == "always" ||
        (cudaStreamIsCapturing(stream, &capturing) == cudaSuccess &&
         capturing == cudaStreamCaptureStatusActive))
      return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!record(stream, run)) run();
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
