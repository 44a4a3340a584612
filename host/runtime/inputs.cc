#include "host/runtime/inputs.h"

#include <cstdio>
#include <fstream>
#include <map>

#include <boost/filesystem.hpp>

#include "host/plugin/host_api.h"
#include "host/runtime/session.h"
#include "host/util/error.h"

namespace tfh::runtime {

const plugin::InputGenEntry& pick_generator(const plugin::Registry& r,
                                            const std::string& explicit_name,
                                            const std::string& model_type) {
  std::string name = explicit_name;
  if (!name.empty() && !r.find_input_generator(name)) {
    // A model type's name selects its generator ("--dummy_inputs bert").
    const plugin::ModelTypeEntry* t = r.find_model_type(name);
    TFH_CHECK(t && !t->input_generator.empty(), "dummy inputs '", name,
              "': no such input generator or model type with one (see tfhost plugins)");
    name = t->input_generator;
  }
  if (name.empty() && !model_type.empty()) {
    const plugin::ModelTypeEntry* t = r.find_model_type(model_type);
    TFH_CHECK(t, "model type '", model_type, "' is not provided by any loaded plugin");
    name = t->input_generator;
  }
  if (name.empty()) name = "core.inputs";
  const plugin::InputGenEntry* g = r.find_input_generator(name);
  TFH_CHECK(g, "input generator '", name, "' is not provided by any loaded plugin");
  return *g;
}

std::vector<NamedTensor> make_inputs(const plugin::Registry& r, const plugin::InputGenEntry& gen,
                                     const ir::Model& model, const InputRequest& req) {
  (void)r;
  std::map<std::string, std::string> with;
  for (const plugin::ParamSpec& p : gen.params) {
    if (p.name == "batch_size") with[p.name] = std::to_string(req.batch);
    if (p.name == "sequence_length") with[p.name] = std::to_string(req.sequence);
    if (p.name == "past_sequence_length") with[p.name] = std::to_string(req.past);
  }
  const plugin::Params params = plugin::Params::resolve(gen.params, with, gen.name, "dummy inputs");
  return make_inputs(gen, model, params, req.seed);
}

std::vector<NamedTensor> make_inputs(const plugin::InputGenEntry& gen, const ir::Model& model,
                                     const plugin::Params& params, uint64_t seed) {
  plugin::TensorList list;
  TfhStatus* st = gen.desc->generate(plugin::to_c(const_cast<ir::Model*>(&model)),
                                     params.c_handle(), seed, list.c_handle());
  if (st) TFH_THROW("input generator '", gen.name, "': ", plugin::take_status_message(st));
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto* h = reinterpret_cast<const HostTensor*>(list.tensor(i));
    out.push_back({list.name(i), copy_tensor(*h)});
  }
  return out;
}

std::vector<std::pair<std::string, const HostTensor*>> feeds_of(const std::vector<NamedTensor>& in) {
  std::vector<std::pair<std::string, const HostTensor*>> f;
  for (const NamedTensor& t : in) f.emplace_back(t.name, t.tensor.get());
  return f;
}

namespace {
const char* ort_type(TfhDataType t) {
  switch (t) {
    case TFH_TYPE_FLOAT: return "float32";
    case TFH_TYPE_DOUBLE: return "float64";
    case TFH_TYPE_FLOAT16: return "float16";
    case TFH_TYPE_INT64: return "int64";
    case TFH_TYPE_INT32: return "int32";
    case TFH_TYPE_INT8: return "int8";
    case TFH_TYPE_UINT8: return "uint8";
    case TFH_TYPE_BOOL: return "bool";
    default: TFH_THROW("element type ", t, " cannot be written for ONNX Runtime");
  }
}
}  // namespace

// A JSON string literal for `s` (quotes, backslashes and control characters escaped).
static std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
      continue;
    }
    o += c;
  }
  return o + "\"";
}

void write_inputs_json(const std::vector<NamedTensor>& in, const std::string& dir) {
  boost::filesystem::create_directories(dir);
  std::string json = "[";
  for (size_t i = 0; i < in.size(); ++i) {
    const HostTensor& t = *in[i].tensor;
    const std::string file = "in" + std::to_string(i) + ".bin";
    std::ofstream f(dir + "/" + file, std::ios::binary);
    f.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(t.nbytes));
    TFH_CHECK(f.good(), dir, "/", file, ": cannot write");
    json += std::string(i ? "," : "") + "{\"name\":" + json_string(in[i].name) +
            ",\"type\":\"" + ort_type(t.type) + "\",\"dims\":[";
    for (size_t k = 0; k < t.dims.size(); ++k) json += (k ? "," : "") + std::to_string(t.dims[k]);
    json += "],\"file\":\"" + file + "\"}";
  }
  std::ofstream j(dir + "/inputs.json");
  j << json << "]\n";
  TFH_CHECK(j.good(), dir, "/inputs.json: cannot write");
}

}  // namespace tfh::runtime
