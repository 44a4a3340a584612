#include "host/ir/dtype.h"

#include <algorithm>

#include <onnx/onnx_pb.h>

namespace tfh::ir {
namespace {

// Newer than ONNX 1.12's enum; numbers from onnx.proto.
enum : int32_t {
  kFloat8E4M3FN = 17, kFloat8E4M3FNUZ = 18, kFloat8E5M2 = 19, kFloat8E5M2FNUZ = 20,
  kUint4 = 21, kInt4 = 22, kFloat4E2M1 = 23,
};

bool is_packed_4bit(int32_t t) { return t == kUint4 || t == kInt4 || t == kFloat4E2M1; }

size_t element_size(int32_t t) {
  using TP = onnx::TensorProto;
  switch (t) {
    case TP::FLOAT: case TP::INT32: case TP::UINT32: return 4;
    case TP::DOUBLE: case TP::INT64: case TP::UINT64: case TP::COMPLEX64: return 8;
    case TP::COMPLEX128: return 16;
    case TP::INT16: case TP::UINT16: case TP::FLOAT16: case TP::BFLOAT16: return 2;
    case TP::INT8: case TP::UINT8: case TP::BOOL:
    case kFloat8E4M3FN: case kFloat8E4M3FNUZ: case kFloat8E5M2: case kFloat8E5M2FNUZ: return 1;
    default: return 0;
  }
}

}  // namespace

size_t dtype_bytes(int32_t dtype, size_t n) {
  if (is_packed_4bit(dtype)) return (n + 1) / 2;
  size_t s = element_size(dtype);
  return s == 0 ? SIZE_MAX : n * s;
}

size_t dtype_typed_count(int32_t dtype, size_t n) {
  using TP = onnx::TensorProto;
  if (is_packed_4bit(dtype)) return (n + 1) / 2;
  if (dtype == TP::COMPLEX64 || dtype == TP::COMPLEX128) return 2 * n;
  if (dtype == TP::STRING) return n;
  return element_size(dtype) == 0 ? SIZE_MAX : n;
}

size_t checked_element_count(int32_t dtype, const int64_t* dims, size_t rank) {
  for (size_t i = 0; i < rank; ++i)
    if (dims[i] < 0) return SIZE_MAX;
  for (size_t i = 0; i < rank; ++i)
    if (dims[i] == 0) return 0;  // [0, huge, huge] holds nothing: no overflow to report
  size_t n = 1;
  for (size_t i = 0; i < rank; ++i)
    if (__builtin_mul_overflow(n, static_cast<size_t>(dims[i]), &n)) return SIZE_MAX;
  // The bytes must fit too, and the typed-field entries (twice the count for complex types).
  size_t bytes = 0;
  if (__builtin_mul_overflow(n, std::max<size_t>(element_size(dtype), 2), &bytes)) return SIZE_MAX;
  return n;
}

size_t typed_value_count(const onnx::TensorProto& p) {
  using TP = onnx::TensorProto;
  switch (p.data_type()) {
    case TP::FLOAT: case TP::COMPLEX64: return p.float_data_size();
    case TP::DOUBLE: case TP::COMPLEX128: return p.double_data_size();
    case TP::INT64: return p.int64_data_size();
    case TP::UINT64: case TP::UINT32: return p.uint64_data_size();
    case TP::STRING: return p.string_data_size();
    default: return p.int32_data_size();
  }
}

const char* dtype_name(int32_t dtype) {
  if (onnx::TensorProto_DataType_IsValid(dtype))
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(dtype)).c_str();
  switch (dtype) {
    case kFloat8E4M3FN: return "FLOAT8E4M3FN";
    case kFloat8E4M3FNUZ: return "FLOAT8E4M3FNUZ";
    case kFloat8E5M2: return "FLOAT8E5M2";
    case kFloat8E5M2FNUZ: return "FLOAT8E5M2FNUZ";
    case kUint4: return "UINT4";
    case kInt4: return "INT4";
    case kFloat4E2M1: return "FLOAT4E2M1";
    default: return "unknown type";
  }
}

}  // namespace tfh::ir
