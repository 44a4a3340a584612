// The core.* passes as host functions on ir::. The descriptors in core_plugin.cc expose them
// through the plugin ABI; tests and other host code may call them directly.
// Each returns how many things it changed (nodes removed, values renamed, ...).
#pragma once

#include <cstddef>

#include "host/ir/graph.h"

namespace tfh::passes {

struct RemoveIdentityOptions {
  bool dropout = true;  // also Dropout in inference form
};
size_t remove_identity(ir::Model& model, const RemoveIdentityOptions& opts = {});
size_t eliminate_dead_nodes(ir::Graph& graph);
struct RemoveUnusedInitializersOptions {
  bool prune_inputs = true;  // also drop graph inputs that mirror removed initializers
};
size_t remove_unused_initializers(ir::Graph& graph,
                                  const RemoveUnusedInitializersOptions& opts = {});
size_t repair_duplicate_definitions(ir::Graph& graph);
size_t topological_sort(ir::Graph& graph);
// int64 graph inputs become int32 (input_int32.cc); returns how many.
size_t input_int32(ir::Model& model);

// Evaluates nodes whose inputs are all constants with the CPU runtime and stores their results
// as initializers (constant_folding.cc); returns how many nodes went.
size_t constant_folding(ir::Model& model, size_t max_bytes = size_t(64) << 20);

// Removes `v` when nothing refers to it any more (no producer, consumer or graph role), so that
// removed nodes leave no stray value_info behind. Returns whether it did.
bool remove_if_orphan(ir::Graph& graph, ir::Value* v);

}  // namespace tfh::passes
