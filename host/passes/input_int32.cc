// core.input_int32: int64 graph inputs (ids, masks, positions) become int32, the form ONNX
// Runtime's contrib ops and GPU kernels take. Consumers that read int32 as well (Gather indices,
// the contrib ops' id and mask inputs, Shape, Cast) read the input directly — a Cast to int32
// there disappears, as do Reshape/Squeeze/Unsqueeze/Flatten/Identity chains whose every reader
// takes int32 (the chain then moves int32); every other consumer reads one Cast back to int64. Float inputs, inputs that
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

// A Cast to int32 whose result can be replaced by its (int32 by then) input.
bool removable_cast(const ir::Node& n) {
  return casts_to(n, kInt32) && n.outputs().size() == 1 && !n.outputs()[0]->is_graph_output();
}

// Ops that move data without reading it (input 0), so they work on int32 as on int64.
bool moves_data_only(const ir::Node& n, size_t slot) {
  return slot == 0 && n.outputs().size() == 1 &&
         (onnx_op(n, "Reshape") || onnx_op(n, "Squeeze") || onnx_op(n, "Unsqueeze") ||
          onnx_op(n, "Flatten") || onnx_op(n, "Identity"));
}

// Whether `v` may become int32: it is no graph output, and each reader takes int32 too, or casts
// it to int32, or is a data-moving op whose result may become int32 as well. (Exporters reshape
// input_ids before the embedding Gather; a fused EmbedLayerNormalization reads that reshape
// through a Cast to int32: with int32 inputs the Reshape can read them as they are.)
bool can_be_int32(const ir::Value* v) {
  if (v->is_graph_output()) return false;
  for (const auto& [node, slot] : v->consumers()) {
    if (slot == ir::Node::kImplicitSlot) return false;
    if (removable_cast(*node) || accepts_int32(*node, slot)) continue;
    if (moves_data_only(*node, slot) && can_be_int32(node->outputs()[0])) continue;
    return false;
  }
  return true;
}

// Makes `v` (of a data-moving op) int32, and so on down its readers; Casts to int32 go.
void make_int32(ir::Graph& g, ir::Value* v) {
  if (v->has_info() && v->info().type().has_tensor_type())
    v->mutable_info().mutable_type()->mutable_tensor_type()->set_elem_type(kInt32);
  const auto uses = v->consumers();
  for (const auto& [node, slot] : uses) {
    if (removable_cast(*node)) {
      g.replace_all_uses(node->outputs()[0], v);
      g.remove_node(node);
    } else if (moves_data_only(*node, slot)) {
      make_int32(g, node->outputs()[0]);
    }
  }
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
      if (removable_cast(*node)) {
        g.replace_all_uses(node->outputs()[0], v);  // the Cast is the identity now
        g.remove_node(node);
        continue;
      }
      if (accepts_int32(*node, slot)) continue;
      if (moves_data_only(*node, slot) && can_be_int32(node->outputs()[0])) {
        make_int32(g, node->outputs()[0]);  // reshaped as int32, with no Cast either way
        continue;
      }
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
