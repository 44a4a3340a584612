// tfhost run CONFIG [--set key=value]... [--dry-run]: a YAML pipeline, end to end.
#include <iostream>

#include "host/cli/common.h"
#include "kernels/common/device_info.h"
#include "host/pipeline/config.h"
#include "host/pipeline/pipeline.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Runs a YAML pipeline: loads the model, runs its steps in order (each `- pass: NAME` with its\n"
    "`with:` parameters, each `- preset: FAMILY` expanded to that model type's passes), saves the\n"
    "output (never over the input) and prints node counts and fused-operator statistics.\n"
    "Then, when the config has them: `verify:` runs the original and the saved model on the same\n"
    "dummy inputs and checks every output within tolerance (exit status 1 when not), and\n"
    "`benchmark:` measures both over its batch x sequence x past grid.\n"
    "\n"
    "Config keys: version, model {path, family, num_heads, hidden_size}, output,\n"
    "device (cpu|cuda|auto), plugins {search, load}, pipeline [steps], verify {inputs, with,\n"
    "samples, seed, tolerance}, benchmark {batch, sequence, past, warmup, iterations},\n"
    "save {use_external_data_format}. Unknown keys are errors. Relative paths written in the\n"
    "file are relative to the config file's folder; paths given with --set are relative to the\n"
    "working directory.\n"
    "\n"
    "--set writes a dotted key before validation; list entries are numbered from 0 and the\n"
    "value is YAML:  --set output=out.onnx  --set pipeline.1.with.keep_io_types=true\n"
    "--set verify=null removes a section.";

}  // namespace

int run_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;  // what follows the subcommand; merged with `global` after parsing
  bool help = false, dry_run = false;
  std::string config_path;
  std::vector<std::string> sets;
  po::options_description opts("Options"), hidden;
  // clang-format off
  opts.add_options()
      ("set", po::value<std::vector<std::string>>(&sets)->composing()->value_name("KEY=VALUE"),
       "override a config key (repeatable)")
      ("dry-run", po::bool_switch(&dry_run),
       "resolve and validate everything, load the plugins, print the plan; write nothing");
  // clang-format on
  opts.add(global_options(local, help));
  hidden.add_options()("config", po::value<std::string>(&config_path));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("config", 1);
  parse_args("run", args, all, pos);
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout, "tfhost run CONFIG [--set KEY=VALUE]... [--dry-run]", kAbout, opts);
    return 0;
  }
  if (config_path.empty()) throw UsageError("run", "missing CONFIG (a YAML pipeline file)");

  const pipeline::Config config = pipeline::load_config(config_path, sets);
  auto registry = make_registry(g, config.plugins);
  const pipeline::Plan plan = pipeline::make_plan(config, *registry);
  if (dry_run) {
    pipeline::print_plan(config, plan, *registry, std::cout);
    std::cout << "dry run: nothing was written\n";
    return 0;
  }
  execute_plan(plan, *registry, g, std::cout);
  if (plan.device == pipeline::Device::Auto && (config.verify || config.benchmark))
    std::cout << "device: auto: verify and benchmark run on the "
              << (checks_device(plan.device) == TFH_DEVICE_CUDA ? "GPU" : "CPU") << " ("
              << kernels::describe_devices() << ")\n";
  return run_plan_checks(plan, *registry, std::cout);
}

}  // namespace tfh::cli
