// tfhost profile --model M ...: per-node times, a summary per op type, the most expensive nodes,
// and a Chrome-trace JSON (chrome://tracing, Perfetto).
#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "host/cli/runner.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Runs MODEL on dummy inputs --samples times after --warmup runs, timing every node.\n"
    "Prints the time per op type (total over the nodes of that type, averaged over the runs,\n"
    "with its share) and the --top most expensive nodes, and writes a Chrome-trace JSON (one\n"
    "event per node per run; open it in https://ui.perfetto.dev or chrome://tracing).\n"
    "--kernel_time_only leaves the per-run events out of the trace and keeps one averaged\n"
    "event per node.";

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o;
}

std::string op_label(const ir::Node& n) {
  return n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type()
                                                       : n.domain() + "." + n.op_type();
}

}  // namespace

int profile_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;
  bool help = false, kernel_only = false;
  std::string model_path, trace_path;
  RunOptions ro;
  int samples = 10, warmup = 2, top = 20;
  po::options_description opts("Options");
  opts.add_options()("model,m", po::value<std::string>(&model_path)->value_name("PATH"),
                     "the ONNX model (required)");
  add_run_options(opts, ro);
  // clang-format off
  opts.add_options()
      ("samples", po::value<int>(&samples)->default_value(10), "profiled runs")
      ("warmup", po::value<int>(&warmup)->default_value(2), "unprofiled runs first")
      ("top", po::value<int>(&top)->default_value(20), "how many of the slowest nodes to list")
      ("kernel_time_only", po::bool_switch(&kernel_only),
       "trace: one averaged event per node instead of every run")
      ("output,o", po::value<std::string>(&trace_path)->value_name("FILE"),
       "Chrome-trace file (default: profile_<date-time>.json in the working directory)");
  // clang-format on
  opts.add(global_options(local, help));
  parse_args("profile", args, opts, {});
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout, "tfhost profile --model PATH [--batch_size B] [--sequence_length S] ...",
               kAbout, opts);
    return 0;
  }
  if (model_path.empty()) throw UsageError("profile", "missing --model");
  check_run_options("profile", ro);
  if (ro.cuda_graph)
    throw UsageError("profile", "--cuda_graph does not apply: per-node times need eager runs");
  if (samples <= 0 || warmup < 0 || top < 0)
    throw UsageError("profile", "--samples must be > 0, --warmup and --top >= 0");
  if (trace_path.empty()) trace_path = "profile_" + timestamp() + ".json";

  auto registry = make_registry(g);
  const runtime::KernelRegistry kernels(*registry);
  ModelRunner runner(*registry, kernels, model_path, ro, /*profile=*/true);
  runtime::Session& session = runner.session();
  for (int i = 0; i < warmup; ++i) session.run(runner.feeds());

  std::map<const ir::Node*, double> per_node;  // total ms over the runs
  std::vector<const ir::Node*> order;
  std::ostringstream events;
  double offset = 0, total = 0;
  bool first = true;
  for (int r = 0; r < samples; ++r) {
    session.run(runner.feeds());
    double run_ms = 0;
    for (const runtime::NodeTime& t : session.node_times()) {
      if (!per_node.count(t.node)) order.push_back(t.node);
      per_node[t.node] += t.ms;
      run_ms = std::max(run_ms, t.start_ms + t.ms);
      if (!kernel_only) {
        events << (first ? "" : ",\n") << "{\"name\":\"" << json_escape(t.node->name())
               << "\",\"cat\":\"" << json_escape(op_label(*t.node)) << "\",\"ph\":\"X\",\"ts\":"
               << std::fixed << std::setprecision(3) << (offset + t.start_ms) * 1000.0
               << ",\"dur\":" << t.ms * 1000.0 << ",\"pid\":1,\"tid\":1,\"args\":{\"run\":" << r
               << ",\"op_type\":\"" << json_escape(op_label(*t.node)) << "\"}}";
        first = false;
      }
      total += t.ms;
    }
    offset += run_ms + 0.01;
  }
  if (kernel_only) {
    double ts = 0;
    for (const ir::Node* n : order) {
      const double avg = per_node[n] / samples;
      events << (first ? "" : ",\n") << "{\"name\":\"" << json_escape(n->name())
             << "\",\"cat\":\"" << json_escape(op_label(*n)) << "\",\"ph\":\"X\",\"ts\":"
             << std::fixed << std::setprecision(3) << ts * 1000.0 << ",\"dur\":" << avg * 1000.0
             << ",\"pid\":1,\"tid\":1,\"args\":{\"op_type\":\"" << json_escape(op_label(*n))
             << "\"}}";
      first = false;
      ts += avg;
    }
  }
  {
    std::ofstream f(trace_path);
    f << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n" << events.str() << "\n]}\n";
    if (!f.good()) throw Error(trace_path + ": cannot write the trace");
  }

  const double per_run = total / samples;
  std::map<std::string, std::pair<size_t, double>> by_op;
  for (const ir::Node* n : order) {
    auto& e = by_op[op_label(*n)];
    ++e.first;
    e.second += per_node[n] / samples;
  }
  std::vector<std::pair<std::string, std::pair<size_t, double>>> ops(by_op.begin(), by_op.end());
  std::sort(ops.begin(), ops.end(),
            [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
  std::cout << std::fixed << std::setprecision(3);
  std::cout << "Model: " << model_path << " (" << order.size() << " nodes run, inputs "
            << runner.generator() << ", batch " << ro.batch << ", sequence " << ro.sequence
            << ", past " << ro.past << ")\n";
  std::cout << "Node time per run: " << per_run << " ms (average of " << samples << " runs)\n\n";
  {  // plugin kernels that replace tfhost's: which, and for how many nodes
    std::map<std::string, int> plugin_kernels;
    const auto origins = runner.session().kernel_choices();
    const auto names = runner.session().kernel_names();
    for (size_t i = 0; i < names.size(); ++i)
      if (origins[i].second != "tfhost")
        ++plugin_kernels[names[i].first->op_type() + ": " + names[i].second + ", plugin " +
                         origins[i].second];
    for (const auto& [what, count] : plugin_kernels)
      std::cout << "Plugin kernel: " << what << " (" << count << " nodes)\n";
    if (!plugin_kernels.empty()) std::cout << "\n";
  }
  if (ro.use_gpu) {  // where the nodes ran: the GPU, or the CPU and why
    size_t gpu = 0, shape = 0, views = 0;
    std::map<std::string, std::pair<int, std::string>> cpu;  // op -> nodes, first reason
    for (const auto& p : runner.session().placements()) {
      using W = runtime::Session::Placement::Where;
      if (p.where == W::Gpu) ++gpu;
      else if (p.where == W::ShapeArithmetic) ++shape;
      else if (p.where == W::View) ++views;
      else {
        auto& e = cpu[op_label(*p.node)];
        if (e.first++ == 0) e.second = p.why;
      }
    }
    size_t others = 0;
    for (const auto& [op, e] : cpu) others += static_cast<size_t>(e.first);
    std::cout << "Placement: " << gpu << " nodes on the GPU, " << shape
              << " of shape arithmetic on the CPU, " << views << " views (no copy), " << others
              << " others on the CPU\n";
    for (const auto& [op, e] : cpu)
      std::cout << "  on the CPU: " << op << " (" << e.first << " nodes)"
                << (e.second.empty() ? "" : ": " + e.second) << "\n";
    std::cout << "\n";
  }
  std::cout << "By op type:\n";
  std::cout << "  " << std::left << std::setw(34) << "op type" << std::right << std::setw(7)
            << "nodes" << std::setw(12) << "ms/run" << std::setw(9) << "share\n";
  for (const auto& [op, e] : ops)
    std::cout << "  " << std::left << std::setw(34) << op << std::right << std::setw(7) << e.first
              << std::setw(12) << e.second << std::setw(7) << std::setprecision(1)
              << (per_run > 0 ? 100.0 * e.second / per_run : 0) << " %\n"
              << std::setprecision(3);
  std::vector<const ir::Node*> slow = order;
  std::sort(slow.begin(), slow.end(),
            [&](const ir::Node* a, const ir::Node* b) { return per_node[a] > per_node[b]; });
  slow.resize(std::min<size_t>(slow.size(), static_cast<size_t>(top)));
  if (!slow.empty()) std::cout << "\nSlowest nodes:\n";
  for (const ir::Node* n : slow)
    std::cout << "  " << std::setw(10) << per_node[n] / samples << " ms  " << op_label(*n) << "  "
              << n->name() << "\n";
  std::cout << "\nTrace: " << trace_path << "\n";
  return 0;
}

}  // namespace tfh::cli
