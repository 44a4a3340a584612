// A CPU emulator for tfhost's CUDA code, so that machines without a GPU (these ones, CI) still
// run it and compare it with the CPU kernels. Force-included (-include) when kernels/cuda (the
// .cu files as plain C++), the bert plugin's CUDA kernel, tfhost_emu and the tests of tests/cuda
// are compiled with TFH_CUDA_EMULATED:
//
//  - every thread of a block is a fiber (Boost.Context); a block's fibers run one at a time, each
//    until it reaches a barrier (__syncthreads, or a warp's shuffle) or ends, first to last in
//    even blocks and last to first in odd ones, so a kernel that reads what another thread
//    writes without a barrier between sees stale data (a wrong result), and one whose threads
//    wait at different barriers deadlocks (a launch failure);
//  - static shared variables (TFH_SHARED) are static ones (one block runs at a time; launches
//    from several host threads take turns), dynamic shared memory is a per-block buffer, both
//    filled with NaN bytes at the start of every block; device memory is host memory;
//  - launches check their configuration as CUDA does (block and grid limits, 48 KiB of dynamic
//    shared memory) and report a failure through cudaGetLastError; cudaGetErrorString then gives
//    the emulator's reason;
//  - a full-mask warp shuffle in a warp with exited or missing lanes is a failure (undefined on a
//    GPU), as is a __syncthreads that some threads of the block have left;
//  - the runtime API tfhost's CUDA device uses: streams (work runs at once on the calling thread,
//    in call order), the stream-ordered allocator, and graph capture: launches, copies, fills
//    and GEMMs on a capturing stream are recorded (their arguments by value, pointers as
//    pointers) and run by each cudaGraphLaunch; a synchronisation of a capturing stream is an
//    error, as on a GPU; other streams join a capture through events (fork) and must be joined
//    back before it ends (cudaErrorStreamCaptureUnjoined otherwise);
//  - cuBLASLt (cublaslt_emu.cc): the descriptors tfhost sets, a float-accumulating reference
//    product (column-major layouts, transposes, strided batches, bias and GELU epilogues), with the
//    layouts' sizes checked against each other.
//
// What it cannot show: speed, true interleavings of threads between the same two barriers (a
// fiber runs to its barrier alone), the GPU's float rounding (fast-math intrinsics are the C
// library's functions here; cuBLASLt's own summation order) and whether cuBLASLt reads its
// descriptors as the emulation does. The runtime and cuBLASLt calls (cudaMalloc, cublasLtMatmul,
// ...) are renamed to tfh_emu_* so they never mix with NVIDIA's real libraries, which the same
// test binary links through tfhost's libraries.
#pragma once

#define cudaMalloc tfh_emu_cudaMalloc
#define cudaFree tfh_emu_cudaFree
#define cudaMemcpy tfh_emu_cudaMemcpy
#define cudaMemcpyAsync tfh_emu_cudaMemcpyAsync
#define cudaMemset tfh_emu_cudaMemset
#define cudaMemsetAsync tfh_emu_cudaMemsetAsync
#define cudaGetLastError tfh_emu_cudaGetLastError
#define cudaPeekAtLastError tfh_emu_cudaPeekAtLastError
#define cudaGetErrorString tfh_emu_cudaGetErrorString
#define cudaDeviceSynchronize tfh_emu_cudaDeviceSynchronize
#define cudaStreamSynchronize tfh_emu_cudaStreamSynchronize
#define cudaGetDeviceCount tfh_emu_cudaGetDeviceCount
#define cudaGetDeviceProperties tfh_emu_cudaGetDeviceProperties
#define cudaGetDevice tfh_emu_cudaGetDevice
#define cudaStreamCreate tfh_emu_cudaStreamCreate
#define cudaStreamCreateWithFlags tfh_emu_cudaStreamCreateWithFlags
#define cudaStreamDestroy tfh_emu_cudaStreamDestroy
#define cudaMallocAsync tfh_emu_cudaMallocAsync
#define cudaFreeAsync tfh_emu_cudaFreeAsync
#define cudaDeviceGetDefaultMemPool tfh_emu_cudaDeviceGetDefaultMemPool
#define cudaMemPoolSetAttribute tfh_emu_cudaMemPoolSetAttribute
#define cudaStreamBeginCapture tfh_emu_cudaStreamBeginCapture
#define cudaStreamEndCapture tfh_emu_cudaStreamEndCapture
#define cudaStreamIsCapturing tfh_emu_cudaStreamIsCapturing
#define cudaGraphInstantiate tfh_emu_cudaGraphInstantiate
#define cudaGraphDestroy tfh_emu_cudaGraphDestroy
#define cudaGraphGetNodes tfh_emu_cudaGraphGetNodes
#define cudaGraphLaunch tfh_emu_cudaGraphLaunch
#define cudaGraphExecDestroy tfh_emu_cudaGraphExecDestroy
#define cudaEventCreate tfh_emu_cudaEventCreate
#define cudaEventCreateWithFlags tfh_emu_cudaEventCreateWithFlags
#define cudaEventDestroy tfh_emu_cudaEventDestroy
#define cudaEventRecord tfh_emu_cudaEventRecord
#define cudaStreamWaitEvent tfh_emu_cudaStreamWaitEvent
#define cudaEventSynchronize tfh_emu_cudaEventSynchronize
#define cudaEventElapsedTime tfh_emu_cudaEventElapsedTime
#define cublasLtCreate tfh_emu_cublasLtCreate
#define cublasLtDestroy tfh_emu_cublasLtDestroy
#define cublasLtMatmulDescCreate tfh_emu_cublasLtMatmulDescCreate
#define cublasLtMatmulDescDestroy tfh_emu_cublasLtMatmulDescDestroy
#define cublasLtMatmulDescSetAttribute tfh_emu_cublasLtMatmulDescSetAttribute
#define cublasLtMatrixLayoutCreate tfh_emu_cublasLtMatrixLayoutCreate
#define cublasLtMatrixLayoutDestroy tfh_emu_cublasLtMatrixLayoutDestroy
#define cublasLtMatrixLayoutSetAttribute tfh_emu_cublasLtMatrixLayoutSetAttribute
#define cublasLtMatmulPreferenceCreate tfh_emu_cublasLtMatmulPreferenceCreate
#define cublasLtMatmulPreferenceDestroy tfh_emu_cublasLtMatmulPreferenceDestroy
#define cublasLtMatmulPreferenceSetAttribute tfh_emu_cublasLtMatmulPreferenceSetAttribute
#define cublasLtMatmulAlgoGetHeuristic tfh_emu_cublasLtMatmulAlgoGetHeuristic
#define cublasLtMatmul tfh_emu_cublasLtMatmul

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <tuple>
#include <type_traits>
#include <vector>

// (CUDA's host_defines.h gives these other meanings for host compilers.)
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// (A kernel's static shared memory is declared TFH_SHARED(T, name, dims), below; a plain
// __shared__ variable is a static one here, never refilled.)
#define __shared__ static

namespace tfh::emu {

// The running thread of the running block.
struct ThreadContext {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
const ThreadContext& context();

// Barriers: the whole block, or the running thread's warp (every lane of `mask` must arrive).
void sync_block();
// Publishes this lane's `bits`, waits for the warp, and returns lane `src_lane`'s bits.
uint64_t warp_exchange(unsigned mask, uint64_t bits, int src_lane);
// Publishes this lane's `n` words (n <= 8), waits for the whole warp, and returns every lane's
// words (lane l's at [l][0..n)), readable until this lane's next warp collective.
const uint32_t (*warp_gather(const uint32_t* words, int n))[8];
int lane_id();

// The warp-wide tensor-core product mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: d (this
// lane's 4 floats of the 16 x 8 accumulator) += A (16 x 16, this lane's 4 registers of two
// elements) x B (16 x 8, this lane's 2 registers), the fragments laid out as the PTX ISA gives
// them; products and sums in float.
void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], bool bf16);

// The running block's dynamic shared memory.
void* dynamic_shared();
// A static shared variable of `bytes` at `p` (TFH_SHARED) reached by the running thread: the first
// time in this launch, it is filled with 0xff bytes now (before any thread of the block wrote it)
// and at the start of every later block of the launch, so that a block reading shared memory it
// has not written sees garbage (NaN floats), as on a GPU, not what the last block left.
void shared_declared(void* p, size_t bytes);

// Runs body() as every thread of every block of the grid; false (and the reason for
// cudaGetLastError / cudaGetErrorString) when the configuration is invalid or the kernel failed.
bool launch_grid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

// The algorithms the emulated cuBLASLt heuristic offers, in its order, for every product (the
// alignments the caller promised go with each): each runs the same reference product, first
// waiting `delay_us` microseconds, or refuses to run (`fails`: NOT_SUPPORTED when called), and
// counts the products it ran (`runs`, graph replays included). By default one; TFH_EMU_GEMM_ALGOS
// sets them when the emulator loads, e.g. "0,300,x" (three: the second 300 us slower, the third
// failing). For LtGemm's tuning; `weights`: the distinct addresses its products read as LtGemm's
// B (cuBLASLt's A), for the tests of tuning's copies of B.
struct EmuGemmAlgo {
  int delay_us = 0;
  bool fails = false;
  size_t runs = 0;
  std::set<const void*> weights;
};
void set_gemm_algorithms(std::vector<EmuGemmAlgo> algos);
std::vector<EmuGemmAlgo> gemm_algorithms();
// The split-K reduction schemes (CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK) the last heuristic
// query allowed; the emulated algorithms never split K.
uint32_t heuristic_reduction_schemes();

// When `stream` is being captured into a graph, keeps `op` for the graph and returns true.
bool record(cudaStream_t stream, std::function<void()> op);

template <typename... P>
struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  // CUDA copies the arguments once per launch into parameter space; every thread reads them (a
  // captured launch keeps its copy for every replay).
  template <typename... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    auto params = std::make_shared<const std::tuple<std::decay_t<P>...>>(static_cast<std::decay_t<P>>(args)...);
    std::function<void()> run = [k = kernel, g = grid, b = block, sh = shared_bytes, params] {
      launch_grid(g, b, sh, [&] { std::apply(k, *params); });
    };
    if (!record(stream, run)) run();
  }
};
template <typename... P>
Launch<P...> launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                    void (*kernel)(P...)) {
  return Launch<P...>{kernel, grid, block, shared_bytes, stream};
}

}  // namespace tfh::emu

#define threadIdx (::tfh::emu::context().thread_idx)
#define blockIdx (::tfh::emu::context().block_idx)
#define blockDim (::tfh::emu::context().block_dim)
#define gridDim (::tfh::emu::context().grid_dim)


#define TFH_LAUNCH(grid, block, shared_bytes, stream, ...) \
  ::tfh::emu::launch(grid, block, shared_bytes, stream, &__VA_ARGS__)
// (Each launch runs to its end before the next: a programmatic dependent launch is a plain one.)
#define TFH_LAUNCH_PDL(grid, block, shared_bytes, stream, ...) \
  ::tfh::emu::launch(grid, block, shared_bytes, stream, &__VA_ARGS__)
#define TFH_DYNAMIC_SHARED(T, name) T* const name = static_cast<T*>(::tfh::emu::dynamic_shared())
// A static __shared__ variable: a static one, filled with NaN bytes where a block first declares
// it and again at the start of every later block of the launch (see shared_declared).
#define TFH_SHARED(T, name, dims) \
  static T name dims;             \
  ::tfh::emu::shared_declared(&name, sizeof(name))

inline void __syncthreads() { ::tfh::emu::sync_block(); }

template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a wide type");
  const int lane = ::tfh::emu::lane_id();
  int src = lane ^ lane_mask;
  if (src / width != lane / width) src = lane;  // outside this lane's segment: its own value
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = ::tfh::emu::warp_exchange(mask, bits, src);
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

// Device-only math of CUDA, with the C library's (more exact) functions.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
// CUDA's device code has min/max overloads for the integer and float types.
template <typename T>
inline T min(T a, T b) { return b < a ? b : a; }
template <typename T>
inline T max(T a, T b) { return a < b ? b : a; }
