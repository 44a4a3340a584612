// tfhost optimize: the flags of `python -m onnxruntime.transformers.optimizer`, mapped onto the
// registry: --model_type picks a preset, --disable_X drops the passes named "<family>.X", every
// other flag must reach a pass that acts on it (a parameter of the same name, or the pass the
// flag adds) or the run fails: a flag that silently does nothing would let a user believe the
// model was optimized in a way it was not.
#include <algorithm>
#include <iostream>

#include "host/cli/common.h"
#include "host/pipeline/suggest.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Optimizes one model the way onnxruntime.transformers.optimizer does, with the same flags.\n"
    "Without --model_type only the core cleanup and constant folding run; with it, that model\n"
    "type's passes (see `tfhost plugins`). The input is never modified; the output is written\n"
    "atomically.\n"
    "\n"
    "--disable_X removes the passes named <family>.X (nothing to remove is fine: the fusion is\n"
    "then simply not done). Every other switch, and --num_heads/--hidden_size when not 0 and\n"
    "--provider, goes to each pass that declares a parameter of that name; --enable_X (and\n"
    "--convert_to_packing_mode) also add the pass <model_type>.X when a plugin registers one.\n"
    "A flag that no pass of the run takes is an error (\"not available yet\"), never ignored.\n"
    "\n"
    "--opt_level, as in ONNX Runtime (0 none, 1 basic, 2 extended, 99 all); each level says\n"
    "what it changed at the end:\n"
    "  0          no passes at all: a lossless re-save (--float16/--input_int32 still apply)\n"
    "  1          cleanup (identity/dropout removal, dead code) and constant folding: nodes whose\n"
    "             inputs are all constants computed once by tfhost's CPU kernels\n"
    "  2          1, then the fusions that need no family knowledge: LayerNormalization,\n"
    "             SkipLayerNormalization, Gelu, FastGelu, BiasGelu (core.* passes)\n"
    "  99         everything that applies: the --model_type's passes, in its plugin's order,\n"
    "             then constant folding; without --model_type the same as 2\n"
    "             (with --model_type, 1 and 2 run none of the family's fusions)\n"
    "  not given  99 with --model_type, 1 without; --only_onnxruntime caps it at 1";

// --disable_X: drops the passes whose last name segment is X, and is passed on as a parameter.
// Names and meanings are ORT's (fusion_options.py, optimizer.py).
const std::pair<const char*, const char*> kDisables[] = {
    {"disable_attention", "Attention fusion"},
    {"disable_skip_layer_norm", "SkipLayerNormalization fusion"},
    {"disable_embed_layer_norm", "EmbedLayerNormalization fusion"},
    {"disable_bias_skip_layer_norm", "Add bias + SkipLayerNormalization fusion"},
    {"disable_bias_gelu", "Add bias + Gelu/FastGelu fusion"},
    {"disable_layer_norm", "LayerNormalization fusion"},
    {"disable_gelu", "Gelu fusion"},
    {"disable_shape_inference", "symbolic shape inference"},
    {"disable_group_norm", "GroupNorm fusion (unet, vae)"},
    {"disable_skip_group_norm", "Add + GroupNorm => SkipGroupNorm (unet, vae)"},
    {"disable_packed_kv", "packed KV for cross attention in MultiHeadAttention (unet)"},
    {"disable_packed_qkv", "packed QKV for self attention in MultiHeadAttention (unet)"},
    {"disable_bias_add", "BiasAdd fusion (unet)"},
    {"disable_bias_splitgelu", "BiasSplitGelu fusion (unet)"},
    {"disable_nhwc_conv", "NhwcConv (unet, vae)"},
    {"disable_rotary_embeddings", "RotaryEmbedding fusion"},
    {"disable_symbolic_shape_infer", "symbolic shape inference in --convert_to_packing_mode"},
};

// "attention" for "disable_attention": the last name segment of the passes the flag removes.
std::string disabled_segment(const char* flag) { return std::string(flag).substr(8); }

// Switches that ask for something: each needs a pass that takes it.
struct Switch {
  const char* name;
  const char* help;
  const char* adds;  // suffix of the pass <model_type>.<adds> the switch adds, or nullptr
  bool after_conversions;  // that pass runs after --float16/--input_int32 (as in ORT)
};
const Switch kSwitches[] = {
    {"enable_gelu_approximation", "Gelu/BiasGelu => FastGelu", "gelu_approximation", false},
    {"enable_gemm_fast_gelu", "MatMul + FastGelu => GemmFastGelu", "gemm_fast_gelu", false},
    {"use_mask_index", "Attention takes a 1D mask index (needs right-side padding)", nullptr,
     false},
    {"use_raw_attention_mask", "Attention takes the raw 2D attention mask", nullptr, false},
    {"no_attention_mask", "the model has no attention mask input", nullptr, false},
    {"use_multi_head_attention", "fuse into MultiHeadAttention instead of Attention", nullptr,
     false},
    {"use_group_norm_channels_first", "GroupNorm in NCHW instead of NHWC (unet, vae)", nullptr,
     false},
    {"convert_to_packing_mode", "remove padding: packed attention (BERT-like models)",
     "packing_mode", true},
    {"enable_shared_kv_cache",
     "one key/value buffer per layer for past and present, updated in place (decoding on the "
     "GPU; tfhost's extension, as convert_generation's --past_present_share_buffer)",
     "shared_kv_cache", false},
};

struct Options {
  std::string input, output, model_type, provider;
  int64_t num_heads = 0, hidden_size = 0;
  int opt_level = -1;  // -1: not given
  bool float16 = false, input_int32 = false, use_gpu = false, only_onnxruntime = false;
  bool use_external_data_format = false;
  std::string keep_io_types;  // with --float16: "all" (not given), "none" or names, comma-separated
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
       "attention heads (0 = detect); needs a pass that takes num_heads")
      ("hidden_size", po::value(&o.hidden_size)->default_value(0)->value_name("N"),
       "hidden size (0 = detect); needs a pass that takes hidden_size")
      ("float16", po::bool_switch(&o.float16), "convert to float16 (core.float16, keep_io_types)")
      ("keep_io_types", po::value(&o.keep_io_types)->value_name("all|none|NAMES"),
       "with --float16: the graph inputs/outputs that stay float32 behind Casts: all (default, "
       "as the Python tool), none, or names, comma-separated (--keep_io_types logits)")
      ("input_int32", po::bool_switch(&o.input_int32), "int32 graph inputs (core.input_int32)")
      ("opt_level", po::value(&o.opt_level)->value_name("0|1|2|99"),
       "0 none, 1 cleanup + constant folding, 2 + generic fusions, 99 all (see above)")
      ("use_gpu", po::bool_switch(&o.use_gpu),
       "target CUDA: needs a tfhost built with CUDA and a GPU; passes taking use_gpu get it")
      ("provider", po::value(&o.provider)->value_name("EP"),
       "execution provider with --use_gpu; needs a pass that takes provider")
      ("only_onnxruntime", po::bool_switch(&o.only_onnxruntime),
       "no fusions: only the core cleanup and constant folding")
      ("use_external_data_format", po::bool_switch(&o.use_external_data_format),
       "write the weights to <output>.data");
  // clang-format on
  for (const auto& dis : kDisables)
    d.add_options()(dis.first, po::bool_switch(&o.flags[dis.first]),
                    ("no " + std::string(dis.second) + ": removes the <family>." +
                     disabled_segment(dis.first) + " passes")
                        .c_str());
  for (const auto& sw : kSwitches)
    d.add_options()(sw.name, po::bool_switch(&o.flags[sw.name]),
                    (std::string(sw.help) + (sw.adds ? " (adds <model_type>." +
                                                           std::string(sw.adds) + ")"
                                                     : std::string()))
                        .c_str());
  return d;
}

// Conversions whose pass does not exist yet fail at once; looking the pass up makes the flag
// work by itself once the pass is registered.
void check_conversions(const Options& o, const plugin::Registry& r) {
  if (!o.keep_io_types.empty() && !o.float16)
    throw UsageError("optimize", "--keep_io_types says which inputs/outputs --float16 leaves "
                                 "float32; give --float16 too");
  if (o.float16 && !r.find_pass("core.float16"))
    throw UsageError("optimize",
                     "--float16 is not available yet: no pass 'core.float16' is registered");
  if (o.input_int32 && !r.find_pass("core.input_int32"))
    throw UsageError("optimize", "--input_int32 is not available yet: no pass 'core.input_int32' "
                                 "is registered");
  if (o.use_gpu)
    pipeline::check_device(pipeline::Device::Cuda, "--use_gpu", "leave out --use_gpu");
}

bool last_segment_is(const std::string& name, const std::string& seg) {
  const auto dot = name.rfind('.');
  return (dot == std::string::npos ? name : name.substr(dot + 1)) == seg;
}

pipeline::SharedParams shared_params(const Options& o) {
  pipeline::SharedParams shared;
  if (o.num_heads > 0) shared["num_heads"] = YAML::Node(o.num_heads);
  if (o.hidden_size > 0) shared["hidden_size"] = YAML::Node(o.hidden_size);
  if (!o.provider.empty()) shared["provider"] = YAML::Node(o.provider);
  if (o.use_gpu) shared["use_gpu"] = YAML::Node(true);
  if (!o.model_type.empty()) shared["model_type"] = YAML::Node(o.model_type);
  for (const auto& kv : o.flags)
    if (kv.second) shared[kv.first] = YAML::Node(true);
  return shared;
}

// The passes a switch adds, where a plugin registers them.
void add_switch_passes(const Options& o, const plugin::Registry& r, const std::string& type,
                       bool after_conversions, const pipeline::SharedParams& shared,
                       std::vector<pipeline::PlannedPass>& plan) {
  if (o.opt_level == 0) return;
  for (const auto& sw : kSwitches) {
    if (!o.flags.at(sw.name) || !sw.adds || sw.after_conversions != after_conversions) continue;
    const std::string name = type + "." + sw.adds;
    if (r.find_pass(name))
      plan.push_back(
          pipeline::plan_pass(r, name, {}, shared, "--" + std::string(sw.name), o.input));
  }
}

// --keep_io_types as core.float16's keep_io_types: true (all, or not given), false (none) or the
// list of names (core.float16 checks that each is a graph input or output).
YAML::Node keep_io_types(const Options& o) {
  if (o.keep_io_types.empty() || o.keep_io_types == "all") return YAML::Node(true);
  if (o.keep_io_types == "none") return YAML::Node(false);
  YAML::Node names(YAML::NodeType::Sequence);
  std::string::size_type start = 0;
  while (start <= o.keep_io_types.size()) {
    auto end = o.keep_io_types.find(',', start);
    if (end == std::string::npos) end = o.keep_io_types.size();
    const std::string name = o.keep_io_types.substr(start, end - start);
    if (name.empty())
      throw UsageError("optimize", "--keep_io_types '" + o.keep_io_types +
                                       "' has an empty name; give all, none or names separated "
                                       "by single commas");
    names.push_back(name);
    start = end + 1;
  }
  return names;
}

std::vector<pipeline::PlannedPass> plan_passes(const Options& o, const plugin::Registry& r,
                                               const std::string& type) {
  const pipeline::SharedParams shared = shared_params(o);
  std::vector<pipeline::PlannedPass> plan;
  // Not given: everything that applies with a model type, cleanup and folding without one;
  // --only_onnxruntime: no fusions at all.
  int level = o.opt_level != -1 ? o.opt_level : type != "core" ? 99 : 1;
  if (o.only_onnxruntime) level = std::min(level, 1);
  if (level != 0) {
    for (auto& p : pipeline::plan_opt_level(r, level, type, shared, "--opt_level")) {
      bool keep = true;
      for (const auto& dis : kDisables)
        keep = keep && !(o.flags.at(dis.first) &&
                         last_segment_is(p.entry->name, disabled_segment(dis.first)));
      if (keep) plan.push_back(std::move(p));
    }
  }
  add_switch_passes(o, r, type, false, shared, plan);
  // As the Python tool: float16 (keeping float32 graph inputs/outputs unless --keep_io_types
  // says otherwise), then int32 inputs.
  if (o.float16) {
    YAML::Node fp16_with(YAML::NodeType::Map);
    if (const auto* p = r.find_pass("core.float16"))
      for (const auto& spec : p->params)
        if (spec.name == "keep_io_types") fp16_with["keep_io_types"] = keep_io_types(o);
    plan.push_back(pipeline::plan_pass(r, "core.float16", fp16_with, shared, "--float16", o.input));
  }
  if (o.input_int32)
    plan.push_back(
        pipeline::plan_pass(r, "core.input_int32", {}, shared, "--input_int32", o.input));
  add_switch_passes(o, r, type, true, shared, plan);
  return plan;
}

bool takes(const plugin::PassEntry& pass, const std::string& param) {
  for (const auto& spec : pass.params)
    if (spec.name == param) return true;
  return false;
}

// Every flag that asks for something must reach a planned pass. The message says whether a pass
// elsewhere takes it (another --model_type would work) or nothing loaded does yet.
void check_flags_consumed(const Options& o, const plugin::Registry& r, const std::string& type,
                          const std::vector<pipeline::PlannedPass>& plan) {
  std::vector<std::pair<std::string, const char*>> asked;  // parameter name, pass suffix
  for (const auto& sw : kSwitches)
    if (o.flags.at(sw.name)) asked.emplace_back(sw.name, sw.adds);
  if (o.num_heads > 0) asked.emplace_back("num_heads", nullptr);
  if (o.hidden_size > 0) asked.emplace_back("hidden_size", nullptr);
  if (!o.provider.empty()) asked.emplace_back("provider", nullptr);
  for (const auto& [param, adds] : asked) {
    const std::string added = adds ? type + "." + adds : "";
    bool used = false;
    for (const auto& p : plan) used = used || takes(*p.entry, param) || p.entry->name == added;
    if (used) continue;
    if (o.opt_level == 0)
      throw UsageError("optimize",
                       "--" + param + " has no effect with --opt_level 0 (no passes run)");
    std::vector<std::string> elsewhere;
    for (const auto& kv : r.passes())
      if (takes(kv.second, param) || (adds && last_segment_is(kv.first, adds)))
        elsewhere.push_back(kv.first);
    // "run": after --disable_X, a pass of the model type that was dropped does not count.
    const std::string what = "none of the passes run for model type '" + type +
                             "' takes parameter '" + param + "'" +
                             (adds ? " and no pass '" + added + "' is registered" : "");
    if (elsewhere.empty())
      throw UsageError("optimize", "--" + param + " is not available yet: " + what);
    throw UsageError("optimize", "--" + param + " is not used here: " + what +
                                     " (passes that take it: " +
                                     pipeline::join_names(elsewhere) + ")");
  }
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
  check_conversions(o, *registry);
  if (!o.model_type.empty()) pipeline::find_model_type(*registry, o.model_type, "--model_type");
  const std::string type = o.model_type.empty() || o.only_onnxruntime ? "core" : o.model_type;
  pipeline::Plan plan;
  plan.input = o.input;
  plan.output = o.output;
  plan.device = o.use_gpu ? pipeline::Device::Cuda : pipeline::Device::Auto;
  plan.save.use_external_data = o.use_external_data_format;
  pipeline::check_output_path(o.input, o.output, "");
  plan.passes = plan_passes(o, *registry, type);
  check_flags_consumed(o, *registry, type, plan.passes);
  execute_plan(plan, *registry, g, std::cout);
  return 0;
}

}  // namespace tfh::cli
