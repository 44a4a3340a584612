// tfhost benchmark --model M [--optimized_model O]: latency over batch x sequence x past, original
// against optimized; a markdown table plus CSV and JSON files.
#include <iostream>

#include "host/cli/runner.h"
#include "host/cli/sweep.h"
#include "host/pipeline/pipeline.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Measures MODEL and its optimized form over every combination of --batch_sizes,\n"
    "--sequence_lengths and --past_sequence_lengths (interleaved, on the same dummy inputs),\n"
    "prints the markdown table of onnxruntime.transformers' benchmark and writes the rows to\n"
    "--result_csv and --result_json. The optimized model is --optimized_model, or MODEL run\n"
    "through --model_type's passes in memory (the core cleanup without --model_type).";

}  // namespace

int benchmark_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;
  bool help = false, use_gpu = false;
  std::string model_path, optimized_path, model_type, dummy, csv, json;
  SweepSpec spec;
  spec.iterations = 20;
  spec.warmup = 3;
  std::vector<int64_t> batches{1}, sequences{32, 128}, pasts{0};
  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
      ("model,m", po::value<std::string>(&model_path)->value_name("PATH"), "the original ONNX model (required)")
      ("optimized_model", po::value<std::string>(&optimized_path)->value_name("PATH"),
       "the optimized model (default: MODEL through --model_type's passes, in memory)")
      ("model_type", po::value<std::string>(&model_type), "model family: its passes and dummy inputs")
      ("dummy_inputs", po::value<std::string>(&dummy), "input generator (or model type) to use")
      ("batch_sizes", po::value<std::vector<int64_t>>(&batches)->multitoken()->default_value({1}, "1"),
       "batch sizes")
      ("sequence_lengths", po::value<std::vector<int64_t>>(&sequences)->multitoken()
           ->default_value({32, 128}, "32 128"), "sequence lengths")
      ("past_sequence_lengths", po::value<std::vector<int64_t>>(&pasts)->multitoken()
           ->default_value({0}, "0"), "past lengths (models with a key/value cache)")
      ("threads,t", po::value<int>(&spec.threads)->default_value(0), "CPU threads (0: all cores)")
      ("samples", po::value<int>(&spec.iterations)->default_value(20), "timed runs per point")
      ("warmup", po::value<int>(&spec.warmup)->default_value(3), "untimed runs per point")
      ("seed", po::value<uint64_t>(&spec.seed)->default_value(0), "random seed of the inputs")
      ("result_csv", po::value<std::string>(&csv)->value_name("FILE"),
       "CSV output (default: benchmark_<date-time>.csv)")
      ("result_json", po::value<std::string>(&json)->value_name("FILE"),
       "JSON output (default: benchmark_<date-time>.json)")
      ("use_gpu", po::bool_switch(&use_gpu), "run on the GPU (CUDA build and GPU needed): CUDA kernels where they exist, the CPU for the rest")
      ("cuda_graph", po::bool_switch(&spec.cuda_graph), "with --use_gpu: replay repeated runs of a grid point as CUDA graphs");
  // clang-format on
  opts.add(global_options(local, help));
  parse_args("benchmark", args, opts, {});
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout,
               "tfhost benchmark --model PATH [--optimized_model PATH] [--batch_sizes B...] "
               "[--sequence_lengths S...] ...",
               kAbout, opts);
    return 0;
  }
  if (model_path.empty()) throw UsageError("benchmark", "missing --model");
  for (int64_t v : batches)
    if (v <= 0) throw UsageError("benchmark", "--batch_sizes must be > 0");
  for (int64_t v : sequences)
    if (v <= 0) throw UsageError("benchmark", "--sequence_lengths must be > 0");
  for (int64_t v : pasts)
    if (v < 0) throw UsageError("benchmark", "--past_sequence_lengths must be >= 0");
  if (spec.iterations <= 0 || spec.warmup < 0 || spec.threads < 0)
    throw UsageError("benchmark", "--samples must be > 0, --warmup and --threads >= 0");
  if (spec.cuda_graph && !use_gpu) throw UsageError("benchmark", "--cuda_graph needs --use_gpu");
  if (use_gpu) pipeline::check_device(pipeline::Device::Cuda, "--use_gpu", "leave out --use_gpu");
  spec.device = use_gpu ? TFH_DEVICE_CUDA : TFH_DEVICE_CPU;
  spec.batch = batches;
  spec.sequence = sequences;
  spec.past = pasts;
  const std::string stamp = timestamp();
  if (csv.empty()) csv = "benchmark_" + stamp + ".csv";
  if (json.empty()) json = "benchmark_" + stamp + ".json";

  auto registry = make_registry(g);
  const plugin::InputGenEntry& gen = runtime::pick_generator(*registry, dummy, model_type);
  auto original = ir::Model::load(model_path);
  original->infer_shapes(&registry->shape_hooks());
  std::unique_ptr<ir::Model> optimized;
  std::string optimized_label = "optimized";
  if (!optimized_path.empty()) {
    optimized = ir::Model::load(optimized_path);
  } else {
    const std::string type = model_type.empty() ? "core" : model_type;
    optimized = ir::Model::load(model_path);
    pipeline::run_passes(pipeline::plan_preset(*registry, type, {}, "--model_type"), *registry,
                         *optimized);
    optimized_label = "optimized (" + type + ")";
  }
  optimized->infer_shapes(&registry->shape_hooks());
  std::cerr << "benchmark: " << model_path << ", " << spec.batch.size() * spec.sequence.size() *
                                                     spec.past.size()
            << " points x 2 models, " << spec.warmup << " + " << spec.iterations
            << " runs each\n";
  const auto rows = sweep(*registry, gen, {{"original", original.get()}, {optimized_label, optimized.get()}},
                          spec, &std::cerr);
  print_markdown(rows, std::cout);
  write_csv(rows, csv);
  write_json(rows, json);
  std::cout << "\nResults: " << csv << ", " << json << "\n";
  return 0;
}

}  // namespace tfh::cli
