// Every kernel built into tfhost, as the static descriptors plugins also use.
#pragma once

#include <vector>

#include "tfhost/abi.h"

namespace tfh::kernels {

const std::vector<const TfhKernelDesc*>& builtin_kernels();

}  // namespace tfh::kernels
