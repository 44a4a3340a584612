// Latency over a grid of batch sizes x sequence lengths x past lengths, original against optimized
// model: what `tfhost benchmark` and a config's `benchmark:` section run and print.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "host/plugin/registry.h"
#include "host/runtime/measure.h"

namespace tfh::cli {

struct SweepSpec {
  std::vector<int64_t> batch{1}, sequence{128}, past{0};
  int threads = 0, warmup = 5, iterations = 50;
  uint64_t seed = 0;
  TfhDevice device = TFH_DEVICE_CPU;
  bool cuda_graph = false;  // CUDA: repeated shapes replay as CUDA graphs
};

struct SweepRow {
  std::string model;  // "original" / "optimized"
  int64_t batch = 0, sequence = 0, past = 0;
  runtime::Latency latency;
  double throughput = 0;  // samples per second
  double speedup = 0;     // original mean / this mean (1 for the original)
};

// Runs every grid point on each model in `models` ({label, model}), interleaved per point so
// machine noise hits both. `progress` (nullable) gets a bar on a terminal, one line otherwise.
// The models' packed weights are given back (Session's release_consumed_constants): they are
// not usable afterwards.
std::vector<SweepRow> sweep(const plugin::Registry& registry,
                            const plugin::InputGenEntry& generator,
                            const std::vector<std::pair<std::string, ir::Model*>>& models,
                            const SweepSpec& spec, std::ostream* progress);

// The table of onnxruntime.transformers' benchmark README, as markdown.
void print_markdown(const std::vector<SweepRow>& rows, std::ostream& os);
void write_csv(const std::vector<SweepRow>& rows, const std::string& path);
void write_json(const std::vector<SweepRow>& rows, const std::string& path);

}  // namespace tfh::cli
