#include "host/cli/runner.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "host/util/error.h"
#include "kernels/common/device_info.h"
#ifdef TFH_HAVE_CUDA
#include "kernels/cuda/device.h"
#endif

namespace tfh::cli {

void add_run_options(po::options_description& opts, RunOptions& o, bool io_binding) {
  // clang-format off
  opts.add_options()
      ("batch_size,b", po::value<int64_t>(&o.batch)->default_value(1), "batch size")
      ("sequence_length,s", po::value<int64_t>(&o.sequence)->default_value(128), "new tokens per row")
      ("past_sequence_length", po::value<int64_t>(&o.past)->default_value(0),
       "tokens already in the past key/value cache")
      ("threads,t", po::value<int>(&o.threads)->default_value(0), "CPU threads (0: all cores)")
      ("model_type", po::value<std::string>(&o.model_type), "model family: picks its dummy inputs")
      ("dummy_inputs", po::value<std::string>(&o.dummy_inputs),
       "input generator (or model type) to use; default: the model type's, else core.inputs")
      ("seed", po::value<uint64_t>(&o.seed)->default_value(0), "random seed of the inputs")
      ("use_gpu", po::bool_switch(&o.use_gpu), "run on the GPU (CUDA build and GPU needed): CUDA kernels where they exist, the CPU for the rest")
      ("cuda_graph", po::bool_switch(&o.cuda_graph),
       "with --use_gpu: capture the device work of a run into a CUDA graph on the second run with "
       "the same input shapes and replay it after that (runs that move values between CPU and "
       "GPU mid-run stay eager, and the report says why)");
  if (io_binding)
    opts.add_options()("io_binding", po::bool_switch(&o.io_binding),
                       "with --use_gpu: put the inputs on the GPU once and leave the outputs there "
                       "(times the model alone, as ONNX Runtime's IO binding does)");
  // clang-format on
}

void check_run_options(const std::string& sub, const RunOptions& o) {
  if (o.batch <= 0 || o.sequence <= 0 || o.past < 0)
    throw UsageError(sub,
                     "--batch_size and --sequence_length must be > 0, --past_sequence_length >= 0");
  if (o.threads < 0) throw UsageError(sub, "--threads must be >= 0");
  if ((o.cuda_graph || o.io_binding) && !o.use_gpu)
    throw UsageError(sub, std::string(o.cuda_graph ? "--cuda_graph" : "--io_binding") +
                              " needs --use_gpu");
  if (o.use_gpu) pipeline::check_device(pipeline::Device::Cuda, "--use_gpu", "leave out --use_gpu");
}

ModelRunner::ModelRunner(const plugin::Registry& registry, const runtime::KernelRegistry& kernels,
                         const std::string& model_path, const RunOptions& o, bool profile) {
  const plugin::InputGenEntry& gen = runtime::pick_generator(registry, o.dummy_inputs, o.model_type);
  generator_ = gen.name;
  const auto t0 = std::chrono::steady_clock::now();
  model_ = ir::Model::load(model_path);
  model_->infer_shapes(&registry.shape_hooks());
  runtime::SessionOptions so;
  so.threads = o.threads;
  so.profile = profile;
  so.device = o.use_gpu ? TFH_DEVICE_CUDA : TFH_DEVICE_CPU;
  so.cuda_graph = o.cuda_graph;
  use_gpu_ = o.use_gpu;
  cuda_graph_ = o.cuda_graph;
  so.release_consumed_constants = true;  // the model is loaded only to run it
  session_ = std::make_unique<runtime::Session>(*model_, kernels, so);
  plan_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  runtime::InputRequest req;
  req.batch = o.batch;
  req.sequence = o.sequence;
  req.past = o.past;
  req.seed = o.seed;
  inputs_ = runtime::make_inputs(registry, gen, *model_, req);
  feeds_ = runtime::feeds_of(inputs_);
}

std::string ModelRunner::device_text() const {
  if (!use_gpu_) return "CPU";
  std::string d = "GPU (" + kernels::describe_devices() + ")";
  if (cuda_graph_) {
    const runtime::GraphStats g = session_->graph_stats();
    d += ", CUDA graphs: " + std::to_string(g.captured) + " captured, " +
         std::to_string(g.replays) + " replayed runs";
    if (g.captured) d += " (" + std::to_string(g.nodes) + " GPU operations in a run)";
    if (!g.refused.empty()) d += " (" + g.refusal_text() + ")";
  }
  const runtime::DeviceTraffic t = session_->device_traffic();
  d += ", values copied between CPU and GPU mid-run: " + std::to_string(t.copies);
  if (t.copies) {
    char kb[32];
    std::snprintf(kb, sizeof kb, "%.1f KB", static_cast<double>(t.bytes) / 1024.0);
    d += std::string(" (") + kb + "; first: " + t.first + ")";
  }
  return d;
}

std::string ModelRunner::gemm_tuning_text() const {
#ifdef TFH_HAVE_CUDA
  if (use_gpu_) return kernels::cuda::gemm_tuning_text();
#endif
  return "";
}

size_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

std::string timestamp() {
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return stamp;
}

}  // namespace tfh::cli
