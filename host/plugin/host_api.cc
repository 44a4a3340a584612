// The TfhHostApi table over the host IR. Every entry point catches every exception: functions
// that return TfhStatus* turn it into a status, getters return a safe default.
#include "host/plugin/host_api.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <onnx/defs/schema.h>

#include "host/plugin/host_tensor.h"
#include "host/plugin/params.h"
#include "host/util/error.h"

#ifndef TFH_VERSION
#define TFH_VERSION "unknown"
#endif

// The object behind TfhStatus*. Global namespace: abi.h declares `struct TfhStatus` there.
struct TfhStatus {
  TfhErrorCode code;
  std::string message;
};

namespace tfh::plugin {

// ---- tensors ---------------------------------------------------------------------------------

namespace {

// An error raised inside this file with an explicit code.
struct ApiError {
  TfhErrorCode code;
  std::string message;
};

[[noreturn]] void api_fail(TfhErrorCode code, std::string msg) {
  throw ApiError{code, std::move(msg)};
}

}  // namespace

namespace {

HostTensor* host_tensor(TfhTensor* t) { return reinterpret_cast<HostTensor*>(t); }
const HostTensor* host_tensor(const TfhTensor* t) { return reinterpret_cast<const HostTensor*>(t); }
const TfhTensor* c_tensor(const HostTensor* t) { return reinterpret_cast<const TfhTensor*>(t); }
TfhTensor* c_tensor(HostTensor* t) { return reinterpret_cast<TfhTensor*>(t); }

void fill_view(HostTensor& h, const ir::Tensor& t) {
  h.set_shape(t.dtype(), t.dims());
  h.storage.reset();
  h.data = elem_bits(h.type) && !t.is_unloaded_external() ? t.data() : nullptr;
}

// Narrowing copy of ONNX's int32_data / uint64_data representation into packed elements.
template <typename Src>
void copy_narrow(HostTensor& h, const Src* src, size_t count) {
  size_t width = elem_bits(h.type) / 8;
  if (width == 0 || count != h.num_elements) return;
  h.storage = aligned_zeroed(h.nbytes);
  for (size_t i = 0; i < count; ++i) {
    uint64_t bits = static_cast<uint64_t>(src[i]);
    std::memcpy(h.storage.get() + i * width, &bits, width);  // little-endian host
  }
  h.data = h.storage.get();
}

void fill_view(HostTensor& h, const onnx::TensorProto& p) {
  h.set_shape(p.data_type(), std::vector<int64_t>(p.dims().begin(), p.dims().end()));
  h.storage.reset();
  h.data = nullptr;
  if (elem_bits(h.type) == 0 || p.data_location() == onnx::TensorProto::EXTERNAL) return;
  if (p.has_raw_data()) {
    if (p.raw_data().size() == h.nbytes) h.data = p.raw_data().data();
    return;
  }
  auto direct = [&](const void* d, size_t bytes) {
    if (bytes == h.nbytes) h.data = d;
  };
  switch (h.type) {
    case TFH_TYPE_FLOAT:
    case TFH_TYPE_COMPLEX64:
      direct(p.float_data().data(), p.float_data().size() * sizeof(float));
      break;
    case TFH_TYPE_DOUBLE:
    case TFH_TYPE_COMPLEX128:
      direct(p.double_data().data(), p.double_data().size() * sizeof(double));
      break;
    case TFH_TYPE_INT64:
      direct(p.int64_data().data(), p.int64_data().size() * sizeof(int64_t));
      break;
    case TFH_TYPE_UINT64:
      direct(p.uint64_data().data(), p.uint64_data().size() * sizeof(uint64_t));
      break;
    case TFH_TYPE_INT32:
      direct(p.int32_data().data(), p.int32_data().size() * sizeof(int32_t));
      break;
    case TFH_TYPE_UINT32:
      copy_narrow(h, p.uint64_data().data(), p.uint64_data().size());
      break;
    case TFH_TYPE_UINT4:
    case TFH_TYPE_INT4:
      break;  // packed layouts only through raw_data
    default:  // 8/16-bit types stored one per int32
      copy_narrow(h, p.int32_data().data(), p.int32_data().size());
      break;
  }
}

// Constant `value_float`, `value_floats`, `value_int`, `value_ints` as a tensor.
bool fill_view(HostTensor& h, const onnx::AttributeProto& a) {
  h.storage.reset();
  h.data = nullptr;
  auto own = [&](TfhDataType t, std::vector<int64_t> dims, const void* src) {
    h.set_shape(t, std::move(dims));
    h.storage = aligned_zeroed(h.nbytes);
    if (h.nbytes) std::memcpy(h.storage.get(), src, h.nbytes);
    h.data = h.storage.get();
  };
  const std::string& n = a.name();
  if (n == "value_float") {
    float f = a.f();
    own(TFH_TYPE_FLOAT, {}, &f);
  } else if (n == "value_int") {
    int64_t i = a.i();
    own(TFH_TYPE_INT64, {}, &i);
  } else if (n == "value_floats") {
    own(TFH_TYPE_FLOAT, {a.floats_size()}, a.floats().data());
  } else if (n == "value_ints") {
    own(TFH_TYPE_INT64, {a.ints_size()}, a.ints().data());
  } else {
    return false;
  }
  return true;
}

// ---- caches: views of host data and the node index ---------------------------------------

// graph_node(i) in O(1): a snapshot of the node list, rebuilt after every scan restart (i == 0),
// every edit made through the table, and any change in the node count or the first/last node.
// Removed nodes stay alive in the IR, so a snapshot outdated by an outside edit never dangles.
struct NodeIndex {
  std::vector<ir::Node*> nodes;
  bool stale = true;
};

struct Caches {
  std::mutex mu;
  // Keyed by the source object (ir::Tensor*, TensorProto*, AttributeProto*). A lookup rebuilds
  // the view and keeps the cached one when it describes the same bytes, so a TfhTensor* a plugin
  // holds stays valid while it asks for others; an address reused by a new source (after an
  // edit outside the table, or a model destroyed and another built) gets a fresh view.
  std::unordered_map<const void*, std::unique_ptr<HostTensor>> views;
  std::unordered_map<const ir::Graph*, NodeIndex> indexes;
};

Caches& caches() {
  static Caches c;  // constructed on first use
  return c;
}

bool same_view(const HostTensor& a, const HostTensor& b) {
  if (a.type != b.type || a.dims != b.dims || a.nbytes != b.nbytes) return false;
  if (a.data == b.data) return true;
  // Copies (attribute lists, narrowed fields) live in each view's own storage: compare bytes.
  return a.data && b.data && a.storage && b.storage && std::memcmp(a.data, b.data, a.nbytes) == 0;
}

template <typename Source>
const HostTensor* cached_view(const Source& src) {
  Caches& c = caches();
  std::lock_guard<std::mutex> lock(c.mu);
  auto fresh = std::make_unique<HostTensor>();
  fill_view(*fresh, src);
  auto& slot = c.views[&src];
  if (!slot || !same_view(*slot, *fresh)) slot = std::move(fresh);
  return slot.get();
}

void drop_views_of_node(const ir::Node& n) {
  Caches& c = caches();
  std::lock_guard<std::mutex> lock(c.mu);
  for (const auto& a : n.attributes()) {
    c.views.erase(&a);
    c.views.erase(&a.t());
  }
}

void drop_view(const void* key) {
  Caches& c = caches();
  std::lock_guard<std::mutex> lock(c.mu);
  c.views.erase(key);
}

void drop_node_index(const ir::Graph& g) {
  Caches& c = caches();
  std::lock_guard<std::mutex> lock(c.mu);
  c.indexes.erase(&g);
}

bool is_onnx_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }
std::string norm_domain(const char* d) {
  std::string s = d ? d : "";
  return s == "ai.onnx" ? std::string() : s;
}

const char* attr_type_name(int t) {
  static const char* const names[] = {"undefined",      "float",      "int",        "string",
                                      "tensor",         "graph",      "floats",     "ints",
                                      "strings",        "tensors",    "graphs",     "sparse tensor",
                                      "sparse tensors", "type proto", "type protos"};
  return t >= 0 && t < 15 ? names[t] : "unknown";
}

// ---- status plumbing ------------------------------------------------------------------------

TfhStatus* oom_status() {
  static TfhStatus s{TFH_OUT_OF_MEMORY, "out of memory"};  // never freed: see status_release
  return &s;
}

TfhStatus* status_from_current_exception() noexcept {
  try {
    throw;
  } catch (const ApiError& e) {
    return make_status(e.code, e.message);
  } catch (const tfh::Error& e) {
    return make_status(TFH_INVALID_GRAPH, e.what());
  } catch (const std::bad_alloc&) {
    return oom_status();
  } catch (const std::invalid_argument& e) {  // checked_num_elements
    return make_status(TFH_INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return make_status(TFH_RUNTIME_EXCEPTION, e.what());
  } catch (...) {
    return make_status(TFH_RUNTIME_EXCEPTION, "unknown exception in the tfhost host");
  }
}

// Runs `f` (returning nothing) and converts any exception into a status.
template <typename F>
TfhStatus* guarded(F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (...) {
    return status_from_current_exception();
  }
}

// Runs a getter; any exception yields `fallback`.
template <typename T, typename F>
T getter(T fallback, F&& f) noexcept {
  try {
    return f();
  } catch (...) {
    return fallback;
  }
}

template <typename P>
P* need(P* p, const char* fn, const char* what) {
  if (!p) api_fail(TFH_INVALID_ARGUMENT, std::string(fn) + ": " + what + " is NULL");
  return p;
}

ir::Model& model_of(const TfhGraph* g, const char* fn) {
  return *const_cast<ir::Model*>(need(from_c(g), fn, "graph"));
}
ir::Node& node_of(const TfhNode* n, const char* fn) { return *need(from_c(n), fn, "node"); }
ir::Value& value_of(const TfhValue* v, const char* fn) { return *need(from_c(v), fn, "value"); }
const char* name_arg(const char* s, const char* fn) { return need(s, fn, "name"); }

// ---- host table: status, log, memory --------------------------------------------------------

TfhStatus* api_status_create(TfhErrorCode code, const char* msg) {
  if (code == TFH_OK) return nullptr;
  try {
    return new TfhStatus{code, msg ? msg : ""};
  } catch (...) {
    return oom_status();
  }
}

void api_status_release(TfhStatus* s) {
  if (s != oom_status()) delete s;
}

TfhErrorCode api_status_code(const TfhStatus* s) { return s ? s->code : TFH_OK; }
const char* api_status_message(const TfhStatus* s) { return s ? s->message.c_str() : ""; }

std::atomic<int>& log_level_slot() {
  static std::atomic<int> level{TFH_LOG_WARNING};
  return level;
}

void api_log(TfhLogLevel level, const char* plugin, const char* msg) {
  if (level < log_level_slot().load()) return;
  static const char* const names[] = {"debug", "info", "warning", "error"};
  const char* lvl = level >= TFH_LOG_DEBUG && level <= TFH_LOG_ERROR ? names[level] : "log";
  std::fprintf(stderr, "tfhost: [%s] %s: %s\n", plugin && *plugin ? plugin : "plugin", lvl,
               msg ? msg : "");
}

void* api_alloc(size_t bytes, TfhDevice device) {
  if (device != TFH_DEVICE_CPU) return nullptr;  // CUDA allocation: not in this build yet
  size_t n = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
  return std::aligned_alloc(kAlign, n);
}

void api_free(void* p, TfhDevice device) {
  if (device == TFH_DEVICE_CPU) std::free(p);
}

// ---- graph ----------------------------------------------------------------------------------

size_t g_num_nodes(const TfhGraph* g) {
  return getter<size_t>(0, [&] { return model_of(g, "").graph().num_nodes(); });
}

TfhNode* g_node(const TfhGraph* g, size_t i) {
  return getter<TfhNode*>(nullptr, [&]() -> TfhNode* {
    const ir::Graph& graph = model_of(g, "").graph();
    const auto& nodes = graph.nodes();
    if (i >= nodes.size()) return nullptr;
    Caches& c = caches();
    std::lock_guard<std::mutex> lock(c.mu);
    NodeIndex& index = c.indexes[&graph];
    if (i == 0) {  // a scan (re)starts: O(1) here, the snapshot is rebuilt on the next index
      index.stale = true;
      return to_c(nodes.front().get());
    }
    if (index.stale || index.nodes.size() != nodes.size() ||
        index.nodes.front() != nodes.front().get() || index.nodes.back() != nodes.back().get()) {
      index.nodes.clear();
      for (const auto& n : nodes) index.nodes.push_back(n.get());
      index.stale = false;
    }
    return to_c(index.nodes[i]);
  });
}

template <typename Vec>
TfhValue* at_or_null(const Vec& v, size_t i) {
  return i < v.size() ? to_c(v[i]) : nullptr;
}

size_t g_num_inputs(const TfhGraph* g) {
  return getter<size_t>(0, [&] { return model_of(g, "").graph().inputs().size(); });
}
TfhValue* g_input(const TfhGraph* g, size_t i) {
  return getter<TfhValue*>(nullptr,
                           [&] { return at_or_null(model_of(g, "").graph().inputs(), i); });
}
size_t g_num_outputs(const TfhGraph* g) {
  return getter<size_t>(0, [&] { return model_of(g, "").graph().outputs().size(); });
}
TfhValue* g_output(const TfhGraph* g, size_t i) {
  return getter<TfhValue*>(nullptr,
                           [&] { return at_or_null(model_of(g, "").graph().outputs(), i); });
}
size_t g_num_initializers(const TfhGraph* g) {
  return getter<size_t>(0, [&] { return model_of(g, "").graph().initializers().size(); });
}
TfhValue* g_initializer(const TfhGraph* g, size_t i) {
  return getter<TfhValue*>(nullptr,
                           [&] { return at_or_null(model_of(g, "").graph().initializers(), i); });
}
TfhValue* g_find_value(const TfhGraph* g, const char* name) {
  return getter<TfhValue*>(nullptr, [&]() -> TfhValue* {
    if (!name) return nullptr;
    return to_c(model_of(g, "").graph().find(name));
  });
}

int64_t opset_of(const ir::Model& m, const std::string& domain) {
  int64_t v = m.opset(domain);
  if (v < 0 && domain.empty()) v = m.opset("ai.onnx");
  return v;
}

int64_t g_opset(const TfhGraph* g, const char* domain) {
  return getter<int64_t>(-1, [&] { return opset_of(model_of(g, ""), norm_domain(domain)); });
}

TfhStatus* g_set_opset(TfhGraph* g, const char* domain, int64_t version) {
  return guarded([&] {
    if (version < 1) api_fail(TFH_INVALID_ARGUMENT, "graph_set_opset: version must be >= 1");
    model_of(g, "graph_set_opset").set_opset(norm_domain(domain), version);
  });
}

TfhStatus* g_unique_name(TfhGraph* g, const char* prefix, char* buf, size_t buf_size) {
  return guarded([&] {
    need(buf, "graph_unique_name", "buf");
    std::string n = model_of(g, "graph_unique_name").graph().unique_name(prefix ? prefix : "");
    if (n.size() + 1 > buf_size)
      api_fail(TFH_INVALID_ARGUMENT, "graph_unique_name: buffer of " + std::to_string(buf_size) +
                                         " bytes is too small for '" + n + "'");
    std::memcpy(buf, n.c_str(), n.size() + 1);
  });
}

// ---- node -----------------------------------------------------------------------------------

const char* n_name(const TfhNode* n) { return n ? from_c(n)->name().c_str() : ""; }
const char* n_op_type(const TfhNode* n) { return n ? from_c(n)->op_type().c_str() : ""; }
const char* n_domain(const TfhNode* n) {
  if (!n) return "";
  const std::string& d = from_c(n)->domain();
  return d == "ai.onnx" ? "" : d.c_str();
}
size_t n_num_inputs(const TfhNode* n) { return n ? from_c(n)->inputs().size() : 0; }
TfhValue* n_input(const TfhNode* n, size_t i) {
  return n ? at_or_null(from_c(n)->inputs(), i) : nullptr;
}
size_t n_num_outputs(const TfhNode* n) { return n ? from_c(n)->outputs().size() : 0; }
TfhValue* n_output(const TfhNode* n, size_t i) {
  return n ? at_or_null(from_c(n)->outputs(), i) : nullptr;
}
size_t n_num_attrs(const TfhNode* n) { return n ? from_c(n)->attributes().size() : 0; }
const char* n_attr_name(const TfhNode* n, size_t i) {
  if (!n || i >= from_c(n)->attributes().size()) return nullptr;
  return from_c(n)->attributes()[i].name().c_str();
}
TfhAttrType n_attr_type(const TfhNode* n, const char* name) {
  return getter<TfhAttrType>(TFH_ATTR_UNDEFINED, [&]() -> TfhAttrType {
    if (!n || !name) return TFH_ATTR_UNDEFINED;
    const onnx::AttributeProto* a = from_c(n)->attr(name);
    return a ? static_cast<TfhAttrType>(a->type()) : TFH_ATTR_UNDEFINED;
  });
}

// The attribute `name` of `n`, checked to be of type `want`.
const onnx::AttributeProto& typed_attr(const TfhNode* n, const char* name, int want,
                                       const char* fn) {
  const ir::Node& node = node_of(n, fn);
  name_arg(name, fn);
  const onnx::AttributeProto* a = node.attr(name);
  if (!a)
    api_fail(TFH_NOT_FOUND,
             "node '" + node.name() + "' (" + node.op_type() + ") has no attribute '" + name + "'");
  if (a->type() != want)
    api_fail(TFH_INVALID_ARGUMENT, "attribute '" + std::string(name) + "' of node '" + node.name() +
                                       "' is " + attr_type_name(a->type()) + ", not " +
                                       attr_type_name(want));
  return *a;
}

TfhStatus* n_attr_int(const TfhNode* n, const char* name, int64_t* out) {
  return guarded([&] {
    need(out, "node_attr_int", "out");
    *out = typed_attr(n, name, TFH_ATTR_INT, "node_attr_int").i();
  });
}
TfhStatus* n_attr_float(const TfhNode* n, const char* name, float* out) {
  return guarded([&] {
    need(out, "node_attr_float", "out");
    *out = typed_attr(n, name, TFH_ATTR_FLOAT, "node_attr_float").f();
  });
}
TfhStatus* n_attr_string(const TfhNode* n, const char* name, const char** out, size_t* len) {
  return guarded([&] {
    need(out, "node_attr_string", "out");
    const std::string& s = typed_attr(n, name, TFH_ATTR_STRING, "node_attr_string").s();
    *out = s.c_str();
    if (len) *len = s.size();
  });
}
TfhStatus* n_attr_ints(const TfhNode* n, const char* name, const int64_t** out, size_t* count) {
  return guarded([&] {
    need(out, "node_attr_ints", "out");
    need(count, "node_attr_ints", "count");
    const auto& a = typed_attr(n, name, TFH_ATTR_INTS, "node_attr_ints");
    *out = a.ints().data();
    *count = static_cast<size_t>(a.ints_size());
  });
}
TfhStatus* n_attr_floats(const TfhNode* n, const char* name, const float** out, size_t* count) {
  return guarded([&] {
    need(out, "node_attr_floats", "out");
    need(count, "node_attr_floats", "count");
    const auto& a = typed_attr(n, name, TFH_ATTR_FLOATS, "node_attr_floats");
    *out = a.floats().data();
    *count = static_cast<size_t>(a.floats_size());
  });
}
TfhStatus* n_attr_tensor(const TfhNode* n, const char* name, const TfhTensor** out) {
  return guarded([&] {
    need(out, "node_attr_tensor", "out");
    *out = c_tensor(cached_view(typed_attr(n, name, TFH_ATTR_TENSOR, "node_attr_tensor").t()));
  });
}

int64_t n_since_version(const TfhGraph* g, const TfhNode* n) {
  return getter<int64_t>(-1, [&]() -> int64_t {
    if (!g || !n) return -1;
    const ir::Node& node = *from_c(n);
    std::string domain = is_onnx_domain(node.domain()) ? std::string() : node.domain();
    int64_t opset = opset_of(*from_c(g), domain);
    if (opset < 0) return -1;
    const onnx::OpSchema* s = onnx::OpSchemaRegistry::Schema(
        node.op_type(), static_cast<int>(std::min<int64_t>(opset, INT32_MAX)), domain);
    return s ? s->SinceVersion() : -1;
  });
}

// ---- value ----------------------------------------------------------------------------------

const char* v_name(const TfhValue* v) { return v ? from_c(v)->name().c_str() : ""; }

TfhNode* v_producer(const TfhValue* v, size_t* output_index) {
  if (!v) return nullptr;
  const ir::Value* val = from_c(v);
  if (output_index) *output_index = val->producer() ? val->producer_output() : 0;
  return val->producer() ? to_c(val->producer()) : nullptr;
}
size_t v_num_consumers(const TfhValue* v) { return v ? from_c(v)->consumers().size() : 0; }
TfhNode* v_consumer(const TfhValue* v, size_t i, size_t* input_index) {
  if (!v || i >= from_c(v)->consumers().size()) return nullptr;
  const auto& use = from_c(v)->consumers()[i];
  if (input_index) *input_index = use.second;
  return to_c(use.first);
}
int32_t v_is_graph_input(const TfhValue* v) { return v && from_c(v)->is_graph_input() ? 1 : 0; }
int32_t v_is_graph_output(const TfhValue* v) { return v && from_c(v)->is_graph_output() ? 1 : 0; }

const HostTensor* constant_of(const ir::Value& v) {
  if (v.is_graph_input()) return nullptr;  // an overridable default, not a constant
  if (v.initializer()) return cached_view(*v.initializer());
  const ir::Node* p = v.producer();
  if (!p || p->op_type() != "Constant" || !is_onnx_domain(p->domain())) return nullptr;
  for (const auto& a : p->attributes()) {
    if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) {
      const HostTensor* t = cached_view(a.t());
      return t->data || t->nbytes == 0 ? t : nullptr;
    }
    if (a.name() == "value_float" || a.name() == "value_floats" || a.name() == "value_int" ||
        a.name() == "value_ints")
      return cached_view(a);
  }
  return nullptr;  // sparse_value, value_string(s): not dense numeric data
}

const TfhTensor* v_constant(const TfhValue* v) {
  return getter<const TfhTensor*>(nullptr,
                                  [&] { return v ? c_tensor(constant_of(*from_c(v))) : nullptr; });
}

TfhValueKind v_kind(const TfhValue* v) {
  return getter<TfhValueKind>(TFH_VALUE_UNKNOWN, [&]() -> TfhValueKind {
    if (!v) return TFH_VALUE_UNKNOWN;
    const ir::Value& val = *from_c(v);
    if (val.initializer()) return TFH_VALUE_TENSOR;
    if (!val.has_info() || !val.info().has_type()) return TFH_VALUE_UNKNOWN;
    switch (val.info().type().value_case()) {
      case onnx::TypeProto::kTensorType:
        return TFH_VALUE_TENSOR;
      case onnx::TypeProto::kSequenceType:
        return TFH_VALUE_SEQUENCE;
      case onnx::TypeProto::kMapType:
        return TFH_VALUE_MAP;
      case onnx::TypeProto::kOptionalType:
        return TFH_VALUE_OPTIONAL;
      case onnx::TypeProto::kSparseTensorType:
        return TFH_VALUE_SPARSE_TENSOR;
      default:
        return TFH_VALUE_UNKNOWN;
    }
  });
}

TfhDataType v_elem_type(const TfhValue* v) {
  return getter<TfhDataType>(TFH_TYPE_UNDEFINED, [&]() -> TfhDataType {
    if (!v) return TFH_TYPE_UNDEFINED;
    const ir::Value& val = *from_c(v);
    return val.initializer() ? val.initializer()->dtype() : val.elem_type();
  });
}

int64_t v_rank(const TfhValue* v) {
  return getter<int64_t>(-1, [&]() -> int64_t {
    if (!v) return -1;
    const ir::Value& val = *from_c(v);
    if (val.initializer()) return static_cast<int64_t>(val.initializer()->dims().size());
    return val.rank();
  });
}

TfhStatus* v_dim(const TfhValue* v, size_t i, int64_t* value, const char** symbol) {
  return guarded([&] {
    const ir::Value& val = value_of(v, "value_dim");
    need(value, "value_dim", "value");
    auto out_of_range = [&](int64_t rank) {
      api_fail(TFH_INVALID_ARGUMENT, "value_dim: value '" + val.name() + "' has rank " +
                                         std::to_string(rank) + ", no dim " + std::to_string(i));
    };
    if (val.initializer()) {
      const auto& dims = val.initializer()->dims();
      if (i >= dims.size()) out_of_range(static_cast<int64_t>(dims.size()));
      *value = dims[i];
      if (symbol) *symbol = nullptr;
      return;
    }
    int64_t rank = val.rank();
    if (rank < 0 || !val.has_info()) out_of_range(-1);
    if (i >= static_cast<size_t>(rank)) out_of_range(rank);
    const auto& d = val.info().type().tensor_type().shape().dim(static_cast<int>(i));
    *value = d.has_dim_value() ? d.dim_value() : -1;
    if (symbol) *symbol = d.has_dim_param() ? d.dim_param().c_str() : nullptr;
  });
}

// ---- edits ----------------------------------------------------------------------------------

TfhStatus* g_add_node(TfhGraph* g, const char* name, const char* op_type, const char* domain,
                      const TfhValue* const* inputs, size_t n_inputs,
                      const char* const* output_names, size_t n_outputs, TfhNode** out) {
  return guarded([&] {
    const char* fn = "graph_add_node";
    ir::Graph& graph = model_of(g, fn).graph();
    need(op_type, fn, "op_type");
    if (!*op_type) api_fail(TFH_INVALID_ARGUMENT, "graph_add_node: op_type is empty");
    if (n_inputs) need(inputs, fn, "inputs");
    if (n_outputs) need(output_names, fn, "output_names");
    std::vector<ir::Value*> ins(n_inputs);
    for (size_t i = 0; i < n_inputs; ++i) ins[i] = from_c(inputs[i]);
    // Check every output before creating anything, so a failure changes nothing.
    std::unordered_set<std::string> seen;
    std::vector<ir::Value*> outs(n_outputs, nullptr);
    for (size_t i = 0; i < n_outputs; ++i) {
      const char* on = output_names[i];
      if (!on || !*on) continue;
      if (!seen.insert(on).second)
        api_fail(TFH_INVALID_ARGUMENT,
                 std::string("graph_add_node: output '") + on + "' is named twice");
      ir::Value* v = graph.find(on);
      if (!v) continue;
      std::string what = v->producer() ? "is produced by node '" + v->producer()->name() + "'"
                         : v->is_graph_input() ? std::string("is a graph input")
                         : v->initializer()    ? std::string("is an initializer")
                                               : std::string();
      if (!what.empty())
        api_fail(TFH_INVALID_GRAPH, std::string("graph_add_node: output '") + on + "' of new " +
                                        op_type + " node " + what);
      outs[i] = v;
    }
    std::vector<ir::Value*> created;
    try {
      for (size_t i = 0; i < n_outputs; ++i) {
        const char* on = output_names[i];
        if (on && *on && !outs[i]) created.push_back(outs[i] = graph.add_value(on));
      }
      std::string node_name = name && *name ? std::string(name) : graph.unique_name(op_type);
      ir::Node* node = graph.add_node(node_name, op_type, norm_domain(domain), ins, outs);
      drop_node_index(graph);
      if (out) *out = to_c(node);
    } catch (...) {
      for (ir::Value* v : created) graph.remove_value(v);
      throw;
    }
  });
}

TfhStatus* g_remove_node(TfhGraph* g, TfhNode* n) {
  return guarded([&] {
    ir::Graph& graph = model_of(g, "graph_remove_node").graph();
    ir::Node& node = node_of(n, "graph_remove_node");
    drop_views_of_node(node);
    drop_node_index(graph);
    graph.remove_node(&node);
  });
}

TfhStatus* n_set_input(TfhGraph* g, TfhNode* n, size_t i, const TfhValue* v) {
  return guarded([&] {
    model_of(g, "node_set_input").graph().set_input(&node_of(n, "node_set_input"), i, from_c(v));
  });
}

// Replaces attribute `name` of `n` with a fresh one filled by `fill`.
template <typename F>
TfhStatus* set_attr(TfhNode* n, const char* name, const char* fn, F&& fill) {
  return guarded([&] {
    ir::Node& node = node_of(n, fn);
    name_arg(name, fn);
    if (!*name) api_fail(TFH_INVALID_ARGUMENT, std::string(fn) + ": empty attribute name");
    drop_views_of_node(node);  // attribute storage may move
    onnx::AttributeProto a;
    a.set_name(name);
    fill(a);
    node.set_attr(name) = std::move(a);
  });
}

TfhStatus* n_set_attr_int(TfhNode* n, const char* name, int64_t v) {
  return set_attr(n, name, "node_set_attr_int", [&](onnx::AttributeProto& a) {
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(v);
  });
}
TfhStatus* n_set_attr_float(TfhNode* n, const char* name, float v) {
  return set_attr(n, name, "node_set_attr_float", [&](onnx::AttributeProto& a) {
    a.set_type(onnx::AttributeProto::FLOAT);
    a.set_f(v);
  });
}
TfhStatus* n_set_attr_string(TfhNode* n, const char* name, const char* v, size_t len) {
  return set_attr(n, name, "node_set_attr_string", [&](onnx::AttributeProto& a) {
    if (len) need(v, "node_set_attr_string", "value");
    a.set_type(onnx::AttributeProto::STRING);
    a.set_s(std::string(v ? v : "", len));
  });
}
TfhStatus* n_set_attr_ints(TfhNode* n, const char* name, const int64_t* v, size_t count) {
  return set_attr(n, name, "node_set_attr_ints", [&](onnx::AttributeProto& a) {
    if (count) need(v, "node_set_attr_ints", "values");
    a.set_type(onnx::AttributeProto::INTS);
    for (size_t i = 0; i < count; ++i) a.add_ints(v[i]);
  });
}
TfhStatus* n_set_attr_floats(TfhNode* n, const char* name, const float* v, size_t count) {
  return set_attr(n, name, "node_set_attr_floats", [&](onnx::AttributeProto& a) {
    if (count) need(v, "node_set_attr_floats", "values");
    a.set_type(onnx::AttributeProto::FLOATS);
    for (size_t i = 0; i < count; ++i) a.add_floats(v[i]);
  });
}

void tensor_to_proto(const HostTensor& t, onnx::TensorProto& p) {
  if (t.nbytes && !t.data)
    api_fail(TFH_INVALID_ARGUMENT, "tensor has no readable data (external or string tensor)");
  p.set_data_type(t.type);
  for (int64_t d : t.dims) p.add_dims(d);
  p.set_raw_data(t.data, t.nbytes);
}

TfhStatus* n_set_attr_tensor(TfhNode* n, const char* name, const TfhTensor* t) {
  return set_attr(n, name, "node_set_attr_tensor", [&](onnx::AttributeProto& a) {
    const HostTensor& ht = *need(host_tensor(t), "node_set_attr_tensor", "tensor");
    a.set_type(onnx::AttributeProto::TENSOR);
    tensor_to_proto(ht, *a.mutable_t());
  });
}

TfhStatus* n_remove_attr(TfhNode* n, const char* name) {
  return guarded([&] {
    ir::Node& node = node_of(n, "node_remove_attr");
    name_arg(name, "node_remove_attr");
    drop_views_of_node(node);
    if (!node.remove_attr(name))
      api_fail(TFH_NOT_FOUND, "node '" + node.name() + "' has no attribute '" + name + "'");
  });
}

TfhStatus* g_replace_all_uses(TfhGraph* g, TfhValue* from, TfhValue* to) {
  return guarded([&] {
    model_of(g, "graph_replace_all_uses")
        .graph()
        .replace_all_uses(&value_of(from, "graph_replace_all_uses"),
                          &value_of(to, "graph_replace_all_uses"));
  });
}

void release_tensor(HostTensor* t) {
  if (t && t->owned) delete t;  // views belong to the host caches
}

TfhStatus* g_add_initializer(TfhGraph* g, const char* name, TfhTensor* t, TfhValue** out) {
  HostTensor* ht = host_tensor(t);
  TfhStatus* s = guarded([&] {
    ir::Graph& graph = model_of(g, "graph_add_initializer").graph();
    need(ht, "graph_add_initializer", "tensor");
    std::string n = name && *name ? std::string(name) : graph.unique_name("initializer");
    if (graph.find(n))
      api_fail(TFH_INVALID_GRAPH, "graph_add_initializer: a value named '" + n + "' exists");
    ir::Value* v = graph.add_initializer(to_ir_tensor(c_tensor(ht), n));
    if (out) *out = to_c(v);
  });
  release_tensor(ht);  // ownership passed to the host, also on error
  return s;
}

TfhStatus* g_remove_initializer(TfhGraph* g, TfhValue* v) {
  return guarded([&] {
    ir::Value& val = value_of(v, "graph_remove_initializer");
    if (!val.initializer())
      api_fail(TFH_INVALID_ARGUMENT,
               "graph_remove_initializer: '" + val.name() + "' is not an initializer");
    drop_view(val.initializer());
    model_of(g, "graph_remove_initializer").graph().remove_initializer(&val);
  });
}

TfhStatus* v_set_name(TfhGraph* g, TfhValue* v, const char* name) {
  return guarded([&] {
    name_arg(name, "value_set_name");
    model_of(g, "value_set_name").graph().rename_value(&value_of(v, "value_set_name"), name);
  });
}

void fill_tensor_type(onnx::TypeProto& type, TfhDataType elem, const int64_t* dims,
                      const char* const* symbols, int64_t rank) {
  type.Clear();
  auto* tt = type.mutable_tensor_type();
  tt->set_elem_type(elem);
  if (rank < 0) return;
  auto* shape = tt->mutable_shape();
  for (int64_t i = 0; i < rank; ++i) {
    auto* d = shape->add_dim();
    if (dims && dims[i] >= 0)
      d->set_dim_value(dims[i]);
    else if (symbols && symbols[i] && *symbols[i])
      d->set_dim_param(symbols[i]);
  }
}

TfhStatus* v_set_type(TfhValue* v, TfhDataType elem, const int64_t* dims,
                      const char* const* symbols, int64_t rank) {
  return guarded([&] {
    ir::Value& val = value_of(v, "value_set_type");
    if (rank > 0 && !dims && !symbols)
      api_fail(TFH_INVALID_ARGUMENT, "value_set_type: rank > 0 but no dims or symbols given");
    fill_tensor_type(*val.mutable_info().mutable_type(), elem, dims, symbols, rank);
  });
}

TfhStatus* g_topological_sort(TfhGraph* g) {
  return guarded([&] {
    ir::Graph& graph = model_of(g, "graph_topological_sort").graph();
    drop_node_index(graph);
    graph.topological_sort();
  });
}

namespace {
thread_local const ir::ShapeHooks* t_shape_hooks = nullptr;
}  // namespace

TfhStatus* g_infer_shapes(TfhGraph* g, size_t* n_typed) {
  return guarded([&] {
    size_t n = model_of(g, "graph_infer_shapes").infer_shapes(t_shape_hooks);
    if (n_typed) *n_typed = n;
  });
}

TfhStatus* g_add_input(TfhGraph* g, const char* name, TfhDataType elem, const int64_t* dims,
                       const char* const* symbols, int64_t rank, TfhValue** out) {
  return guarded([&] {
    name_arg(name, "graph_add_input");
    if (rank > 0 && !dims && !symbols)
      api_fail(TFH_INVALID_ARGUMENT, "graph_add_input: rank > 0 but no dims or symbols given");
    ir::Graph& graph = model_of(g, "graph_add_input").graph();
    if (graph.find(name))
      api_fail(TFH_INVALID_ARGUMENT, std::string("graph_add_input: '") + name + "' exists");
    ir::Value* v = graph.add_value(name);
    fill_tensor_type(*v->mutable_info().mutable_type(), elem, dims, symbols, rank);
    graph.add_graph_input(v);
    drop_node_index(graph);
    if (out) *out = reinterpret_cast<TfhValue*>(v);
  });
}

TfhStatus* g_add_output(TfhGraph* g, TfhValue* v) {
  return guarded([&] {
    model_of(g, "graph_add_output").graph().add_graph_output(&value_of(v, "graph_add_output"));
  });
}

// ---- tensor table ---------------------------------------------------------------------------

TfhStatus* t_create(TfhDataType type, const int64_t* dims, size_t rank, TfhTensor** out) {
  return guarded([&] {
    need(out, "tensor_create", "out");
    if (rank) need(dims, "tensor_create", "dims");
    if (elem_bits(type) == 0)
      api_fail(TFH_NOT_IMPLEMENTED,
               "tensor_create: element type " + std::to_string(type) + " has no dense layout");
    auto t = std::make_unique<HostTensor>();
    t->set_shape(type, std::vector<int64_t>(dims, dims + rank));
    t->storage = aligned_zeroed(t->nbytes);
    t->data = t->storage.get();
    t->owned = true;
    *out = c_tensor(t.release());
  });
}
void t_release(TfhTensor* t) { release_tensor(host_tensor(t)); }
TfhDataType t_type(const TfhTensor* t) { return t ? host_tensor(t)->type : TFH_TYPE_UNDEFINED; }
size_t t_rank(const TfhTensor* t) { return t ? host_tensor(t)->dims.size() : 0; }
const int64_t* t_dims(const TfhTensor* t) { return t ? host_tensor(t)->dims.data() : nullptr; }
size_t t_num_elements(const TfhTensor* t) { return t ? host_tensor(t)->num_elements : 0; }
size_t t_nbytes(const TfhTensor* t) { return t ? host_tensor(t)->nbytes : 0; }
const void* t_data(const TfhTensor* t) { return t ? host_tensor(t)->data : nullptr; }
void* t_mutable_data(TfhTensor* t) {
  if (!t) return nullptr;
  HostTensor* h = host_tensor(t);
  if (h->owned) return h->storage.get();
  return h->writable ? const_cast<void*>(h->data) : nullptr;
}

}  // namespace

struct TensorListAccess {
  static void append(TensorList& l, std::string name, HostTensor* t) {
    l.items_.emplace_back(std::move(name), t);
  }
};

namespace {

TfhStatus* t_list_append(TfhTensorList* list, const char* name, TfhTensor* t) {
  HostTensor* ht = host_tensor(t);
  TfhStatus* s = guarded([&] {
    auto* l = need(reinterpret_cast<TensorList*>(list), "tensor_list_append", "list");
    name_arg(name, "tensor_list_append");
    need(ht, "tensor_list_append", "tensor");
    for (size_t i = 0; i < l->size(); ++i)
      if (l->name(i) == name)
        api_fail(TFH_INVALID_ARGUMENT,
                 std::string("tensor_list_append: '") + name + "' is already in the list");
    HostTensor* own = ht;
    if (!ht->owned) {  // a view: the list keeps its own copy
      auto copy = std::make_unique<HostTensor>();
      copy->set_shape(ht->type, ht->dims);
      copy->storage = aligned_zeroed(copy->nbytes);
      if (copy->nbytes) std::memcpy(copy->storage.get(), ht->data, copy->nbytes);
      copy->data = copy->storage.get();
      copy->owned = true;
      own = copy.release();
    }
    try {
      TensorListAccess::append(*l, name, own);
    } catch (...) {
      if (own != ht) delete own;
      throw;
    }
    if (own == ht) ht = nullptr;  // now owned by the list
  });
  release_tensor(ht);
  return s;
}

// ---- params table ---------------------------------------------------------------------------

const ParamValue& param(const TfhParams* p, const char* name, const char* fn) {
  const Params* params = need(Params::from_c(p), fn, "params");
  name_arg(name, fn);
  const ParamValue* v = params->find(name);
  if (!v) {
    std::string valid;
    for (const auto& kv : params->values()) valid += (valid.empty() ? "" : ", ") + kv.first;
    api_fail(TFH_NOT_FOUND, std::string("unknown parameter '") + name +
                                "' (declared: " + (valid.empty() ? "none" : valid) + ")");
  }
  return *v;
}

[[noreturn]] void param_type_error(const char* name, const ParamValue& v, const char* want) {
  api_fail(TFH_INVALID_ARGUMENT,
           std::string("parameter '") + name + "' is " + param_type_name(v.type) + ", not " + want);
}

TfhStatus* p_get_bool(const TfhParams* p, const char* name, int32_t* out) {
  return guarded([&] {
    need(out, "get_bool", "out");
    const ParamValue& v = param(p, name, "get_bool");
    if (v.type == TFH_PARAM_BOOL)
      *out = v.b ? 1 : 0;
    else if (v.type == TFH_PARAM_BOOL_OR_STRING_LIST)
      *out = v.is_list_form ? !v.strings.empty() : v.b;
    else
      param_type_error(name, v, "bool");
  });
}
TfhStatus* p_get_int(const TfhParams* p, const char* name, int64_t* out) {
  return guarded([&] {
    need(out, "get_int", "out");
    const ParamValue& v = param(p, name, "get_int");
    if (v.type != TFH_PARAM_INT) param_type_error(name, v, "int");
    *out = v.i;
  });
}
TfhStatus* p_get_float(const TfhParams* p, const char* name, double* out) {
  return guarded([&] {
    need(out, "get_float", "out");
    const ParamValue& v = param(p, name, "get_float");
    if (v.type != TFH_PARAM_FLOAT) param_type_error(name, v, "float");
    *out = v.f;
  });
}
TfhStatus* p_get_string(const TfhParams* p, const char* name, const char** out) {
  return guarded([&] {
    need(out, "get_string", "out");
    const ParamValue& v = param(p, name, "get_string");
    if (v.type != TFH_PARAM_STRING) param_type_error(name, v, "string");
    *out = v.s.c_str();
  });
}
TfhStatus* p_get_ints(const TfhParams* p, const char* name, const int64_t** out, size_t* n) {
  return guarded([&] {
    need(out, "get_ints", "out");
    need(n, "get_ints", "n");
    const ParamValue& v = param(p, name, "get_ints");
    if (v.type != TFH_PARAM_INT_LIST) param_type_error(name, v, "int list");
    *out = v.ints.data();
    *n = v.ints.size();
  });
}
TfhStatus* p_get_floats(const TfhParams* p, const char* name, const double** out, size_t* n) {
  return guarded([&] {
    need(out, "get_floats", "out");
    need(n, "get_floats", "n");
    const ParamValue& v = param(p, name, "get_floats");
    if (v.type != TFH_PARAM_FLOAT_LIST) param_type_error(name, v, "float list");
    *out = v.floats.data();
    *n = v.floats.size();
  });
}
const ParamValue& string_list(const TfhParams* p, const char* name, const char* fn) {
  const ParamValue& v = param(p, name, fn);
  if (v.type != TFH_PARAM_STRING_LIST && v.type != TFH_PARAM_BOOL_OR_STRING_LIST)
    param_type_error(name, v, "string list");
  return v;
}
TfhStatus* p_get_num_strings(const TfhParams* p, const char* name, size_t* n) {
  return guarded([&] {
    need(n, "get_num_strings", "n");
    *n = string_list(p, name, "get_num_strings").strings.size();
  });
}
TfhStatus* p_get_string_at(const TfhParams* p, const char* name, size_t i, const char** out) {
  return guarded([&] {
    need(out, "get_string_at", "out");
    const ParamValue& v = string_list(p, name, "get_string_at");
    if (i >= v.strings.size())
      api_fail(TFH_INVALID_ARGUMENT, std::string("get_string_at: parameter '") + name + "' has " +
                                         std::to_string(v.strings.size()) + " strings, no [" +
                                         std::to_string(i) + "]");
    *out = v.strings[i].c_str();
  });
}
int32_t p_has(const TfhParams* p, const char* name) {
  return getter<int32_t>(0, [&]() -> int32_t {
    if (!p || !name) return 0;
    const ParamValue* v = Params::from_c(p)->find(name);
    return v && v->explicitly_set ? 1 : 0;
  });
}

// ---- shape table ----------------------------------------------------------------------------

ShapeContext* shape_ctx(const TfhShapeContext* c) {
  return reinterpret_cast<ShapeContext*>(const_cast<TfhShapeContext*>(c));
}

const onnx::TypeProto* input_type(const TfhShapeContext* c, size_t i) {
  if (!c) return nullptr;
  const auto& types = shape_ctx(c)->ctx().input_types;
  return i < types.size() ? types[i] : nullptr;
}

const TfhNode* s_node(const TfhShapeContext* c) {
  return c ? to_c(const_cast<ir::Node*>(shape_ctx(c)->ctx().node)) : nullptr;
}
size_t s_num_inputs(const TfhShapeContext* c) {
  return c ? shape_ctx(c)->ctx().input_types.size() : 0;
}
TfhDataType s_input_elem_type(const TfhShapeContext* c, size_t i) {
  const onnx::TypeProto* t = input_type(c, i);
  return t && t->has_tensor_type() ? t->tensor_type().elem_type() : TFH_TYPE_UNDEFINED;
}
int64_t s_input_rank(const TfhShapeContext* c, size_t i) {
  const onnx::TypeProto* t = input_type(c, i);
  if (!t || !t->has_tensor_type() || !t->tensor_type().has_shape()) return -1;
  return t->tensor_type().shape().dim_size();
}
TfhStatus* s_input_dim(const TfhShapeContext* c, size_t i, size_t d, int64_t* value,
                       const char** symbol) {
  return guarded([&] {
    need(c, "input_dim", "context");
    need(value, "input_dim", "value");
    int64_t rank = s_input_rank(c, i);
    if (rank < 0 || d >= static_cast<size_t>(rank))
      api_fail(TFH_INVALID_ARGUMENT, "input_dim: input " + std::to_string(i) + " has rank " +
                                         std::to_string(rank) + ", no dim " + std::to_string(d));
    const auto& dim = input_type(c, i)->tensor_type().shape().dim(static_cast<int>(d));
    *value = dim.has_dim_value() ? dim.dim_value() : -1;
    if (symbol) *symbol = dim.has_dim_param() ? dim.dim_param().c_str() : nullptr;
  });
}
const TfhTensor* s_input_constant(const TfhShapeContext* c, size_t i) {
  return getter<const TfhTensor*>(nullptr,
                                  [&] { return c ? shape_ctx(c)->input_constant(i) : nullptr; });
}
size_t s_num_outputs(const TfhShapeContext* c) {
  return c ? shape_ctx(c)->ctx().output_types.size() : 0;
}
TfhStatus* s_set_output(TfhShapeContext* c, size_t i, TfhDataType elem, const int64_t* dims,
                        const char* const* symbols, int64_t rank) {
  return guarded([&] {
    auto& outs = need(shape_ctx(c), "set_output", "context")->ctx().output_types;
    if (i >= outs.size())
      api_fail(TFH_INVALID_ARGUMENT, "set_output: the node has " + std::to_string(outs.size()) +
                                         " outputs, no output " + std::to_string(i));
    if (rank > 0 && !dims && !symbols)
      api_fail(TFH_INVALID_ARGUMENT, "set_output: rank > 0 but no dims or symbols given");
    fill_tensor_type(outs[i], elem, dims, symbols, rank);
  });
}

// ---- the tables -----------------------------------------------------------------------------

TfhGraphApi make_graph_api() {
  TfhGraphApi a{};
  a.struct_size = sizeof(TfhGraphApi);
  a.graph_num_nodes = g_num_nodes;
  a.graph_node = g_node;
  a.graph_num_inputs = g_num_inputs;
  a.graph_input = g_input;
  a.graph_num_outputs = g_num_outputs;
  a.graph_output = g_output;
  a.graph_num_initializers = g_num_initializers;
  a.graph_initializer = g_initializer;
  a.graph_find_value = g_find_value;
  a.graph_opset = g_opset;
  a.graph_set_opset = g_set_opset;
  a.graph_unique_name = g_unique_name;
  a.node_name = n_name;
  a.node_op_type = n_op_type;
  a.node_domain = n_domain;
  a.node_num_inputs = n_num_inputs;
  a.node_input = n_input;
  a.node_num_outputs = n_num_outputs;
  a.node_output = n_output;
  a.node_num_attrs = n_num_attrs;
  a.node_attr_name = n_attr_name;
  a.node_attr_type = n_attr_type;
  a.node_attr_int = n_attr_int;
  a.node_attr_float = n_attr_float;
  a.node_attr_string = n_attr_string;
  a.node_attr_ints = n_attr_ints;
  a.node_attr_floats = n_attr_floats;
  a.node_attr_tensor = n_attr_tensor;
  a.value_name = v_name;
  a.value_producer = v_producer;
  a.value_num_consumers = v_num_consumers;
  a.value_consumer = v_consumer;
  a.value_is_graph_input = v_is_graph_input;
  a.value_is_graph_output = v_is_graph_output;
  a.value_constant = v_constant;
  a.value_kind = v_kind;
  a.value_elem_type = v_elem_type;
  a.value_rank = v_rank;
  a.value_dim = v_dim;
  a.graph_add_node = g_add_node;
  a.graph_remove_node = g_remove_node;
  a.node_set_input = n_set_input;
  a.node_set_attr_int = n_set_attr_int;
  a.node_set_attr_float = n_set_attr_float;
  a.node_set_attr_string = n_set_attr_string;
  a.node_set_attr_ints = n_set_attr_ints;
  a.node_set_attr_floats = n_set_attr_floats;
  a.node_set_attr_tensor = n_set_attr_tensor;
  a.node_remove_attr = n_remove_attr;
  a.graph_replace_all_uses = g_replace_all_uses;
  a.graph_add_initializer = g_add_initializer;
  a.graph_remove_initializer = g_remove_initializer;
  a.value_set_name = v_set_name;
  a.value_set_type = v_set_type;
  a.graph_topological_sort = g_topological_sort;
  a.node_since_version = n_since_version;
  a.graph_infer_shapes = g_infer_shapes;
  a.graph_add_input = g_add_input;
  a.graph_add_output = g_add_output;
  return a;
}

TfhTensorApi make_tensor_api() {
  TfhTensorApi a{};
  a.struct_size = sizeof(TfhTensorApi);
  a.tensor_create = t_create;
  a.tensor_release = t_release;
  a.tensor_type = t_type;
  a.tensor_rank = t_rank;
  a.tensor_dims = t_dims;
  a.tensor_num_elements = t_num_elements;
  a.tensor_nbytes = t_nbytes;
  a.tensor_data = t_data;
  a.tensor_mutable_data = t_mutable_data;
  a.tensor_list_append = t_list_append;
  return a;
}

TfhParamsApi make_params_api() {
  TfhParamsApi a{};
  a.struct_size = sizeof(TfhParamsApi);
  a.get_bool = p_get_bool;
  a.get_int = p_get_int;
  a.get_float = p_get_float;
  a.get_string = p_get_string;
  a.get_ints = p_get_ints;
  a.get_floats = p_get_floats;
  a.get_num_strings = p_get_num_strings;
  a.get_string_at = p_get_string_at;
  a.has = p_has;
  return a;
}

TfhShapeApi make_shape_api() {
  TfhShapeApi a{};
  a.struct_size = sizeof(TfhShapeApi);
  a.node = s_node;
  a.num_inputs = s_num_inputs;
  a.input_elem_type = s_input_elem_type;
  a.input_rank = s_input_rank;
  a.input_dim = s_input_dim;
  a.input_constant = s_input_constant;
  a.num_outputs = s_num_outputs;
  a.set_output = s_set_output;
  return a;
}

// ---- kernel context table ---------------------------------------------------------------------

const TfhNode* k_node(const TfhKernelContext* c) {
  return c ? to_c(const_cast<ir::Node*>(KernelContext::from_c(c)->node())) : nullptr;
}
size_t k_num_inputs(const TfhKernelContext* c) {
  return c ? KernelContext::from_c(c)->num_inputs() : 0;
}
const TfhTensor* k_input(const TfhKernelContext* c, size_t i) {
  if (!c || i >= KernelContext::from_c(c)->num_inputs()) return nullptr;
  return c_tensor(KernelContext::from_c(c)->input(i));
}
size_t k_num_outputs(const TfhKernelContext* c) {
  return c ? KernelContext::from_c(c)->num_outputs() : 0;
}
int32_t k_output_used(const TfhKernelContext* c, size_t i) {
  return getter<int32_t>(0, [&] { return c && KernelContext::from_c(c)->output_used(i) ? 1 : 0; });
}
TfhStatus* k_output(TfhKernelContext* c, size_t i, TfhDataType type, const int64_t* dims,
                    size_t rank, TfhTensor** out) {
  return guarded([&] {
    need(c, "kernel output", "context");
    need(out, "kernel output", "out");
    if (rank) need(dims, "kernel output", "dims");
    if (elem_bits(type) == 0)
      api_fail(TFH_NOT_IMPLEMENTED, std::string("kernel output: element type ") +
                                        std::to_string(type) + " has no dense layout");
    *out = c_tensor(KernelContext::from_c(c)->allocate_output(
        i, type, std::vector<int64_t>(dims, dims + rank)));
  });
}
void* k_scratch(TfhKernelContext* c, size_t bytes) {
  return getter<void*>(nullptr, [&] { return c ? KernelContext::from_c(c)->scratch(bytes) : nullptr; });
}
TfhStatus* k_output_from_input(TfhKernelContext* c, size_t i, size_t j, const int64_t* dims,
                               size_t rank, TfhTensor** out) {
  return guarded([&] {
    need(c, "kernel output_from_input", "context");
    need(out, "kernel output_from_input", "out");
    if (rank) need(dims, "kernel output_from_input", "dims");
    *out = c_tensor(KernelContext::from_c(c)->output_from_input(
        i, j, std::vector<int64_t>(dims, dims + rank)));
  });
}
int64_t k_input_sequence_length(const TfhKernelContext* c, size_t i) {
  return getter<int64_t>(-1, [&] { return c ? KernelContext::from_c(c)->input_sequence_length(i) : -1; });
}
const TfhTensor* k_input_sequence_at(const TfhKernelContext* c, size_t i, size_t k) {
  return getter<const TfhTensor*>(nullptr, [&]() -> const TfhTensor* {
    return c ? c_tensor(KernelContext::from_c(c)->input_sequence_at(i, k)) : nullptr;
  });
}
TfhStatus* k_output_sequence_begin(TfhKernelContext* c, size_t i) {
  return guarded([&] {
    need(c, "kernel output_sequence_begin", "context");
    KernelContext::from_c(c)->output_sequence_begin(i);
  });
}
TfhStatus* k_output_sequence_append(TfhKernelContext* c, size_t i, TfhDataType type,
                                    const int64_t* dims, size_t rank, TfhTensor** out) {
  return guarded([&] {
    need(c, "kernel output_sequence_append", "context");
    need(out, "kernel output_sequence_append", "out");
    if (rank) need(dims, "kernel output_sequence_append", "dims");
    if (elem_bits(type) == 0)
      api_fail(TFH_NOT_IMPLEMENTED, std::string("kernel output: element type ") +
                                        std::to_string(type) + " has no dense layout");
    *out = c_tensor(KernelContext::from_c(c)->output_sequence_append(
        i, type, std::vector<int64_t>(dims, dims + rank)));
  });
}
thread_local ConsumedInputs* t_consumed = nullptr;
void k_constant_input_consumed(const TfhNode* n, size_t i) {
  if (t_consumed && n) t_consumed->add(from_c(n), i);
}
int32_t k_num_threads(const TfhKernelContext* c) {
  return c ? KernelContext::from_c(c)->num_threads() : 1;
}

TfhStatus* k_run_next_kernel(TfhKernelContext* c) {
  return guarded([&] {
    need(c, "run_next_kernel", "context");
    KernelContext::from_c(c)->run_next_kernel();
  });
}

TfhKernelApi make_kernel_api() {
  TfhKernelApi a{};
  a.struct_size = sizeof(TfhKernelApi);
  a.node = k_node;
  a.num_inputs = k_num_inputs;
  a.input = k_input;
  a.num_outputs = k_num_outputs;
  a.output_used = k_output_used;
  a.output = k_output;
  a.scratch = k_scratch;
  a.num_threads = k_num_threads;
  a.run_next_kernel = k_run_next_kernel;
  a.output_from_input = k_output_from_input;
  a.input_sequence_length = k_input_sequence_length;
  a.input_sequence_at = k_input_sequence_at;
  a.output_sequence_begin = k_output_sequence_begin;
  a.output_sequence_append = k_output_sequence_append;
  a.constant_input_consumed = k_constant_input_consumed;
  return a;
}

struct Tables {
  TfhGraphApi graph = make_graph_api();
  TfhTensorApi tensor = make_tensor_api();
  TfhParamsApi params = make_params_api();
  TfhShapeApi shape = make_shape_api();
  TfhKernelApi kernel = make_kernel_api();
  TfhHostApi host{};
  Tables() {
    host.abi_version = TFH_ABI_VERSION;
    host.struct_size = sizeof(TfhHostApi);
    host.host_version = TFH_VERSION;
    host.status_create = api_status_create;
    host.status_release = api_status_release;
    host.status_code = api_status_code;
    host.status_message = api_status_message;
    host.log = api_log;
    host.alloc = api_alloc;
    host.free = api_free;
    host.graph = &graph;
    host.tensor = &tensor;
    host.params = &params;
    host.shape = &shape;
    host.kernel = &kernel;
  }
};

}  // namespace

// ---- public host-side functions ---------------------------------------------------------------

const TfhHostApi* host_api() {
  static const Tables tables;  // filled on first call
  return &tables.host;
}

void set_log_level(TfhLogLevel level) { log_level_slot().store(level); }
TfhLogLevel log_level() { return log_level_slot().load(); }

TfhStatus* make_status(TfhErrorCode code, const std::string& msg) {
  return api_status_create(code, msg.c_str());
}

std::string take_status_message(TfhStatus* s, TfhErrorCode* code) {
  if (code) *code = api_status_code(s);
  if (!s) return "";
  std::string msg = s->message;
  api_status_release(s);
  return msg;
}

const TfhTensor* tensor_view(const ir::Tensor& t) { return c_tensor(cached_view(t)); }

std::unique_ptr<ir::Tensor> to_ir_tensor(const TfhTensor* t, const std::string& name) {
  const HostTensor* ht = host_tensor(t);
  TFH_CHECK(ht, "tensor '", name, "' is NULL");
  auto proto = std::make_unique<onnx::TensorProto>();
  proto->set_name(name);
  try {
    tensor_to_proto(*ht, *proto);
  } catch (const ApiError& e) {
    TFH_THROW("tensor '", name, "': ", e.message);
  }
  return std::make_unique<ir::Tensor>(std::move(proto));
}

const ir::ShapeHooks* active_shape_hooks() { return t_shape_hooks; }
ConsumedInputs::ConsumedInputs() : previous_(t_consumed) { t_consumed = this; }
ConsumedInputs::~ConsumedInputs() { t_consumed = previous_; }
ScopedShapeHooks::ScopedShapeHooks(const ir::ShapeHooks* hooks) : previous_(t_shape_hooks) {
  t_shape_hooks = hooks;
}
ScopedShapeHooks::~ScopedShapeHooks() { t_shape_hooks = previous_; }

void invalidate_views(const ir::Model* m) {
  (void)m;
  // Everything goes, views of nodes a pass removed as well as those of live nodes: the cache
  // never grows past one pass.
  Caches& c = caches();
  std::lock_guard<std::mutex> lock(c.mu);
  c.views.clear();
  c.indexes.clear();
}

TensorList::TensorList() = default;
TensorList::~TensorList() {
  for (auto& item : items_) delete item.second;
}
size_t TensorList::size() const { return items_.size(); }
const std::string& TensorList::name(size_t i) const { return items_.at(i).first; }
const TfhTensor* TensorList::tensor(size_t i) const { return c_tensor(items_.at(i).second); }

ShapeContext::ShapeContext(ir::ShapeInferenceContext& ctx) : ctx_(ctx) {}
ShapeContext::~ShapeContext() = default;

const TfhTensor* ShapeContext::input_constant(size_t i) {
  if (i >= ctx_.input_constants.size() || !ctx_.input_constants[i]) return nullptr;
  if (constants_.size() < ctx_.input_constants.size())
    constants_.resize(ctx_.input_constants.size());
  if (!constants_[i]) {
    auto h = std::make_unique<HostTensor>();
    fill_view(*h, *ctx_.input_constants[i]);
    constants_[i] = std::move(h);
  }
  return c_tensor(constants_[i].get());
}

ir::ShapeHook make_shape_hook(const TfhOpDesc* op) {
  if (!op || !TFH_HAS_FIELD(op, TfhOpDesc, infer_shapes) || !op->infer_shapes) return {};
  auto infer = op->infer_shapes;
  std::string what =
      std::string(op->domain ? op->domain : "") + "." + (op->op_type ? op->op_type : "");
  return [infer, what](ir::ShapeInferenceContext& ctx) {
    ShapeContext sc(ctx);
    std::string msg = take_status_message(infer(sc.c_handle()));
    if (!msg.empty())
      TFH_THROW("node '", ctx.node ? ctx.node->name() : std::string("?"), "' (", what, "): ", msg);
  };
}

}  // namespace tfh::plugin
