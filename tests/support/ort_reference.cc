#include "support/ort_reference.h"

#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "support/test_util.h"

namespace tfh::test {
namespace {

struct TypeInfo {
  int onnx;
  const char* ort;
  size_t size;
};
constexpr TypeInfo kTypes[] = {
    {onnx::TensorProto::FLOAT, "float32", 4},  {onnx::TensorProto::DOUBLE, "float64", 8},
    {onnx::TensorProto::FLOAT16, "float16", 2}, {onnx::TensorProto::INT8, "int8", 1},
    {onnx::TensorProto::UINT8, "uint8", 1},    {onnx::TensorProto::INT16, "int16", 2},
    {onnx::TensorProto::UINT16, "uint16", 2},  {onnx::TensorProto::INT32, "int32", 4},
    {onnx::TensorProto::UINT32, "uint32", 4},  {onnx::TensorProto::INT64, "int64", 8},
    {onnx::TensorProto::UINT64, "uint64", 8},  {onnx::TensorProto::BOOL, "bool", 1},
};

const TypeInfo& type_of(int onnx_type) {
  for (const auto& t : kTypes)
    if (t.onnx == onnx_type) return t;
  throw std::runtime_error("tensor type " + std::to_string(onnx_type) + " not supported here");
}
const TypeInfo& type_of(const std::string& ort_name) {
  for (const auto& t : kTypes)
    if (ort_name == t.ort) return t;
  throw std::runtime_error("ORT tensor type " + ort_name + " not supported here");
}

size_t num_elements(const onnx::TensorProto& t) {
  size_t n = 1;
  for (auto d : t.dims()) n *= static_cast<size_t>(d);
  return n;
}

// Little-endian element bytes of a tensor, whichever field holds them.
std::string raw_bytes(const onnx::TensorProto& t) {
  if (t.has_raw_data()) return t.raw_data();
  const TypeInfo& ti = type_of(t.data_type());
  const size_t n = num_elements(t);
  std::string out(n * ti.size, '\0');
  char* dst = out.data();
  auto copy_narrow = [&](const auto& field) {
    for (size_t i = 0; i < n; ++i) {
      const auto v = field.Get(static_cast<int>(i));
      std::memcpy(dst + i * ti.size, &v, ti.size);  // little endian: low bytes first
    }
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT: std::memcpy(dst, t.float_data().data(), out.size()); break;
    case onnx::TensorProto::DOUBLE: std::memcpy(dst, t.double_data().data(), out.size()); break;
    case onnx::TensorProto::INT64: std::memcpy(dst, t.int64_data().data(), out.size()); break;
    case onnx::TensorProto::UINT32:
    case onnx::TensorProto::UINT64: copy_narrow(t.uint64_data()); break;
    default: copy_narrow(t.int32_data()); break;  // int32 and every narrower type
  }
  return out;
}

std::string json_dims(const google::protobuf::RepeatedField<int64_t>& dims) {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < dims.size(); ++i) os << (i ? "," : "") << dims.Get(i);
  os << "]";
  return os.str();
}

// The tiny JSON the runner writes: [{"name":"x","type":"float32","dims":[1,2],"file":"out0.bin"}]
std::string json_field(const std::string& obj, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  size_t p = obj.find(k);
  if (p == std::string::npos) throw std::runtime_error("runner output lacks " + key);
  p += k.size();
  if (obj[p] == '"') return obj.substr(p + 1, obj.find('"', p + 1) - p - 1);
  return obj.substr(p, obj.find(']', p) - p + 1);
}

std::vector<onnx::TensorProto> read_outputs(const std::string& dir) {
  const std::string json = read_file(dir + "/outputs.json");
  std::vector<onnx::TensorProto> out;
  for (size_t p = json.find('{'); p != std::string::npos; p = json.find('{', p + 1)) {
    const std::string obj = json.substr(p, json.find('}', p) - p + 1);
    onnx::TensorProto t;
    t.set_name(json_field(obj, "name"));
    t.set_data_type(type_of(json_field(obj, "type")).onnx);
    const std::string dims = json_field(obj, "dims");
    std::istringstream ds(dims.substr(1, dims.size() - 2));
    for (std::string d; std::getline(ds, d, ',');)
      if (!d.empty()) t.add_dims(std::stoll(d));
    t.set_raw_data(read_file(dir + "/" + json_field(obj, "file")));
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

std::vector<onnx::TensorProto> ort_run(const std::string& model_path,
                                       const std::vector<onnx::TensorProto>& inputs,
                                       const std::string& opt_level) {
  const std::string runner = source_path("tools/ort/run.js");
  if (!file_exists(source_path("tools/ort/node_modules/onnxruntime-node")))
    throw std::runtime_error("ONNX Runtime reference is not installed (tools/ort/node_modules): "
                             "run scripts/setup.sh");
  TempDir dir;
  std::ostringstream spec;
  spec << "[";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& t = inputs[i];
    const std::string file = "in" + std::to_string(i) + ".bin";
    write_file(dir / file, raw_bytes(t));
    spec << (i ? "," : "") << "{\"name\":\"" << t.name() << "\",\"type\":\""
         << type_of(t.data_type()).ort << "\",\"dims\":" << json_dims(t.dims())
         << ",\"file\":\"" << file << "\"}";
  }
  spec << "]";
  write_file(dir / "inputs.json", spec.str());
  const auto r = run_command({"node", runner, model_path, dir / "inputs.json", dir / "out", "--opt",
                              opt_level});
  if (r.exit_code != 0)
    throw std::runtime_error("ONNX Runtime failed on " + model_path + ": " + r.err);
  return read_outputs(dir / "out");
}

std::vector<double> tensor_values(const onnx::TensorProto& t) {
  const std::string raw = raw_bytes(t);
  const size_t n = num_elements(t);
  std::vector<double> v(n);
  const char* p = raw.data();
  for (size_t i = 0; i < n; ++i) {
    switch (t.data_type()) {
      case onnx::TensorProto::FLOAT: { float x; std::memcpy(&x, p + 4 * i, 4); v[i] = x; break; }
      case onnx::TensorProto::DOUBLE: { double x; std::memcpy(&x, p + 8 * i, 8); v[i] = x; break; }
      case onnx::TensorProto::INT64: { int64_t x; std::memcpy(&x, p + 8 * i, 8); v[i] = double(x); break; }
      case onnx::TensorProto::INT32: { int32_t x; std::memcpy(&x, p + 4 * i, 4); v[i] = x; break; }
      case onnx::TensorProto::BOOL:
      case onnx::TensorProto::UINT8: v[i] = static_cast<uint8_t>(p[i]); break;
      case onnx::TensorProto::INT8: v[i] = static_cast<int8_t>(p[i]); break;
      case onnx::TensorProto::FLOAT16: {
        uint16_t h; std::memcpy(&h, p + 2 * i, 2);
        const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
        const double s = (h & 0x8000) ? -1.0 : 1.0;
        v[i] = e == 0 ? s * std::ldexp(m, -24)
               : e == 31 ? (m ? NAN : s * INFINITY)
                         : s * std::ldexp(1024 + m, e - 25);
        break;
      }
      default: throw std::runtime_error("tensor_values: unsupported type");
    }
  }
  return v;
}

Diff compare_outputs(const std::vector<onnx::TensorProto>& a,
                     const std::vector<onnx::TensorProto>& b) {
  Diff d;
  if (a.size() != b.size()) {
    d.shapes_match = false;
    d.message = "output counts differ: " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
    return d;
  }
  for (size_t k = 0; k < a.size(); ++k) {
    if (json_dims(a[k].dims()) != json_dims(b[k].dims())) {
      d.shapes_match = false;
      d.message = "output " + std::to_string(k) + " shapes differ: " + json_dims(a[k].dims()) +
                  " vs " + json_dims(b[k].dims());
      return d;
    }
    const auto va = tensor_values(a[k]), vb = tensor_values(b[k]);
    for (size_t i = 0; i < va.size(); ++i) {
      const double diff = (std::isnan(va[i]) != std::isnan(vb[i])) ? INFINITY
                          : std::isnan(va[i])                      ? 0.0
                                                                   : std::fabs(va[i] - vb[i]);
      if (diff > d.max_abs || (std::isinf(diff) && d.where.empty())) {
        d.max_abs = diff;
        d.where = "output '" + a[k].name() + "' element " + std::to_string(i);
      }
    }
  }
  return d;
}

}  // namespace tfh::test
