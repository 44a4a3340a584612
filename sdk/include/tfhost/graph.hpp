// tfhost SDK, C++ layer: value-type views over the opaque graph handles.
//
// GraphView / NodeView / ValueView / TensorView are a pointer each (cheap to copy, compare by
// handle) and call the host's TfhGraphApi/TfhTensorApi; a host error status becomes a thrown
// tfh::sdk::Error. Strings returned as std::string_view stay valid while the object is unchanged.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tfhost/core.hpp"

namespace tfh {

class NodeView;
class ValueView;

inline const TfhGraphApi& graph_api() { return *host().graph; }
inline const TfhTensorApi& tensor_api() { return *host().tensor; }

// "" and "ai.onnx" both name the ONNX domain.
inline bool same_domain(std::string_view a, std::string_view b) {
  auto norm = [](std::string_view d) { return d == "ai.onnx" ? std::string_view() : d; };
  return norm(a) == norm(b);
}

// A read-only tensor: a constant (initializer or Constant node), an attribute, or a Tensor.
class TensorView {
 public:
  TensorView() = default;
  explicit TensorView(const TfhTensor* t) : t_(t) {}
  explicit operator bool() const { return t_ != nullptr; }
  const TfhTensor* handle() const { return t_; }

  TfhDataType dtype() const { return tensor_api().tensor_type(t_); }
  Span<const int64_t> dims() const {
    return {tensor_api().tensor_dims(t_), tensor_api().tensor_rank(t_)};
  }
  size_t rank() const { return tensor_api().tensor_rank(t_); }
  size_t size() const { return tensor_api().tensor_num_elements(t_); }  // element count
  size_t nbytes() const { return tensor_api().tensor_nbytes(t_); }
  const void* raw() const { return tensor_api().tensor_data(t_); }  // NULL: not readable

  // The elements as T; throws unless dtype() is exactly T's type and the data is readable.
  template <typename T>
  Span<const T> data() const {
    if (dtype() != data_type_of<T>())
      sdk::fail(std::string("tensor is ") + data_type_name(dtype()) + ", not " +
                data_type_name(data_type_of<T>()));
    const void* p = raw();
    if (!p && size()) sdk::fail("tensor data is not readable (external or string data)");
    return {static_cast<const T*>(p), size()};
  }

  // Element i of any real numeric type (float16/bfloat16/ints/bool/double) as double; nullopt
  // for other types or unreadable data.
  std::optional<double> at(size_t i) const {
    const void* p = raw();
    if (!p || i >= size()) return std::nullopt;
    auto rd = [&](auto tag) {
      decltype(tag) v;
      std::memcpy(&v, static_cast<const char*>(p) + i * sizeof v, sizeof v);
      return v;
    };
    switch (dtype()) {
      case TFH_TYPE_FLOAT:
        return rd(float());
      case TFH_TYPE_DOUBLE:
        return rd(double());
      case TFH_TYPE_FLOAT16:
        return to_float(Float16{rd(uint16_t())});
      case TFH_TYPE_BFLOAT16:
        return to_float(BFloat16{rd(uint16_t())});
      case TFH_TYPE_INT8:
        return rd(int8_t());
      case TFH_TYPE_UINT8:
        return rd(uint8_t());
      case TFH_TYPE_BOOL:
        return rd(uint8_t()) ? 1.0 : 0.0;
      case TFH_TYPE_INT16:
        return rd(int16_t());
      case TFH_TYPE_UINT16:
        return rd(uint16_t());
      case TFH_TYPE_INT32:
        return rd(int32_t());
      case TFH_TYPE_UINT32:
        return rd(uint32_t());
      case TFH_TYPE_INT64:
        return static_cast<double>(rd(int64_t()));
      case TFH_TYPE_UINT64:
        return static_cast<double>(rd(uint64_t()));
      default:
        return std::nullopt;
    }
  }

  // The value shared by every element, when all elements are equal within `tol`; nullopt for
  // an empty, non-numeric or non-uniform tensor. A scalar is the common case.
  std::optional<double> uniform_value(double tol = 0) const {
    size_t n = size();
    std::optional<double> first = n ? at(0) : std::nullopt;
    if (!first) return std::nullopt;
    for (size_t i = 1; i < n; ++i) {
      std::optional<double> v = at(i);
      if (!v || !(*v - *first <= tol && *first - *v <= tol)) return std::nullopt;
    }
    return first;
  }

 private:
  const TfhTensor* t_ = nullptr;
};

// A CPU tensor owned by the plugin until handed to the host (add_initializer, set_attr, outputs).
class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor of `dtype` with shape `dims`.
  Tensor(TfhDataType dtype, std::vector<int64_t> dims) {
    check(tensor_api().tensor_create(dtype, dims.data(), dims.size(), &t_));
  }
  // A tensor holding a copy of `values` with shape `dims`.
  template <typename T>
  static Tensor from(std::vector<int64_t> dims, const std::vector<T>& values) {
    Tensor t(data_type_of<T>(), std::move(dims));
    if (t.view().size() != values.size())
      sdk::fail("Tensor::from: " + std::to_string(values.size()) + " values for " +
                std::to_string(t.view().size()) + " elements");
    if (!values.empty()) std::memcpy(t.mutable_raw(), values.data(), values.size() * sizeof(T));
    return t;
  }
  template <typename T>
  static Tensor scalar(T v) {
    return from<T>({}, {v});
  }
  Tensor(Tensor&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      reset();
      t_ = std::exchange(o.t_, nullptr);
    }
    return *this;
  }
  ~Tensor() { reset(); }

  explicit operator bool() const { return t_ != nullptr; }
  TensorView view() const { return TensorView(t_); }
  void* mutable_raw() { return tensor_api().tensor_mutable_data(t_); }
  template <typename T>
  Span<T> mutable_data() {
    view().data<T>();  // type check
    return {static_cast<T*>(mutable_raw()), view().size()};
  }
  const TfhTensor* handle() const { return t_; }
  TfhTensor* release() noexcept { return std::exchange(t_, nullptr); }  // ownership to host

 private:
  void reset() noexcept {
    if (t_ && sdk::host_slot()) sdk::host_slot()->tensor->tensor_release(t_);
    t_ = nullptr;
  }
  TfhTensor* t_ = nullptr;
};

// One use of a value: the consuming node and its input slot.
struct Use;

// A symbolic or known dimension: value >= 0 when known, else symbol ("" when anonymous).
struct Dim {
  int64_t value = -1;
  std::string symbol;
  bool known() const { return value >= 0; }
};

// An edge: a graph input, an initializer or a node output. A null view means "omitted".
class ValueView {
 public:
  ValueView() = default;
  explicit ValueView(TfhValue* v) : v_(v) {}
  explicit operator bool() const { return v_ != nullptr; }
  TfhValue* handle() const { return v_; }
  friend bool operator==(ValueView a, ValueView b) { return a.v_ == b.v_; }
  friend bool operator!=(ValueView a, ValueView b) { return a.v_ != b.v_; }

  std::string_view name() const { return graph_api().value_name(v_); }
  inline NodeView producer(size_t* output_index = nullptr) const;  // null: input/initializer
  size_t num_consumers() const { return graph_api().value_num_consumers(v_); }
  inline std::vector<Use> consumers() const;
  bool is_graph_input() const { return graph_api().value_is_graph_input(v_) != 0; }
  bool is_graph_output() const { return graph_api().value_is_graph_output(v_) != 0; }
  // Constant data (initializer or Constant node); a null view when not constant.
  TensorView constant() const { return TensorView(graph_api().value_constant(v_)); }
  TfhValueKind kind() const { return graph_api().value_kind(v_); }
  TfhDataType elem_type() const { return graph_api().value_elem_type(v_); }
  int64_t rank() const { return graph_api().value_rank(v_); }  // -1: unknown
  Dim dim(size_t i) const {
    Dim d;
    const char* sym = nullptr;
    check(graph_api().value_dim(v_, i, &d.value, &sym));
    if (sym) d.symbol = sym;
    return d;
  }
  // Every dim, or an empty vector when the rank is unknown.
  std::vector<Dim> shape() const {
    std::vector<Dim> s;
    for (int64_t i = 0; i < rank(); ++i) s.push_back(dim(static_cast<size_t>(i)));
    return s;
  }
  // Sets the value's tensor type and shape; shape_known = false leaves the shape unknown.
  void set_type(TfhDataType elem, const std::vector<Dim>& shape, bool shape_known = true) const {
    std::vector<int64_t> dims;
    std::vector<const char*> syms;
    for (const Dim& d : shape) {
      dims.push_back(d.value);
      syms.push_back(d.symbol.empty() ? nullptr : d.symbol.c_str());
    }
    check(graph_api().value_set_type(v_, elem, dims.data(), syms.data(),
                                     shape_known ? static_cast<int64_t>(shape.size()) : -1));
  }

 private:
  TfhValue* v_ = nullptr;
};

// A node. Attribute getters throw sdk::Error (TFH_NOT_FOUND, TFH_INVALID_ARGUMENT) unless given
// a default, which is returned when the attribute is absent.
class NodeView {
 public:
  NodeView() = default;
  explicit NodeView(TfhNode* n) : n_(n) {}
  explicit operator bool() const { return n_ != nullptr; }
  TfhNode* handle() const { return n_; }
  friend bool operator==(NodeView a, NodeView b) { return a.n_ == b.n_; }
  friend bool operator!=(NodeView a, NodeView b) { return a.n_ != b.n_; }

  std::string_view name() const { return graph_api().node_name(n_); }
  std::string_view op_type() const { return graph_api().node_op_type(n_); }
  std::string_view domain() const { return graph_api().node_domain(n_); }  // "" = ONNX
  bool is(std::string_view op_type, std::string_view domain = "") const {
    return n_ && this->op_type() == op_type && same_domain(this->domain(), domain);
  }

  size_t num_inputs() const { return graph_api().node_num_inputs(n_); }
  ValueView input(size_t i) const { return ValueView(graph_api().node_input(n_, i)); }
  std::vector<ValueView> inputs() const {
    std::vector<ValueView> v;
    for (size_t i = 0; i < num_inputs(); ++i) v.push_back(input(i));
    return v;
  }
  size_t num_outputs() const { return graph_api().node_num_outputs(n_); }
  ValueView output(size_t i = 0) const { return ValueView(graph_api().node_output(n_, i)); }
  std::vector<ValueView> outputs() const {
    std::vector<ValueView> v;
    for (size_t i = 0; i < num_outputs(); ++i) v.push_back(output(i));
    return v;
  }

  bool has_attr(const std::string& name) const { return attr_type(name) != TFH_ATTR_UNDEFINED; }
  TfhAttrType attr_type(const std::string& name) const {
    return graph_api().node_attr_type(n_, name.c_str());
  }
  int64_t attr_int(const std::string& name) const {
    int64_t v = 0;
    check(graph_api().node_attr_int(n_, name.c_str(), &v));
    return v;
  }
  int64_t attr_int(const std::string& name, int64_t dflt) const {
    return has_attr(name) ? attr_int(name) : dflt;
  }
  float attr_float(const std::string& name) const {
    float v = 0;
    check(graph_api().node_attr_float(n_, name.c_str(), &v));
    return v;
  }
  float attr_float(const std::string& name, float dflt) const {
    return has_attr(name) ? attr_float(name) : dflt;
  }
  std::string attr_string(const std::string& name) const {
    const char* s = nullptr;
    size_t len = 0;
    check(graph_api().node_attr_string(n_, name.c_str(), &s, &len));
    return std::string(s, len);
  }
  std::string attr_string(const std::string& name, const std::string& dflt) const {
    return has_attr(name) ? attr_string(name) : dflt;
  }
  std::vector<int64_t> attr_ints(const std::string& name) const {
    const int64_t* p = nullptr;
    size_t n = 0;
    check(graph_api().node_attr_ints(n_, name.c_str(), &p, &n));
    return std::vector<int64_t>(p, p + n);
  }
  std::vector<int64_t> attr_ints(const std::string& name, std::vector<int64_t> dflt) const {
    return has_attr(name) ? attr_ints(name) : dflt;
  }
  std::vector<float> attr_floats(const std::string& name) const {
    const float* p = nullptr;
    size_t n = 0;
    check(graph_api().node_attr_floats(n_, name.c_str(), &p, &n));
    return std::vector<float>(p, p + n);
  }
  std::vector<float> attr_floats(const std::string& name, std::vector<float> dflt) const {
    return has_attr(name) ? attr_floats(name) : dflt;
  }
  TensorView attr_tensor(const std::string& name) const {
    const TfhTensor* t = nullptr;
    check(graph_api().node_attr_tensor(n_, name.c_str(), &t));
    return TensorView(t);
  }

  // Attribute setters (replace an existing attribute of the same name).
  void set_attr(const std::string& name, int64_t v) const {
    check(graph_api().node_set_attr_int(n_, name.c_str(), v));
  }
  void set_attr(const std::string& name, int v) const { set_attr(name, int64_t{v}); }
  void set_attr(const std::string& name, float v) const {
    check(graph_api().node_set_attr_float(n_, name.c_str(), v));
  }
  void set_attr(const std::string& name, double v) const { set_attr(name, static_cast<float>(v)); }
  void set_attr(const std::string& name, std::string_view v) const {
    check(graph_api().node_set_attr_string(n_, name.c_str(), v.data(), v.size()));
  }
  void set_attr(const std::string& name, const char* v) const {
    set_attr(name, std::string_view(v));
  }
  void set_attr(const std::string& name, const std::vector<int64_t>& v) const {
    check(graph_api().node_set_attr_ints(n_, name.c_str(), v.data(), v.size()));
  }
  void set_attr(const std::string& name, const std::vector<float>& v) const {
    check(graph_api().node_set_attr_floats(n_, name.c_str(), v.data(), v.size()));
  }
  void set_attr(const std::string& name, TensorView t) const {  // copied
    check(graph_api().node_set_attr_tensor(n_, name.c_str(), t.handle()));
  }
  void remove_attr(const std::string& name) const {
    check(graph_api().node_remove_attr(n_, name.c_str()));
  }

 private:
  TfhNode* n_ = nullptr;
};

struct Use {
  NodeView node;
  size_t input = 0;
};

inline NodeView ValueView::producer(size_t* output_index) const {
  return NodeView(graph_api().value_producer(v_, output_index));
}

inline std::vector<Use> ValueView::consumers() const {
  std::vector<Use> uses;
  size_t n = num_consumers();
  for (size_t i = 0; i < n; ++i) {
    size_t slot = 0;
    TfhNode* c = graph_api().value_consumer(v_, i, &slot);
    if (c) uses.push_back(Use{NodeView(c), slot});
  }
  return uses;
}

// A model's main graph. Edits go straight to the host; a fusion should collect first and edit
// after (rewrite.hpp does this for you).
class GraphView {
 public:
  GraphView() = default;
  explicit GraphView(TfhGraph* g) : g_(g) {}
  explicit operator bool() const { return g_ != nullptr; }
  TfhGraph* handle() const { return g_; }

  size_t num_nodes() const { return graph_api().graph_num_nodes(g_); }
  NodeView node(size_t i) const { return NodeView(graph_api().graph_node(g_, i)); }
  std::vector<NodeView> nodes() const {  // a snapshot, in graph order
    std::vector<NodeView> v;
    size_t n = num_nodes();
    v.reserve(n);
    for (size_t i = 0; i < n; ++i) v.push_back(node(i));
    return v;
  }
  std::vector<ValueView> inputs() const {
    return list(graph_api().graph_num_inputs, graph_api().graph_input);
  }
  std::vector<ValueView> outputs() const {
    return list(graph_api().graph_num_outputs, graph_api().graph_output);
  }
  std::vector<ValueView> initializers() const {
    return list(graph_api().graph_num_initializers, graph_api().graph_initializer);
  }
  ValueView find(const std::string& name) const {  // null view when absent
    return ValueView(graph_api().graph_find_value(g_, name.c_str()));
  }
  // The opset imported for `domain` ("" = ONNX); -1 when not imported.
  int64_t opset(const std::string& domain = "") const {
    return graph_api().graph_opset(g_, domain.c_str());
  }
  void set_opset(const std::string& domain, int64_t version) const {
    check(graph_api().graph_set_opset(g_, domain.c_str(), version));
  }
  // The since-version of n's schema at this graph's opset; -1 when the host does not know it.
  int64_t since_version(NodeView n) const {
    const TfhGraphApi& a = graph_api();
    if (!TFH_HAS_FIELD(&a, TfhGraphApi, node_since_version) || !a.node_since_version) return -1;
    return a.node_since_version(g_, n.handle());
  }
  // A value/node name not used yet, starting with `prefix`.
  std::string unique_name(const std::string& prefix) const {
    std::string buf(prefix.size() + 32, '\0');
    check(graph_api().graph_unique_name(g_, prefix.c_str(), buf.data(), buf.size()));
    buf.resize(std::strlen(buf.c_str()));
    return buf;
  }

  // Adds a node (appended; see topological_sort). An output name may be a new value or an
  // existing value without producer; "" is an omitted optional output. Null inputs are omitted.
  NodeView add_node(const std::string& op_type, const std::string& domain,
                    const std::vector<ValueView>& inputs,
                    const std::vector<std::string>& output_names,
                    const std::string& name = "") const {
    std::vector<const TfhValue*> ins;
    for (ValueView v : inputs) ins.push_back(v.handle());
    std::vector<const char*> outs;
    for (const std::string& o : output_names) outs.push_back(o.c_str());
    TfhNode* n = nullptr;
    check(graph_api().graph_add_node(g_, name.empty() ? nullptr : name.c_str(), op_type.c_str(),
                                     domain.c_str(), ins.data(), ins.size(), outs.data(),
                                     outs.size(), &n));
    return NodeView(n);
  }
  void remove_node(NodeView n) const { check(graph_api().graph_remove_node(g_, n.handle())); }
  void set_input(NodeView n, size_t i, ValueView v) const {
    check(graph_api().node_set_input(g_, n.handle(), i, v.handle()));
  }
  void replace_all_uses(ValueView from, ValueView to) const {
    check(graph_api().graph_replace_all_uses(g_, from.handle(), to.handle()));
  }
  // Adds an initializer (the host takes the tensor); `name` "" = generated.
  ValueView add_initializer(const std::string& name, Tensor t) const {
    TfhValue* v = nullptr;
    check(graph_api().graph_add_initializer(g_, name.empty() ? nullptr : name.c_str(), t.release(),
                                            &v));
    return ValueView(v);
  }
  void remove_initializer(ValueView v) const {
    check(graph_api().graph_remove_initializer(g_, v.handle()));
  }
  void rename(ValueView v, const std::string& name) const {
    check(graph_api().value_set_name(g_, v.handle(), name.c_str()));
  }
  void topological_sort() const { check(graph_api().graph_topological_sort(g_)); }
  // Adds a graph input (after the others): `dims` entries >= 0 are known sizes, the others take
  // the symbol of the same index in `symbols` ("" for anonymous). For converters that build a
  // model; needs a host with ABI 1's graph_add_input.
  ValueView add_input(const std::string& name, TfhDataType elem, const std::vector<int64_t>& dims,
                      const std::vector<std::string>& symbols = {}) const {
    const TfhGraphApi& a = graph_api();
    if (!TFH_HAS_FIELD(&a, TfhGraphApi, graph_add_input) || !a.graph_add_input)
      sdk::fail(TFH_NOT_IMPLEMENTED, "this tfhost cannot add graph inputs (graph_add_input)");
    std::vector<const char*> syms;
    for (size_t i = 0; i < dims.size(); ++i)
      syms.push_back(i < symbols.size() ? symbols[i].c_str() : "");
    TfhValue* v = nullptr;
    check(a.graph_add_input(g_, name.c_str(), elem, dims.data(), syms.data(),
                            static_cast<int64_t>(dims.size()), &v));
    return ValueView(v);
  }
  // Makes `v` a graph output, after the others.
  void add_output(ValueView v) const {
    const TfhGraphApi& a = graph_api();
    if (!TFH_HAS_FIELD(&a, TfhGraphApi, graph_add_output) || !a.graph_add_output)
      sdk::fail(TFH_NOT_IMPLEMENTED, "this tfhost cannot add graph outputs (graph_add_output)");
    check(a.graph_add_output(g_, v.handle()));
  }
  // Shape and type inference over the whole graph (contrib ops through their owners' hooks);
  // returns how many values were newly typed or refined. Hosts older than ABI 1's
  // graph_infer_shapes field do nothing and return 0.
  size_t infer_shapes() const {
    const TfhGraphApi& a = graph_api();
    if (!TFH_HAS_FIELD(&a, TfhGraphApi, graph_infer_shapes) || !a.graph_infer_shapes) return 0;
    size_t n = 0;
    check(a.graph_infer_shapes(g_, &n));
    return n;
  }

 private:
  template <typename Count, typename At>
  std::vector<ValueView> list(Count count, At at) const {
    std::vector<ValueView> v;
    size_t n = count(g_);
    for (size_t i = 0; i < n; ++i) v.push_back(ValueView(at(g_, i)));
    return v;
  }
  TfhGraph* g_ = nullptr;
};

}  // namespace tfh
