// What compute devices this build can use. CUDA support is compiled in only with TFH_HAVE_CUDA.
#pragma once

#include <string>

namespace tfh::kernels {

bool built_with_cuda();
// Number of usable CUDA devices (0 without CUDA, without a driver or without a GPU).
int cuda_device_count();
// "cpu" or "cpu, cuda (NVIDIA H100 80GB HBM3, sm_90)"
std::string describe_devices();

}  // namespace tfh::kernels
