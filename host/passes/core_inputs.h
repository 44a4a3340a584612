// core.inputs: generic dummy inputs (see core_inputs.cc for the rules).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "host/plugin/host_tensor.h"

namespace tfh::passes {

struct InputSizes {
  int64_t batch = 1, sequence = 8, past = 0;
};

struct DummyInput {
  std::string name;
  std::unique_ptr<plugin::HostTensor> tensor;
};

// One tensor per graph input that needs a value, in graph-input order; deterministic for a seed.
// Throws tfh::Error naming the input when a dim cannot be bound or a type is not supported.
std::vector<DummyInput> core_inputs(const ir::Model& model, const InputSizes& sizes,
                                    uint64_t seed);

}  // namespace tfh::passes
