// Dummy inputs for a model through the registered generators (core.inputs or a family's), and
// writing them where ONNX Runtime's runner (tools/ort/run.js) can read the same bytes.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/ir/graph.h"
#include "host/plugin/host_tensor.h"
#include "host/plugin/registry.h"

namespace tfh::runtime {

using plugin::HostTensor;

struct InputRequest {
  int64_t batch = 1, sequence = 8, past = 0;
  uint64_t seed = 0;
};

struct NamedTensor {
  std::string name;
  std::unique_ptr<HostTensor> tensor;
};

// The generator to use: `explicit_name` when given (a generator or a model type's), else the
// generator of the model type `model_type` when given, else core.inputs. Throws tfh::Error naming
// what is unknown.
const plugin::InputGenEntry& pick_generator(const plugin::Registry& r,
                                            const std::string& explicit_name,
                                            const std::string& model_type);

// Runs the generator on `model`. Sizes go to the parameters it declares (batch_size,
// sequence_length, past_sequence_length).
std::vector<NamedTensor> make_inputs(const plugin::Registry& r, const plugin::InputGenEntry& gen,
                                     const ir::Model& model, const InputRequest& req);

// Same, with the generator's parameters already resolved (a config's `verify.with`).
std::vector<NamedTensor> make_inputs(const plugin::InputGenEntry& gen, const ir::Model& model,
                                     const plugin::Params& params, uint64_t seed);

// (name, tensor) pairs for Session::run.
std::vector<std::pair<std::string, const HostTensor*>> feeds_of(const std::vector<NamedTensor>& in);

// DIR/inputs.json ([{name, type, dims, file}]) plus one raw .bin per tensor: tools/ort/run.js's
// format. Creates DIR.
void write_inputs_json(const std::vector<NamedTensor>& in, const std::string& dir);

}  // namespace tfh::runtime
