// The CPU kernel groups; each appends its static descriptors (kernels/registry.cc gathers them).
#pragma once

#include <vector>

#include "tfhost/abi.h"

namespace tfh::kernels::cpu {

void add_elementwise_kernels(std::vector<const TfhKernelDesc*>& out);
void add_tensor_kernels(std::vector<const TfhKernelDesc*>& out);
void add_math_kernels(std::vector<const TfhKernelDesc*>& out);
void add_contrib_kernels(std::vector<const TfhKernelDesc*>& out);

}  // namespace tfh::kernels::cpu

// A built-in CPU kernel for ONNX op OP (every opset; version differences handled inside K).
#define TFH_CPU_KERNEL_DOMAIN(K, DOMAIN, OP)                                                 \
  {                                                                                          \
    static const TfhKernelDesc d =                                                           \
        TFH_KERNEL_DESC(K, "tfhost.cpu." OP, DOMAIN, OP, 1, 0, TFH_DEVICE_CPU, "", 0);       \
    out.push_back(&d);                                                                       \
  }
#define TFH_CPU_KERNEL(K, OP) TFH_CPU_KERNEL_DOMAIN(K, "", OP)
