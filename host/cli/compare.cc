// tfhost compare --baseline_model A --optimized_model B ...: the same dummy inputs into both
// models, sample after sample; per-output differences, pass rate and top-1 agreement.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>

#include "host/cli/runner.h"
#include "host/runtime/tensor_io.h"
#include "host/util/error.h"
#include "tfhost/core.hpp"

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

double element(const runtime::HostTensor& t, size_t i) {
  const char* p = static_cast<const char*>(t.data);
  auto rd = [&](auto tag) {
    decltype(tag) v;
    std::memcpy(&v, p + i * sizeof v, sizeof v);
    return v;
  };
  switch (t.type) {
    case TFH_TYPE_FLOAT: return rd(float());
    case TFH_TYPE_DOUBLE: return rd(double());
    case TFH_TYPE_FLOAT16: return to_float(Float16{rd(uint16_t())});
    case TFH_TYPE_INT32: return rd(int32_t());
    case TFH_TYPE_INT64: return static_cast<double>(rd(int64_t()));
    case TFH_TYPE_BOOL:
    case TFH_TYPE_UINT8: return rd(uint8_t());
    case TFH_TYPE_INT8: return rd(int8_t());
    default: throw Error(std::string("outputs of type ") + data_type_name(t.type) +
                         " cannot be compared");
  }
}

// `t` converted to `type` (ids to int32, floats to float16, ...); the same tensor when equal.
std::unique_ptr<runtime::HostTensor> convert(const runtime::HostTensor& t, TfhDataType type) {
  auto out = runtime::make_tensor(type, t.dims);
  unsigned char* p = out->storage.get();
  for (size_t i = 0; i < t.num_elements; ++i) {
    const double v = element(t, i);
    switch (type) {
      case TFH_TYPE_FLOAT: { float f = static_cast<float>(v); std::memcpy(p + 4 * i, &f, 4); break; }
      case TFH_TYPE_DOUBLE: std::memcpy(p + 8 * i, &v, 8); break;
      case TFH_TYPE_INT32: { int32_t k = static_cast<int32_t>(v); std::memcpy(p + 4 * i, &k, 4); break; }
      case TFH_TYPE_INT64: { int64_t k = static_cast<int64_t>(v); std::memcpy(p + 8 * i, &k, 8); break; }
      case TFH_TYPE_BOOL: case TFH_TYPE_UINT8: p[i] = v != 0; break;
      case TFH_TYPE_FLOAT16: {
        float f = static_cast<float>(v);
        // float -> half, round to nearest even (normal range; subnormals flush to zero)
        uint32_t b;
        std::memcpy(&b, &f, 4);
        uint32_t sign = (b >> 16) & 0x8000u, man = b & 0x7fffffu;
        int e = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
        uint16_t bits;
        if (e <= 0) {
          bits = static_cast<uint16_t>(sign);
        } else if (e >= 31) {
          bits = static_cast<uint16_t>(sign | 0x7c00u);
        } else {
          uint32_t half = (static_cast<uint32_t>(e) << 10) | (man >> 13), rem = man & 0x1fffu;
          if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
          bits = static_cast<uint16_t>(sign | half);
        }
        std::memcpy(p + 2 * i, &bits, 2);
        break;
      }
      default:
        throw Error(std::string("cannot convert an input to ") + data_type_name(type));
    }
  }
  return out;
}

struct OutputStats {
  double max_abs = 0;
  size_t rows = 0, top1_same = 0;
  bool scores = false;
};

}  // namespace

int compare_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;
  bool help = false;
  std::string base_path, opt_path;
  RunOptions ro;
  int samples = 10;
  double rtol = 1e-3, atol = 1e-4;
  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
      ("baseline_model", po::value<std::string>(&base_path)->value_name("PATH"), "the reference model (required)")
      ("optimized_model", po::value<std::string>(&opt_path)->value_name("PATH"), "the model to check (required)");
  add_run_options(opts, ro);
  opts.add_options()
      ("samples", po::value<int>(&samples)->default_value(10), "input sets to compare")
      ("rtol", po::value<double>(&rtol)->default_value(1e-3, "1e-3"), "relative tolerance")
      ("atol", po::value<double>(&atol)->default_value(1e-4, "1e-4"), "absolute tolerance");
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
  if (rtol < 0 || atol < 0) throw UsageError("compare", "--rtol and --atol must be >= 0");

  auto registry = make_registry(g);
  const runtime::KernelRegistry kernels(*registry);
  std::map<std::string, OutputStats> stats;
  std::vector<std::string> names;
  int passed = 0;
  // One runner per model; their inputs are regenerated per sample from the baseline.
  RunOptions sample_opts = ro;
  ModelRunner base(*registry, kernels, base_path, sample_opts);
  ModelRunner opt(*registry, kernels, opt_path, sample_opts);
  std::cout << "baseline:  " << base_path << " (" << base.model().graph().num_nodes()
            << " nodes)\noptimized: " << opt_path << " (" << opt.model().graph().num_nodes()
            << " nodes)\ninputs: " << base.generator() << ", batch " << ro.batch << ", sequence "
            << ro.sequence << ", past " << ro.past << ", " << samples << " samples\n";
  const auto& gen = runtime::pick_generator(*registry, ro.dummy_inputs, ro.model_type);
  for (int s = 0; s < samples; ++s) {
    runtime::InputRequest req;
    req.batch = ro.batch;
    req.sequence = ro.sequence;
    req.past = ro.past;
    req.seed = ro.seed + static_cast<uint64_t>(s);
    const auto inputs = runtime::make_inputs(*registry, gen, base.model(), req);
    // The optimized model's inputs: the same values in its declared types.
    std::vector<std::unique_ptr<runtime::HostTensor>> converted;
    std::vector<std::pair<std::string, const runtime::HostTensor*>> opt_feeds;
    for (const auto& in : inputs) {
      const ir::Value* v = opt.model().graph().find(in.name);
      if (!v || !v->is_graph_input())
        throw Error(opt_path + ": has no input '" + in.name + "' (the baseline has)");
      const auto want = static_cast<TfhDataType>(v->elem_type());
      if (want && want != in.tensor->type) {
        converted.push_back(convert(*in.tensor, want));
        opt_feeds.emplace_back(in.name, converted.back().get());
      } else {
        opt_feeds.emplace_back(in.name, in.tensor.get());
      }
    }
    auto want = base.session().run(runtime::feeds_of(inputs));
    auto got = opt.session().run(opt_feeds);
    bool ok = true;
    const auto& bouts = base.session().outputs();
    const auto& oouts = opt.session().outputs();
    for (size_t k = 0; k < bouts.size(); ++k) {
      size_t j = k;
      auto it = std::find_if(oouts.begin(), oouts.end(),
                             [&](const ir::Value* v) { return v->name() == bouts[k]->name(); });
      if (it != oouts.end()) j = static_cast<size_t>(it - oouts.begin());
      else if (k >= oouts.size()) throw Error(opt_path + ": has fewer outputs than the baseline");
      const runtime::HostTensor& w = *want[k];
      const runtime::HostTensor& o = *got[j];
      const std::string& name = bouts[k]->name();
      if (!stats.count(name)) names.push_back(name);
      OutputStats& st = stats[name];
      if (w.dims != o.dims)
        throw Error("output '" + name + "': shape " + runtime::describe_tensor(o) +
                    " in the optimized model, " + runtime::describe_tensor(w) + " in the baseline");
      for (size_t i = 0; i < w.num_elements; ++i) {
        const double a = element(w, i), b = element(o, i);
        const double d = std::fabs(a - b);
        if (std::isnan(a) != std::isnan(b)) ok = false;
        if (!std::isnan(d)) st.max_abs = std::max(st.max_abs, d);
        if (d > atol + rtol * std::fabs(a)) ok = false;
      }
      const bool is_float = w.type == TFH_TYPE_FLOAT || w.type == TFH_TYPE_FLOAT16 ||
                            w.type == TFH_TYPE_DOUBLE;
      if (is_float && w.dims.size() >= 2 && w.dims.back() > 1) {
        st.scores = true;
        const size_t cols = static_cast<size_t>(w.dims.back());
        for (size_t r = 0; r < w.num_elements / cols; ++r) {
          size_t aw = 0, ao = 0;
          for (size_t c = 1; c < cols; ++c) {
            if (element(w, r * cols + c) > element(w, r * cols + aw)) aw = c;
            if (element(o, r * cols + c) > element(o, r * cols + ao)) ao = c;
          }
          ++st.rows;
          st.top1_same += aw == ao;
        }
      }
    }
    passed += ok;
  }
  std::cout << std::setprecision(3);
  for (const std::string& n : names) {
    const OutputStats& st = stats[n];
    std::cout << "  output " << n << ": max abs diff " << st.max_abs;
    if (st.scores)
      std::cout << ", top-1 agreement " << std::fixed << std::setprecision(1)
                << 100.0 * st.top1_same / std::max<size_t>(st.rows, 1) << " % of " << st.rows
                << " rows" << std::defaultfloat << std::setprecision(3);
    std::cout << "\n";
  }
  const bool all = passed == samples;
  std::cout << (all ? "PASS" : "FAIL") << ": " << passed << "/" << samples
            << " samples within rtol " << rtol << ", atol " << atol << " (pass rate "
            << std::fixed << std::setprecision(1) << 100.0 * passed / samples << " %)\n";
  return all ? 0 : 1;
}

}  // namespace tfh::cli
