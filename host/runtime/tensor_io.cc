#include "host/runtime/tensor_io.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "host/ir/graph.h"
#include "host/util/error.h"
#include "tfhost/core.hpp"

namespace tfh::runtime {
// Element i as double; false for types without a numeric reading.
bool element(const HostTensor& t, size_t i, double* out) {
  const char* p = static_cast<const char*>(t.data);
  auto rd = [&](auto tag) {
    decltype(tag) v;
    std::memcpy(&v, p + i * sizeof v, sizeof v);
    return v;
  };
  switch (t.type) {
    case TFH_TYPE_FLOAT: *out = rd(float()); return true;
    case TFH_TYPE_DOUBLE: *out = rd(double()); return true;
    case TFH_TYPE_FLOAT16: *out = to_float(Float16{rd(uint16_t())}); return true;
    case TFH_TYPE_BFLOAT16: *out = to_float(BFloat16{rd(uint16_t())}); return true;
    case TFH_TYPE_INT8: *out = rd(int8_t()); return true;
    case TFH_TYPE_UINT8: *out = rd(uint8_t()); return true;
    case TFH_TYPE_BOOL: *out = rd(uint8_t()) ? 1 : 0; return true;
    case TFH_TYPE_INT16: *out = rd(int16_t()); return true;
    case TFH_TYPE_UINT16: *out = rd(uint16_t()); return true;
    case TFH_TYPE_INT32: *out = rd(int32_t()); return true;
    case TFH_TYPE_UINT32: *out = rd(uint32_t()); return true;
    case TFH_TYPE_INT64: *out = static_cast<double>(rd(int64_t())); return true;
    case TFH_TYPE_UINT64: *out = static_cast<double>(rd(uint64_t())); return true;
    default: return false;
  }
}

double element_as_double(const HostTensor& t, size_t i) {
  double v = 0;
  if (!element(t, i, &v)) TFH_THROW("tensors of type ", data_type_name(t.type), " cannot be compared");
  return v;
}


std::unique_ptr<HostTensor> read_tensor_file(const std::string& path, std::string* name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) TFH_THROW(path, ": cannot open (", std::strerror(errno), ")");
  auto proto = std::make_unique<onnx::TensorProto>();
  if (!proto->ParseFromIstream(&in)) TFH_THROW(path, ": not a serialized ONNX TensorProto");
  if (proto->data_location() == onnx::TensorProto::EXTERNAL)
    TFH_THROW(path, ": tensors with external data are not supported here");
  if (proto->data_type() == onnx::TensorProto::STRING)
    TFH_THROW(path, ": string tensors are not supported by the runtime");
  if (name) *name = proto->name();
  std::vector<int64_t> dims(proto->dims().begin(), proto->dims().end());
  auto t = std::make_unique<HostTensor>();
  try {
    ir::Tensor tensor(std::move(proto));
    t->set_shape(tensor.dtype(), dims);
    if (tensor.nbytes() != t->nbytes)
      TFH_THROW("holds ", tensor.nbytes(), " bytes for ", t->nbytes, " expected");
    t->storage = plugin::aligned_zeroed(t->nbytes);
    if (t->nbytes) std::memcpy(t->storage.get(), tensor.data(), t->nbytes);
  } catch (const std::exception& e) {
    TFH_THROW(path, ": ", e.what());
  }
  t->data = t->storage.get();
  t->writable = true;
  return t;
}

Difference compare_tensors(const HostTensor& got, const HostTensor& want, double rtol,
                           double atol) {
  Difference d;
  d.type_matches = got.type == want.type;
  d.shape_matches = got.dims == want.dims;
  if (!d.shape_matches) return d;
  d.count = want.num_elements;
  for (size_t i = 0; i < d.count; ++i) {
    double g = 0, w = 0;
    if (!element(got, i, &g) || !element(want, i, &w)) {
      d.type_matches = false;
      return d;
    }
    if (std::isnan(g) || std::isnan(w)) {
      if (!(std::isnan(g) && std::isnan(w))) {
        ++d.mismatches;
        d.max_abs = INFINITY;
      }
      continue;
    }
    if (std::isinf(g) || std::isinf(w)) {
      if (g != w) {
        ++d.mismatches;
        d.max_abs = INFINITY;
      }
      continue;
    }
    const double diff = std::fabs(g - w);
    d.max_abs = std::max(d.max_abs, diff);
    if (w != 0) d.max_rel = std::max(d.max_rel, diff / std::fabs(w));
    if (diff > atol + rtol * std::fabs(w)) ++d.mismatches;
  }
  return d;
}

std::string describe_tensor(const HostTensor& t) {
  std::string s = data_type_name(t.type);
  s += "[";
  for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? "," : "") + std::to_string(t.dims[i]);
  return s + "]";
}

}  // namespace tfh::runtime
