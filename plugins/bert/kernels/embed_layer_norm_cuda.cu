// EmbedLayerNormalization on the GPU: one block per token sums the word, position and segment
// rows into shared memory (fp32), reduces mean and variance over the row in fp32, and writes
// the normalised row (and the sum, when asked). mask_index: one thread per batch row.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "kernels/embed_layer_norm_cuda.h"

// Launches and dynamic shared memory spelled as tfhost's own kernels spell them, so that tfhost's
// CPU emulator (tests/cuda_emu, which defines both) can run this kernel too.
#ifndef TFH_CUDA_EMULATED
#define TFH_LAUNCH(grid, block, shared_bytes, stream, ...) \
  __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#define TFH_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

namespace bert::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ float ld(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void st(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

// Sum over the block (every thread gets it); `shared` holds one float per warp.
__device__ float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // `shared` may still be read from the previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = lane < warps ? shared[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T, typename I>
__global__ void embed_kernel(EmbedArgs a) {
  TFH_DYNAMIC_SHARED(float, row);  // hidden floats, then 32 for the reduction
  float* red = row + a.hidden;
  const int64_t r = blockIdx.x, b = r / a.seq, s = r % a.seq;
  const I* ids = static_cast<const I*>(a.input_ids);
  const int64_t w = static_cast<int64_t>(ids[r]);
  int64_t p = s;
  if (a.position_ids) p = static_cast<int64_t>(static_cast<const I*>(a.position_ids)[a.position_broadcast ? s : r]);
  const int64_t g = a.segment_ids ? static_cast<int64_t>(static_cast<const I*>(a.segment_ids)[r]) : 0;
  const bool w_ok = w >= 0 && w < a.word_rows, p_ok = p >= 0 && p < a.position_rows;
  const bool g_ok = a.segment && g >= 0 && g < a.segment_rows;
  const T* word = static_cast<const T*>(a.word);
  const T* pos = static_cast<const T*>(a.position);
  const T* seg = static_cast<const T*>(a.segment);
  float total = 0.f;
  for (int64_t c = threadIdx.x; c < a.hidden; c += blockDim.x) {
    float v = (w_ok ? ld(word, w * a.hidden + c) : 0.f) + (p_ok ? ld(pos, p * a.hidden + c) : 0.f);
    if (g_ok) v += ld(seg, g * a.hidden + c);
    row[c] = v;
    total += v;
  }
  const float mean = block_sum(total, red) / static_cast<float>(a.hidden);
  float sq = 0.f;
  for (int64_t c = threadIdx.x; c < a.hidden; c += blockDim.x) {
    const float d = row[c] - mean;
    sq += d * d;
  }
  const float inv = rsqrtf(block_sum(sq, red) / static_cast<float>(a.hidden) + a.epsilon);
  const T* gamma = static_cast<const T*>(a.gamma);
  const T* beta = static_cast<const T*>(a.beta);
  T* out = static_cast<T*>(a.out) + r * a.hidden;
  T* sum = a.sum ? static_cast<T*>(a.sum) + r * a.hidden : nullptr;
  for (int64_t c = threadIdx.x; c < a.hidden; c += blockDim.x) {
    float y = (row[c] - mean) * inv * ld(gamma, c);
    if (beta) y += ld(beta, c);
    st(out, c, y);
    if (sum) st(sum, c, row[c]);
  }
  (void)b;
}

__global__ void mask_index_kernel(const int32_t* mask, int32_t* out, int64_t batch, int64_t seq) {
  const int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (b >= batch) return;
  int32_t c = 0;
  if (mask)
    for (int64_t s = 0; s < seq; ++s) c += mask[b * seq + s] == 1 ? 1 : 0;
  out[b] = c;
}

template <typename T, typename I>
void launch(const EmbedArgs& a, cudaStream_t s) {
  const size_t shared = (static_cast<size_t>(a.hidden) + 32) * sizeof(float);
  TFH_LAUNCH(static_cast<unsigned>(a.batch * a.seq), kThreads, shared, s, embed_kernel<T, I>)(a);
}

}  // namespace

std::string embed_layer_norm(const EmbedArgs& a, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (a.type != TFH_TYPE_FLOAT && a.type != TFH_TYPE_FLOAT16 && a.type != TFH_TYPE_BFLOAT16)
    return "EmbedLayerNormalization on CUDA: only float, float16 and bfloat16 tables";
  if (a.id_type != TFH_TYPE_INT32 && a.id_type != TFH_TYPE_INT64)
    return "EmbedLayerNormalization on CUDA: ids must be int32 or int64";
  if ((static_cast<size_t>(a.hidden) + 32) * sizeof(float) > 48 * 1024)
    return "EmbedLayerNormalization on CUDA: hidden size over 12256";
  if (a.batch * a.seq > 0x7fffffff) return "EmbedLayerNormalization on CUDA: too many tokens";
  if (a.mask_index && a.batch > 0)
    TFH_LAUNCH(static_cast<unsigned>((a.batch + 127) / 128), 128, 0, s, mask_index_kernel)(
        a.mask, a.mask_index, a.batch, a.seq);
  if (a.batch * a.seq > 0 && a.hidden > 0) {
    const bool i64 = a.id_type == TFH_TYPE_INT64;
    if (a.type == TFH_TYPE_FLOAT16) {
      if (i64) launch<__half, int64_t>(a, s);
      else launch<__half, int32_t>(a, s);
    } else if (a.type == TFH_TYPE_BFLOAT16) {
      if (i64) launch<__nv_bfloat16, int64_t>(a, s);
      else launch<__nv_bfloat16, int32_t>(a, s);
    } else if (i64) {
      launch<float, int64_t>(a, s);
    } else {
      launch<float, int32_t>(a, s);
    }
  }
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? std::string() : std::string("EmbedLayerNormalization on CUDA: ") +
                                                cudaGetErrorString(e);
}

}  // namespace bert::cuda
