// core.constant_folding: nodes whose inputs are all constants (initializers, Constant nodes and
// what they compute) are evaluated once with the CPU runtime's own kernels and replaced by
// initializers. Random ops, nodes with subgraphs, nodes no kernel runs and graph inputs that have
// a default (an initializer the caller may override) are never folded; a result larger than
// `max_bytes` and than its inputs together (Expand, Tile, ConstantOfShape blowing a small tensor
// up) is not stored: its node stays and computes it from folded inputs.
#include <set>

#include "host/passes/core_passes.h"
#include "host/plugin/host_api.h"
#include "host/plugin/registry.h"
#include "host/runtime/kernel_registry.h"
#include "host/runtime/session.h"
#include "host/util/error.h"

namespace tfh::passes {

size_t constant_folding(ir::Model& model, size_t max_bytes) {
  ir::Graph& g = model.graph();
  const plugin::Registry* active = plugin::Registry::active();
  std::unique_ptr<runtime::KernelRegistry> kernels =
      active ? std::make_unique<runtime::KernelRegistry>(*active)
             : std::make_unique<runtime::KernelRegistry>();
  // What is constant: initializers that are not overridable inputs, and the outputs of nodes
  // computed from constants alone.
  std::set<const ir::Value*> constant;
  for (const ir::Value* v : g.initializers())
    if (!v->is_graph_input()) constant.insert(v);
  std::set<const ir::Node*> fold;
  for (const auto& up : g.nodes()) {
    const ir::Node& n = *up;
    if (!runtime::foldable(n) || !n.implicit_inputs().empty() || n.outputs().empty()) continue;
    bool all = true;
    for (const ir::Value* v : n.inputs()) all = all && (!v || constant.count(v));
    for (const auto& a : n.attributes())
      all = all && a.type() != onnx::AttributeProto::GRAPH && a.type() != onnx::AttributeProto::GRAPHS;
    if (!all || kernels->candidates(model, n, TFH_DEVICE_CPU).empty()) continue;
    fold.insert(&n);
    for (const ir::Value* v : n.outputs())
      if (v) constant.insert(v);
  }
  if (fold.empty()) return 0;

  runtime::SessionOptions opts;
  opts.node_filter = [&fold](const ir::Node& n) { return fold.count(&n) > 0; };
  runtime::Session session(static_cast<const ir::Model&>(model), *kernels, opts);

  // Values to store: read by a node that stays, or graph outputs. A result too large to store
  // keeps its node, whose inputs then need storing in turn.
  std::set<const ir::Node*> kept;
  std::set<const ir::Value*> store;
  bool changed = true;
  while (changed) {
    changed = false;
    store.clear();
    for (const ir::Node* n : fold) {
      if (kept.count(n)) continue;
      for (const ir::Value* v : n->outputs()) {
        if (!v) continue;
        bool needed = v->is_graph_output();
        for (const auto& use : v->consumers())
          needed = needed || !fold.count(use.first) || kept.count(use.first);
        if (!needed) continue;
        const runtime::HostTensor* t = session.constant(v);
        size_t in_bytes = 0;
        for (const ir::Value* in : n->inputs())
          if (const runtime::HostTensor* it = in ? session.constant(in) : nullptr) in_bytes += it->nbytes;
        if (!t || (t->nbytes > max_bytes && t->nbytes > in_bytes)) {
          kept.insert(n);
          changed = true;
          break;
        }
        store.insert(v);
      }
    }
  }
  size_t folded = 0;
  std::vector<std::pair<ir::Value*, std::unique_ptr<ir::Tensor>>> results;
  for (const ir::Value* v : store) {
    const runtime::HostTensor* t = session.constant(v);
    results.emplace_back(const_cast<ir::Value*>(v),
                         plugin::to_ir_tensor(reinterpret_cast<const TfhTensor*>(t), v->name()));
  }
  std::vector<ir::Node*> doomed;
  for (const auto& up : g.nodes())
    if (fold.count(up.get()) && !kept.count(up.get())) doomed.push_back(up.get());
  std::vector<ir::Value*> made;
  for (ir::Node* n : doomed) {
    for (ir::Value* v : n->outputs())
      if (v) made.push_back(v);
    g.remove_node(n);
    ++folded;
  }
  for (auto& [v, t] : results) {
    ir::Value* init = g.add_initializer(std::move(t));
    TFH_CHECK(init == v, "constant_folding: '", v->name(), "' was renamed");
  }
  for (ir::Value* v : made)  // values nothing reads any more (a Split's unused part)
    if (!v->initializer()) remove_if_orphan(g, v);
  return folded;
}

}  // namespace tfh::passes
