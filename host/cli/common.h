// What every subcommand shares: global options, argument parsing with usage errors, the plugin
// registry, executing a plan (load, passes with progress, atomic save) and the statistics.
#pragma once

#include <boost/program_options.hpp>
#include <iosfwd>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "host/pipeline/config.h"
#include "host/pipeline/pipeline.h"
#include "host/plugin/registry.h"

namespace tfh::cli {

namespace po = boost::program_options;

struct GlobalOptions {
  bool verbose = false;
  std::vector<std::string> plugin_path;  // --plugin-path, searched before everything else
};

// A mistake in the command line itself: exit status 2 and a pointer to the subcommand's help.
class UsageError : public std::runtime_error {
 public:
  UsageError(std::string subcommand, const std::string& msg)
      : std::runtime_error(msg), subcommand_(std::move(subcommand)) {}
  const std::string& subcommand() const { return subcommand_; }

 private:
  std::string subcommand_;
};

// --help, --verbose/-v and --plugin-path, accepted before and after the subcommand.
po::options_description global_options(GlobalOptions& g, bool& help);

// Global options given before the subcommand, then after it.
GlobalOptions merge(const GlobalOptions& before, const GlobalOptions& after);

// Parses a subcommand's arguments; Program_options errors become UsageError(sub, ...).
po::variables_map parse_args(const std::string& sub, const std::vector<std::string>& args,
                             const po::options_description& opts,
                             const po::positional_options_description& positional);

// The registry with the built-in core plugin plus what the search path (--plugin-path first) and
// the config's `plugins:` section ask for.
std::unique_ptr<plugin::Registry> make_registry(const GlobalOptions& g,
                                                const pipeline::PluginsSection& plugins = {});

// A plugin's file, or "built into tfhost" for the core plugin.
std::string plugin_file(const plugin::PluginLibrary& lib);

// Fused-operator statistics, like onnxruntime.transformers' get_fused_operator_statistics: every
// com.microsoft op plus the ONNX-domain normalizations a fusion produces.
struct ModelStats {
  size_t nodes = 0;
  std::map<std::string, size_t> fused;  // op type -> count
};
ModelStats model_stats(const ir::Graph& g);

// Loads plan.input, runs the passes with one progress line each, saves plan.output (temp file +
// rename, so a failure never leaves a partial output) and prints node counts and fused operators.
void execute_plan(const pipeline::Plan& plan, const plugin::Registry& registry,
                  const GlobalOptions& g, std::ostream& out);

// After execute_plan: the plan's verify and benchmark sections; 1 when verify fails, else 0.
// Where verify and benchmark run: cuda, or auto with a CUDA build and a GPU present -> CUDA.
TfhDevice checks_device(pipeline::Device d);
int run_plan_checks(const pipeline::Plan& plan, const plugin::Registry& registry,
                    std::ostream& out);

// The subcommands (one file each). `args` excludes the subcommand's name.
int run_command(const std::vector<std::string>& args, const GlobalOptions& g);
int optimize_command(const std::vector<std::string>& args, const GlobalOptions& g);
int plugins_command(const std::vector<std::string>& args, const GlobalOptions& g);
int check_command(const std::vector<std::string>& args, const GlobalOptions& g);
int perf_command(const std::vector<std::string>& args, const GlobalOptions& g);
int compare_command(const std::vector<std::string>& args, const GlobalOptions& g);
int benchmark_command(const std::vector<std::string>& args, const GlobalOptions& g);
int profile_command(const std::vector<std::string>& args, const GlobalOptions& g);
int generate_command(const std::vector<std::string>& args, const GlobalOptions& g);
int convert_command(const std::vector<std::string>& args, const GlobalOptions& g);

// "tfhost 0.1.0 (plugin ABI 1..1, devices: cpu)".
std::string version_string();

// "Usage: ..." plus the description of `opts`, for `tfhost SUB --help`.
void print_help(std::ostream& os, const std::string& usage, const std::string& about,
                const po::options_description& opts);

}  // namespace tfh::cli
