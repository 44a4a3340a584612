#include "host/cli/common.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "host/plugin/host_api.h"
#include "host/util/error.h"
#include "kernels/common/device_info.h"

namespace tfh::cli {

po::options_description global_options(GlobalOptions& g, bool& help) {
  po::options_description d("Global options");
  // clang-format off
  d.add_options()
      ("help,h", po::bool_switch(&help), "show this help")
      ("verbose,v", po::bool_switch(&g.verbose), "say more: plugins, parameters, timings")
      ("plugin-path",
       po::value<std::vector<std::string>>(&g.plugin_path)->composing()->value_name("DIR"),
       "look for plugins here first (repeatable; then $TFHOST_PLUGIN_PATH, then the "
       "built-in plugin folder)");
  // clang-format on
  return d;
}

GlobalOptions merge(const GlobalOptions& before, const GlobalOptions& after) {
  GlobalOptions g = before;
  g.verbose = before.verbose || after.verbose;
  g.plugin_path.insert(g.plugin_path.end(), after.plugin_path.begin(), after.plugin_path.end());
  return g;
}

po::variables_map parse_args(const std::string& sub, const std::vector<std::string>& args,
                             const po::options_description& opts,
                             const po::positional_options_description& positional) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(opts).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(sub, e.what());
  }
  return vm;
}

std::unique_ptr<plugin::Registry> make_registry(const GlobalOptions& g,
                                                const pipeline::PluginsSection& plugins) {
  for (const auto& dir : g.plugin_path) {
    std::error_code ec;
    TFH_CHECK(std::filesystem::is_directory(dir, ec), "--plugin-path '", dir,
              "': no such directory");
  }
  // Plugins' info messages (a fusion report, for one) are for the user; debug ones for -v.
  plugin::set_log_level(g.verbose ? TFH_LOG_DEBUG : TFH_LOG_INFO);
  auto registry = std::make_unique<plugin::Registry>();
  pipeline::load_plugins(*registry, plugins, g.plugin_path);
  if (g.verbose)
    for (const auto& lib : registry->plugins())
      std::cerr << "tfhost: plugin " << lib->name() << " " << plugin_file(*lib) << "\n";
  return registry;
}

std::string plugin_file(const plugin::PluginLibrary& lib) {
  const std::string& p = lib.path();
  return p.empty() || p[0] == '<' ? "built into tfhost" : p;
}

ModelStats model_stats(const ir::Graph& g) {
  ModelStats s;
  s.nodes = g.num_nodes();
  for (const auto& n : g.nodes()) {
    const bool onnx = n->domain().empty() || n->domain() == "ai.onnx";
    const bool norm =
        n->op_type() == "LayerNormalization" || n->op_type() == "SimplifiedLayerNormalization";
    if (n->domain() == "com.microsoft" || (onnx && norm)) ++s.fused[n->op_type()];
  }
  return s;
}

namespace {

void print_progress(std::ostream& out, size_t i, size_t n, const pipeline::PassResult& r) {
  std::ostringstream line;
  line << "[" << i + 1 << "/" << n << "] " << r.name << ": " << r.changed << " changed ("
       << std::fixed << std::setprecision(2) << r.seconds << " s)";
  out << line.str() << std::endl;  // flushed: progress is for watching a long run
}

void print_stats(std::ostream& out, const ModelStats& before, const ModelStats& after) {
  out << "nodes: " << before.nodes << " -> " << after.nodes << "\n";
  if (after.fused.empty()) out << "Fused operators: none\n";
  for (const auto& kv : after.fused) out << "Fused " << kv.first << ": " << kv.second << "\n";
}

}  // namespace

void execute_plan(const pipeline::Plan& plan, const plugin::Registry& registry,
                  const GlobalOptions& g, std::ostream& out) {
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  auto t0 = Clock::now();
  auto model = ir::Model::load(plan.input);
  // Before the passes, which may take long: an output that would overwrite a file the model reads
  // (its external data) or that is not a regular file is refused now, not after the work.
  model->check_save_path(plan.output, plan.save);
  const ModelStats before = model_stats(model->graph());
  out << "loaded " << plan.input << " in " << std::fixed << std::setprecision(2)
      << seconds_since(t0) << " s: " << before.nodes << " nodes\n";
  if (g.verbose)
    for (const auto& p : plan.passes)
      std::cerr << "tfhost: " << p.entry->name << " " << pipeline::format_params(p.params) << "\n";
  const auto results = pipeline::run_passes(
      plan.passes, registry, *model,
      [&out](size_t i, size_t n, const pipeline::PassResult& r) { print_progress(out, i, n, r); });
  out << pipeline::describe_levels(plan.passes, results);
  t0 = Clock::now();
  model->save(plan.output, plan.save);
  out << "saved " << plan.output << " in " << std::fixed << std::setprecision(2)
      << seconds_since(t0) << " s\n";
  print_stats(out, before, model_stats(model->graph()));
}

std::string version_string() {
  std::ostringstream os;
  os << "tfhost " << TFH_VERSION << " (plugin ABI " << TFH_ABI_MIN_SUPPORTED << ".."
     << TFH_ABI_VERSION << ", devices: " << kernels::describe_devices() << ")";
  return os.str();
}

void print_help(std::ostream& os, const std::string& usage, const std::string& about,
                const po::options_description& opts) {
  os << "Usage: " << usage << "\n\n" << about << "\n\n" << opts << "\n";
}

}  // namespace tfh::cli
