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

// Entries present in the typed field that holds `t`'s dtype (float_data, int32_data, ...).
size_t typed_value_count(const onnx::TensorProto& t);

}  // namespace tfh::ir
