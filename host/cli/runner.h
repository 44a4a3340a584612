// What perf, profile and compare share: the model/input options, and a model loaded, planned and
// given dummy inputs.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/cli/common.h"
#include "host/runtime/inputs.h"
#include "host/runtime/session.h"

namespace tfh::cli {

struct RunOptions {
  int64_t batch = 1, sequence = 128, past = 0;
  int threads = 0;
  uint64_t seed = 0;
  std::string model_type, dummy_inputs;
  bool use_gpu = false;
  bool cuda_graph = false;  // with use_gpu: repeated shapes replay as CUDA graphs
  bool io_binding = false;  // with use_gpu: inputs put on the GPU once, outputs left there
};

// --batch_size/-b --sequence_length/-s --past_sequence_length --threads/-t --model_type
// --dummy_inputs --seed --use_gpu --cuda_graph (and --io_binding when `io_binding`: the commands
// that only time runs).
void add_run_options(po::options_description& opts, RunOptions& o, bool io_binding = false);
// Usage errors for out-of-range values; --use_gpu needs a CUDA build and a GPU.
void check_run_options(const std::string& sub, const RunOptions& o);

// A model ready to run: loaded, shape-inferred, planned, with its dummy inputs.
class ModelRunner {
 public:
  ModelRunner(const plugin::Registry& registry, const runtime::KernelRegistry& kernels,
              const std::string& model_path, const RunOptions& o, bool profile = false);
  runtime::Session& session() { return *session_; }
  const ir::Model& model() const { return *model_; }
  const std::vector<runtime::NamedTensor>& inputs() const { return inputs_; }
  const std::vector<std::pair<std::string, const runtime::HostTensor*>>& feeds() const {
    return feeds_;
  }
  const std::string& generator() const { return generator_; }
  double plan_seconds() const { return plan_s_; }
  // "CPU", or "GPU (<name>), CUDA graphs ..." for the report of a run.
  std::string device_text() const;
  // On the GPU, what the GEMMs' tuning did (kernels::cuda::gemm_tuning_text); else "".
  std::string gemm_tuning_text() const;

 private:
  std::unique_ptr<ir::Model> model_;
  std::unique_ptr<runtime::Session> session_;
  std::vector<runtime::NamedTensor> inputs_;
  std::vector<std::pair<std::string, const runtime::HostTensor*>> feeds_;
  std::string generator_;
  double plan_s_ = 0;
  bool use_gpu_ = false, cuda_graph_ = false;
};

// Peak resident set size of this process in bytes (VmHWM), 0 if unknown.
size_t peak_rss_bytes();
// "20261203-014501", local time.
std::string timestamp();

}  // namespace tfh::cli
