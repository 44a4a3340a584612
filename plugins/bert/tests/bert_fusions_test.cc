// The bert plugin end to end on the bundled real exports: `tfhost optimize --model_type bert`,
// then the fused-op counts, the outputs against PyTorch's through `tfhost check`, and the fused
// model in ONNX Runtime against the unfused one.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/onnx_builder.h"
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
  const std::string dir = tfh::test::copy_test_data_sets(src, tmp / "case");
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
  {  // one int32 Cast per id/mask input, shared by the layers
    const onnx::ModelProto fused = tfh::test::read_model_proto(dir + "/model.onnx");
    std::map<std::string, int> casts_of;
    for (const auto& n : fused.graph().node())
      if (n.op_type() == "Cast") ++casts_of[n.input(0)];
    for (const auto& in : fused.graph().input()) EXPECT_LE(casts_of[in.name()], 1) << in.name();
  }
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
  const std::string dir = tfh::test::copy_test_data_sets(src, tmp / "case");
  auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", dir + "/model.onnx",
                   "--model_type", "bert", "--use_mask_index", "--num_heads", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto n = op_counts(dir + "/model.onnx");
  EXPECT_EQ(n["Attention"], 2);
  EXPECT_EQ(n["ReduceSum"], 1) << "one mask index shared by both layers";
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
// new transformers code, and at 14 and 17 the sdpa code as torch 2.x exports it) is fully optimized by the plugin's own rule, with PyTorch's outputs, and
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
  // 4 families x (6 opsets + the sdpa code at opsets 14 and 17) x (dynamic, static): none
  // silently missing
  EXPECT_EQ(variant_names().size(), 4u * 8u * 2u) << kVariantDir;
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
  // No shape plumbing left, dynamic axes or not: reshapes and transposes went into Attention,
  // arange position ids and constant token types into EmbedLayerNormalization.
  for (const char* op : {"Shape", "Reshape", "Transpose", "Expand", "Range", "Slice", "Where"})
    EXPECT_EQ(n[op], 0) << op;
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

// bert.inputs, the model type's generator, on the real exports before and after fusion: ids
// within the vocabulary with the padding id (RoBERTa's is 1) exactly on the padded positions, a
// right-padded mask whose first row is full, segment ids 0 on padding, all in the declared type.
struct InputsCase {
  const char* model;
  int64_t vocab, pad;
  bool segments;
};

class BertInputs : public ::testing::TestWithParam<InputsCase> {};

TEST_P(BertInputs, RolesFromTheGraph) {
  const InputsCase& c = GetParam();
  TempDir tmp;  // perf writes its results next to the model: a copy, not the repository's
  const std::string src = tmp / "model.onnx";
  fs::copy(std::string(TFH_SOURCE_DIR "/models/") + c.model + "/model.onnx", src);
  ASSERT_EQ(tfhost({"optimize", "--input", src, "--output", tmp / "fused.onnx", "--model_type",
                    "bert"}).exit_code, 0);
  for (const std::string model : {src, tmp / "fused.onnx"}) {
    SCOPED_TRACE(model);
    const std::string dir = tmp / ("in" + std::to_string(model.size()));
    const auto r = tfhost({"perf", "--model", model, "--model_type", "bert", "-b", "4", "-s", "9",
                           "--samples", "1", "--warmup", "0", "--save_inputs", dir});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto in = tfh::test::saved_inputs(dir);
    const tfh::test::SavedInput *ids = nullptr, *mask = nullptr, *seg = nullptr;
    for (const auto& x : in) {
      if (x.name == "input_ids") ids = &x;
      if (x.name == "attention_mask") mask = &x;
      if (x.name == "token_type_ids") seg = &x;
    }
    ASSERT_TRUE(ids && mask) << dir;
    ASSERT_EQ(seg != nullptr, c.segments);
    EXPECT_EQ(ids->dims, (std::vector<int64_t>{4, 9}));
    EXPECT_EQ(ids->type, "int64");
    bool padded = false, mixed_segments = false;
    for (int64_t r = 0; r < 4; ++r) {
      int64_t len = 0;
      while (len < 9 && mask->values[r * 9 + len] == 1) ++len;
      EXPECT_GE(len, 1);
      if (r == 0) EXPECT_EQ(len, 9) << "the first row is full";
      padded = padded || len < 9;
      for (int64_t k = 0; k < 9; ++k) {
        const int64_t id = ids->values[r * 9 + k];
        EXPECT_EQ(mask->values[r * 9 + k], k < len ? 1 : 0) << "right padding only";
        EXPECT_TRUE(id >= 0 && id < c.vocab) << id;
        EXPECT_EQ(id == c.pad, k >= len) << "padding id exactly on the padded positions";
        if (seg) {
          EXPECT_TRUE(seg->values[r * 9 + k] == 0 || (k < len && seg->values[r * 9 + k] == 1));
          mixed_segments = mixed_segments || seg->values[r * 9 + k] == 1;
        }
      }
    }
    EXPECT_TRUE(padded) << "some row is padded";
    if (seg) EXPECT_TRUE(mixed_segments);
  }
}

INSTANTIATE_TEST_SUITE_P(Exports, BertInputs,
                         ::testing::Values(InputsCase{"bert_tiny_opset14", 1000, 0, true},
                                           InputsCase{"roberta_tiny_opset14", 1000, 1, false},
                                           InputsCase{"distilbert_tiny_opset14", 1000, 0, false},
                                           InputsCase{"albert_tiny_opset14", 1000, 0, true}),
                         [](const ::testing::TestParamInfo<InputsCase>& i) {
                           return std::string(i.param.model);
                         });

// tf2onnx-style names and int32 inputs: the roles come from the graph (the Gather tables), the
// type from the declaration; an input with no recognisable role is an error naming it.
TEST(BertInputsBuilt, Tf2OnnxNamesInt32AndUnknownInput) {
  using tfh::test::Builder;
  const std::vector<tfh::test::Dim> bs{std::string("batch"), std::string("seq")};
  constexpr int kInt32 = onnx::TensorProto::INT32, kFloat = onnx::TensorProto::FLOAT;
  for (const bool extra : {false, true}) {
    Builder b(13);
    const std::string ids = b.input("ids:0", kInt32, bs), seg = b.input("token_kind:0", kInt32, bs);
    const std::string mask = b.input("input_mask:0", kInt32, bs);
    std::string sum = b.node("Add", {b.node("Gather", {b.weight({50, 8}), ids}),
                                     b.node("Gather", {b.weight({2, 8}), seg})});
    const std::string m = b.node("Unsqueeze", {b.node("Cast", {mask}, {Builder::attr("to", int64_t{kFloat})}),
                                               b.ints({2})});
    sum = b.node("Mul", {sum, m});
    if (extra) sum = b.node("Add", {sum, b.node("Unsqueeze", {b.input("mystery", kFloat, bs), b.ints({2})})});
    b.output(sum);
    TempDir tmp;
    tfh::test::write_model_proto(b.model(), tmp / "model.onnx");
    const auto r = tfhost({"perf", "--model", tmp / "model.onnx", "--dummy_inputs", "bert", "-b",
                           "3", "-s", "5", "--samples", "1", "--warmup", "0", "--save_inputs",
                           tmp / "in"});
    if (extra) {
      EXPECT_EQ(r.exit_code, 2);
      EXPECT_NE(r.err.find("bert.inputs: input 'mystery' is not token ids"), std::string::npos) << r.err;
      continue;
    }
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto in = tfh::test::saved_inputs(tmp / "in");
    ASSERT_EQ(in.size(), 3u);
    for (const auto& x : in) {
      EXPECT_EQ(x.type, "int32") << x.name;
      EXPECT_EQ(x.dims, (std::vector<int64_t>{3, 5}));
    }
    int64_t max_id = 0, max_seg = 0, zeros_in_mask = 0;
    for (int64_t v : in[0].values) max_id = std::max(max_id, v);
    for (int64_t v : in[1].values) max_seg = std::max(max_seg, v);
    for (int64_t v : in[2].values) zeros_in_mask += v == 0;
    EXPECT_GT(max_id, 1) << "ids:0 holds token ids (it indexes the 50-row table)";
    EXPECT_LT(max_id, 50);
    EXPECT_EQ(max_seg, 1) << "token_kind:0 holds segment ids (2-row table)";
    EXPECT_GT(zeros_in_mask, 0) << "input_mask:0 is padded";
  }
}

// optimize's --disable_bias_skip_layer_norm keeps the dense bias out of SkipLayerNormalization
// (a separate Add, 4 inputs), and --disable_shape_inference still fuses everything; both keep
// the outputs (tfhost compare through the runtime).
TEST(BertOptimizeFlags, DisableBiasSkipLayerNormAndShapeInference) {
  const std::string src = TFH_SOURCE_DIR "/models/bert_tiny_opset14/model.onnx";
  for (const char* flag : {"--disable_bias_skip_layer_norm", "--disable_shape_inference"}) {
    SCOPED_TRACE(flag);
    TempDir tmp;
    const auto r = tfhost({"optimize", "--input", src, "--output", tmp / "o.onnx", "--model_type",
                           "bert", flag});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("fully optimized (2 layers)"), std::string::npos) << r.err;
    const onnx::ModelProto m = tfh::test::read_model_proto(tmp / "o.onnx");
    int skip = 0, adds = 0;
    for (const auto& n : m.graph().node()) {
      adds += n.op_type() == "Add";
      if (n.op_type() != "SkipLayerNormalization") continue;
      ++skip;
      EXPECT_EQ(n.input_size(), std::string(flag) == "--disable_bias_skip_layer_norm" ? 4 : 5);
    }
    EXPECT_EQ(skip, 4);
    EXPECT_EQ(adds, std::string(flag) == "--disable_bias_skip_layer_norm" ? 4 : 0);
    const auto c = tfhost({"compare", "--baseline_model", src, "--optimized_model", tmp / "o.onnx",
                           "--model_type", "bert", "-b", "2", "-s", "8", "--samples", "2"});
    EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  }
}

// --enable_gelu_approximation (bert.gelu_approximation) turns BiasGelu into FastGelu, moving the
// outputs by about the approximation's error; --enable_gemm_fast_gelu (bert.gemm_fast_gelu) then
// folds each FastGelu into its MatMul as GemmFastGelu without changing the outputs further.
// ALBERT's gelu_new is FastGelu already: the GEMM fusion alone, checked against PyTorch.
TEST(BertOptimizeFlags, GeluApproximationAndGemmFastGelu) {
  const std::string src = TFH_SOURCE_DIR "/models/bert_tiny_opset14/model.onnx";
  TempDir tmp;
  auto r = tfhost({"optimize", "--input", src, "--output", tmp / "approx.onnx", "--model_type",
                   "bert", "--enable_gelu_approximation"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto approx = op_counts(tmp / "approx.onnx");
  EXPECT_EQ(approx["FastGelu"], 2);
  EXPECT_EQ(approx["BiasGelu"] + approx["Gelu"] + approx["GemmFastGelu"], 0);
  auto c = tfhost({"compare", "--baseline_model", src, "--optimized_model", tmp / "approx.onnx",
                   "--model_type", "bert", "-b", "2", "-s", "8", "--samples", "2", "--atol",
                   "3e-3", "--rtol", "0"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;

  r = tfhost({"optimize", "--input", src, "--output", tmp / "gemm.onnx", "--model_type", "bert",
              "--enable_gelu_approximation", "--enable_gemm_fast_gelu"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Fused GemmFastGelu: 2"), std::string::npos) << r.out;
  auto gemm = op_counts(tmp / "gemm.onnx");
  EXPECT_EQ(gemm["GemmFastGelu"], 2);
  EXPECT_EQ(gemm["FastGelu"], 0);
  EXPECT_EQ(gemm["MatMul"], approx["MatMul"] - 2);
  c = tfhost({"compare", "--baseline_model", tmp / "approx.onnx", "--optimized_model",
              tmp / "gemm.onnx", "--model_type", "bert", "-b", "2", "-s", "8", "--samples", "2"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;

  const std::string albert = TFH_SOURCE_DIR "/models/albert_tiny_opset14";
  const std::string dir = tfh::test::copy_test_data_sets(albert, tmp / "albert");
  r = tfhost({"optimize", "--input", albert + "/model.onnx", "--output", dir + "/model.onnx",
              "--model_type", "bert", "--enable_gemm_fast_gelu"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto n = op_counts(dir + "/model.onnx");
  EXPECT_EQ(n["GemmFastGelu"], 2);
  EXPECT_EQ(n["FastGelu"], 0);
  const auto check = tfhost({"check", dir, "--atol", "1e-4", "--rtol", "1e-3"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

// optimize --input_int32 (core.input_int32) on every family: the int64 inputs become int32, the
// Casts to int32 in front of the fused ops are gone, and the outputs are unchanged in tfhost's
// runtime (tfhost compare converts the inputs) and in ONNX Runtime (fed int32).
class BertInputInt32 : public ::testing::TestWithParam<const char*> {};

TEST_P(BertInputInt32, Int32InputsSameOutputs) {
  const std::string src = std::string(TFH_SOURCE_DIR "/models/") + GetParam();
  TempDir tmp;
  const auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", tmp / "o.onnx",
                         "--model_type", "bert", "--input_int32"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const onnx::ModelProto m = tfh::test::read_model_proto(tmp / "o.onnx");
  std::set<std::string> inputs;
  for (const auto& in : m.graph().input()) {
    EXPECT_EQ(in.type().tensor_type().elem_type(), onnx::TensorProto::INT32) << in.name();
    inputs.insert(in.name());
  }
  for (const auto& n : m.graph().node())
    if (n.op_type() == "Cast" && inputs.count(n.input(0)))
      for (const auto& a : n.attribute())
        if (a.name() == "to") EXPECT_NE(a.i(), onnx::TensorProto::INT32) << n.name();
  const auto c = tfhost({"compare", "--baseline_model", src + "/model.onnx", "--optimized_model",
                         tmp / "o.onnx", "--model_type", "bert", "-b", "2", "-s", "8",
                         "--samples", "2"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  auto inputs64 = tfh::test::read_test_data(src + "/test_data_set_0", "input");
  std::vector<onnx::TensorProto> inputs32;
  for (const auto& t : inputs64) {
    onnx::TensorProto u;
    u.set_name(t.name());
    u.set_data_type(onnx::TensorProto::INT32);
    *u.mutable_dims() = t.dims();
    for (double v : tfh::test::tensor_values(t)) u.add_int32_data(static_cast<int32_t>(v));
    inputs32.push_back(u);
  }
  const tfh::test::Diff d = tfh::test::compare_outputs(
      tfh::test::ort_run(src + "/model.onnx", inputs64), tfh::test::ort_run(tmp / "o.onnx", inputs32));
  ASSERT_TRUE(d.shapes_match) << d.message;
  EXPECT_LT(d.max_abs, 1e-4) << d.where;
}

INSTANTIATE_TEST_SUITE_P(Exports, BertInputInt32,
                         ::testing::Values("bert_tiny_opset14", "distilbert_tiny_opset14",
                                           "roberta_tiny_opset14", "albert_tiny_opset14"));

}  // namespace
