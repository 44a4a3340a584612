// tfhost convert FAMILY --checkpoint DIR --output OUT: builds an ONNX model straight from a
// checkpoint with the family plugin's `<family>.from_checkpoint` converter (no Python, no PyTorch).
#include <chrono>
#include <iomanip>
#include <iostream>

#include "host/cli/common.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Builds an ONNX model from a checkpoint with the converter FAMILY.from_checkpoint of the\n"
    "family's plugin (for gpt2: a Hugging Face save_pretrained directory, config.json +\n"
    "model.safetensors, into the fused model with past state in onnxruntime convert_to_onnx's\n"
    "I/O layout). The output is written atomically; nothing is written on error.";

}  // namespace

int convert_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;
  bool help = false;
  std::string family, checkpoint, output, precision;
  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
      ("family", po::value<std::string>(&family)->value_name("FAMILY"),
       "the model family whose plugin converts (positional: tfhost convert gpt2 ...)")
      ("checkpoint", po::value<std::string>(&checkpoint)->value_name("DIR"),
       "the checkpoint directory (required)")
      ("output,o", po::value<std::string>(&output)->value_name("PATH"), "the ONNX model to write (required)")
      ("precision,p", po::value<std::string>(&precision)->default_value("fp32"),
       "weights and computation: fp32 or fp16 (the converter's choices)");
  // clang-format on
  opts.add(global_options(local, help));
  po::positional_options_description pos;
  pos.add("family", 1);
  parse_args("convert", args, opts, pos);
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout, "tfhost convert FAMILY --checkpoint DIR --output PATH [-p fp32]",
               kAbout, opts);
    return 0;
  }
  if (family.empty()) throw UsageError("convert", "missing FAMILY (e.g. tfhost convert gpt2 ...)");
  if (checkpoint.empty()) throw UsageError("convert", "missing --checkpoint");
  if (output.empty()) throw UsageError("convert", "missing --output");

  auto registry = make_registry(g);
  const std::string name = family + ".from_checkpoint";
  const plugin::PassEntry* entry = registry->find_pass(name);
  TFH_CHECK(entry, "no converter '", name, "': no loaded plugin converts ", family,
            " checkpoints (see tfhost plugins)");
  TFH_CHECK(entry->kind == plugin::PassKind::Converter && entry->converter->builds_model,
            "'", name, "' does not build a model from a checkpoint");
  std::map<std::string, std::string> with{{"checkpoint", checkpoint}};
  for (const plugin::ParamSpec& p : entry->params)
    if (p.name == "precision") with["precision"] = precision;
  if (!with.count("precision") && precision != "fp32")
    throw UsageError("convert", "'" + name + "' takes no precision: -p " + precision);
  const plugin::Params params = plugin::Params::resolve(entry->params, with, name, "convert");

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  ir::Model model;
  model.skeleton().set_ir_version(8);
  model.skeleton().set_producer_name("tfhost");
  model.skeleton().set_producer_version(TFH_VERSION);
  model.check_save_path(output);
  registry->run_pass(*entry, model, params);
  const double build_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto t1 = Clock::now();
  model.save(output);
  const double save_s = std::chrono::duration<double>(Clock::now() - t1).count();
  size_t bytes = 0;
  for (const ir::Value* v : model.graph().initializers()) bytes += v->initializer()->nbytes();
  std::cout << std::fixed << std::setprecision(2) << "built " << name << " from " << checkpoint
            << " in " << build_s << " s: " << model.graph().num_nodes() << " nodes, "
            << model.graph().inputs().size() << " inputs, " << model.graph().outputs().size()
            << " outputs, " << std::setprecision(1) << bytes / 1e6 << " MB of weights\n"
            << std::setprecision(2) << "saved " << output << " in " << save_s << " s\n";
  return 0;
}

}  // namespace tfh::cli
