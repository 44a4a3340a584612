// What tfhost's .cu files share: float/half/bfloat16 loads and stores (arithmetic is in float),
// the block size and grid of the element-wise kernels, the launch check, and the two spellings
// that let the CPU emulator (tests/cuda_emu) compile these files as C++ and run their kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/cuda_kernels.h"

// kernel<<<grid, block, shared_bytes, stream>>>(args...) is written
//   TFH_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...),
// a kernel's dynamic shared memory (`extern __shared__ T name[]`) TFH_DYNAMIC_SHARED(T, name),
// and its static shared memory (`__shared__ T name dims;`) TFH_SHARED(T, name, dims), one
// variable each: under TFH_CUDA_EMULATED, tests/cuda_emu/cuda_emu.h defines them for its CPU
// emulator (which fills shared memory with NaN bytes at every block's start, as garbage).
//
// TFH_LAUNCH_PDL(...)(args...) is the same launch, made with programmatic dependent launch
// (PDL, sm_90 on) when TFH_CUDA_PDL=on: the kernel may then start while the kernel before it on
// the stream is still finishing, and must call pdl_wait() before it reads anything that kernel
// (or any before it) wrote, and before it writes anything; what it reads before that (weights,
// a past's key/value rows) it may read early. Without PDL (the default, the emulator, GPUs before
// sm_90) pdl_wait() returns at once.
#ifndef TFH_CUDA_EMULATED
#define TFH_LAUNCH(grid, block, shared_bytes, stream, ...) \
  __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#define TFH_LAUNCH_PDL(grid, block, shared_bytes, stream, ...) \
  ::tfh::kernels::cuda::pdl_launch(grid, block, shared_bytes, stream, &__VA_ARGS__)
#define TFH_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#define TFH_SHARED(T, name, dims) __shared__ T name dims
#endif

namespace tfh::kernels::cuda {

// Waits until the kernels before this one on the stream have finished and their writes are
// visible (griddepcontrol.wait); at once when the launch was not a PDL one.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

#ifndef TFH_CUDA_EMULATED
// Whether the current GPU takes programmatic dependent launch (sm_90 on; read once).
bool pdl_supported();

template <typename... P>
struct PdlLaunch {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  // (an error is CUDA's last error, which the caller's launched() reports)
  template <typename... A>
  void operator()(A&&... args) const {
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = shared_bytes;
    config.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attr;
    config.numAttrs = pdl_enabled() && pdl_supported() ? 1 : 0;
    cudaLaunchKernelEx(&config, kernel, static_cast<P>(args)...);
  }
};
template <typename... P>
PdlLaunch<P...> pdl_launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                           void (*kernel)(P...)) {
  return PdlLaunch<P...>{kernel, grid, block, shared_bytes, stream};
}
#endif

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

#ifdef TFH_CUDA_EMULATED
// A GPU faults on a vector access that is not aligned to its size; so does the emulator.
inline void emu_check_aligned(const void* p, size_t bytes) {
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0)
    throw std::runtime_error("misaligned address: a " + std::to_string(bytes) +
                             "-byte access at an address that is not a multiple of it");
}
#endif

// Two storage-type values as one 32-bit register (the first in the low half), the form of the
// tensor-core fragments below.
__device__ __forceinline__ uint32_t pack2(__half, float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}
__device__ __forceinline__ uint32_t pack2(__nv_bfloat16, float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}

// d += A x B on the tensor cores, warp-wide (every lane of the warp must call it together):
// mma.sync m16n8k16, A 16 x 16 row-major and B 16 x 8 column-major in float16 or bfloat16 (T),
// float accumulator. Per lane (g = lane / 4, t = lane % 4), as the PTX ISA lays the fragments
// out: a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..2t+1], a[2] = A[g][2t+8..2t+9],
// a[3] = A[g+8][2t+8..2t+9]; b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]; d[0..1] =
// D[g][2t..2t+1], d[2..3] = D[g+8][2t..2t+1]. Needs sm_80 or newer (the launchers check the
// device's compute capability first: gpu_traits() in transformer_kernels.cu).
template <typename T>
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4],
                                            const uint32_t (&b)[2]) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>,
                "tensor-core products of float16 or bfloat16");
#if defined(TFH_CUDA_EMULATED)
  ::tfh::emu::mma_m16n8k16(d, a, b, std::is_same_v<T, __nv_bfloat16>);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(__CUDA_ARCH__)
  __trap();  // (older GPUs: never launched there)
#endif
}

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements (capped: each thread then takes several).
inline int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

// Throws CudaError naming the kernel when its launch failed.
inline void launched(const char* what) { check(cudaGetLastError(), what); }

}  // namespace tfh::kernels::cuda
