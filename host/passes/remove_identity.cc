// core.remove_identity
//   Identity(x) => x        Dropout(x) [inference: mask unused, not training] => x
// A bypassed output that is a graph output keeps its name: the input value is renamed to it
// when that is safe (the input is an intermediate value); otherwise the node stays.
#include <cstdint>
#include <vector>

#include "host/passes/core_passes.h"

namespace tfh::passes {
namespace {

bool is_onnx(const ir::Node& n) { return n.domain().empty() || n.domain() == "ai.onnx"; }

bool is_constant_false(const ir::Value* v) {
  const ir::Tensor* t = v->initializer();
  if (!t || t->dtype() != onnx::TensorProto::BOOL || t->num_elements() != 1) return false;
  return *static_cast<const uint8_t*>(t->data()) == 0;
}

bool unused(const ir::Value* v) {
  return !v || (v->consumers().empty() && !v->is_graph_output());
}

// Dropout computes Identity when it is not training and nobody reads the mask.
//   opset < 7: attribute is_test=1 says inference;  7..11: always inference at run time;
//   12+: training_mode (input 2) absent or a constant false.
bool is_inference_dropout(const ir::Node& n, int64_t opset) {
  if (n.op_type() != "Dropout") return false;
  if (n.outputs().size() > 1 && !unused(n.outputs()[1])) return false;
  if (opset < 7) {
    const onnx::AttributeProto* is_test = n.attr("is_test");
    return is_test && is_test->i() != 0;
  }
  if (opset >= 12 && n.inputs().size() > 2 && n.inputs()[2]) return is_constant_false(n.inputs()[2]);
  return true;
}

// Renaming `in` to a graph output's name is safe when `in` is a plain intermediate value: not
// part of the model's interface, not a weight.
bool can_take_output_name(const ir::Value* in) {
  return in->producer() && !in->is_graph_input() && !in->is_graph_output() && !in->initializer();
}

bool bypass(ir::Graph& g, ir::Node* n) {
  ir::Value* in = n->inputs().empty() ? nullptr : n->inputs()[0];
  ir::Value* out = n->outputs().empty() ? nullptr : n->outputs()[0];
  if (!in || !out || out->producer() != n) return false;  // malformed or defined twice
  std::vector<ir::Value*> outputs = n->outputs();
  if (!out->is_graph_output()) {
    g.replace_all_uses(out, in);
    g.remove_node(n);
  } else {
    if (!can_take_output_name(in)) return false;
    const std::string name = out->name();
    onnx::ValueInfoProto declared = out->info();  // the graph output's type and shape
    g.replace_all_uses(out, in);
    g.remove_node(n);
    remove_if_orphan(g, out);  // frees the name for `in`
    outputs[0] = nullptr;
    g.rename_value(in, name);
    if (declared.has_type()) in->mutable_info() = declared;
  }
  for (ir::Value* v : outputs) remove_if_orphan(g, v);
  return true;
}

}  // namespace

bool remove_if_orphan(ir::Graph& graph, ir::Value* v) {
  if (!v || v->producer() || !v->consumers().empty() || v->is_graph_input() ||
      v->is_graph_output() || v->initializer())
    return false;
  graph.remove_value(v);
  return true;
}

size_t remove_identity(ir::Model& model, const RemoveIdentityOptions& opts) {
  ir::Graph& g = model.graph();
  const int64_t opset = model.opset("");
  std::vector<ir::Node*> candidates;
  for (const auto& n : g.nodes()) {
    if (!is_onnx(*n)) continue;
    if (n->op_type() == "Identity" || (opts.dropout && is_inference_dropout(*n, opset)))
      candidates.push_back(n.get());
  }
  size_t removed = 0;
  for (ir::Node* n : candidates) removed += bypass(g, n) ? 1 : 0;
  return removed;
}

}  // namespace tfh::passes
