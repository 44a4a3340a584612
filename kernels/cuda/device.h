// The CUDA device as the runtime sees it: memory, one stream, copies. Plain pointers only, so the
// host runtime needs no CUDA headers. Built only with TFH_HAVE_CUDA; every call throws
// tfh::kernels::cuda::CudaError with CUDA's message on failure.
#pragma once

#include <cstddef>
#include <vector>

struct TfhKernelDesc;

namespace tfh::kernels::cuda {

void* device_alloc(size_t bytes);
void device_free(void* p) noexcept;
void* stream_create();
void stream_destroy(void* stream) noexcept;
void stream_sync(void* stream);
// Stream-ordered copies (host memory need not be pinned; the call returns once the source may be
// reused for host -> device, and the caller syncs before reading host memory after device -> host).
void copy_to_device(void* dst, const void* src, size_t bytes, void* stream);
void copy_to_host(void* dst, const void* src, size_t bytes, void* stream);
void copy_on_device(void* dst, const void* src, size_t bytes, void* stream);
void fill_zero(void* dst, size_t bytes, void* stream);

// The CUDA kernels of tfhost (kernels/cuda/kernels.cc), for the kernel registry.
void add_cuda_kernels(std::vector<const TfhKernelDesc*>& out);

}  // namespace tfh::kernels::cuda
