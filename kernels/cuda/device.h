// The CUDA device as the runtime sees it: memory, one stream, copies. Plain pointers only, so the
// host runtime needs no CUDA headers. Built only with TFH_HAVE_CUDA; every call throws
// tfh::kernels::cuda::CudaError with CUDA's message on failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct TfhKernelDesc;

namespace tfh::kernels::cuda {

void* device_alloc(size_t bytes);
void device_free(void* p) noexcept;
void* stream_create();
void stream_destroy(void* stream) noexcept;
void stream_sync(void* stream);
// Stream-ordered copies. Host memory need not be pinned: from pageable memory (tfhost's own host
// tensors) a host -> device copy returns once the source may be reused; from pinned memory it
// returns at once, and the source must stay untouched until the stream gets there (sync). The
// caller syncs before reading host memory after device -> host.
void copy_to_device(void* dst, const void* src, size_t bytes, void* stream);
void copy_to_host(void* dst, const void* src, size_t bytes, void* stream);
void copy_on_device(void* dst, const void* src, size_t bytes, void* stream);
void fill_zero(void* dst, size_t bytes, void* stream);

// Stream-ordered memory (cudaMallocAsync's pool): for tensors handed to callers (IO binding),
// which come and go every run, where cudaMalloc/cudaFree would synchronise the device.
void* device_alloc_async(size_t bytes, void* stream);
void device_free_async(void* p, void* stream) noexcept;

// CUDA graphs: capture everything launched on `stream` between graph_begin and graph_end (which
// returns an executable graph and, in `*nodes`, how many operations it holds: kernels, copies,
// fills), replay it with graph_launch. graph_abort ends a capture that failed and drops what it
// recorded (and clears CUDA's last error).
void graph_begin(void* stream);
void* graph_end(void* stream, size_t* nodes = nullptr);
void graph_abort(void* stream) noexcept;
void graph_launch(void* exec, void* stream);
void graph_destroy(void* exec) noexcept;

// Weights asked into L2 ahead of the steps that read them (TFH_CUDA_PREFETCH_WEIGHTS): a stream
// of its own, forked from the session's at each call, so that in a captured graph the prefetches
// are a branch beside the model's kernels, starting where they were asked. l2_prefetch asks for
// the ranges (device pointer, bytes) once `stream`'s work so far is done, without holding up what
// comes next on `stream`; l2_prefetch_join orders every prefetch asked so far before what comes
// next on `stream` (a capture must end with its branches joined).
void* l2_prefetcher_create();
void l2_prefetcher_destroy(void* prefetcher) noexcept;
void l2_prefetch(void* prefetcher, const std::vector<std::pair<const void*, size_t>>& ranges,
                 void* stream);
void l2_prefetch_join(void* prefetcher, void* stream);
// Bytes asked for so far in this process (each launch counted once; replays not), for tests.
uint64_t l2_prefetch_bytes_asked();

// What the runtime's GEMM tuning did so far in this process (LtGemm in cuda_kernels.h), one line
// for reports: "off (cuBLASLt's heuristic's picks; ...)", the default, or how many product shapes
// were tuned, in how many another algorithm than cuBLASLt's first pick was kept, and one product
// of each shape timed with both.
std::string gemm_tuning_text();

// The CUDA kernels of tfhost (kernels/cuda/kernels.cc), for the kernel registry.
void add_cuda_kernels(std::vector<const TfhKernelDesc*>& out);

}  // namespace tfh::kernels::cuda
