// core.repair_duplicate_definitions
//   A(..) -> t ; B(t) ; C(..) -> t ; D(t)   =>   A(..) -> t_0 ; B(t_0) ; C(..) -> t ; D(t)
// Some exporters emit a name twice. Node order gives the meaning (each read sees the definition
// before it), and ir::load points the value at the LAST definition. The last one keeps the name;
// each earlier definition's output slot is re-pointed (Graph::set_output) at a fresh name, and the
// reads that sit between it and the next definition move to it. Nodes stay where they are, with
// their doc strings, attributes and subgraph reads. A name also defined by a graph input or
// initializer is left alone.
#include <cstddef>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "host/passes/core_passes.h"
#include "host/plugin/host_api.h"

namespace tfh::passes {
namespace {

using Positions = std::unordered_map<const ir::Node*, size_t>;

void warn(const std::string& msg) {
  plugin::host_api()->log(TFH_LOG_WARNING, "core", msg.c_str());
}

// The nodes that list `v` among their outputs, in node order, each once.
std::vector<ir::Node*> definers_of(const ir::Graph& g, const ir::Value* v) {
  std::vector<ir::Node*> out;
  for (const auto& n : g.nodes())
    for (const ir::Value* o : n->outputs())
      if (o == v) {
        out.push_back(n.get());
        break;
      }
  return out;
}

// Repairs one name; returns how many earlier definitions were renamed. Sets `resort` when a read
// that keeps the last definition sits before it: a subgraph read (bodies name the value itself),
// or a read placed before every definition (a model not in topological order).
size_t repair_value(ir::Graph& g, ir::Value* v, const Positions& pos, bool& resort) {
  const std::vector<ir::Node*> defs = definers_of(g, v);
  if (!defs.empty() && (v->is_graph_input() || v->initializer())) {
    // Renaming a graph input would change the model's interface.
    warn("core.repair_duplicate_definitions: value '" + v->name() +
         "' is a graph input or initializer and is also produced by " + ir::describe(*defs[0]) +
         "; left as it is");
    return 0;
  }
  if (defs.size() < 2) return 0;

  // Plan the reads before any edit: set_input reorders v->consumers().
  std::vector<std::pair<ir::Node*, size_t>> reads;  // (consumer, slot) ...
  std::vector<size_t> seen_def;                     // ... and the earlier definition it sees
  for (const auto& [n, slot] : v->consumers()) {
    if (slot == ir::Node::kImplicitSlot) {
      // Subgraph bodies read the name itself, so they keep the last definition; a reader placed
      // before it is moved after it by the sort below.
      if (pos.at(n) < pos.at(defs.back())) resort = true;
      continue;
    }
    // The definition a read sees is the last one strictly before it in node order.
    size_t seen = defs.size();
    for (size_t i = 0; i < defs.size() && pos.at(defs[i]) < pos.at(n); ++i) seen = i;
    if (seen == defs.size()) resort = true;  // precedes every definition: reads the last one
    if (seen + 1 >= defs.size()) continue;   // reads the last definition
    reads.emplace_back(n, slot);
    seen_def.push_back(seen);
  }

  // Described before any output is renamed (an unnamed node is described by its output).
  std::vector<std::string> described;
  for (const ir::Node* d : defs) described.push_back(ir::describe(*d));
  std::vector<ir::Value*> renamed;  // one per earlier definition
  for (size_t i = 0; i + 1 < defs.size(); ++i) {
    ir::Node* def = defs[i];
    ir::Value* fresh = nullptr;
    for (size_t k = 0; k < def->outputs().size(); ++k) {
      if (def->outputs()[k] != v) continue;
      // A node listing the name twice gets a fresh name per slot; reads use the first.
      ir::Value* slot_value = g.add_value(g.unique_name(v->name()));
      g.set_output(def, k, slot_value);
      if (!fresh) fresh = slot_value;
    }
    renamed.push_back(fresh);
    warn("core.repair_duplicate_definitions: value '" + v->name() + "' is defined by " +
         described[i] + " and again by " + described[i + 1] +
         "; keeping the last definition, the earlier output is renamed '" + fresh->name() + "'");
  }
  for (size_t r = 0; r < reads.size(); ++r)
    g.set_input(reads[r].first, reads[r].second, renamed[seen_def[r]]);
  return renamed.size();
}

}  // namespace

size_t repair_duplicate_definitions(ir::Graph& graph) {
  if (graph.redefined_names().empty()) return 0;
  // Positions never change below: outputs and inputs are re-pointed in place.
  Positions pos;
  for (const auto& n : graph.nodes()) pos.emplace(n.get(), pos.size());

  size_t repaired = 0;
  bool resort = false;
  const std::set<std::string> names(graph.redefined_names().begin(),
                                    graph.redefined_names().end());
  for (const std::string& name : names)
    if (ir::Value* v = graph.find(name)) repaired += repair_value(graph, v, pos, resort);
  if (resort) graph.topological_sort();  // stable: only those readers move
  return repaired;
}

}  // namespace tfh::passes
