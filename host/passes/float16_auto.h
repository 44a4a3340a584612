// The automatic float16/bfloat16 block list: run the model in float32 on dummy (or given) inputs,
// keep in float32 the nodes whose values leave the target type's range, then convert a copy,
// run it, and keep the nodes whose result diverges from float32 beyond a tolerance while their
// inputs do not — again until nothing diverges. Every node kept says why.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "host/passes/float16.h"

namespace tfh::plugin {
class Registry;
}

namespace tfh::passes {

struct AutoBlockOptions {
  const plugin::Registry* registry = nullptr;  // input generators and kernels
  std::string inputs;       // an input generator (or model type); "" = model_type's, else core.inputs
  std::string model_type;
  int64_t batch = 1, sequence = 8, past = 4;
  uint64_t seed = 1;
  double tolerance = 0.01;  // max |diff| over the value's max |float32 value|
  int max_rounds = 8;
};

// node_key -> reason, for FloatConvertOptions::auto_blocked. `model` is not changed (the runs
// use copies). Progress and findings go to the log.
std::map<std::string, std::string> find_float_blocks(const ir::Model& model,
                                                     const FloatConvertOptions& base,
                                                     const AutoBlockOptions& opts);

}  // namespace tfh::passes
