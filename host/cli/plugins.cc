// tfhost plugins [list | show NAME]: what the loaded plugins contribute, from their descriptors.
#include <iostream>

#include <boost/filesystem/path.hpp>

#include "host/cli/common.h"
#include "host/pipeline/suggest.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Lists every loaded plugin (the built-in core plugin first) with its file, version, ABI and\n"
    "license, and each contribution: fusions, converters, input generators, kernels, ops and\n"
    "model types, with descriptions and parameters (name, type, default). `show NAME` prints one\n"
    "plugin, or one contribution (a pass, input generator or model type).\n"
    "\n"
    "A file in the plugin folders that cannot be used (a build for a newer ABI, a library that\n"
    "is no tfhost plugin, a failed init) is skipped with a warning and listed as refused, with\n"
    "the reason; naming it in a config's `plugins: {load: [...]}` makes it an error instead.";

const char* str(const char* s) { return s ? s : ""; }

void print_params(std::ostream& os, const std::vector<plugin::ParamSpec>& params) {
  for (const auto& p : params)
    os << "        " << p.name << " (" << plugin::param_type_name(p.type) << ", "
       << (p.default_yaml ? "default " + *p.default_yaml : std::string("required")) << ")  "
       << p.description << "\n";
}

void print_pass(std::ostream& os, const plugin::PassEntry& p) {
  const bool fusion = p.kind == plugin::PassKind::Fusion;
  const char* since = fusion ? str(p.fusion->since) : str(p.converter->since);
  os << "    " << p.name << "  " << p.description;
  if (*since) os << "  (since " << since << ")";
  if (fusion && p.fusion->produces_op && *p.fusion->produces_op)  // "": changes nothing
    os << "  -> " << (*str(p.fusion->produces_domain) ? p.fusion->produces_domain : "ai.onnx")
       << "." << p.fusion->produces_op;
  os << "\n";
  print_params(os, p.params);
}

void print_input_generator(std::ostream& os, const plugin::InputGenEntry& e) {
  os << "    " << e.name << "  " << e.description << "  (tolerance fp32 " << e.desc->tolerance_fp32
     << ", fp16 " << e.desc->tolerance_fp16 << ")\n";
  print_params(os, e.params);
}

void print_model_type(std::ostream& os, const plugin::ModelTypeEntry& t) {
  os << "    " << t.name << "  " << t.description << "\n";
  os << "        passes: " << pipeline::join_names(t.passes) << "\n";
  if (!t.input_generator.empty()) os << "        inputs: " << t.input_generator << "\n";
}

void print_kernel(std::ostream& os, const plugin::KernelEntry& k) {
  const TfhKernelDesc& d = *k.desc;
  os << "    " << k.name << "  " << (*str(d.domain) ? d.domain : "ai.onnx") << "." << str(d.op_type)
     << " on " << (d.device == TFH_DEVICE_CUDA ? "cuda" : "cpu") << ", opset " << d.since_version
     << (d.end_version ? "-" + std::to_string(d.end_version) : "+") << ", types "
     << (*str(d.type_constraints) ? d.type_constraints : "any") << ", priority " << d.priority
     << "\n";
}

void print_op(std::ostream& os, const plugin::OpEntry& op) {
  os << "    " << (op.domain.empty() ? "ai.onnx" : op.domain) << "." << op.op_type
     << " (since opset " << op.desc->since_version << ")  " << str(op.desc->description)
     << (op.desc->infer_shapes ? "" : "  [no shape inference]") << "\n";
}

// Registry tables are maps (name -> entry) or vectors of entries.
template <typename K, typename V>
const V& entry_of(const std::pair<const K, V>& kv) {
  return kv.second;
}
template <typename V>
const V& entry_of(const V& v) {
  return v;
}

// One heading per kind, printed only when the plugin has something of that kind.
template <typename Items, typename Print>
void section(std::ostream& os, const char* title, const std::string& plugin, const Items& items,
             Print print) {
  bool any = false;
  for (const auto& item : items) {
    const auto& e = entry_of(item);
    if (e.plugin != plugin) continue;
    if (!any) os << "  " << title << ":\n";
    any = true;
    print(os, e);
  }
}

void print_plugin(std::ostream& os, const plugin::Registry& r, const plugin::PluginLibrary& lib) {
  const TfhPluginInfo* info = lib.info();
  os << lib.name() << " " << str(info->version) << "  " << str(info->description) << "\n";
  os << "  file: " << plugin_file(lib) << "  ABI: " << info->abi_version
     << "  license: " << str(info->license) << "\n";
  const std::string& name = lib.name();
  auto is_fusion = [](const plugin::PassEntry& p) { return p.kind == plugin::PassKind::Fusion; };
  bool any = false;
  for (const bool fusions : {true, false}) {
    any = false;
    for (const auto& kv : r.passes()) {
      if (kv.second.plugin != name || is_fusion(kv.second) != fusions) continue;
      if (!any) os << "  " << (fusions ? "fusions" : "converters") << ":\n";
      any = true;
      print_pass(os, kv.second);
    }
  }
  section(os, "input generators", name, r.input_generators(), print_input_generator);
  section(os, "kernels", name, r.kernels(), print_kernel);
  section(os, "ops", name, r.ops(), print_op);
  section(os, "model types", name, r.model_types(), print_model_type);
}

void print_refused(std::ostream& os, const plugin::RefusedPlugin& r) {
  os << "refused: " << r.path << "\n  reason: " << r.reason << "\n";
}

// Prints the plugin or contribution called `name`; false when nothing has that name.
bool show(std::ostream& os, const plugin::Registry& r, const std::string& name) {
  for (const auto& lib : r.plugins())
    if (lib->name() == name) {
      print_plugin(os, r, *lib);
      return true;
    }
  if (const auto* p = r.find_pass(name)) {
    os << (p->kind == plugin::PassKind::Fusion ? "fusion" : "converter") << " of plugin "
       << p->plugin << ":\n";
    print_pass(os, *p);
    return true;
  }
  if (const auto* g = r.find_input_generator(name)) {
    os << "input generator of plugin " << g->plugin << ":\n";
    print_input_generator(os, *g);
    return true;
  }
  if (const auto* t = r.find_model_type(name)) {
    os << "model type of plugin " << t->plugin << ":\n";
    print_model_type(os, *t);
    return true;
  }
  return false;
}

std::vector<std::string> all_names(const plugin::Registry& r) {
  std::vector<std::string> names;
  for (const auto& lib : r.plugins()) names.push_back(lib->name());
  for (const auto& kv : r.passes()) names.push_back(kv.first);
  for (const auto& kv : r.input_generators()) names.push_back(kv.first);
  for (const auto& kv : r.model_types()) names.push_back(kv.first);
  return names;
}

}  // namespace

int plugins_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;  // what follows the subcommand; merged with `global` after parsing
  bool help = false;
  std::vector<std::string> words;
  po::options_description opts("Options");
  opts.add_options()("words", po::value(&words), "list | show NAME");
  po::options_description visible = global_options(local, help);
  opts.add(visible);
  po::positional_options_description pos;
  pos.add("words", -1);
  parse_args("plugins", args, opts, pos);
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout, "tfhost plugins [list | show NAME]", kAbout, visible);
    return 0;
  }
  const std::string action = words.empty() ? "list" : words[0];
  if (action == "list") {
    if (words.size() > 1) throw UsageError("plugins", "list takes no arguments");
    auto registry = make_registry(g);
    for (size_t i = 0; i < registry->plugins().size(); ++i) {
      if (i) std::cout << "\n";
      print_plugin(std::cout, *registry, *registry->plugins()[i]);
    }
    for (const auto& r : registry->refused()) {
      std::cout << "\n";
      print_refused(std::cout, r);
    }
    return 0;
  }
  if (action != "show")
    throw UsageError("plugins", "unknown action '" + action + "' (expected list or show NAME)");
  if (words.size() != 2) throw UsageError("plugins", "show takes one NAME");
  auto registry = make_registry(g);
  if (show(std::cout, *registry, words[1])) return 0;
  // A plugin that was found but refused: say why rather than "no plugin named".
  for (const auto& r : registry->refused())
    if (boost::filesystem::path(r.path).filename() == "lib" + words[1] + ".so")
      TFH_THROW("plugin '", words[1], "' was refused: ", r.path, ": ", r.reason);
  const auto names = all_names(*registry);
  TFH_THROW("no plugin or contribution named '", words[1], "' (plugins: ",
            pipeline::join_names(std::vector<std::string>(
                names.begin(), names.begin() + registry->plugins().size())),
            ")", pipeline::did_you_mean(words[1], names));
}

}  // namespace tfh::cli
