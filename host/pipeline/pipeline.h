// From a validated config (or optimize's flags) to a plan of resolved passes, and the small pass
// manager that runs a plan on a model.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "host/pipeline/config.h"
#include "host/plugin/params.h"
#include "host/plugin/registry.h"

namespace tfh::pipeline {

// Parameters a whole run supplies (model.num_heads/hidden_size, optimize's switches): each goes
// to every pass whose schema declares a parameter of that name, unless the step's `with:` sets it.
using SharedParams = std::map<std::string, YAML::Node>;

struct PlannedPass {
  const plugin::PassEntry* entry = nullptr;
  plugin::Params params;
  std::string origin;  // "preset bert" for a pass a preset expanded to; "" for a `- pass:` step
  Where where;         // of the step, for messages
};

// A config's `verify:` section, resolved: the generator, its parameters, how many samples.
struct VerifyPlan {
  const plugin::InputGenEntry* generator = nullptr;
  plugin::Params params;
  int64_t samples = 10;
  uint64_t seed = 42;
  std::optional<double> tolerance_fp32, tolerance_fp16;
};

struct Plan {
  std::string input, output;
  ir::SaveOptions save;
  Device device = Device::Auto;
  std::vector<PlannedPass> passes;
  std::optional<VerifyPlan> verify;
  std::optional<BenchmarkSection> benchmark;
  // Dummy inputs for the benchmark: verify's generator, else the model type's, else core.inputs.
  const plugin::InputGenEntry* benchmark_inputs = nullptr;
};

// Loads the plugins a run asks for into `registry`. The search path is `front` (--plugin-path),
// then plugins.search, then the default path ($TFHOST_PLUGIN_PATH, the build and install dirs).
// With plugins.load, exactly those plugins are loaded, and one that fails is an error; otherwise
// every plugin in the search path, a file that fails being refused with a warning.
void load_plugins(plugin::Registry& registry, const PluginsSection& plugins,
                  const std::vector<std::string>& front);

// Throws "<where>: unknown model type 'x' (available: ...)" with a suggestion.
const plugin::ModelTypeEntry& find_model_type(const plugin::Registry& registry,
                                              const std::string& name, const Where& where);
// Throws "<where>: unknown pass 'x' (available: ...)" with a suggestion.
const plugin::PassEntry& find_pass(const plugin::Registry& registry, const std::string& name,
                                   const Where& where);

// One pass with its `with:` map, checked against the pass's schema (Params::resolve). `where`
// locates the step (unknown names, failures while running); `with_where` the parameters.
PlannedPass plan_pass(const plugin::Registry& registry, const std::string& name,
                      const YAML::Node& with, const SharedParams& shared, const std::string& origin,
                      const Where& where, const Where& with_where = "");
// A model type's pass list, each with its defaults (plus `shared`).
std::vector<PlannedPass> plan_preset(const plugin::Registry& registry, const std::string& type,
                                     const SharedParams& shared, const Where& where);

struct PassResult {
  std::string name;
  size_t changed = 0;
  double seconds = 0;
};

// The passes of optimization level 0, 1, 2 or 99 (`tfhost optimize --opt_level`, a config's
// `- opt_level: N` step); each pass's origin names its level ("level 1 (...)"):
//   1   cleanup + constant folding (evaluated with tfhost's CPU kernels)
//   2   1, then the family-independent fusions (core.layer_norm, core.skip_layer_norm, core.gelu,
//       core.fast_gelu, core.bias_gelu)
//   99  everything that applies: the model type's preset, as its plugin orders it (the family
//       knows what its fusions need), then constant folding and cleanup; without a model type
//       ("" or "core") the same as 2
// Throws naming `where` for any other level.
std::vector<PlannedPass> plan_opt_level(const plugin::Registry& registry, int level,
                                        const std::string& model_type, const SharedParams& shared,
                                        const Where& where);
// "opt_level: what each level changed" lines for the passes whose origin is a level, or "" when
// none is. `results` are run_passes' for `passes`.
std::string describe_levels(const std::vector<PlannedPass>& passes,
                            const std::vector<PassResult>& results);

// Resolves every step (presets expanded), the model type, the verify/benchmark sections and the
// output path. Throws tfh::Error naming the config location at fault.
Plan make_plan(const Config& config, const plugin::Registry& registry);

// The input model is never written: refuses an output that is the input (also via links), and an
// output that is a directory. `where` prefixes the message.
void check_output_path(const std::string& input, const std::string& output, const Where& where);


// Refuses a CUDA device this tfhost cannot use: built without CUDA, or no GPU present. Asking for
// a device and silently running elsewhere would misreport every later measurement. `where` names
// the setting ("x.yaml:4:9: 'device: cuda'" or "--use_gpu"); `instead` says what to do about it.
void check_device(Device device, const Where& where, const std::string& instead);

using Progress = std::function<void(size_t index, size_t total, const PassResult&)>;

// Runs the passes in order on `model`, calling `progress` after each. The graph is validated after
// every pass that changed something, so a broken rewrite is reported under the pass's name.
std::vector<PassResult> run_passes(const std::vector<PlannedPass>& passes,
                                   const plugin::Registry& registry, ir::Model& model,
                                   const Progress& progress = {});

// "{keep_io_types: true, op_block_list: [SkipLayerNormalization]}" ("{}" when empty).
std::string format_params(const plugin::Params& params);
std::string format_param(const plugin::ParamValue& value);

// The resolved plan, as `tfhost run --dry-run` prints it.
void print_plan(const Config& config, const Plan& plan, const plugin::Registry& registry,
                std::ostream& os);

}  // namespace tfh::pipeline
