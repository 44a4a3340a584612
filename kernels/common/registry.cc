#include "kernels/registry.h"

#include "kernels/cpu/kernels.h"

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
    return v;
  }();
  return all;
}

}  // namespace tfh::kernels
