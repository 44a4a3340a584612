// core.input_int32: int64 graph inputs (ids, masks, positions) become int32, the form ONNX
// Runtime's contrib ops and GPU kernels take. Consumers that read int32 as well (Gather indices,
// the contrib ops' id and mask inputs, Shape, Cast) read the input directly — a Cast to int32
// there disappears; every other consumer reads one Cast back to int64. Float inputs, inputs that
// are also graph outputs or read inside subgraphs, and initializers are never touched.
#include <string>

#include "host/passes/core_passes.h"
#include "host/util/error.h"

namespace tfh::passes {
namespace {

constexpr int32_t kInt64 = onnx::TensorProto::INT64, kInt32 = onnx::TensorProto::INT32;

bool onnx_op(const ir::Node& n, const char* op) {
  return (n.domain().empty() || n.domain() == "ai.onnx") && n.op_type() == op;
}
bool ms_op(const ir::Node& n, const char* op) {
  return n.domain() == "com.microsoft" && n.op_type() == op;
}

// Input `slot` of `n` takes int32 as well as int64 with the same meaning.
bool accepts_int32(const ir::Node& n, size_t slot) {
  if (onnx_op(n, "Gather") || onnx_op(n, "GatherElements")) return slot == 1;
  if (onnx_op(n, "Cast") || onnx_op(n, "Shape") || onnx_op(n, "Size")) return slot == 0;
  if (ms_op(n, "EmbedLayerNormalization")) return slot == 0 || slot == 1 || slot == 7 || slot == 8;
  if (ms_op(n, "Attention")) return slot == 3;
  if (ms_op(n, "MultiHeadAttention")) return slot == 4;
  return false;
}

bool casts_to(const ir::Node& n, int32_t type) {
  if (!onnx_op(n, "Cast")) return false;
  const onnx::AttributeProto* to = n.attr("to");
  return to && to->i() == type;
}

}  // namespace

size_t input_int32(ir::Model& model) {
  ir::Graph& g = model.graph();
  size_t changed = 0;
  const std::vector<ir::Value*> inputs = g.inputs();
  for (ir::Value* v : inputs) {
    if (v->initializer() || v->elem_type() != kInt64 || v->is_graph_output()) continue;
    bool in_subgraph = false;  // read inside an If/Loop/Scan body: those expect int64, left alone
    for (const auto& use : v->consumers()) in_subgraph = in_subgraph || use.second == ir::Node::kImplicitSlot;
    if (in_subgraph) continue;
    v->mutable_info().mutable_type()->mutable_tensor_type()->set_elem_type(kInt32);
    ++changed;
    ir::Value* back = nullptr;  // Cast(v, to=int64), made when some consumer needs it
    const auto uses = v->consumers();
    for (const auto& [node, slot] : uses) {
      if (casts_to(*node, kInt32) && node->outputs().size() == 1 &&
          !node->outputs()[0]->is_graph_output()) {
        g.replace_all_uses(node->outputs()[0], v);  // the Cast is the identity now
        g.remove_node(node);
        continue;
      }
      if (accepts_int32(*node, slot)) continue;
      if (!back) {
        back = g.add_value(g.unique_name(v->name() + "_int64"));
        ir::Node* cast = g.add_node(g.unique_name(v->name() + "_to_int64"), "Cast", "", {v}, {back});
        onnx::AttributeProto& to = cast->set_attr("to");
        to.set_type(onnx::AttributeProto::INT);
        to.set_i(kInt64);
      }
      g.set_input(node, slot, back);
    }
  }
  if (changed) g.topological_sort();
  return changed;
}

}  // namespace tfh::passes
