// tfhost check DIR...: runs DIR/model.onnx on each DIR/test_data_set_N/ of the ONNX backend test
// layout and compares every output with numpy's allclose rule.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>

#include <boost/filesystem.hpp>

#include "host/cli/common.h"
#include "host/runtime/session.h"
#include "host/runtime/tensor_io.h"
#include "host/util/error.h"

namespace tfh::cli {
namespace {

namespace fs = boost::filesystem;

const char* const kAbout =
    "Runs DIR/model.onnx with tfhost's runtime on every DIR/test_data_set_N/ (the ONNX backend\n"
    "test layout: input_K.pb and output_K.pb TensorProtos) and reports, per output, the largest\n"
    "absolute and relative difference. An element passes when |got - want| <= atol + rtol * |want|\n"
    "(numpy.allclose; NaN equals NaN). Inputs and outputs are matched by the name stored in each\n"
    "file, or by position when it has none.\n"
    "\n"
    "Exit status: 0 every output of every set passes, 1 a mismatch, 2 an error (bad input, a\n"
    "model the runtime cannot run).";

// test_data_set_0, test_data_set_1, ... in numeric order.
std::vector<fs::path> data_sets(const fs::path& dir) {
  std::vector<std::pair<long, fs::path>> sets;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const std::string prefix = "test_data_set_";
    if (fs::is_directory(e.path()) && name.rfind(prefix, 0) == 0)
      sets.emplace_back(std::strtol(name.c_str() + prefix.size(), nullptr, 10), e.path());
  }
  std::sort(sets.begin(), sets.end());
  std::vector<fs::path> out;
  for (auto& s : sets) out.push_back(s.second);
  return out;
}

// prefix_0.pb, prefix_1.pb, ... until one is missing.
std::vector<fs::path> numbered(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (int k = 0;; ++k) {
    fs::path p = dir / (prefix + "_" + std::to_string(k) + ".pb");
    if (!fs::exists(p)) break;
    out.push_back(p);
  }
  return out;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

int check_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;
  bool help = false, use_gpu = false;
  double rtol = 1e-3, atol = 1e-5;
  int threads = 0;
  std::vector<std::string> dirs;
  po::options_description opts("Options"), hidden;
  // clang-format off
  opts.add_options()
      ("rtol", po::value<double>(&rtol)->default_value(1e-3, "1e-3"), "relative tolerance")
      ("atol", po::value<double>(&atol)->default_value(1e-5, "1e-5"), "absolute tolerance")
      ("threads", po::value<int>(&threads)->default_value(0), "CPU threads (0: all cores)")
      ("use_gpu", po::bool_switch(&use_gpu), "run on the GPU (CUDA build and GPU needed): CUDA kernels where they exist, the CPU for the rest");
  // clang-format on
  opts.add(global_options(local, help));
  hidden.add_options()("dir", po::value<std::vector<std::string>>(&dirs));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("dir", -1);
  parse_args("check", args, all, pos);
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout, "tfhost check DIR... [--rtol R] [--atol A] [--threads N]", kAbout, opts);
    return 0;
  }
  if (dirs.empty()) throw UsageError("check", "missing DIR (a folder with model.onnx and test_data_set_N/)");
  if (use_gpu) pipeline::check_device(pipeline::Device::Cuda, "--use_gpu", "leave out --use_gpu");
  if (rtol < 0 || atol < 0) throw UsageError("check", "--rtol and --atol must be >= 0");

  auto registry = make_registry(g);
  const runtime::KernelRegistry kernels(*registry);
  size_t failed_sets = 0, total_sets = 0;
  for (const std::string& d : dirs) {
    const fs::path dir(d);
    const fs::path model_path = dir / "model.onnx";
    if (!fs::is_directory(dir)) throw Error(d + ": no such folder");
    if (!fs::exists(model_path)) throw Error(model_path.string() + ": no such file");
    const std::vector<fs::path> sets = data_sets(dir);
    if (sets.empty()) throw Error(d + ": no test_data_set_N folders");

    std::unique_ptr<ir::Model> model = ir::Model::load(model_path.string());
    model->infer_shapes(&registry->shape_hooks());
    runtime::SessionOptions so;
    so.threads = threads;
    so.device = use_gpu ? TFH_DEVICE_CUDA : TFH_DEVICE_CPU;
    so.release_consumed_constants = true;  // the model is loaded only to run it
    runtime::Session session(*model, kernels, so);
    std::cout << model_path.string() << ": " << model->graph().num_nodes() << " nodes, "
              << sets.size() << " data set" << (sets.size() == 1 ? "" : "s") << "\n";

    for (const fs::path& set : sets) {
      ++total_sets;
      // Inputs by name, else by position among the inputs that need a value.
      std::vector<std::unique_ptr<runtime::HostTensor>> held;
      std::vector<std::pair<std::string, const runtime::HostTensor*>> feeds;
      const std::vector<fs::path> in_files = numbered(set, "input");
      for (size_t k = 0; k < in_files.size(); ++k) {
        std::string name;
        held.push_back(runtime::read_tensor_file(in_files[k].string(), &name));
        if (name.empty()) {
          if (k >= session.inputs().size())
            throw Error(in_files[k].string() + ": unnamed, and the model has only " +
                        std::to_string(session.inputs().size()) + " inputs");
          name = session.inputs()[k]->name();
        }
        feeds.emplace_back(name, held.back().get());
      }
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::unique_ptr<runtime::HostTensor>> outs;
      try {
        outs = session.run(feeds);
      } catch (const Error& e) {
        throw Error(set.string() + ": " + e.what());
      }
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

      bool set_ok = true;
      const std::vector<fs::path> out_files = numbered(set, "output");
      if (out_files.empty()) throw Error(set.string() + ": no output_0.pb");
      std::cout << "  " << set.filename().string() << " (" << std::fixed << std::setprecision(1)
                << ms << " ms)\n";
      std::cout.unsetf(std::ios::fixed);
      for (size_t k = 0; k < out_files.size(); ++k) {
        std::string name;
        auto want = runtime::read_tensor_file(out_files[k].string(), &name);
        size_t idx = k;
        if (!name.empty()) {
          auto it = std::find_if(session.outputs().begin(), session.outputs().end(),
                                 [&](const ir::Value* v) { return v->name() == name; });
          if (it == session.outputs().end())
            throw Error(out_files[k].string() + ": the model has no output '" + name + "'");
          idx = static_cast<size_t>(it - session.outputs().begin());
        } else if (k >= outs.size()) {
          throw Error(out_files[k].string() + ": the model has only " +
                      std::to_string(outs.size()) + " outputs");
        }
        const std::string label = session.outputs()[idx]->name();
        const runtime::Difference diff = runtime::compare_tensors(*outs[idx], *want, rtol, atol);
        std::cout << "    " << (diff.ok() ? "ok   " : "FAIL ") << label << " ";
        if (!diff.type_matches || !diff.shape_matches) {
          std::cout << "got " << runtime::describe_tensor(*outs[idx]) << ", want "
                    << runtime::describe_tensor(*want) << "\n";
        } else {
          std::cout << runtime::describe_tensor(*want) << "  max abs " << fmt(diff.max_abs)
                    << "  max rel " << fmt(diff.max_rel);
          if (diff.mismatches)
            std::cout << "  " << diff.mismatches << "/" << diff.count << " outside tolerance";
          std::cout << "\n";
        }
        set_ok = set_ok && diff.ok();
      }
      if (!set_ok) ++failed_sets;
    }
  }
  std::cout << (failed_sets ? "FAIL" : "PASS") << ": " << (total_sets - failed_sets) << "/"
            << total_sets << " data sets within rtol " << fmt(rtol) << ", atol " << fmt(atol)
            << "\n";
  return failed_sets ? 1 : 0;
}

}  // namespace tfh::cli
