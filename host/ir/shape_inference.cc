// Model::infer_shapes: one topological pass that runs, per node, the registered hook (contrib ops)
// or ONNX's own inference function from the op schema, against the IR directly. Nothing is
// serialized and no weights are copied: ONNX reads initializers in place; only small external
// initializers are copied, because ONNX cannot read external data.
#include <deque>

#include <onnx/shape_inference/implementation.h>

#include "host/ir/graph.h"
#include "host/util/error.h"

namespace tfh::ir {
namespace {

namespace si = onnx::shape_inference;
using onnx::TensorProto;
using onnx::TensorShapeProto;
using onnx::TypeProto;

// External initializers copied so ONNX can read them as shape constants: small ones, and int64
// ones up to this size (shape, axes and index constants).
constexpr size_t kSmallConstant = 1024;
constexpr size_t kSmallInt64Constant = 64 * 1024;

// Fills in from `got` what `have` does not know. Never overrides a known element type or a known
// dimension (value or symbol), so declared graph outputs keep what they say.
bool refine(TypeProto& have, const TypeProto& got) {
  if (got.value_case() == TypeProto::VALUE_NOT_SET) return false;
  if (have.value_case() == TypeProto::VALUE_NOT_SET) {
    have = got;
    return true;
  }
  if (!have.has_tensor_type() || !got.has_tensor_type()) return false;
  auto& h = *have.mutable_tensor_type();
  const auto& g = got.tensor_type();
  bool changed = false;
  if (h.elem_type() == 0 && g.elem_type() != 0) {
    h.set_elem_type(g.elem_type());
    changed = true;
  }
  if (!g.has_shape()) return changed;
  if (!h.has_shape()) {
    *h.mutable_shape() = g.shape();
    return true;
  }
  if (h.shape().dim_size() != g.shape().dim_size()) return changed;
  for (int i = 0; i < g.shape().dim_size(); ++i) {
    auto* hd = h.mutable_shape()->mutable_dim(i);
    const auto& gd = g.shape().dim(i);
    if (hd->value_case() != TensorShapeProto::Dimension::VALUE_NOT_SET ||
        gd.value_case() == TensorShapeProto::Dimension::VALUE_NOT_SET)
      continue;
    *hd = gd;
    changed = true;
  }
  return changed;
}

std::string onnx_domain(const std::string& d) { return d == "ai.onnx" ? std::string() : d; }

// ONNX's view of one node: inputs known so far, outputs to fill.
class NodeContext final : public onnx::InferenceContext {
 public:
  NodeContext(const Node& n, si::GraphInferenceContext* graphs) : node_(n), graphs_(graphs) {}
  std::vector<const TypeProto*> types;
  std::vector<const TensorProto*> data;
  std::vector<const TensorShapeProto*> symbolic;
  std::vector<TypeProto> outputs;

  const onnx::AttributeProto* getAttribute(const std::string& name) const override {
    return node_.attr(name);
  }
  size_t getNumInputs() const override { return types.size(); }
  const TypeProto* getInputType(size_t i) const override {
    return i < types.size() ? types[i] : nullptr;
  }
  const TensorProto* getInputData(size_t i) const override {
    return i < data.size() ? data[i] : nullptr;
  }
  const onnx::SparseTensorProto* getInputSparseData(size_t) const override { return nullptr; }
  const TensorShapeProto* getSymbolicInput(size_t i) const override {
    return i < symbolic.size() ? symbolic[i] : nullptr;
  }
  size_t getNumOutputs() const override { return outputs.size(); }
  TypeProto* getOutputType(size_t i) override {
    if (i >= outputs.size()) throw std::out_of_range("output index");
    return &outputs[i];
  }
  // If/Loop/Scan: ONNX infers a copy of the body (it writes value_info into the graph it gets).
  onnx::GraphInferencer* getGraphAttributeInferencer(const std::string& name) override {
    const onnx::AttributeProto* a = node_.attr(name);
    if (!graphs_ || !a || !a->has_g()) throw std::runtime_error("no graph attribute " + name);
    bodies_.push_back(std::make_unique<onnx::GraphProto>(a->g()));
    inferencers_.push_back(std::make_unique<si::GraphInferencerImpl>(*bodies_.back(), *graphs_));
    return inferencers_.back().get();
  }

 private:
  const Node& node_;
  si::GraphInferenceContext* graphs_;
  std::vector<std::unique_ptr<onnx::GraphProto>> bodies_;
  std::vector<std::unique_ptr<onnx::GraphInferencer>> inferencers_;
};

class Inferencer {
 public:
  Inferencer(const onnx::ModelProto& model, const Graph& graph, const ShapeHooks* hooks)
      : model_(model), graph_(graph), hooks_(hooks) {
    for (const auto& op : model.opset_import())
      opsets_[onnx_domain(op.domain())] = static_cast<int>(op.version());
    for (const auto& f : model.functions()) functions_[f.domain() + ":" + f.name()] = &f;
  }

  size_t run(const std::vector<Node*>& order) {
    size_t typed = 0;
    for (Node* n : order) {
      std::vector<TypeProto> out = infer(*n);
      typed += store(*n, out);
      if (n->op_type() == "Constant" && onnx_domain(n->domain()).empty()) record_constant(*n);
    }
    return typed;
  }

 private:
  const TypeProto* type_of(const Value* v) {
    if (!v) return nullptr;
    if (v->has_info() && v->info().type().value_case() != TypeProto::VALUE_NOT_SET)
      return &v->info().type();
    if (!v->initializer()) return nullptr;
    auto [it, fresh] = initializer_types_.try_emplace(v);
    if (fresh) {
      auto* t = it->second.mutable_tensor_type();
      t->set_elem_type(v->initializer()->dtype());
      auto* shape = t->mutable_shape();
      for (int64_t d : v->initializer()->dims()) shape->add_dim()->set_dim_value(d);
    }
    return &it->second;
  }

  // Data ONNX may read: Constant outputs and initializers that are not overridable graph inputs.
  const TensorProto* constant_of(const Value* v) {
    if (!v) return nullptr;
    if (auto it = constants_.find(v); it != constants_.end()) return it->second;
    const Tensor* t = v->initializer();
    if (!t || v->is_graph_input() || t->is_unloaded_external()) return nullptr;
    if (!t->is_external()) return &t->proto();  // in place: ONNX parses raw or typed data itself
    bool small = t->nbytes() <= kSmallConstant ||
                 (t->dtype() == TensorProto::INT64 && t->nbytes() <= kSmallInt64Constant);
    if (!small) return nullptr;
    TensorProto& copy = copies_.emplace_back();
    copy.set_name(t->name());
    copy.set_data_type(t->dtype());
    for (int64_t d : t->dims()) copy.add_dims(d);
    copy.set_raw_data(static_cast<const char*>(t->data()), t->nbytes());
    return constants_[v] = &copy;
  }

  void record_constant(const Node& n) {
    const onnx::AttributeProto* a = n.attr("value");
    if (n.outputs().size() == 1 && n.outputs()[0] && a && a->has_t() &&
        a->t().data_location() != TensorProto::EXTERNAL)
      constants_[n.outputs()[0]] = &a->t();
  }

  std::vector<TypeProto> infer(Node& n) {
    if (const ShapeHook* hook = find_hook(n)) return run_hook(n, *hook);
    std::unique_ptr<si::GraphInferenceContext> graphs;
    std::unordered_map<std::string, TypeProto*> outer;
    if (has_graph_attribute(n)) {
      outer = known_types();
      graphs = std::make_unique<si::GraphInferenceContext>(
          outer, opsets_, &symbols_, functions_, onnx::OpSchemaRegistry::Instance(), &shape_data_,
          static_cast<int>(model_.ir_version()));
    }
    NodeContext ctx(n, graphs.get());
    for (const Value* v : n.inputs()) {
      ctx.types.push_back(type_of(v));
      ctx.data.push_back(constant_of(v));
      auto it = v ? shape_data_.find(v->name()) : shape_data_.end();
      ctx.symbolic.push_back(it == shape_data_.end() ? nullptr : &it->second);
    }
    ctx.outputs.resize(n.outputs().size());
    const onnx::OpSchema* schema = find_schema(n);
    try {
      run_onnx(n, schema, ctx);
    } catch (const std::exception&) {
      return {};  // ONNX could not say (unknown input types, op it rejects): leave outputs as they
                  // are
    }
    return std::move(ctx.outputs);
  }

  const ShapeHook* find_hook(const Node& n) const {
    if (!hooks_) return nullptr;
    const ShapeHook* h = hooks_->find(n.domain(), n.op_type());
    return h ? h : hooks_->find(onnx_domain(n.domain()), n.op_type());
  }

  std::vector<TypeProto> run_hook(const Node& n, const ShapeHook& hook) {
    ShapeInferenceContext c;
    c.node = &n;
    for (const Value* v : n.inputs()) {
      c.input_types.push_back(type_of(v));
      c.input_constants.push_back(v && !v->is_graph_input() ? v->initializer() : nullptr);
    }
    c.output_types.resize(n.outputs().size());
    try {
      hook(c);
    } catch (const Error&) {
      throw;  // a malformed node: the hook's message names it
    } catch (const std::exception& e) {
      TFH_THROW(describe(n), ": shape hook failed: ", e.what());
    }
    return std::move(c.output_types);
  }

  const onnx::OpSchema* find_schema(const Node& n) const {
    std::string domain = onnx_domain(n.domain());
    auto op = opsets_.find(domain);
    if (op == opsets_.end()) return nullptr;
    return onnx::OpSchemaRegistry::Schema(n.op_type(), op->second, domain);
  }

  void run_onnx(const Node& n, const onnx::OpSchema* schema, NodeContext& ctx) {
    const auto* registry = onnx::OpSchemaRegistry::Instance();
    onnx::ShapeInferenceOptions options(false, 0, true);
    if (schema && schema->has_type_and_shape_inference_function()) {
      schema->GetTypeAndShapeInferenceFunction()(ctx);
    } else if (schema && schema->HasFunction()) {
      si::InferShapeForFunctionNode(*schema->GetFunction(), registry, ctx, options, functions_,
                                    &symbols_, &shape_data_);
    } else if (auto f = functions_.find(n.domain() + ":" + n.op_type()); f != functions_.end()) {
      si::InferShapeForFunctionNode(*f->second, registry, ctx, options, functions_, &symbols_,
                                    &shape_data_);
    }
  }

  // Partial evaluation of shape computations (Shape -> Gather -> Concat -> Reshape), after the
  // node's outputs are typed. Ops with a data propagator have small attributes: copied as is.
  void propagate_data(const Node& n) {
    const onnx::OpSchema* schema = find_schema(n);
    if (!schema || !schema->has_data_propagation_function()) return;
    onnx::NodeProto proto;
    std::unordered_map<std::string, TypeProto*> types;
    std::unordered_map<std::string, const TensorProto*> data;
    for (const Value* v : n.inputs()) {
      proto.add_input(v ? v->name() : "");
      if (!v) continue;
      if (const TypeProto* t = type_of(v)) types[v->name()] = const_cast<TypeProto*>(t);
      if (const TensorProto* d = constant_of(v)) data[v->name()] = d;
    }
    for (const Value* v : n.outputs()) proto.add_output(v ? v->name() : "");
    for (const auto& a : n.attributes()) *proto.add_attribute() = a;
    try {
      si::DataPropagationContextImpl ctx(proto, types, data, shape_data_);
      schema->GetDataPropagationFunction()(ctx);
    } catch (const std::exception&) {
      // nothing known about this node's values: shapes downstream stay symbolic
    }
  }

  size_t store(Node& n, std::vector<TypeProto>& out) {
    size_t typed = 0;
    for (size_t k = 0; k < out.size() && k < n.outputs().size(); ++k) {
      Value* v = n.outputs()[k];
      if (!v || v->producer() != &n) continue;
      TypeProto merged = v->info().type();
      if (!refine(merged, out[k])) continue;
      *v->mutable_info().mutable_type() = std::move(merged);
      ++typed;
    }
    if (!out.empty() && !find_hook(n)) propagate_data(n);
    return typed;
  }

  static bool has_graph_attribute(const Node& n) {
    for (const auto& a : n.attributes())
      if (a.has_g()) return true;
    return false;
  }

  // Every typed value of the main graph: the outer scope of a subgraph body.
  std::unordered_map<std::string, TypeProto*> known_types() {
    std::unordered_map<std::string, TypeProto*> m;
    auto add = [&](const Value* v) {
      if (const TypeProto* t = type_of(v)) m[v->name()] = const_cast<TypeProto*>(t);
    };
    for (const Value* v : graph_.inputs()) add(v);
    for (const Value* v : graph_.initializers()) add(v);
    for (const auto& node : graph_.nodes())
      for (const Value* v : node->outputs()) add(v);
    return m;
  }

  const onnx::ModelProto& model_;
  const Graph& graph_;
  const ShapeHooks* hooks_;
  std::unordered_map<std::string, int> opsets_;
  si::ModelLocalFunctionsMap functions_;
  std::unordered_map<const Value*, TypeProto> initializer_types_;
  std::unordered_map<const Value*, const TensorProto*> constants_;
  std::deque<TensorProto> copies_;
  std::unordered_map<std::string, TensorShapeProto> shape_data_;
  si::SymbolTableImpl symbols_;
};

}  // namespace

size_t Model::infer_shapes(const ShapeHooks* hooks) {
  Inferencer inferencer(skeleton_, graph_, hooks);
  try {
    return inferencer.run(graph_.topo_order());
  } catch (const Error& e) {
    TFH_THROW(path_, ": shape inference: ", e.what());
  }
}

}  // namespace tfh::ir
