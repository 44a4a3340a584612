// A tensor viewed around one axis as [outer, n, inner], and the shape a reduction along that axis
// leaves (the axis dropped, or kept as 1 with keepdims); ArgMax/ArgMin's attributes. Shared by
// the CPU and CUDA ArgMax/ArgMin.
#pragma once

#include <cstdint>
#include <vector>

namespace tfh::kernels {

struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
  std::vector<int64_t> reduced;  // the output's dims
};

// `axis` already in [0, dims.size()).
inline AxisSplit split_at_axis(const std::vector<int64_t>& dims, int64_t axis, bool keepdims) {
  AxisSplit s;
  for (int64_t k = 0; k < static_cast<int64_t>(dims.size()); ++k) {
    if (k < axis) s.outer *= dims[k];
    if (k > axis) s.inner *= dims[k];
    if (k != axis) s.reduced.push_back(dims[k]);
    else if (keepdims) s.reduced.push_back(1);
  }
  s.n = dims[axis];
  return s;
}

// ArgMax/ArgMin's attributes, from a kernel's node view (defaults as ONNX's).
struct ArgExtremeAttrs {
  int64_t axis;
  bool keepdims, select_last;
  template <typename NodeView>
  explicit ArgExtremeAttrs(const NodeView& n)
      : axis(n.attr_int("axis", 0)), keepdims(n.attr_int("keepdims", 1) != 0),
        select_last(n.attr_int("select_last_index", 0) != 0) {}
};

}  // namespace tfh::kernels
