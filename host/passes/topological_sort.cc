// core.topological_sort
//   nodes in any order => nodes ordered so that every value is defined before it is read
// Stable: nodes already in order keep their relative order. Reports how many nodes moved.
#include <vector>

#include "host/passes/core_passes.h"

namespace tfh::passes {
namespace {

std::vector<const ir::Node*> order(const ir::Graph& g) {
  std::vector<const ir::Node*> out;
  for (const auto& n : g.nodes()) out.push_back(n.get());
  return out;
}

}  // namespace

size_t topological_sort(ir::Graph& graph) {
  const auto before = order(graph);
  graph.topological_sort();
  const auto after = order(graph);
  size_t moved = 0;
  for (size_t i = 0; i < after.size(); ++i) moved += before[i] != after[i] ? 1 : 0;
  return moved;
}

}  // namespace tfh::passes
