// tfhost compare --baseline_model A --optimized_model B ...: the same dummy inputs into both
// models, sample after sample; per-output differences, pass rate and top-1 agreement.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>

#include "host/cli/runner.h"
#include "host/runtime/measure.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Runs BASELINE and OPTIMIZED on the same dummy inputs (--samples sets, seeds 0, 1, ...) and\n"
    "compares every output: per output the largest absolute difference over all samples; a\n"
    "sample passes when every element of every output satisfies |opt - base| <= atol + rtol *\n"
    "|base|; for outputs whose last axis holds scores (float, rank >= 2) the share of rows whose\n"
    "arg-max agrees (top-1). Inputs are converted to the optimized model's input types (int32\n"
    "ids, float16 tensors) and outputs compared as numbers, so converted models compare too.\n"
    "Outputs are matched by name, else by position.\n"
    "\n"
    "Exit status: 0 every sample passes, 1 a mismatch, 2 an error.";

}  // namespace


int compare_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;
  bool help = false;
  std::string base_path, opt_path;
  RunOptions ro;
  int samples = 10;
  double rtol = -1, atol = -1;  // -1: by the optimized model's precision
  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
      ("baseline_model", po::value<std::string>(&base_path)->value_name("PATH"), "the reference model (required)")
      ("optimized_model", po::value<std::string>(&opt_path)->value_name("PATH"), "the model to check (required)");
  add_run_options(opts, ro);
  opts.add_options()
      ("samples", po::value<int>(&samples)->default_value(10), "input sets to compare")
      ("rtol", po::value<double>(&rtol)->value_name("X"),
       "relative tolerance (default 1e-3; 2e-2 when the optimized model holds float16 weights "
       "or inputs/outputs, 0.15 for bfloat16)")
      ("atol", po::value<double>(&atol)->value_name("X"),
       "absolute tolerance (default 1e-4; 2e-2 for a float16 model, 0.15 for bfloat16)");
  // clang-format on
  opts.add(global_options(local, help));
  parse_args("compare", args, opts, {});
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout,
               "tfhost compare --baseline_model A --optimized_model B [--batch_size B] "
               "[--sequence_length S] [--samples N] ...",
               kAbout, opts);
    return 0;
  }
  if (base_path.empty() || opt_path.empty())
    throw UsageError("compare", "both --baseline_model and --optimized_model are required");
  check_run_options("compare", ro);
  if (samples <= 0) throw UsageError("compare", "--samples must be > 0");
  const bool rtol_given = rtol != -1, atol_given = atol != -1;
  if ((rtol_given && rtol < 0) || (atol_given && atol < 0))
    throw UsageError("compare", "--rtol and --atol must be >= 0");

  auto registry = make_registry(g);
  const runtime::KernelRegistry kernels(*registry);
  ModelRunner base(*registry, kernels, base_path, ro);
  ModelRunner opt(*registry, kernels, opt_path, ro);
  std::cout << "baseline:  " << base_path << " (" << base.model().graph().num_nodes()
            << " nodes)\noptimized: " << opt_path << " (" << opt.model().graph().num_nodes()
            << " nodes)\ninputs: " << base.generator() << ", batch " << ro.batch << ", sequence "
            << ro.sequence << ", past " << ro.past << ", " << samples << " samples\n";
  const int32_t reduced = runtime::reduced_precision(opt.model());
  // bfloat16 keeps 8 significand bits to float16's 11: its default is 8x float16's, rounded
  // (BERT-base in bfloat16 drifts 0.087 from float32 over its 12 layers, measured).
  const double reduced_tol = reduced == onnx::TensorProto::BFLOAT16 ? 0.15 : 2e-2;
  if (!rtol_given) rtol = reduced ? reduced_tol : 1e-3;
  if (!atol_given) atol = reduced ? reduced_tol : 1e-4;
  if (reduced && (!rtol_given || !atol_given))
    std::cout << "tolerances: the optimized model computes in "
              << (reduced == onnx::TensorProto::BFLOAT16 ? "bfloat16" : "float16") << "\n";
  const auto& gen = runtime::pick_generator(*registry, ro.dummy_inputs, ro.model_type);
  runtime::OutputComparison cmp(rtol, atol);
  for (int s = 0; s < samples; ++s) {
    runtime::InputRequest req;
    req.batch = ro.batch;
    req.sequence = ro.sequence;
    req.past = ro.past;
    req.seed = ro.seed + static_cast<uint64_t>(s);
    const auto inputs = runtime::make_inputs(*registry, gen, base.model(), req);
    const auto base_feeds = runtime::feeds_of(inputs);
    std::vector<std::unique_ptr<runtime::HostTensor>> held;
    const auto opt_feeds = runtime::feeds_for(opt.model(), base_feeds, held);
    cmp.add_sample(base.session().outputs(), base.session().run(base_feeds),
                   opt.session().outputs(), opt.session().run(opt_feeds));
  }
  std::cout << std::setprecision(3);
  for (const runtime::OutputAgreement& st : cmp.outputs()) {
    std::cout << "  output " << st.name << ": max abs diff " << st.max_abs;
    if (st.scores)
      std::cout << ", top-1 agreement " << std::fixed << std::setprecision(1)
                << 100.0 * st.top1_same / std::max<size_t>(st.rows, 1) << " % of " << st.rows
                << " rows" << std::defaultfloat << std::setprecision(3);
    std::cout << "\n";
  }
  const bool all = cmp.all_passed();
  std::cout << (all ? "PASS" : "FAIL") << ": " << cmp.passed() << "/" << samples
            << " samples within rtol " << rtol << ", atol " << atol << " (pass rate "
            << std::fixed << std::setprecision(1) << 100.0 * cmp.passed() / samples << " %)\n";
  return all ? 0 : 1;
}

}  // namespace tfh::cli
