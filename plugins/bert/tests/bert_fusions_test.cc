// The bert plugin end to end on the bundled real exports: `tfhost optimize --model_type bert`,
// then the fused-op counts, the outputs against PyTorch's through `tfhost check`, and the fused
// model in ONNX Runtime against the unfused one.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "support/ort_reference.h"
#include "support/test_util.h"

namespace {

namespace fs = std::filesystem;
using tfh::test::TempDir;

std::map<std::string, int> op_counts(const std::string& model) {
  std::map<std::string, int> n;
  const onnx::ModelProto m = tfh::test::read_model_proto(model);  // alive through the loop
  for (const auto& node : m.graph().node()) ++n[node.op_type()];
  return n;
}

tfh::test::CommandResult tfhost(std::vector<std::string> args) {
  args.insert(args.begin(), TFH_TFHOST_EXE);
  return tfh::test::run_command(args, {});
}

struct Expect {
  const char* model;
  int embed_layer_norm, skip_layer_norm, bias_gelu, fast_gelu, attention;
};

class BertFusions : public ::testing::TestWithParam<Expect> {};

TEST_P(BertFusions, CountsAndOutputs) {
  const Expect& e = GetParam();
  const std::string src = std::string(TFH_SOURCE_DIR "/models/") + e.model;
  TempDir tmp;
  const std::string dir = tmp / "case";
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(src))
    if (entry.is_directory()) fs::copy(entry.path(), dir + "/" + entry.path().filename().string());
  const auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", dir + "/model.onnx",
                         "--model_type", "bert"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto before = op_counts(src + "/model.onnx");
  auto after = op_counts(dir + "/model.onnx");
  EXPECT_EQ(after["EmbedLayerNormalization"], e.embed_layer_norm) << r.out;
  EXPECT_EQ(after["LayerNormalization"], 0) << r.out;
  EXPECT_EQ(after["SkipLayerNormalization"], e.skip_layer_norm) << r.out;
  EXPECT_EQ(after["BiasGelu"], e.bias_gelu) << r.out;
  EXPECT_EQ(after["FastGelu"], e.fast_gelu) << r.out;
  EXPECT_EQ(after["Attention"], e.attention) << r.out;
  if (e.attention) EXPECT_EQ(after["Softmax"], 0);
  // What the fused ops replaced is gone.
  EXPECT_EQ(after["ReduceMean"], 0);
  EXPECT_EQ(after["Erf"], 0);
  EXPECT_EQ(after["Tanh"], before["Tanh"] - e.fast_gelu);  // the pooler's Tanh stays
  EXPECT_EQ(after["Gelu"], 0);  // every Gelu took its dense layer's bias
  EXPECT_LT(tfh::test::read_model_proto(dir + "/model.onnx").graph().node_size(),
            tfh::test::read_model_proto(src + "/model.onnx").graph().node_size());
  // Outputs unchanged: the fused model against PyTorch's outputs, through tfhost's runtime.
  const auto check = tfhost({"check", dir, "--atol", "1e-4", "--rtol", "1e-3"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

INSTANTIATE_TEST_SUITE_P(Exports, BertFusions,
                         // 2 layers each: one EmbedLayerNormalization, two SkipLayerNorms and one
                         // Gelu-family op per layer (RoBERTa too: its token-derived position ids
                         // become the op's position_ids input).
                         // DistilBERT's attention: q scaled first, masked_fill as Where.
                         ::testing::Values(Expect{"bert_tiny_opset14", 1, 4, 2, 0, 2},
                                           Expect{"bert_tiny_opset17", 1, 4, 2, 0, 2},
                                           Expect{"distilbert_tiny_opset14", 1, 4, 2, 0, 2},
                                           Expect{"roberta_tiny_opset14", 1, 4, 2, 0, 2},
                                           // ALBERT's gelu_new: the tanh form, with its bias
                                           Expect{"albert_tiny_opset14", 1, 4, 0, 2, 2}),
                         [](const ::testing::TestParamInfo<Expect>& i) {
                           return std::string(i.param.model);
                         });

// optimize's mask flags reach bert.attention: --use_mask_index feeds Attention 1-D lengths
// (ReduceSum of the mask), which for right-padded inputs gives the same outputs, in tfhost's
// runtime and in ONNX Runtime; --use_raw_attention_mask is the default form.
TEST(BertAttentionFlags, MaskIndexAndRawMask) {
  const std::string src = TFH_SOURCE_DIR "/models/bert_tiny_opset14";
  TempDir tmp;
  const std::string dir = tmp / "case";
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(src))
    if (entry.is_directory()) fs::copy(entry.path(), dir + "/" + entry.path().filename().string());
  auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", dir + "/model.onnx",
                   "--model_type", "bert", "--use_mask_index", "--num_heads", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto n = op_counts(dir + "/model.onnx");
  EXPECT_EQ(n["Attention"], 2);
  EXPECT_EQ(n["ReduceSum"], 2);
  const auto check = tfhost({"check", dir, "--atol", "1e-4"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  const auto inputs = tfh::test::read_test_data(src + "/test_data_set_0", "input");
  const tfh::test::Diff d = tfh::test::compare_outputs(
      tfh::test::ort_run(src + "/model.onnx", inputs), tfh::test::ort_run(dir + "/model.onnx", inputs));
  EXPECT_LT(d.max_abs, 1e-4) << d.where;

  r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", tmp / "raw.onnx",
              "--model_type", "bert", "--use_raw_attention_mask"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  n = op_counts(tmp / "raw.onnx");
  EXPECT_EQ(n["Attention"], 2);
  EXPECT_EQ(n["ReduceSum"], 0);
}

// The fused models still run in ONNX Runtime, with the unfused models' outputs.
class BertFusionsInOnnxRuntime : public ::testing::TestWithParam<const char*> {};

TEST_P(BertFusionsInOnnxRuntime, FusedMatchesUnfused) {
  const std::string src = std::string(TFH_SOURCE_DIR "/models/") + GetParam();
  TempDir tmp;
  const auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output",
                         tmp / "fused.onnx", "--model_type", "bert"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto inputs = tfh::test::read_test_data(src + "/test_data_set_0", "input");
  const auto want = tfh::test::ort_run(src + "/model.onnx", inputs);
  const auto got = tfh::test::ort_run(tmp / "fused.onnx", inputs);
  const tfh::test::Diff d = tfh::test::compare_outputs(want, got);
  ASSERT_TRUE(d.shapes_match) << d.message;
  EXPECT_LT(d.max_abs, 1e-4) << d.where;
}

INSTANTIATE_TEST_SUITE_P(Exports, BertFusionsInOnnxRuntime,
                         ::testing::Values("bert_tiny_opset14", "bert_tiny_opset17",
                                           "distilbert_tiny_opset14", "roberta_tiny_opset14",
                                           "albert_tiny_opset14"));

// Every export variant tools/export_bert_variants.py makes (tests/data/bert_variants: the four
// families at opsets 11, 12, 13, 14, 16 and 17, with dynamic axes and with static shapes, old and
// new transformers code) is fully optimized by the plugin's own rule, with PyTorch's outputs, and
// still runs in ONNX Runtime with the unfused model's outputs.
const char* const kVariantDir = TFH_SOURCE_DIR "/tests/data/bert_variants";

std::vector<std::string> variant_names() {
  std::vector<std::string> v;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kVariantDir, ec))
    if (e.is_directory()) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

TEST(BertVariants, AllPresent) {
  EXPECT_EQ(variant_names().size(), 4u * 6u * 2u) << kVariantDir;  // none silently missing
}

class BertVariants : public ::testing::TestWithParam<std::string> {};

TEST_P(BertVariants, FullyOptimizedWithPyTorchOutputs) {
  const std::string src = std::string(kVariantDir) + "/" + GetParam();
  TempDir tmp;
  const std::string dir = tmp / "case";
  fs::create_directories(dir);
  fs::copy(src + "/test_data_set_0", dir + "/test_data_set_0");
  const auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", dir + "/model.onnx",
                         "--model_type", "bert"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("fully optimized (2 layers)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  auto n = op_counts(dir + "/model.onnx");
  // The rule, counted here independently of the plugin's report.
  EXPECT_EQ(n["EmbedLayerNormalization"], 1);
  EXPECT_EQ(n["Attention"], 2);
  EXPECT_EQ(n["Gelu"] + n["BiasGelu"] + n["FastGelu"], 2);
  EXPECT_EQ(n["SkipLayerNormalization"], 4);
  EXPECT_EQ(n["ReduceMean"] + n["Softmax"] + n["Erf"] + n["LayerNormalization"], 0);
  const auto check = tfhost({"check", dir, "--atol", "1e-4", "--rtol", "1e-3"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  const auto inputs = tfh::test::read_test_data(src + "/test_data_set_0", "input");
  const tfh::test::Diff d = tfh::test::compare_outputs(
      tfh::test::ort_run(src + "/model.onnx", inputs), tfh::test::ort_run(dir + "/model.onnx", inputs));
  ASSERT_TRUE(d.shapes_match) << d.message;
  EXPECT_LT(d.max_abs, 1e-4) << d.where;
}

INSTANTIATE_TEST_SUITE_P(Exports, BertVariants, ::testing::ValuesIn(variant_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// A model the fusions cannot fully optimize gets warnings that name the fusion and the nodes
// left, never silence; the statistics line says what was fused.
TEST(BertReport, WarnsWithTheNodesLeft) {
  const std::string src = TFH_SOURCE_DIR "/models/bert_tiny_opset14/model.onnx";
  TempDir tmp;
  const auto r = tfhost({"optimize", "--input", src, "--output", tmp / "o.onnx", "--model_type",
                         "bert", "--disable_attention", "--disable_gelu"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: not fully optimized: EmbedLayerNormalization 1, Attention 0"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 of 2 self-attention blocks not fused by bert.attention (Softmax left: "
                       "/encoder/layer.0/attention/self/Softmax, "
                       "/encoder/layer.1/attention/self/Softmax)"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Gelu not fused by bert.gelu (Erf left: "
                       "/encoder/layer.0/intermediate/intermediate_act_fn/Erf"),
            std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("fully optimized ("), std::string::npos) << r.err;
}

}  // namespace
