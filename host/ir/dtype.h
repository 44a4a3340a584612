// Sizes of ONNX element types, including ones newer than the ONNX release we build against
// (float8, int4), so tensors of those types load, size-check and save unchanged.
#pragma once

#include <cstddef>
#include <cstdint>

#include <onnx/onnx_pb.h>

namespace tfh::ir {

// Bytes that `n` elements of `dtype` occupy in raw_data; SIZE_MAX for strings, undefined and
// unknown types.
size_t dtype_bytes(int32_t dtype, size_t n);

// Entries that `n` elements take in the typed field ONNX stores them in (float_data, int32_data,
// ...), or SIZE_MAX when unknown. Complex types take two entries per element, int4 one per byte.
size_t dtype_typed_count(int32_t dtype, size_t n);

const char* dtype_name(int32_t dtype);

// Elements of a tensor of shape dims[0..rank), or SIZE_MAX when a dimension is negative or when the
// count, or its size in bytes for `dtype`, does not fit in size_t: no such tensor fits in memory,
// and every size computed from it would wrap around.
size_t checked_element_count(int32_t dtype, const int64_t* dims, size_t rank);

// Entries present in the typed field that holds `t`'s dtype (float_data, int32_data, ...).
size_t typed_value_count(const onnx::TensorProto& t);

}  // namespace tfh::ir
