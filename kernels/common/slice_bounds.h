// ONNX Slice's bounds along one axis, shared by the CPU and CUDA kernels: starts and ends count
// from the end when negative and are clamped ([0, dim] going forward; start into [0, dim - 1]
// and end into [-1, dim - 1] going backward), then the element count, computed without overflow
// for any step (INT64_MIN included).
#pragma once

#include <algorithm>
#include <cstdint>

namespace tfh::kernels {

struct SliceBounds {
  int64_t start = 0;  // the first element taken (meaningful when count > 0)
  int64_t count = 0;
};

inline SliceBounds slice_bounds(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (start < 0) start = start < -dim ? -1 : start + dim;  // (-1: below every valid index)
  if (end < 0) end = end < -dim ? -1 : end + dim;
  SliceBounds b;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    b.start = start;
    if (end > start) b.count = static_cast<int64_t>((static_cast<uint64_t>(end - start) - 1) / static_cast<uint64_t>(step) + 1);
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    b.start = start;
    const uint64_t mag = uint64_t(0) - static_cast<uint64_t>(step);  // |step|, INT64_MIN too
    if (start > end) b.count = static_cast<int64_t>((static_cast<uint64_t>(start - end) - 1) / mag + 1);
  }
  return b;
}

}  // namespace tfh::kernels
