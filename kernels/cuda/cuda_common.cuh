// What tfhost's .cu files share: float/half/bfloat16 loads and stores (arithmetic is in float),
// the block size and grid of the element-wise kernels, the launch check, and the two spellings
// that let the CPU emulator (tests/cuda_emu) compile these files as C++ and run their kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"

// kernel<<<grid, block, shared_bytes, stream>>>(args...) is written
//   TFH_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...)
// and a kernel's dynamic shared memory (`extern __shared__ T name[]`) TFH_DYNAMIC_SHARED(T, name):
// under TFH_CUDA_EMULATED, tests/cuda_emu/cuda_emu.h defines both for its CPU emulator.
#ifndef TFH_CUDA_EMULATED
#define TFH_LAUNCH(grid, block, shared_bytes, stream, ...) \
  __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#define TFH_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

namespace tfh::kernels::cuda {

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

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements (capped: each thread then takes several).
inline int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

// Throws CudaError naming the kernel when its launch failed.
inline void launched(const char* what) { check(cudaGetLastError(), what); }

}  // namespace tfh::kernels::cuda
