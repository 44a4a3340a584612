// core.eliminate_dead_nodes
//   a node none of whose outputs reaches a graph output => removed
// Liveness flows backwards from the graph outputs through node inputs and through the values
// subgraph bodies read by name (implicit inputs). A value defined twice keeps every definer alive.
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "host/passes/core_passes.h"

namespace tfh::passes {
namespace {

std::unordered_set<const ir::Node*> live_nodes(const ir::Graph& g) {
  // producer() names only the last definition; liveness must reach every definer.
  std::unordered_map<const ir::Value*, std::vector<const ir::Node*>> definers;
  for (const auto& n : g.nodes())
    for (const ir::Value* v : n->outputs())
      if (v) definers[v].push_back(n.get());

  std::unordered_set<const ir::Node*> live;
  std::unordered_set<const ir::Value*> seen;
  std::vector<const ir::Value*> work(g.outputs().begin(), g.outputs().end());
  while (!work.empty()) {
    const ir::Value* v = work.back();
    work.pop_back();
    if (!v || !seen.insert(v).second) continue;
    auto it = definers.find(v);
    if (it == definers.end()) continue;  // graph input or initializer
    for (const ir::Node* n : it->second) {
      if (!live.insert(n).second) continue;
      work.insert(work.end(), n->inputs().begin(), n->inputs().end());
      work.insert(work.end(), n->implicit_inputs().begin(), n->implicit_inputs().end());
    }
  }
  return live;
}

}  // namespace

size_t eliminate_dead_nodes(ir::Graph& graph) {
  const auto live = live_nodes(graph);
  std::vector<ir::Node*> dead;
  for (const auto& n : graph.nodes())
    if (!live.count(n.get())) dead.push_back(n.get());
  std::vector<ir::Value*> outputs;  // each once: two dead nodes may define one name
  std::unordered_set<const ir::Value*> listed;
  for (ir::Node* n : dead) {
    for (ir::Value* v : n->outputs())
      if (v && listed.insert(v).second) outputs.push_back(v);
    graph.remove_node(n);
  }
  // Only once every dead reader is gone are the dead values unreferenced.
  for (ir::Value* v : outputs) remove_if_orphan(graph, v);
  return dead.size();
}

}  // namespace tfh::passes
