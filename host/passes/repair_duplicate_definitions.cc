// core.repair_duplicate_definitions
//   A(..) -> t ; B(t) ; C(..) -> t ; D(t)   =>   A(..) -> t_0 ; B(t_0) ; C(..) -> t ; D(t)
// Some exporters emit a name twice. Node order gives the meaning (each read sees the definition
// before it), and ir::load points the value at the LAST definition. The last one keeps the name;
// each earlier definition gets a fresh name, and the reads that sit between it and the next
// definition move to it. A name also defined by a graph input or initializer is left alone.
#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include "host/passes/core_passes.h"
#include "host/plugin/host_api.h"

namespace tfh::passes {
namespace {

struct Plan {
  std::vector<std::pair<ir::Node*, size_t>> reads;  // (consumer, slot) ...
  std::vector<ir::Value*> read_values;               // ... and the value it should read
  std::map<ir::Node*, std::map<size_t, ir::Value*>> new_outputs;  // earlier definer -> slots
};

void warn(const std::string& msg) {
  plugin::host_api()->log(TFH_LOG_WARNING, "core", msg.c_str());
}

std::vector<ir::Node*> definers_of(const ir::Graph& g, const ir::Value* v) {
  std::vector<ir::Node*> out;
  for (const auto& n : g.nodes())
    for (const ir::Value* o : n->outputs())
      if (o == v) out.push_back(n.get());
  return out;
}

// Plans the repair of one name; returns how many earlier definitions get renamed.
size_t plan_value(ir::Graph& g, ir::Value* v, const std::unordered_map<const ir::Node*, size_t>& pos,
                  Plan& plan) {
  const std::vector<ir::Node*> defs = definers_of(g, v);
  if (!defs.empty() && (v->is_graph_input() || v->initializer())) {
    // Renaming a graph input would change the model's interface.
    warn("core.repair_duplicate_definitions: value '" + v->name() +
         "' is a graph input or initializer and is also produced by " + ir::describe(*defs[0]) +
         "; left as it is");
    return 0;
  }
  if (defs.size() < 2) return 0;
  std::vector<ir::Value*> renamed;  // one per earlier definition
  for (size_t i = 0; i + 1 < defs.size(); ++i) {
    ir::Value* fresh = g.add_value(g.unique_name(v->name()));
    renamed.push_back(fresh);
    for (size_t k = 0; k < defs[i]->outputs().size(); ++k)
      if (defs[i]->outputs()[k] == v) plan.new_outputs[defs[i]][k] = fresh;
    warn("core.repair_duplicate_definitions: value '" + v->name() + "' is defined by " +
         ir::describe(*defs[i]) + " and again by " + ir::describe(*defs[i + 1]) +
         "; keeping the last definition, the earlier output is renamed '" + fresh->name() + "'");
  }
  for (const auto& [n, slot] : v->consumers()) {
    if (slot == ir::Node::kImplicitSlot) continue;  // subgraph reads keep the last definition
    // The definition a read sees is the last one strictly before it in node order.
    size_t seen = defs.size();
    for (size_t i = 0; i < defs.size() && pos.at(defs[i]) < pos.at(n); ++i) seen = i;
    if (seen + 1 >= defs.size()) continue;  // reads the last definition (or precedes all)
    plan.reads.emplace_back(n, slot);
    plan.read_values.push_back(renamed[seen]);
  }
  return renamed.size();
}

// The IR cannot re-point one output slot, so an earlier definer is rebuilt with its new outputs
// (appended; the caller sorts the graph afterwards).
void rebuild(ir::Graph& g, ir::Node* n, const std::map<size_t, ir::Value*>& slots) {
  std::vector<ir::Value*> outputs = n->outputs();
  for (const auto& [k, v] : slots) outputs[k] = v;
  const std::vector<ir::Value*> inputs = n->inputs();
  const std::vector<onnx::AttributeProto> attrs = n->attributes();
  const std::string name = n->name(), op = n->op_type(), domain = n->domain();
  g.remove_node(n);
  ir::Node* copy = g.add_node(name, op, domain, inputs, outputs);
  for (const auto& a : attrs) copy->set_attr(a.name()) = a;
}

}  // namespace

size_t repair_duplicate_definitions(ir::Graph& graph) {
  if (graph.redefined_names().empty()) return 0;
  std::unordered_map<const ir::Node*, size_t> pos;
  for (const auto& n : graph.nodes()) pos.emplace(n.get(), pos.size());

  Plan plan;
  size_t repaired = 0;
  const std::set<std::string> names(graph.redefined_names().begin(),
                                    graph.redefined_names().end());
  for (const std::string& name : names)
    if (ir::Value* v = graph.find(name)) repaired += plan_value(graph, v, pos, plan);
  if (repaired == 0) return 0;
  // Reads first: a rebuilt node copies its inputs as they are by then.
  for (size_t i = 0; i < plan.reads.size(); ++i)
    graph.set_input(plan.reads[i].first, plan.reads[i].second, plan.read_values[i]);
  // Rebuild in node order, so that the result does not depend on pointer values.
  std::vector<ir::Node*> rebuilt;
  for (const auto& entry : plan.new_outputs) rebuilt.push_back(entry.first);
  std::sort(rebuilt.begin(), rebuilt.end(),
            [&](const ir::Node* a, const ir::Node* b) { return pos.at(a) < pos.at(b); });
  for (ir::Node* n : rebuilt) rebuild(graph, n, plan.new_outputs.at(n));
  graph.topological_sort();
  return repaired;
}

}  // namespace tfh::passes
