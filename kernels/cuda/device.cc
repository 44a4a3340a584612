#include "kernels/cuda/device.h"

#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_kernels.h"

namespace tfh::kernels::cuda {

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  return p;
}
void device_free(void* p) noexcept { cudaFree(p); }

void* stream_create() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  return s;
}
void stream_destroy(void* stream) noexcept {
  if (stream) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
}
void stream_sync(void* stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

void copy_to_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (!bytes) return;
  // From pageable memory cudaMemcpyAsync stages the bytes before returning: src may be reused.
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)),
        "copy to the device");
}
void copy_to_host(void* dst, const void* src, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream)),
        "copy to the host");
}
void copy_on_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)),
        "copy on the device");
}

void fill_zero(void* dst, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemsetAsync(dst, 0, bytes, static_cast<cudaStream_t>(stream)), "cudaMemsetAsync");
}

}  // namespace tfh::kernels::cuda
