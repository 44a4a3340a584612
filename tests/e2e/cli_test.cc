// The tfhost binary end to end: the main job, a lossless round trip, help texts, optimize's flags.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "e2e/e2e_util.h"
#include "support/test_util.h"

namespace tfh::e2e {
namespace {

// The saved model is the same model: nodes in order, initializer bytes, opsets, metadata, names.
void expect_same_model(const std::string& expected_path, const std::string& actual_path) {
  const onnx::ModelProto expected = test::read_model_proto(expected_path);
  const onnx::ModelProto actual = test::read_model_proto(actual_path);
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  EXPECT_TRUE(diff.Compare(expected, actual)) << report.substr(0, 2000);
}

TEST(Cli, EmptyPipelineIsALosslessRoundTrip) {
  test::TempDir tmp;
  const std::string out = tmp / "roundtrip.onnx";
  const auto r = tfhost(
      {"run", TFH_SOURCE_DIR "/configs/examples/empty_pipeline.yaml", "--set", "output=" + out});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // quiet by default
  EXPECT_TRUE(contains(r.out, "saved " + out)) << r.out;
  expect_same_model(kBertModel, out);
  EXPECT_EQ(test::list_dir(tmp.path()),
            std::vector<std::string>{"roundtrip.onnx"});  // no temp left
}

TEST(Cli, MainJobRunsAndWritesItsOutput) {
  const std::string out = TFH_SOURCE_DIR "/out/bert_tiny_opt.onnx";
  std::remove(out.c_str());  // a file left by an earlier run proves nothing
  const auto r = tfhost({"run", TFH_SOURCE_DIR "/configs/bert_cpu.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "[1/")) << r.out;
  EXPECT_TRUE(contains(r.out, " changed (")) << r.out;
  EXPECT_TRUE(contains(r.out, "nodes: ")) << r.out;
  EXPECT_TRUE(contains(r.out, "Fused ")) << r.out;
  ASSERT_TRUE(test::file_exists(out));
  EXPECT_GT(test::read_model_proto(out).graph().node_size(), 0);
}

TEST(Cli, DryRunPrintsThePlanAndWritesNothing) {
  test::TempDir tmp;
  const std::string out = tmp / "never.onnx";
  const auto r = tfhost(
      {"run", TFH_SOURCE_DIR "/configs/bert_cpu.yaml", "--dry-run", "--set", "output=" + out});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "1. core.")) << r.out;
  EXPECT_TRUE(contains(r.out, "(preset core)")) << r.out;
  EXPECT_TRUE(contains(r.out, "models/bert_tiny_opset14/model.onnx")) << r.out;
  EXPECT_TRUE(contains(r.out, "nothing was written")) << r.out;
  EXPECT_TRUE(test::list_dir(tmp.path()).empty());
}

TEST(Cli, EveryBundledConfigPassesADryRun) {
  size_t n = 0;
  for (const auto& rel : list_tree(TFH_SOURCE_DIR "/configs")) {
    if (rel.size() < 5 || rel.compare(rel.size() - 5, 5, ".yaml") != 0) continue;
    const auto r = tfhost({"run", TFH_SOURCE_DIR "/configs" + rel, "--dry-run"});
    EXPECT_EQ(r.exit_code, 0) << rel << ": " << r.err;
    ++n;
  }
  EXPECT_GE(n, 2u);
}

TEST(Cli, HelpTexts) {
  auto r = tfhost({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* word : {"run", "optimize", "plugins", "--plugin-path", "--verbose", "--version"})
    EXPECT_TRUE(contains(r.out, word)) << word << " not in: " << r.out;

  r = tfhost({"run", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* word : {"CONFIG", "--set", "--dry-run", "pipeline", "preset", "relative"})
    EXPECT_TRUE(contains(r.out, word)) << word << " not in: " << r.out;

  r = tfhost({"optimize", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* word : {"--input", "--output", "--model_type", "--num_heads", "--hidden_size",
                           "--float16", "--input_int32", "--opt_level", "--use_gpu",
                           "--disable_attention", "--use_external_data_format"})
    EXPECT_TRUE(contains(r.out, word)) << word << " not in: " << r.out;

  r = tfhost({"help", "plugins"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "show NAME")) << r.out;

  r = tfhost({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "tfhost ")) << r.out;
}

TEST(Cli, PluginsListsTheCorePluginAndItsContributions) {
  auto r = tfhost({"plugins"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* word :
       {"core", "ABI", "license", "fusions:", "core.remove_identity", "model types:", "passes: "})
    EXPECT_TRUE(contains(r.out, word)) << word << " not in: " << r.out;

  // The fixture folder also holds plugins that must fail to load: copy the good one alone.
  test::TempDir tmp;
  test::write_file(tmp / "libfixture_good.so",
                   test::read_file(TFH_FIXTURE_PLUGIN_DIR "/libfixture_good.so"));
  r = tfhost({"plugins", "--plugin-path", tmp.path(), "show", "fixture_good"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* word :
       {"fixture_good 0.1.0", "libfixture_good.so", "MIT", "fixture.count_nodes",
        "scale (int, default 1)", "converters:", "ops:", "com.example.FixtureOp", "fixture_model"})
    EXPECT_TRUE(contains(r.out, word)) << word << " not in: " << r.out;

  r = tfhost({"plugins", "show", "core.remove_identiy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "did you mean 'core.remove_identity'")) << r.err;
}

TEST(Cli, UsageErrorsExitTwoAndPointAtHelp) {
  auto r = tfhost({"optimize", "--output", "x.onnx"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "tfhost: error: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "see tfhost optimize --help")) << r.err;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;

  r = tfhost({"run", "x.yaml", "--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "see tfhost run --help")) << r.err;

  r = tfhost({"optimise"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "did you mean 'optimize'")) << r.err;

  r = tfhost({});
  EXPECT_EQ(r.exit_code, 2);
}

TEST(Cli, OptimizeWithoutModelTypeRunsTheCoreCleanup) {
  test::TempDir tmp;
  const std::string out = tmp / "opt.onnx";
  const auto r = tfhost({"optimize", "--input", kBertModel, "--output", out, "--disable_gelu",
                         "--num_heads", "2", "--use_mask_index"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "core.")) << r.out;
  EXPECT_TRUE(contains(r.out, "nodes: ")) << r.out;
  EXPECT_TRUE(test::file_exists(out));
}

TEST(Cli, GlobalOptionsBeforeOrAfterTheSubcommandAndAPluginModelType) {
  test::TempDir tmp;
  const std::string dir = tmp / "plugins";
  ::mkdir(dir.c_str(), 0755);
  test::write_file(dir + "/libfixture_good.so",
                   test::read_file(TFH_FIXTURE_PLUGIN_DIR "/libfixture_good.so"));
  const std::vector<std::string> job{"optimize",     "--input",      kBertModel,     "--output",
                                     tmp / "o.onnx", "--model_type", "fixture_model"};
  std::vector<std::string> before{"-v", "--plugin-path", dir};
  before.insert(before.end(), job.begin(), job.end());
  std::vector<std::string> after = job;
  after.insert(after.end(), {"--plugin-path", dir, "--verbose"});
  for (const auto& args : {before, after}) {
    const auto r = tfhost(args);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "[2/2] fixture.count_nodes: ")) << r.out;
    EXPECT_TRUE(contains(r.err, "libfixture_good.so")) << r.err;  // --verbose names the plugins
  }
  // TFHOST_PLUGIN_PATH is searched too.
  const auto r = tfhost({"plugins"}, {"TFHOST_PLUGIN_PATH=" + dir});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "fixture_good 0.1.0")) << r.out;
}

TEST(Cli, OptimizeOptLevelZeroIsALosslessResave) {
  test::TempDir tmp;
  const std::string out = tmp / "same.onnx";
  const auto r = tfhost({"optimize", "--input", kBertModel, "--output", out, "--opt_level", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(contains(r.out, "[1/")) << r.out;
  expect_same_model(kBertModel, out);
}

TEST(Cli, OptimizeRejectsUnknownModelTypeAndOptLevel) {
  test::TempDir tmp;
  auto r = tfhost(
      {"optimize", "--input", kBertModel, "--output", tmp / "o.onnx", "--model_type", "cor"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "unknown model type 'cor' (available: core")) << r.err;
  r = tfhost({"optimize", "--input", kBertModel, "--output", tmp / "o.onnx", "--opt_level", "3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(test::list_dir(tmp.path()).empty());
}

TEST(Cli, CapabilitiesThatDoNotExistYetFailAtOnce) {
  test::TempDir tmp;
  // The check looks the pass up, so --float16 starts working by itself when core.float16 lands.
  const bool have_fp16 = tfhost({"plugins", "show", "core.float16"}).exit_code == 0;
  auto r = tfhost({"optimize", "--input", kBertModel, "--output", tmp / "o.onnx", "--float16"});
  if (have_fp16) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
  } else {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(contains(r.err,
                         "tfhost: error: --float16 is not available yet: no pass "
                         "'core.float16' is registered"))
        << r.err;
    EXPECT_TRUE(test::list_dir(tmp.path()).empty());
  }
  r = tfhost({"optimize", "--input", kBertModel, "--output", tmp / "g.onnx", "--use_gpu"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "--use_gpu is not available yet")) << r.err;
  EXPECT_FALSE(test::file_exists(tmp / "g.onnx"));
}

}  // namespace
}  // namespace tfh::e2e
