// tfhost optimize: the flags of `python -m onnxruntime.transformers.optimizer`, mapped onto the
// registry: --model_type picks a preset, --disable_X drops the passes named "<family>.X", the
// other switches are handed to every pass that declares a parameter of the same name.
#include <algorithm>
#include <iostream>

#include "host/cli/common.h"
#include "host/pipeline/suggest.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Optimizes one model the way onnxruntime.transformers.optimizer does, with the same flags.\n"
    "Without --model_type only the core cleanup runs; with it, that model type's passes (see\n"
    "`tfhost plugins`). --opt_level 0 re-saves the model unchanged (conversions such as\n"
    "--float16 still apply). --disable_X removes the passes named <family>.X; the other switches\n"
    "(and --num_heads, --hidden_size) go to every pass that declares a parameter of that name.\n"
    "The input is never modified; the output is written atomically.";

// --disable_X flag -> the last segment of the pass names it removes.
const std::pair<const char*, const char*> kDisables[] = {
    {"disable_gelu", "gelu"},
    {"disable_layer_norm", "layer_norm"},
    {"disable_attention", "attention"},
    {"disable_skip_layer_norm", "skip_layer_norm"},
    {"disable_embed_layer_norm", "embed_layer_norm"},
    {"disable_bias_skip_layer_norm", "bias_skip_layer_norm"},
    {"disable_bias_gelu", "bias_gelu"},
    {"disable_shape_inference", "shape_inference"},
};

// Switches that only tune passes (forwarded as parameters), with their help text.
const std::pair<const char*, const char*> kSwitches[] = {
    {"enable_gelu_approximation", "replace Gelu by FastGelu (adds <family>.gelu_approximation)"},
    {"use_mask_index", "Attention takes a 1D mask index instead of the raw mask"},
    {"use_raw_attention_mask", "Attention takes the raw 2D attention mask"},
    {"no_attention_mask", "the model has no attention mask input"},
    {"use_multi_head_attention", "fuse into MultiHeadAttention instead of Attention"},
    {"disable_multi_head_attention_bias", "keep the QKV bias out of MultiHeadAttention"},
    {"use_group_norm", "fuse GroupNorm (diffusion models)"},
};

struct Options {
  std::string input, output, model_type;
  int64_t num_heads = 0, hidden_size = 0;
  int opt_level = -1;  // -1: not given
  bool float16 = false, input_int32 = false, use_gpu = false, only_onnxruntime = false;
  bool use_external_data_format = false;
  std::map<std::string, bool> flags;  // every --disable_X and switch, by name
};

po::options_description make_options(Options& o) {
  po::options_description d("Options");
  // clang-format off
  d.add_options()
      ("input", po::value(&o.input)->required()->value_name("PATH"), "the ONNX model to optimize")
      ("output", po::value(&o.output)->required()->value_name("PATH"),
       "where to write the optimized model")
      ("model_type", po::value(&o.model_type)->value_name("TYPE"),
       "a model type a plugin serves (bert, gpt2, ...); default: core cleanup only")
      ("num_heads", po::value(&o.num_heads)->default_value(0)->value_name("N"),
       "attention heads (0 = detect)")
      ("hidden_size", po::value(&o.hidden_size)->default_value(0)->value_name("N"),
       "hidden size (0 = detect)")
      ("float16", po::bool_switch(&o.float16), "convert to float16 (core.float16, keep_io_types)")
      ("input_int32", po::bool_switch(&o.input_int32), "int32 graph inputs (core.input_int32)")
      ("opt_level", po::value(&o.opt_level)->value_name("0|1|2|99"),
       "0 = no optimization (a lossless re-save); others run the passes")
      ("use_gpu", po::bool_switch(&o.use_gpu), "optimize for the CUDA runtime (not available yet)")
      ("only_onnxruntime", po::bool_switch(&o.only_onnxruntime),
       "no family fusions: only the core cleanup")
      ("use_external_data_format", po::bool_switch(&o.use_external_data_format),
       "write the weights to <output>.data");
  // clang-format on
  for (const auto& dis : kDisables)
    d.add_options()(dis.first, po::bool_switch(&o.flags[dis.first]),
                    ("remove the <family>." + std::string(dis.second) + " passes").c_str());
  for (const auto& sw : kSwitches)
    d.add_options()(sw.first, po::bool_switch(&o.flags[sw.first]), sw.second);
  return d;
}

// Fails at once for a flag whose capability is not in this build; looking the pass up makes the
// flag work by itself once the pass is registered.
void check_available(const Options& o, const plugin::Registry& r) {
  TFH_CHECK(!o.float16 || r.find_pass("core.float16"),
            "--float16 is not available yet: no pass 'core.float16' is registered");
  TFH_CHECK(!o.input_int32 || r.find_pass("core.input_int32"),
            "--input_int32 is not available yet: no pass 'core.input_int32' is registered");
  TFH_CHECK(!o.use_gpu || pipeline::runtime_available(),
            "--use_gpu is not available yet: this tfhost has no CUDA runtime");
}

bool last_segment_is(const std::string& name, const std::string& seg) {
  const auto dot = name.rfind('.');
  return (dot == std::string::npos ? name : name.substr(dot + 1)) == seg;
}

std::vector<pipeline::PlannedPass> plan_passes(const Options& o, const plugin::Registry& r) {
  pipeline::SharedParams shared;
  if (o.num_heads > 0) shared["num_heads"] = YAML::Node(o.num_heads);
  if (o.hidden_size > 0) shared["hidden_size"] = YAML::Node(o.hidden_size);
  for (const auto& kv : o.flags)
    if (kv.second) shared[kv.first] = YAML::Node(true);

  std::vector<pipeline::PlannedPass> plan;
  const std::string type = o.model_type.empty() || o.only_onnxruntime ? "core" : o.model_type;
  if (!o.model_type.empty()) pipeline::find_model_type(r, o.model_type, "--model_type");
  if (o.opt_level != 0) {
    for (auto& p : pipeline::plan_preset(r, type, shared, o.input)) {
      bool keep = true;
      for (const auto& dis : kDisables)
        keep = keep && !(o.flags.at(dis.first) && last_segment_is(p.entry->name, dis.second));
      if (keep) plan.push_back(std::move(p));
    }
    const std::string approx = type + ".gelu_approximation";
    if (o.flags.at("enable_gelu_approximation") && r.find_pass(approx))
      plan.push_back(
          pipeline::plan_pass(r, approx, {}, shared, "--enable_gelu_approximation", o.input));
  }
  // As the Python tool: float16 (keeping float32 graph inputs/outputs), then int32 inputs.
  YAML::Node fp16_with(YAML::NodeType::Map);
  if (o.float16) {
    if (const auto* p = r.find_pass("core.float16"))
      for (const auto& spec : p->params)
        if (spec.name == "keep_io_types") fp16_with["keep_io_types"] = true;
    plan.push_back(pipeline::plan_pass(r, "core.float16", fp16_with, shared, "--float16", o.input));
  }
  if (o.input_int32)
    plan.push_back(
        pipeline::plan_pass(r, "core.input_int32", {}, shared, "--input_int32", o.input));
  return plan;
}

}  // namespace

int optimize_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;  // what follows the subcommand; merged with `global` after parsing
  bool help = false;
  Options o;
  po::options_description opts = make_options(o);
  opts.add(global_options(local, help));  // includes --verbose, also a flag of the Python tool
  // Answered before parsing, which would insist on --input and --output.
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    print_help(std::cout, "tfhost optimize --input IN --output OUT [--model_type TYPE] [flags]",
               kAbout, opts);
    return 0;
  }
  parse_args("optimize", args, opts, {});
  const GlobalOptions g = merge(global, local);
  if (o.opt_level != -1 && o.opt_level != 0 && o.opt_level != 1 && o.opt_level != 2 &&
      o.opt_level != 99)
    throw UsageError("optimize",
                     "--opt_level must be 0, 1, 2 or 99, not " + std::to_string(o.opt_level));
  if (o.num_heads < 0 || o.hidden_size < 0)
    throw UsageError("optimize", "--num_heads and --hidden_size must be >= 0 (0 = detect)");

  auto registry = make_registry(g);
  check_available(o, *registry);
  pipeline::Plan plan;
  plan.input = o.input;
  plan.output = o.output;
  plan.save.use_external_data = o.use_external_data_format;
  pipeline::check_output_path(o.input, o.output, "");
  plan.passes = plan_passes(o, *registry);
  if (g.verbose && o.opt_level > 0)
    std::cerr << "tfhost: --opt_level " << o.opt_level
              << ": ONNX Runtime's own graph optimizations are applied when ORT loads the model\n";
  execute_plan(plan, *registry, g, std::cout);
  return 0;
}

}  // namespace tfh::cli
