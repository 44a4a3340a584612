// tfhost perf --model M ...: latency percentiles and throughput of one model on dummy inputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>

#include <boost/filesystem.hpp>

#include "host/cli/runner.h"
#include "host/runtime/measure.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Measures the latency of MODEL with tfhost's runtime on dummy inputs (the generator of\n"
    "--dummy_inputs, else of --model_type, else core.inputs): --warmup untimed runs, then\n"
    "--samples timed runs. Prints mean and P50/P75/P90/P95/P99 latency, throughput, the planned\n"
    "activation memory (the buffer pool the session needs) and the peak RSS, and writes them with\n"
    "every setting to perf_results_<CPU|GPU>_B<b>_S<s>_<date-time>.txt next to the model.\n"
    "On the GPU (--use_gpu), --cuda_graph replays repeated runs as CUDA graphs and --io_binding\n"
    "keeps inputs and outputs on the device (each timed run still waits for the GPU); a model's\n"
    "key/value buffers shared by past and present (optimize --enable_shared_kv_cache) are then\n"
    "donated and the presents fed back, so each run is a decoding step updating them in place.\n"
    "--save_inputs DIR also writes the inputs for ONNX Runtime (tools/ort/run.js, bench/).";

}  // namespace

int perf_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;
  bool help = false;
  std::string model_path, save_inputs;
  RunOptions ro;
  int samples = 100, warmup = 5;
  po::options_description opts("Options");
  opts.add_options()("model,m", po::value<std::string>(&model_path)->value_name("PATH"),
                     "the ONNX model (required)");
  add_run_options(opts, ro, /*io_binding=*/true);
  // clang-format off
  opts.add_options()
      ("samples", po::value<int>(&samples)->default_value(100), "timed runs")
      ("warmup", po::value<int>(&warmup)->default_value(5), "untimed runs first")
      ("save_inputs", po::value<std::string>(&save_inputs)->value_name("DIR"),
       "write the inputs as DIR/inputs.json + .bin files (ONNX Runtime's runner format)");
  // clang-format on
  opts.add(global_options(local, help));
  parse_args("perf", args, opts, {});
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout, "tfhost perf --model PATH [--batch_size B] [--sequence_length S] ...",
               kAbout, opts);
    return 0;
  }
  if (model_path.empty()) throw UsageError("perf", "missing --model");
  check_run_options("perf", ro);
  if (samples <= 0 || warmup < 0) throw UsageError("perf", "--samples must be > 0, --warmup >= 0");

  auto registry = make_registry(g);
  const runtime::KernelRegistry kernels(*registry);
  ModelRunner runner(*registry, kernels, model_path, ro);
  if (!save_inputs.empty()) runtime::write_inputs_json(runner.inputs(), save_inputs);
  runtime::Session& session = runner.session();
  const auto& feeds = runner.feeds();
  const int64_t batch = ro.batch, seq = ro.sequence, past = ro.past;
  const int threads = ro.threads;

  std::cerr << "perf: " << model_path << " loaded and planned in " << std::fixed
            << std::setprecision(2) << runner.plan_seconds() << " s; " << warmup
            << " warm-up + " << samples << " timed runs\n";
  runtime::Latency lat;
  size_t shared_buffers = 0;
  if (ro.io_binding) {
    // The inputs go to the GPU once; each timed run leaves its outputs there and is waited for.
    // Key/value buffers shared by past and present (gpt2.shared_kv_cache) are donated and each
    // run's presents fed back, as decoding does: every run is the step at the same past length
    // (it writes the same rows again), updating the cache in place.
    std::vector<runtime::DeviceTensor> on_device;
    std::vector<runtime::Feed> device_feeds;
    for (const auto& [name, t] : feeds) on_device.push_back(session.to_device(*t));
    std::vector<size_t> buffers;  // feeds that are shared buffers, in order
    for (size_t i = 0; i < feeds.size(); ++i) {
      const ir::Value* v = runner.model().graph().find(feeds[i].first);
      const bool shared = v && runtime::shared_buffer_input(*v);
      if (shared) buffers.push_back(i);
      device_feeds.push_back(runtime::Feed{feeds[i].first, nullptr, &on_device[i], shared});
    }
    shared_buffers = buffers.size();
    // Which outputs are the presents: those after the first, in order (as generate pairs them).
    const size_t outputs = session.outputs().size();
    if (shared_buffers && outputs != shared_buffers + 1)
      TFH_THROW(model_path, ": ", shared_buffers, " shared key/value buffers and ", outputs,
                " outputs: the presents must follow the first output, one per buffer, in order");
    std::vector<runtime::DeviceTensor> last;
    lat = runtime::time_calls(
        [&] {
          auto out = session.run_device(device_feeds);
          session.synchronize();
          if (shared_buffers) {
            last = std::move(out);
            for (size_t k = 0; k < buffers.size(); ++k) device_feeds[buffers[k]].device = &last[1 + k];
          }
        },
        warmup, samples);
  } else {
    lat = runtime::time_runs(session, feeds, warmup, samples);
  }
  const double mean = lat.mean;
  const int used_threads = threads > 0 ? threads : 0;

  std::ostringstream r;
  r << std::fixed << std::setprecision(3);
  r << "Model: " << model_path << "\n"
    << "Device: " << runner.device_text() << "\n"
    << (runner.gemm_tuning_text().empty() ? std::string()
                                          : "GEMM tuning: " + runner.gemm_tuning_text() + "\n")
    << "IO binding: "
    << (ro.io_binding ? shared_buffers ? "on (inputs on the GPU, outputs left there; " +
                                             std::to_string(shared_buffers) +
                                             " key/value buffers updated in place)"
                                       : std::string("on (inputs on the GPU, outputs left there)")
                      : std::string("off"))
    << "\n"
    << "Inputs: " << runner.generator() << " (batch_size " << batch << ", sequence_length " << seq
    << ", past_sequence_length " << past << ", seed " << ro.seed << ")\n"
    << "Threads: " << (used_threads ? std::to_string(used_threads) : std::string("all cores"))
    << "\n"
    << "Warmup: " << warmup << "\nSamples: " << samples << "\n"
    << "Latency mean: " << mean << " ms\n"
    << "Latency P50: " << lat.p50 << " ms\n"
    << "Latency P75: " << lat.p75 << " ms\n"
    << "Latency P90: " << lat.p90 << " ms\n"
    << "Latency P95: " << lat.p95 << " ms\n"
    << "Latency P99: " << lat.p99 << " ms\n"
    << "Throughput: " << std::setprecision(2) << (batch * 1000.0 / mean) << " samples/s\n"
    << "Planned activation memory: " << std::setprecision(1)
    << session.pool_bytes() / 1048576.0 << " MB\n"
    << "Peak RSS: " << peak_rss_bytes() / 1048576.0 << " MB\n";
  std::cout << r.str();

  // perf_results_CPU_B1_S128_20261203-014501.txt next to the model
  const std::string stamp = timestamp();
  boost::filesystem::path dir = boost::filesystem::path(model_path).parent_path();
  const std::string file = (dir / ("perf_results_" + std::string(ro.use_gpu ? "GPU" : "CPU") +
                                   "_B" + std::to_string(batch) + "_S" +
                                   std::to_string(seq) + "_" + stamp + ".txt")).string();
  std::ofstream out(file);
  out << r.str();
  if (!out.good())
    std::cerr << "tfhost: warning: could not write " << file << "\n";
  else
    std::cerr << "perf: results written to " << file << "\n";
  return 0;
}

}  // namespace tfh::cli
