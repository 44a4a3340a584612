// core.remove_unused_initializers
//   an initializer no node reads and that is no graph output => removed
// Older exporters (IR version < 4) also list every initializer as a graph input; such a mirror
// input goes with its initializer, since nothing can read it either. With prune_inputs off, a
// mirrored initializer stays whole: dropping only its data would turn it into a required input.
#include <vector>

#include "host/passes/core_passes.h"

namespace tfh::passes {

size_t remove_unused_initializers(ir::Graph& graph, const RemoveUnusedInitializersOptions& opts) {
  std::vector<ir::Value*> unused;
  // consumers() includes reads from subgraph bodies (implicit inputs).
  for (ir::Value* v : graph.initializers()) {
    if (!v->consumers().empty() || v->is_graph_output()) continue;
    if (v->is_graph_input() && !opts.prune_inputs) continue;
    unused.push_back(v);
  }
  for (ir::Value* v : unused) {
    if (v->is_graph_input()) graph.remove_graph_input(v);
    graph.remove_initializer(v);  // also drops the value: nothing refers to it any more
  }
  return unused.size();
}

}  // namespace tfh::passes
