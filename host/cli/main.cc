// tfhost: the dispatcher. Global options may come before the subcommand (and after it, where each
// subcommand accepts them too); every failure ends as one line on stderr and a non-zero status.
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "host/cli/common.h"
#include "host/pipeline/suggest.h"
#include "host/util/error.h"

namespace {

using tfh::cli::GlobalOptions;

struct Subcommand {
  const char* name;
  const char* summary;
  int (*main)(const std::vector<std::string>&, const GlobalOptions&);  // null: not built yet
};

const Subcommand kSubcommands[] = {
    {"run", "run a YAML pipeline: load, run passes in order, save, print statistics",
     tfh::cli::run_command},
    {"optimize", "optimize one model with the flags of onnxruntime.transformers.optimizer",
     tfh::cli::optimize_command},
    {"plugins", "list the loaded plugins and what they contribute (list | show NAME)",
     tfh::cli::plugins_command},
    {"check", "run models on ONNX test data (DIR/test_data_set_N) and compare outputs",
     tfh::cli::check_command},
    {"compare", "compare outputs of two models on the same dummy inputs",
     tfh::cli::compare_command},
    {"perf", "latency percentiles and throughput of a model on dummy inputs",
     tfh::cli::perf_command},
    {"benchmark", "latency over batch x sequence x past sizes, original against optimized",
     tfh::cli::benchmark_command},
    {"profile", "per-node timing, a summary per op type and a Chrome trace",
     tfh::cli::profile_command},
    {"generate", "greedy decoding with past state: the tokens a decoder model generates",
     tfh::cli::generate_command},
    {"convert", "build an ONNX model from a checkpoint (FAMILY.from_checkpoint)",
     tfh::cli::convert_command},
};

// One line: an exception message must not break the "tfhost: error:" contract.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// Exit status 2 for every error (bad input, bad usage); 1 is kept for "ran, and found a
// mismatch" (check, compare, run's verify), 0 for success.
int fail(const std::string& msg) {
  std::cerr << "tfhost: error: " << one_line(msg) << std::endl;
  return 2;
}

int usage_fail(const std::string& msg, const std::string& sub) {
  std::cerr << "tfhost: error: " << one_line(msg) << " (see tfhost "
            << (sub.empty() ? "" : sub + " ") << "--help)" << std::endl;
  return 2;
}

void print_main_help(std::ostream& os, const tfh::cli::po::options_description& globals) {
  os << "Usage: tfhost [GLOBAL OPTIONS] SUBCOMMAND [ARGS]\n\n"
        "Optimizes transformer ONNX models: fusions from plugins, one per model family.\n\n"
        "Subcommands:\n";
  for (const auto& s : kSubcommands) {
    std::string name = s.name;
    name.resize(12, ' ');
    os << "  " << name << s.summary << "\n";
  }
  os << "\n" << globals << "\n`tfhost SUBCOMMAND --help` explains each one.\n";
}

const Subcommand* find_subcommand(const std::string& name) {
  for (const auto& s : kSubcommands)
    if (name == s.name) return &s;
  return nullptr;
}

int dispatch(const std::vector<std::string>& argv) {
  GlobalOptions g;
  bool help = false, version = false;
  auto globals = tfh::cli::global_options(g, help);
  globals.add_options()("version", tfh::cli::po::bool_switch(&version),
                        "show the version, the plugin ABI and the devices");
  // The subcommand is the first word that is neither an option nor --plugin-path's value.
  size_t cmd = 0;
  for (; cmd < argv.size(); ++cmd) {
    if (argv[cmd] == "--plugin-path")
      ++cmd;
    else if (argv[cmd].empty() || argv[cmd][0] != '-')
      break;
  }
  std::vector<std::string> before(argv.begin(), argv.begin() + std::min(cmd, argv.size()));
  tfh::cli::parse_args("", before, globals, {});
  if (version) {
    std::cout << tfh::cli::version_string() << "\n";
    return 0;
  }
  if (cmd >= argv.size()) {
    if (help) {
      print_main_help(std::cout, globals);
      return 0;
    }
    print_main_help(std::cerr, globals);
    return 2;
  }
  std::string name = argv[cmd];
  std::vector<std::string> rest(argv.begin() + cmd + 1, argv.end());
  if (name == "help") {  // `tfhost help run` == `tfhost run --help`
    if (rest.empty()) {
      print_main_help(std::cout, globals);
      return 0;
    }
    name = rest[0];
    rest = {"--help"};
  }
  const Subcommand* sub = find_subcommand(name);
  if (!sub) {
    std::vector<std::string> names;
    for (const auto& s : kSubcommands) names.push_back(s.name);
    throw tfh::cli::UsageError("", "unknown subcommand '" + name +
                                       "' (available: " + tfh::pipeline::join_names(names) + ")" +
                                       tfh::pipeline::did_you_mean(name, names));
  }
  if (help) rest.push_back("--help");
  if (!sub->main) throw tfh::Error("'" + name + "' is not available yet");
  return sub->main(rest, g);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return dispatch(args);
  } catch (const tfh::cli::UsageError& e) {
    return usage_fail(e.what(), e.subcommand());
  } catch (const tfh::Error& e) {
    return fail(e.what());
  } catch (const YAML::Exception& e) {
    return fail("YAML: " + e.msg);
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unexpected error (not a std::exception)");
  }
}
