// Tensors in and out of the runtime: ONNX TensorProto files (the backend test layout's
// input_K.pb / output_K.pb) and element-wise comparison with numpy's allclose rule.
#pragma once

#include <memory>
#include <string>

#include "host/plugin/host_tensor.h"

namespace tfh::runtime {

using plugin::HostTensor;

// Reads a serialized TensorProto; `name` (nullable) receives its name field. Throws tfh::Error
// naming the file when it is missing, unreadable, not a TensorProto or has inconsistent data.
std::unique_ptr<HostTensor> read_tensor_file(const std::string& path, std::string* name = nullptr);

struct Difference {
  bool shape_matches = true;
  bool type_matches = true;
  size_t count = 0;       // elements compared
  size_t mismatches = 0;  // elements outside atol + rtol * |want|
  double max_abs = 0;     // max |got - want|
  double max_rel = 0;     // max |got - want| / |want| over elements with want != 0
  bool ok() const { return shape_matches && type_matches && mismatches == 0; }
};

// numpy.allclose(got, want, rtol, atol) per element, NaN equal to NaN; types compared as double
// (float16 widened), bool and integers exactly through the same rule.
Difference compare_tensors(const HostTensor& got, const HostTensor& want, double rtol, double atol);

// Element i of a numeric tensor (float/float16/bfloat16/ints/bool) as double: `element` returns
// false for other types, element_as_double throws tfh::Error.
bool element(const HostTensor& t, size_t i, double* out);
double element_as_double(const HostTensor& t, size_t i);

// "float32[2,8]" for messages.
std::string describe_tensor(const HostTensor& t);

}  // namespace tfh::runtime
