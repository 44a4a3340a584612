#include "kernels/common/device_info.h"

#ifdef TFH_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace tfh::kernels {

bool built_with_cuda() {
#ifdef TFH_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef TFH_HAVE_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

std::string describe_devices() {
  std::string s = "cpu";
#ifdef TFH_HAVE_CUDA
  const int n = cuda_device_count();
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    s += ", cuda:" + std::to_string(i) + " (" + p.name + ", sm_" + std::to_string(p.major) +
         std::to_string(p.minor) + ")";
  }
  if (n == 0) s += " (built with CUDA; no GPU found)";
#endif
  return s;
}

}  // namespace tfh::kernels
