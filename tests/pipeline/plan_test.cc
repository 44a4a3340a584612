// Resolving a config against the registry: pass and preset names, `with:` parameters, the
// verify/benchmark sections, the output rule; and the pass manager.
#include <gtest/gtest.h>

#include <string>

#include "host/pipeline/config.h"
#include "host/pipeline/pipeline.h"
#include "host/plugin/registry.h"
#include "host/util/error.h"
#include "kernels/common/device_info.h"
#include "support/test_util.h"

namespace tfh::pipeline {
namespace {

const std::string kModel = TFH_SOURCE_DIR "/models/bert_tiny_opset14/model.onnx";
const std::string kFixtureGood = TFH_FIXTURE_PLUGIN_DIR "/libfixture_good.so";

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

class Plan_ : public ::testing::Test {
 protected:
  void SetUp() override { registry_.load(kFixtureGood, {}); }

  // A config around `pipeline_yaml` whose model is the real tiny BERT and whose output is new.
  Config config(const std::string& pipeline_yaml, const std::string& extra = "",
                const std::vector<std::string>& sets = {}) {
    const std::string text = "model: {path: " + kModel + "}\noutput: " + tmp_ / "out.onnx" +
                             "\npipeline:\n" + pipeline_yaml + extra;
    return parse_config(text, "x.yaml", "", sets);
  }

  std::string error_of(const std::string& pipeline_yaml, const std::string& extra = "",
                       const std::vector<std::string>& sets = {}) {
    try {
      make_plan(config(pipeline_yaml, extra, sets), registry_);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  plugin::Registry registry_;
  test::TempDir tmp_;
};

TEST_F(Plan_, PresetExpandsToTheModelTypePassList) {
  const Plan plan = make_plan(config("  - preset: core\n  - preset: fixture_model\n"), registry_);
  const auto* core = registry_.find_model_type("core");
  ASSERT_NE(core, nullptr);
  ASSERT_EQ(plan.passes.size(), core->passes.size() + 2);
  for (size_t i = 0; i < core->passes.size(); ++i) {
    EXPECT_EQ(plan.passes[i].entry->name, core->passes[i]);
    EXPECT_EQ(plan.passes[i].origin, "preset core");
  }
  EXPECT_EQ(plan.passes[core->passes.size()].entry->name, "core.remove_identity");
  EXPECT_EQ(plan.passes.back().entry->name, "fixture.count_nodes");
  EXPECT_EQ(format_params(plan.passes.back().params), "{scale: 1}");  // the default
}

TEST_F(Plan_, PassParametersAreResolvedAndValidated) {
  const Plan plan =
      make_plan(config("  - pass: fixture.count_nodes\n    with: {scale: 3}\n"), registry_);
  ASSERT_EQ(plan.passes.size(), 1u);
  EXPECT_EQ(plan.passes[0].params.find("scale")->i, 3);
  EXPECT_EQ(plan.passes[0].origin, "");

  std::string e = error_of("  - pass: fixture.count_nodes\n    with: {scael: 3}\n");
  EXPECT_HAS(e, "x.yaml:5:11: ");
  EXPECT_HAS(e, "scael");
  e = error_of("  - pass: fixture.count_nodes\n    with: {scale: many}\n");
  EXPECT_HAS(e, "x.yaml:5:11: ");
  EXPECT_HAS(e, "many");
  // An override inside `with:` is named next to the file location.
  e = error_of("  - pass: fixture.count_nodes\n", "", {"pipeline.0.with.scale=lots"});
  EXPECT_HAS(e, "--set pipeline.0.with.scale=lots");
}

TEST_F(Plan_, UnknownPassNamesLocationAvailableAndSuggestion) {
  const std::string e = error_of("  - preset: core\n  - pass: core.remove_identiy\n");
  EXPECT_HAS(e, "x.yaml:5:11: unknown pass 'core.remove_identiy' (available: ");
  EXPECT_HAS(e, "core.cleanup");
  EXPECT_HAS(e, "fixture.count_nodes");
  EXPECT_HAS(e, "did you mean 'core.remove_identity'?");
  EXPECT_HAS(error_of("  - pass: bert.gelu\n"), "unknown pass 'bert.gelu'");
}

TEST_F(Plan_, UnknownPresetAndFamily) {
  EXPECT_HAS(error_of("  - preset: cor\n"),
             "x.yaml:4:13: unknown model type 'cor' (available: core, fixture_model); did you "
             "mean 'core'?");
  const std::string text = "model: {path: " + kModel +
                           ", family: bertt}\noutput: " + tmp_ / "o.onnx" + "\npipeline: []\n";
  try {
    make_plan(parse_config(text, "x.yaml", ""), registry_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "unknown model type 'bertt'");
  }
}

TEST_F(Plan_, RuntimeSectionsAreValidated) {
  EXPECT_HAS(error_of("  []\n", "verify: {samples: 2}\n"), "'verify' needs 'inputs: <generator>'");
  EXPECT_HAS(error_of("  []\n", "verify: {inputs: bert.inputs}\n"),
             "x.yaml:5:18: unknown input generator 'bert.inputs'");
  EXPECT_HAS(error_of("  []\n", "verify: {inputs: core.inputs, with: {batch: 2}}\n"),
             "unknown parameter 'batch'");
  EXPECT_EQ(error_of("  []\n", "verify: {inputs: core.inputs, with: {batch_size: 2}}\n"), "");
  EXPECT_EQ(error_of("  []\n", "benchmark: {batch: [1, 2]}\n"), "");
  EXPECT_EQ(error_of("  []\n", "benchmark: {batch: 1}\n", {"benchmark=null"}), "");
}

// `device: cuda` is checked when the plan is made (a dry run too), naming the file and the key,
// the same check --use_gpu gets.
TEST_F(Plan_, CudaDeviceNeedsACudaBuildAndAGpu) {
  const std::string e = error_of("  []\n", "device: cuda\n");
  if (!kernels::built_with_cuda()) {
    EXPECT_HAS(e, "x.yaml:5:9: 'device: cuda' is not available: this tfhost was built without "
                  "CUDA; use 'device: cpu' or 'auto'");
  } else if (kernels::cuda_device_count() == 0) {
    EXPECT_HAS(e, "x.yaml:5:9: 'device: cuda' is not available: no CUDA GPU is present");
  } else {
    EXPECT_EQ(e, "");
  }
  EXPECT_EQ(error_of("  []\n", "device: cpu\n"), "");
  EXPECT_EQ(error_of("  []\n", "device: auto\n"), "");
  if (!kernels::built_with_cuda())
    EXPECT_HAS(error_of("  []\n", "", {"device=cuda"}), "--set device=cuda: 'device: cuda' is not");
}

TEST_F(Plan_, OutputMayNotBeTheInput) {
  EXPECT_HAS(error_of("  []\n", "", {"output=" + kModel}),
             "--set output=" + kModel + ": output '" + kModel + "' is the input model");
  EXPECT_HAS(error_of("  []\n", "", {"output=" + tmp_.path()}), "is a directory");
  EXPECT_HAS(error_of("  []\n", "", {"model.path=" + tmp_ / "none.onnx"}), "does not exist");
}

TEST_F(Plan_, SharedParametersReachOnlyPassesThatDeclareThem) {
  SharedParams shared{{"scale", YAML::Node(5)}, {"num_heads", YAML::Node(12)}};
  PlannedPass p = plan_pass(registry_, "fixture.count_nodes", YAML::Node(), shared, "", "here");
  EXPECT_EQ(p.params.find("scale")->i, 5);
  EXPECT_EQ(p.params.find("num_heads"), nullptr);
  YAML::Node with = YAML::Load("{scale: 2}");
  p = plan_pass(registry_, "fixture.count_nodes", with, shared, "", "here");
  EXPECT_EQ(p.params.find("scale")->i, 2);  // the step's own `with:` wins
}

TEST_F(Plan_, PassManagerRunsInOrderAndReports) {
  const Plan plan = make_plan(
      config("  - preset: core\n  - pass: fixture.count_nodes\n    with: {scale: 2}\n"), registry_);
  auto model = ir::Model::load(kModel);
  std::vector<std::string> seen;
  const auto results =
      run_passes(plan.passes, registry_, *model, [&](size_t i, size_t n, const PassResult& r) {
        EXPECT_EQ(n, plan.passes.size());
        EXPECT_EQ(i, seen.size());
        seen.push_back(r.name);
      });
  ASSERT_EQ(results.size(), plan.passes.size());
  EXPECT_EQ(seen.back(), "fixture.count_nodes");
  EXPECT_EQ(results.back().changed, 2 * model->graph().num_nodes());
}

TEST_F(Plan_, AFailingPassIsReportedWithItsStep) {
  registry_.load(TFH_FIXTURE_PLUGIN_DIR "/libfixture_throws.so", {});
  const Plan plan = make_plan(config("  - pass: fixture.boom\n"), registry_);
  auto model = ir::Model::load(kModel);
  try {
    run_passes(plan.passes, registry_, *model);
    FAIL();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "x.yaml:4:11: pass 'fixture.boom' (plugin 'fixture_throws') failed: boom");
  }
}

}  // namespace
}  // namespace tfh::pipeline
