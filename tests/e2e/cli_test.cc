// The tfhost binary end to end: the main job, a lossless round trip, help texts, optimize's flags.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "e2e/e2e_util.h"
#include "kernels/common/device_info.h"
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
  EXPECT_TRUE(contains(r.out, "verify: PASS: 5/5 samples")) << r.out;
  EXPECT_TRUE(contains(r.out, "| original | 1 | 128 | 0 |")) << r.out;
  EXPECT_TRUE(contains(r.out, "| optimized | 8 | 128 | 0 |")) << r.out;
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
  EXPECT_TRUE(contains(r.out, "(preset bert)")) << r.out;
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
                           "--disable_attention", "--use_external_data_format",
                           "--enable_gemm_fast_gelu", "--disable_group_norm",
                           "--disable_skip_group_norm", "--disable_packed_kv",
                           "--disable_packed_qkv", "--disable_bias_add", "--disable_bias_splitgelu",
                           "--disable_nhwc_conv", "--disable_rotary_embeddings",
                           "--use_group_norm_channels_first", "--disable_symbolic_shape_infer",
                           "--provider", "--convert_to_packing_mode"})
    EXPECT_TRUE(contains(r.out, word)) << word << " not in: " << r.out;
  // How ORT's --opt_level levels map onto tfhost.
  for (const char* word : {"0 none, 1 basic, 2 extended, 99 all", "0          no passes at all",
                           "1          cleanup", "2          1, then the fusions",
                           "99         everything that applies",
                           "not given  99 with --model_type, 1 without"})
    EXPECT_TRUE(contains(r.out, word)) << word << " not in: " << r.out;
  // Flags ORT's optimizer does not have.
  EXPECT_FALSE(contains(r.out, "--disable_multi_head_attention_bias")) << r.out;
  EXPECT_FALSE(contains(r.out, "--use_group_norm ")) << r.out;

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
  EXPECT_EQ(r.exit_code, 2);
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
  // Disabling a fusion nobody provides is accepted: it changes nothing.
  const auto r = tfhost({"optimize", "--input", kBertModel, "--output", out, "--disable_gelu",
                         "--disable_group_norm", "--disable_rotary_embeddings",
                         "--disable_symbolic_shape_infer", "--num_heads", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "core.")) << r.out;
  EXPECT_TRUE(contains(r.out, "nodes: ")) << r.out;
  EXPECT_TRUE(test::file_exists(out));
}

// A flag that asks for something no pass provides fails at once (exit 2), never silently does
// nothing; the same flag works once a plugin's pass takes it (next test).
TEST(Cli, OptimizeFlagsWithoutAPassThatTakesThemAreNotAvailableYet) {
  test::TempDir tmp;
  const std::vector<std::vector<std::string>> asks = {{"--enable_gelu_approximation"},
                                                      {"--enable_gemm_fast_gelu"},
                                                      {"--use_mask_index"},
                                                      {"--use_raw_attention_mask"},
                                                      {"--no_attention_mask"},
                                                      {"--use_multi_head_attention"},
                                                      {"--use_group_norm_channels_first"},
                                                      {"--convert_to_packing_mode"},
                                                      {"--num_heads", "2"},
                                                      {"--hidden_size", "64"},
                                                      {"--provider", "cuda"}};
  for (const auto& ask : asks) {
    std::vector<std::string> args{"optimize", "--input", kBertModel, "--output", tmp / "o.onnx"};
    args.insert(args.end(), ask.begin(), ask.end());
    const auto r = tfhost(args);
    EXPECT_EQ(r.exit_code, 2) << ask[0] << ": " << r.out << r.err;
    // "not available yet" when no loaded plugin takes the flag; "not used here" (naming the
    // passes that would) when a pass of another model type does (bert.attention's mask flags).
    const std::string tail = ": none of the passes run for model type 'core' takes parameter '" +
                             ask[0].substr(2) + "'";
    EXPECT_TRUE(contains(r.err, "tfhost: error: " + ask[0] + " is not available yet" + tail) ||
                contains(r.err, "tfhost: error: " + ask[0] + " is not used here" + tail))
        << r.err;
    EXPECT_EQ(line_count(r.err), 1u) << r.err;
    EXPECT_TRUE(test::list_dir(tmp.path()).empty()) << ask[0];
  }
  auto r = tfhost({"optimize", "--input", kBertModel, "--output", tmp / "o.onnx",
                   "--enable_gelu_approximation"});
  EXPECT_TRUE(contains(r.err, "and no pass 'core.gelu_approximation' is registered")) << r.err;
  // ORT's optimizer has no such flag.
  r = tfhost({"optimize", "--input", kBertModel, "--output", tmp / "o.onnx",
              "--disable_multi_head_attention_bias"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "disable_multi_head_attention_bias")) << r.err;
}

TEST(Cli, OptimizeFlagsReachThePassesThatTakeThem) {
  test::TempDir tmp;
  const std::string dir = tmp / "plugins";
  ::mkdir(dir.c_str(), 0755);
  test::write_file(dir + "/libfixture_flags.so",
                   test::read_file(TFH_FIXTURE_PLUGIN_DIR "/libfixture_flags.so"));
  const std::string out = tmp / "out";
  ::mkdir(out.c_str(), 0755);
  const std::vector<std::string> job{"optimize", "--plugin-path", dir,           "--input",
                                     kBertModel, "--output",      out + "/o.onnx"};
  auto with = [&job](std::vector<std::string> more) {
    more.insert(more.begin(), job.begin(), job.end());
    return more;
  };
  // fixture.flags reports num_heads * 10 + use_mask_index; --enable_gelu_approximation adds the
  // model type's gelu_approximation pass.
  auto r = tfhost(with({"--model_type", "fixture_flags", "--use_mask_index", "--num_heads", "4",
                        "--enable_gelu_approximation"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // The preset, the folding opt_level 99 adds after it, then the pass the switch adds.
  EXPECT_TRUE(contains(r.out, "[1/5] fixture.flags: 41 changed")) << r.out;
  EXPECT_TRUE(contains(r.out, "[2/5] core.constant_folding: ")) << r.out;
  EXPECT_TRUE(contains(r.out, "[5/5] fixture_flags.gelu_approximation: 7 changed")) << r.out;

  // Loaded, but not in the model type that runs: the message says where it would work.
  r = tfhost(with({"--use_mask_index"}));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "--use_mask_index is not used here: none of the passes run for "
                              "model type 'core' takes parameter 'use_mask_index' (passes that "
                              "take it: bert.attention, fixture.flags)"))
      << r.err;
  // Only the bert and gpt2 attention fusions take --hidden_size: not fixture_flags' passes.
  r = tfhost(with({"--model_type", "fixture_flags", "--hidden_size", "64"}));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "--hidden_size is not used here: none of the passes run for model "
                              "type 'fixture_flags' takes parameter 'hidden_size' (passes that "
                              "take it: bert.attention, gpt2.attention)"))
      << r.err;
  // --opt_level 0 runs no pass, so nothing can take the flag.
  r = tfhost(with({"--model_type", "fixture_flags", "--opt_level", "0", "--use_mask_index"}));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "--use_mask_index has no effect with --opt_level 0")) << r.err;
  EXPECT_EQ(test::list_dir(out).size(), 1u);  // only the first run wrote
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
    EXPECT_TRUE(contains(r.out, "[2/5] fixture.count_nodes: ")) << r.out;
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
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown model type 'cor' (available: bert, core, gpt2); did you mean 'core'?")) << r.err;
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
    EXPECT_EQ(r.exit_code, 2);  // as every other flag that is not available yet
    EXPECT_TRUE(contains(r.err,
                         "tfhost: error: --float16 is not available yet: no pass "
                         "'core.float16' is registered"))
        << r.err;
    EXPECT_TRUE(test::list_dir(tmp.path()).empty());
  }
}

// --use_gpu and `device: cuda` get the same check: a CUDA build and a GPU.
TEST(Cli, CudaNeedsACudaBuildAndAGpu) {
  test::TempDir tmp;
  const std::string config = tmp / "job.yaml";
  test::write_file(config, "model: {path: " + kBertModel + "}\noutput: " + tmp / "c.onnx" +
                               "\ndevice: cuda\npipeline: [{preset: core}]\n");
  const auto gpu = tfhost({"optimize", "--input", kBertModel, "--output", tmp / "g.onnx",
                           "--use_gpu"});
  const auto run = tfhost({"run", config, "--dry-run"});
  if (kernels::built_with_cuda() && kernels::cuda_device_count() > 0) {
    EXPECT_EQ(gpu.exit_code, 0) << gpu.err;
    EXPECT_EQ(run.exit_code, 0) << run.err;
    return;
  }
  const std::string why = kernels::built_with_cuda() ? "no CUDA GPU is present"
                                                     : "this tfhost was built without CUDA";
  EXPECT_EQ(gpu.exit_code, 2);
  EXPECT_TRUE(contains(gpu.err, "tfhost: error: --use_gpu is not available: " + why)) << gpu.err;
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(contains(run.err, "tfhost: error: " + config + ":3:9: 'device: cuda' is not "
                                "available: " + why))
      << run.err;
  EXPECT_EQ(line_count(gpu.err) + line_count(run.err), 2u) << gpu.err << run.err;
  // Every command with --use_gpu says the same, before any work.
  const std::string gpt2 = std::string(TFH_SOURCE_DIR) + "/models/gpt2past_tiny_opset14/model.onnx";
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"generate", "--model", gpt2, "--prompt", "1 2", "--use_gpu"},
        std::vector<std::string>{"perf", "--model", kBertModel, "--use_gpu"},
        std::vector<std::string>{"benchmark", "--model", kBertModel, "--use_gpu"}}) {
    const auto r = tfhost(cmd);
    EXPECT_EQ(r.exit_code, 2) << cmd[0];
    EXPECT_TRUE(contains(r.err, "tfhost: error: --use_gpu is not available: " + why)) << r.err;
  }
  EXPECT_EQ(test::list_dir(tmp.path()), std::vector<std::string>{"job.yaml"});
}

// A bad plugin file found by searching is refused with one warning and listed; the command goes
// on. Named in a config's `plugins: load:`, the same file is an error.
TEST(Cli, AStalePluginInTheSearchPathIsRefusedNotFatal) {
  test::TempDir tmp;
  const std::string dir = tmp / "plugins";
  ::mkdir(dir.c_str(), 0755);
  for (const char* name : {"libfixture_good.so", "libfixture_future_abi.so"})
    test::write_file(dir + "/" + name,
                     test::read_file(TFH_FIXTURE_PLUGIN_DIR "/" + std::string(name)));
  const std::string stale = dir + "/libfixture_future_abi.so";
  const std::vector<std::string> env{"TFHOST_PLUGIN_PATH=" + dir};
  const std::string warning = "tfhost: [loader] warning: " + stale +
                              ": skipped: plugin 'fixture_future_abi' was built for tfhost plugin "
                              "ABI ";

  auto r = tfhost({"plugins"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "fixture_good 0.1.0")) << r.out;
  EXPECT_TRUE(contains(r.out, "refused: " + stale + "\n  reason: plugin 'fixture_future_abi' "
                              "was built for tfhost plugin ABI "))
      << r.out;
  EXPECT_EQ(r.err.rfind(warning, 0), 0u) << r.err;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;

  r = tfhost({"optimize", "--input", kBertModel, "--output", tmp / "o.onnx", "--model_type",
              "fixture_model"},
             env);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "fixture.count_nodes: ")) << r.out;
  EXPECT_EQ(r.err.rfind(warning, 0), 0u) << r.err;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;

  // --plugin-path is a folder to search too, not a request for each plugin in it.
  r = tfhost({"optimize", "--plugin-path", dir, "--input", kBertModel, "--output", tmp / "p.onnx"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err.rfind(warning, 0), 0u) << r.err;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;

  r = tfhost({"plugins", "show", "fixture_future_abi"}, env);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "tfhost: error: plugin 'fixture_future_abi' was refused: " + stale))
      << r.err;

  const std::string config = tmp / "job.yaml";
  test::write_file(config, "model: {path: " + kBertModel + "}\noutput: " + tmp / "c.onnx" +
                               "\nplugins: {search: [plugins], load: [fixture_future_abi]}\n"
                               "pipeline: []\n");
  r = tfhost({"run", config, "--dry-run"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "tfhost: error: " + config + ":3:"))
      << r.err;
  EXPECT_TRUE(contains(r.err, stale + ": plugin 'fixture_future_abi' was built for")) << r.err;
}

}  // namespace
}  // namespace tfh::e2e
