#include "kernels/registry.h"

#include "kernels/cpu/kernels.h"
#ifdef TFH_HAVE_CUDA
#include "kernels/cuda/device.h"
#endif

namespace tfh::kernels {
namespace cpu {
void add_sequence_kernels(std::vector<const TfhKernelDesc*>& out);  // sequence_ops.cc
}  // namespace cpu

const std::vector<const TfhKernelDesc*>& builtin_kernels() {
  static const std::vector<const TfhKernelDesc*> all = [] {
    std::vector<const TfhKernelDesc*> v;
    cpu::add_elementwise_kernels(v);
    cpu::add_tensor_kernels(v);
    cpu::add_math_kernels(v);
    cpu::add_contrib_kernels(v);
    cpu::add_sequence_kernels(v);
#ifdef TFH_HAVE_CUDA
    cuda::add_cuda_kernels(v);  // chosen only by sessions on a CUDA device
#endif
    return v;
  }();
  return all;
}

}  // namespace tfh::kernels
