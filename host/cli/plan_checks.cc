// After `tfhost run` saved its output: the config's verify section (original and saved model on
// the same dummy inputs, every output within tolerance) and benchmark section (latency grid).
#include <algorithm>
#include <iomanip>
#include <iostream>

#include "host/cli/common.h"
#include "host/cli/sweep.h"
#include "host/runtime/inputs.h"
#include "host/runtime/measure.h"
#include "host/util/error.h"
#include "kernels/common/device_info.h"

namespace tfh::cli {

TfhDevice checks_device(pipeline::Device d) {
  if (d == pipeline::Device::Cuda) return TFH_DEVICE_CUDA;
  if (d == pipeline::Device::Auto && kernels::built_with_cuda() && kernels::cuda_device_count() > 0)
    return TFH_DEVICE_CUDA;
  return TFH_DEVICE_CPU;
}

int run_plan_checks(const pipeline::Plan& plan, const plugin::Registry& registry,
                    std::ostream& out) {
  if (!plan.verify && !plan.benchmark) return 0;
  auto original = ir::Model::load(plan.input);
  original->infer_shapes(&registry.shape_hooks());
  auto saved = ir::Model::load(plan.output);  // what is on disk, not the in-memory graph
  saved->infer_shapes(&registry.shape_hooks());
  int status = 0;
  runtime::SessionOptions so;
  so.device = checks_device(plan.device);
  if (plan.verify) {
    const pipeline::VerifyPlan& v = *plan.verify;
    // A float16 model: the generator's float16 tolerance; bfloat16 (8 bits of precision): at
    // least 0.15, as tfhost compare uses.
    const int32_t reduced = runtime::reduced_precision(*saved);
    const bool fp16 = reduced != 0;
    double tol = fp16 ? v.tolerance_fp16.value_or(v.generator->desc->tolerance_fp16)
                      : v.tolerance_fp32.value_or(v.generator->desc->tolerance_fp32);
    if (reduced == onnx::TensorProto::BFLOAT16 && !v.tolerance_fp16) tol = std::max(tol, 0.15);
    const runtime::KernelRegistry kernels(registry);
    runtime::Session base(static_cast<const ir::Model&>(*original), kernels, so),
        opt(static_cast<const ir::Model&>(*saved), kernels, so);
    runtime::OutputComparison cmp(/*rtol=*/0, /*atol=*/tol);
    for (int64_t s = 0; s < v.samples; ++s) {
      const auto inputs =
          runtime::make_inputs(*v.generator, *original, v.params, v.seed + static_cast<uint64_t>(s));
      const auto feeds = runtime::feeds_of(inputs);
      std::vector<std::unique_ptr<runtime::HostTensor>> held;
      const auto opt_feeds = runtime::feeds_for(*saved, feeds, held);
      cmp.add_sample(base.outputs(), base.run(feeds), opt.outputs(), opt.run(opt_feeds));
    }
    double worst = 0;
    for (const auto& o : cmp.outputs()) worst = std::max(worst, o.max_abs);
    out << "verify: " << (cmp.all_passed() ? "PASS" : "FAIL") << ": " << cmp.passed() << "/"
        << cmp.samples() << " samples (" << v.generator->name << ", "
        << pipeline::format_params(v.params) << ") within " << std::defaultfloat << std::setprecision(3) << tol
        << (reduced == onnx::TensorProto::BFLOAT16 ? " (bfloat16 tolerance)"
            : fp16                                 ? " (float16 tolerance)"
                                                   : "")
        << "; max abs diff " << worst << "\n";
    for (const auto& o : cmp.outputs()) {
      out << "  " << o.name << ": max abs diff " << o.max_abs;
      if (o.scores)
        out << ", top-1 agreement " << std::fixed << std::setprecision(1)
            << 100.0 * o.top1_same / std::max<size_t>(o.rows, 1) << " %" << std::defaultfloat
            << std::setprecision(3);
      out << "\n";
    }
    if (!cmp.all_passed()) status = 1;
  }
  if (plan.benchmark) {
    SweepSpec spec;
    spec.batch = plan.benchmark->batch;
    spec.sequence = plan.benchmark->sequence;
    spec.past = plan.benchmark->past;
    spec.warmup = static_cast<int>(plan.benchmark->warmup);
    spec.iterations = static_cast<int>(plan.benchmark->iterations);
    spec.device = so.device;
    spec.cuda_graph = plan.benchmark->cuda_graph && so.device == TFH_DEVICE_CUDA;
    out << "benchmark (" << plan.benchmark_inputs->name << ", " << spec.warmup << " + "
        << spec.iterations << " runs per point"
        << (spec.cuda_graph ? ", CUDA graphs"
            : plan.benchmark->cuda_graph ? "; cuda_graph applies on the GPU only" : "")
        << "):\n";
    const auto rows = sweep(registry, *plan.benchmark_inputs,
                            {{"original", original.get()}, {"optimized", saved.get()}}, spec,
                            &std::cerr);
    print_markdown(rows, out);
  }
  return status;
}

}  // namespace tfh::cli
