// tfhost SDK, C++ layer: the plugin entry point, trampolines and descriptor tables.
//
// A whole plugin, with one fusion:
//
//   #include <tfhost/plugin.hpp>
//
//   size_t fuse_gelu(tfh::GraphView g, const tfh::ParamsView& p) { ... return n_fused; }
//
//   static const TfhParamDesc kGeluParams[] = {
//       tfh::param("approximate", TFH_PARAM_BOOL, "false", "tanh approximation (FastGelu)")};
//   static constexpr TfhFusionDesc kGelu = tfh::fusion(
//       "bert.gelu", "Div->Erf->Add->Mul->Mul => com.microsoft.Gelu", "0.1.0",
//       "com.microsoft", "Gelu", tfh::wrap_pass<fuse_gelu>, kGeluParams);
//   static const TfhFusionDesc* const kFusions[] = {&kGelu};
//   static constexpr TfhPluginInfo kInfo =
//       tfh::PluginInfo("bert", "0.1.0", "MIT", "BERT family fusions").fusions(kFusions);
//   TFH_PLUGIN(kInfo)
//
// Everything above is constant data: no code runs when the library is loaded. The host pointer
// is stored by tfh_plugin_init; fusions write plain C++ and throw tfh::sdk::Error, and the
// wrap_* trampolines turn every exception into a TfhStatus*.
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include "tfhost/core.hpp"
#include "tfhost/graph.hpp"
#include "tfhost/params.hpp"
#include "tfhost/pattern.hpp"
#include "tfhost/rewrite.hpp"

namespace tfh {

// ---- views for op and input-generator callbacks ------------------------------------------------

// One node's shape inference (TfhOpDesc::infer_shapes).
class ShapeContextView {
 public:
  explicit ShapeContextView(TfhShapeContext* c) : c_(c) {}
  NodeView node() const { return NodeView(const_cast<TfhNode*>(api().node(c_))); }
  size_t num_inputs() const { return api().num_inputs(c_); }
  TfhDataType input_type(size_t i) const { return api().input_elem_type(c_, i); }
  int64_t input_rank(size_t i) const { return api().input_rank(c_, i); }  // -1: unknown
  Dim input_dim(size_t i, size_t d) const {
    Dim dim;
    const char* sym = nullptr;
    check(api().input_dim(c_, i, d, &dim.value, &sym));
    if (sym) dim.symbol = sym;
    return dim;
  }
  std::vector<Dim> input_shape(size_t i) const {  // empty when the rank is unknown
    std::vector<Dim> s;
    for (int64_t d = 0; d < input_rank(i); ++d) s.push_back(input_dim(i, static_cast<size_t>(d)));
    return s;
  }
  TensorView input_constant(size_t i) const { return TensorView(api().input_constant(c_, i)); }
  size_t num_outputs() const { return api().num_outputs(c_); }
  void set_output(size_t i, TfhDataType type, const std::vector<Dim>& shape) const {
    std::vector<int64_t> dims;
    std::vector<const char*> syms;
    for (const Dim& d : shape) {
      dims.push_back(d.value);
      syms.push_back(d.symbol.empty() ? nullptr : d.symbol.c_str());
    }
    check(api().set_output(c_, i, type, dims.data(), syms.data(),
                           static_cast<int64_t>(shape.size())));
  }
  void set_output_type(size_t i, TfhDataType type) const {  // shape unknown
    check(api().set_output(c_, i, type, nullptr, nullptr, -1));
  }

 private:
  static const TfhShapeApi& api() { return *host().shape; }
  TfhShapeContext* c_;
};

// The dummy inputs an input generator appends to.
class TensorListView {
 public:
  explicit TensorListView(TfhTensorList* l) : l_(l) {}
  void add(const std::string& name, Tensor t) const {
    check(tensor_api().tensor_list_append(l_, name.c_str(), t.release()));
  }

 private:
  TfhTensorList* l_;
};

// ---- trampolines: plain C++ functions as C callbacks --------------------------------------------

// A fusion or converter: size_t fn(GraphView, const ParamsView&) or size_t fn(GraphView),
// returning how many places it changed.
template <auto Fn>
TfhStatus* wrap_pass(TfhGraph* g, const TfhParams* p, size_t* n_changed) noexcept {
  TFH_PLUGIN_TRY {
    size_t n = 0;
    if constexpr (std::is_invocable_v<decltype(Fn), GraphView, const ParamsView&>)
      n = Fn(GraphView(g), ParamsView(p));
    else
      n = Fn(GraphView(g));
    if (n_changed) *n_changed = n;
    return nullptr;
  }
  TFH_PLUGIN_CATCH
}

// An input generator: void fn(GraphView, const ParamsView&, uint64_t seed, TensorListView out).
// The graph is read-only here.
template <auto Fn>
TfhStatus* wrap_generator(const TfhGraph* g, const TfhParams* p, uint64_t seed,
                          TfhTensorList* out) noexcept {
  TFH_PLUGIN_TRY {
    Fn(GraphView(const_cast<TfhGraph*>(g)), ParamsView(p), seed, TensorListView(out));
    return nullptr;
  }
  TFH_PLUGIN_CATCH
}

// Shape inference for an op: void fn(ShapeContextView).
template <auto Fn>
TfhStatus* wrap_shape(TfhShapeContext* c) noexcept {
  TFH_PLUGIN_TRY {
    Fn(ShapeContextView(c));
    return nullptr;
  }
  TFH_PLUGIN_CATCH
}

// ---- descriptor tables as constant data ---------------------------------------------------------

using PassFn = TfhStatus* (*)(TfhGraph*, const TfhParams*, size_t*);
using GenerateFn = TfhStatus* (*)(const TfhGraph*, const TfhParams*, uint64_t, TfhTensorList*);
using ShapeFn = TfhStatus* (*)(TfhShapeContext*);

// A parameter with a default given as YAML text ("true", "3", "[a, b]").
constexpr TfhParamDesc param(const char* name, TfhParamType type, const char* default_yaml,
                             const char* description) {
  return TfhParamDesc{sizeof(TfhParamDesc), name, type, default_yaml, description};
}
// A parameter the user must give.
constexpr TfhParamDesc required_param(const char* name, TfhParamType type,
                                      const char* description) {
  return param(name, type, nullptr, description);
}

// A fusion without parameters ...
constexpr TfhFusionDesc fusion(const char* name, const char* description, const char* since,
                               const char* produces_domain, const char* produces_op, PassFn apply) {
  return TfhFusionDesc{sizeof(TfhFusionDesc), name, description, since, produces_domain,
                       produces_op,           0,    nullptr,     apply};
}
// ... and with a parameter table.
template <size_t N>
constexpr TfhFusionDesc fusion(const char* name, const char* description, const char* since,
                               const char* produces_domain, const char* produces_op, PassFn apply,
                               const TfhParamDesc (&params)[N]) {
  return TfhFusionDesc{sizeof(TfhFusionDesc), name, description, since, produces_domain,
                       produces_op,           N,    params,      apply};
}

// A converter without parameters ...
constexpr TfhConverterDesc converter(const char* name, const char* description, const char* since,
                                     bool builds_model, PassFn apply) {
  return TfhConverterDesc{sizeof(TfhConverterDesc), name, description, since,
                          builds_model ? 1 : 0,     0,    nullptr,     apply};
}
// ... and with a parameter table.
template <size_t N>
constexpr TfhConverterDesc converter(const char* name, const char* description, const char* since,
                                     bool builds_model, PassFn apply,
                                     const TfhParamDesc (&params)[N]) {
  return TfhConverterDesc{sizeof(TfhConverterDesc), name, description, since,
                          builds_model ? 1 : 0,     N,    params,      apply};
}

template <size_t N>
constexpr TfhInputGenDesc input_generator(const char* name, const char* description,
                                          const char* since, GenerateFn generate,
                                          const TfhParamDesc (&params)[N], double tolerance_fp32,
                                          double tolerance_fp16) {
  return TfhInputGenDesc{
      sizeof(TfhInputGenDesc), name,          description, since, N, params, generate,
      tolerance_fp32,          tolerance_fp16};
}

constexpr TfhOpDesc op(const char* domain, const char* op_type, int32_t since_version,
                       const char* description, ShapeFn infer_shapes) {
  return TfhOpDesc{sizeof(TfhOpDesc), domain, op_type, since_version, description, infer_shapes};
}

template <size_t N>
constexpr TfhModelTypeDesc model_type(const char* name, const char* description,
                                      const char* const (&passes)[N], const char* input_generator) {
  return TfhModelTypeDesc{sizeof(TfhModelTypeDesc), name, description, N, passes, input_generator};
}

// Builds a TfhPluginInfo in a constant expression:
//   static constexpr TfhPluginInfo kInfo = tfh::PluginInfo("bert", "0.1.0", "MIT", "...")
//       .fusions(kFusions).input_generators(kInputs).ops(kOps).model_types(kTypes);
class PluginInfo {
 public:
  constexpr PluginInfo(const char* name, const char* version, const char* license,
                       const char* description)
      : info_{} {
    info_.abi_version = TFH_ABI_VERSION;
    info_.struct_size = sizeof(TfhPluginInfo);
    info_.name = name;
    info_.version = version;
    info_.license = license;
    info_.description = description;
  }
  template <size_t N>
  constexpr PluginInfo fusions(const TfhFusionDesc* const (&a)[N]) const {
    PluginInfo c = *this;
    c.info_.n_fusions = N;
    c.info_.fusions = a;
    return c;
  }
  template <size_t N>
  constexpr PluginInfo converters(const TfhConverterDesc* const (&a)[N]) const {
    PluginInfo c = *this;
    c.info_.n_converters = N;
    c.info_.converters = a;
    return c;
  }
  template <size_t N>
  constexpr PluginInfo input_generators(const TfhInputGenDesc* const (&a)[N]) const {
    PluginInfo c = *this;
    c.info_.n_input_generators = N;
    c.info_.input_generators = a;
    return c;
  }
  template <size_t N>
  constexpr PluginInfo kernels(const TfhKernelDesc* const (&a)[N]) const {
    PluginInfo c = *this;
    c.info_.n_kernels = N;
    c.info_.kernels = a;
    return c;
  }
  template <size_t N>
  constexpr PluginInfo ops(const TfhOpDesc* const (&a)[N]) const {
    PluginInfo c = *this;
    c.info_.n_ops = N;
    c.info_.ops = a;
    return c;
  }
  template <size_t N>
  constexpr PluginInfo model_types(const TfhModelTypeDesc* const (&a)[N]) const {
    PluginInfo c = *this;
    c.info_.n_model_types = N;
    c.info_.model_types = a;
    return c;
  }
  constexpr PluginInfo shutdown(void (*fn)(void)) const {
    PluginInfo c = *this;
    c.info_.shutdown = fn;
    return c;
  }
  constexpr operator TfhPluginInfo() const { return info_; }  // NOLINT: implicit on purpose

 private:
  TfhPluginInfo info_;
};

namespace sdk {

// The body of tfh_plugin_init: keeps the host table, refuses a host older than this SDK, and
// hands back the plugin's static info. Writes *out only on success.
inline TfhStatus* plugin_init(const TfhHostApi* host, const TfhPluginInfo* info,
                              const TfhPluginInfo** out) noexcept {
  if (!host || !out || !info) return nullptr;  // nothing to report through; *out stays unset
  if (host->abi_version < TFH_ABI_VERSION || !TFH_HAS_FIELD(host, TfhHostApi, shape)) {
    if (!TFH_HAS_FIELD(host, TfhHostApi, status_create) || !host->status_create) return nullptr;
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "plugin '%s' was built for tfhost plugin ABI %u, the host "
                  "provides ABI %u",
                  info->name ? info->name : "?", TFH_ABI_VERSION,
                  static_cast<unsigned>(host->abi_version));
    return host->status_create(TFH_NOT_IMPLEMENTED, msg);
  }
  set_host(host);
  if (info->name) plugin_name_slot() = info->name;
  *out = info;
  return nullptr;
}

}  // namespace sdk
}  // namespace tfh

// Defines the plugin's single exported symbol, tfh_plugin_init, returning `info` (a static
// TfhPluginInfo, e.g. built with tfh::PluginInfo).
#define TFH_PLUGIN(info)                                                        \
  extern "C" TFH_EXPORT TfhStatus* tfh_plugin_init(const TfhHostApi* host,      \
                                                   const TfhPluginInfo** out) { \
    return ::tfh::sdk::plugin_init(host, &(info), out);                         \
  }
