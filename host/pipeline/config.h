// A YAML pipeline config (DESIGN.md "Configs"), parsed and validated into plain structs.
//
//   version: 1                                   # optional; only 1 exists
//   model: {path: ../models/x.onnx, family: bert, num_heads: 12, hidden_size: 768}
//   output: ../out/x_opt.onnx
//   device: auto                                 # cpu | cuda | auto
//   plugins: {search: [dirs], load: [names or paths]}
//   pipeline:                                    # an ordered list; each step is exactly one of
//     - preset: bert                             #   a model type's default pass list
//     - pass: core.float16                       #   one pass, with optional parameters
//       with: {keep_io_types: true}
//   verify: {inputs: bert.inputs, with: {batch: 2}, samples: 10, seed: 42, tolerance: 1e-4}
//   benchmark: {batch: [1, 8], sequence: [128], past: [0], warmup: 5, iterations: 50}
//   save: {use_external_data_format: false}
//
// Relative paths (model.path, output, plugins.search, plugin paths in plugins.load) written in the
// file are resolved against the folder of the config file, so a config means the same thing from
// any working directory; paths given with --set are relative to the working directory, like any
// other path typed on a command line.
//
// Everything this file checks needs no plugin: names of passes, presets and input generators and
// their `with:` parameters are resolved against the registry by pipeline.h.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tfh::pipeline {

// Where a value came from, for messages: "configs/x.yaml:12:3" or "--set verify.samples=abc".
using Where = std::string;

enum class Device { Cpu, Cuda, Auto };
const char* device_name(Device d);

struct ModelSection {
  std::string path;         // resolved (see above)
  std::string family;       // "" when not given
  int64_t num_heads = 0;    // 0: detected by the passes that need it
  int64_t hidden_size = 0;  // 0: detected
  Where where, path_where, family_where;
};

struct Step {
  enum class Kind { Pass, Preset, OptLevel };
  Kind kind = Kind::Pass;
  std::string name;  // pass name, the model type of a preset, or the level ("2")
  YAML::Node with;   // pass parameters; an empty map when absent
  Where where;       // of the name
  Where with_where;  // of `with:` (the name's location when absent)
};

struct PathEntry {
  std::string value;
  Where where;
};

struct PluginsSection {
  std::vector<PathEntry> search;  // directories, resolved
  std::vector<PathEntry> load;    // plugin names, or paths (resolved): with a '/' or '.so'
};

struct VerifySection {
  std::string inputs;  // input generator; "" = the model type's default
  YAML::Node with;     // generator parameters; an empty map when absent
  int64_t samples = 10;
  uint64_t seed = 42;
  std::optional<double> tolerance_fp32, tolerance_fp16;  // unset: the generator's suggestion
  Where where, inputs_where, with_where;
};

struct BenchmarkSection {
  std::vector<int64_t> batch{1}, sequence{128}, past{0};
  int64_t warmup = 5, iterations = 50;
  bool cuda_graph = false;  // on the GPU: repeated runs replay as CUDA graphs (no effect on the CPU)
  Where where;
};

struct SaveSection {
  bool use_external_data_format = false;
};

struct Config {
  std::string file;      // the config path as given, for messages
  std::string base_dir;  // relative paths are resolved against it ("" = working directory)
  int64_t version = 1;
  ModelSection model;
  std::string output;
  Where output_where;
  Device device = Device::Auto;
  Where device_where;
  PluginsSection plugins;
  std::vector<Step> steps;
  std::optional<VerifySection> verify;        // absent, or `verify: null`
  std::optional<BenchmarkSection> benchmark;  // absent, or `benchmark: null`
  SaveSection save;
};

// Reads, overrides and validates a config file. `overrides` are "dotted.key=value" strings
// (--set); each value is parsed as YAML and written into the tree before validation, so it is
// checked like the file itself. Throws tfh::Error with a one-line message that starts with the
// location ("configs/x.yaml:12:3: ..." or "--set a.b=c: ...").
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from text; `file` names it in messages, `base_dir` anchors relative paths.
Config parse_config(const std::string& text, const std::string& file, const std::string& base_dir,
                    const std::vector<std::string>& overrides = {});

// A path from the config resolved against `base_dir` (absolute paths are kept).
std::string resolve_path(const std::string& base_dir, const std::string& path);

}  // namespace tfh::pipeline
