// The gpt2 plugin on the bundled real exports (convert_to_onnx's past layout with int and float
// masks, no past, Hugging Face's separate key/value past): `tfhost optimize --model_type gpt2`,
// the fused-op counts, the outputs against PyTorch's through `tfhost check`, and the fused model
// in ONNX Runtime against the unfused one.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "support/onnx_builder.h"
#include "support/ort_reference.h"
#include "support/test_util.h"

namespace {

namespace fs = std::filesystem;
using tfh::test::TempDir;

tfh::test::CommandResult tfhost(std::vector<std::string> args) {
  args.insert(args.begin(), TFH_TFHOST_EXE);
  return tfh::test::run_command(args, {});
}

class Gpt2Fusions : public ::testing::TestWithParam<const char*> {};

TEST_P(Gpt2Fusions, CountsOutputsAndOnnxRuntime) {
  const std::string src = std::string(TFH_SOURCE_DIR "/models/") + GetParam();
  TempDir tmp;
  const std::string dir = tfh::test::copy_test_data_sets(src, tmp / "case");
  const auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", dir + "/model.onnx",
                         "--model_type", "gpt2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<std::string, int> n;
  const onnx::ModelProto m = tfh::test::read_model_proto(dir + "/model.onnx");
  for (const auto& node : m.graph().node()) ++n[node.op_type()];
  // 2 layers: every Conv1D is MatMul + bias again; 5 LayerNorms (ln_1, ln_2 per layer, ln_f): the
  // first in EmbedLayerNormalization with the embeddings, the 4 after a residual Add
  // SkipLayerNormalization; one FastGelu per layer; one Attention per layer (MultiHeadAttention
  // with Hugging Face's separate past key/value).
  const bool separate_kv = std::string(GetParam()).find("gpt2hf") == 0;
  EXPECT_EQ(n["Gemm"], 0);
  EXPECT_EQ(n["EmbedLayerNormalization"], 1);
  EXPECT_EQ(n["LayerNormalization"], 0);
  EXPECT_EQ(n["SkipLayerNormalization"], 4);
  EXPECT_EQ(n["FastGelu"], 2);
  EXPECT_EQ(n[separate_kv ? "MultiHeadAttention" : "Attention"], 2);
  EXPECT_EQ(n["ReduceMean"] + n["Tanh"] + n["Softmax"] + n["Where"] + n["Split"] * !separate_kv, 0);
  for (const auto& node : m.graph().node()) {
    if (node.op_type() != "Attention" && node.op_type() != "MultiHeadAttention") continue;
    std::map<std::string, int64_t> attrs;
    for (const auto& a : node.attribute()) attrs[a.name()] = a.i();
    EXPECT_EQ(attrs["num_heads"], 4) << "detected from the graph";
    EXPECT_EQ(attrs["unidirectional"], 1);
  }
  // The model says so.
  EXPECT_NE(r.err.find("fully optimized (2 layers)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  // Outputs unchanged: against PyTorch's through tfhost's runtime, and in ONNX Runtime.
  const auto check = tfhost({"check", dir, "--atol", "1e-4", "--rtol", "1e-3"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  const auto inputs = tfh::test::read_test_data(src + "/test_data_set_0", "input");
  const tfh::test::Diff d = tfh::test::compare_outputs(
      tfh::test::ort_run(src + "/model.onnx", inputs), tfh::test::ort_run(dir + "/model.onnx", inputs));
  ASSERT_TRUE(d.shapes_match) << d.message;
  EXPECT_LT(d.max_abs, 1e-4) << d.where;
}

INSTANTIATE_TEST_SUITE_P(Exports, Gpt2Fusions,
                         ::testing::Values("gpt2past_tiny_opset14", "gpt2past_tiny_opset14_fmask",
                                           "gpt2nopast_tiny_opset14",
                                           "gpt2hf_tiny_opset14_withpast"));

// --enable_gemm_fast_gelu (gpt2.gemm_fast_gelu): each layer's MatMul + FastGelu becomes one
// GemmFastGelu; the outputs stay PyTorch's (tfhost check), and in float16 (--float16, which keeps
// GemmFastGelu in float16) they match the float32 export within float16's tolerance.
class Gpt2GemmFastGelu : public ::testing::TestWithParam<const char*> {};

TEST_P(Gpt2GemmFastGelu, CountsAndOutputs) {
  const std::string src = std::string(TFH_SOURCE_DIR "/models/") + GetParam();
  TempDir tmp;
  const std::string dir = tfh::test::copy_test_data_sets(src, tmp / "case");
  auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", dir + "/model.onnx",
                   "--model_type", "gpt2", "--enable_gemm_fast_gelu"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto counts = [](const std::string& path) {
    std::map<std::string, int> n;
    const onnx::ModelProto m = tfh::test::read_model_proto(path);
    for (const auto& node : m.graph().node()) ++n[node.op_type()];
    return n;
  };
  auto n = counts(dir + "/model.onnx");
  EXPECT_EQ(n["GemmFastGelu"], 2);
  EXPECT_EQ(n["FastGelu"], 0);
  const auto check = tfhost({"check", dir, "--atol", "1e-4", "--rtol", "1e-3"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;

  r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", tmp / "fp16.onnx",
              "--model_type", "gpt2", "--enable_gemm_fast_gelu", "--float16"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const onnx::ModelProto m = tfh::test::read_model_proto(tmp / "fp16.onnx");
  int half = 0;
  for (const auto& node : m.graph().node())
    if (node.op_type() == "GemmFastGelu")
      for (const auto& init : m.graph().initializer())
        half += init.name() == node.input(1) && init.data_type() == onnx::TensorProto::FLOAT16;
  EXPECT_EQ(half, 2) << "both GemmFastGelu weights in float16";
  const auto c = tfhost({"compare", "--baseline_model", src + "/model.onnx", "--optimized_model",
                         tmp / "fp16.onnx", "--model_type", "gpt2", "-b", "2", "-s", "4",
                         "--past_sequence_length", "3", "--samples", "2"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
}

INSTANTIATE_TEST_SUITE_P(Exports, Gpt2GemmFastGelu,
                         ::testing::Values("gpt2past_tiny_opset14", "gpt2nopast_tiny_opset14",
                                           "gpt2hf_tiny_opset14_withpast"));

// gpt2.gemm_reshape alone on built graphs: the exporter's form (targets from Shape(x)) and the
// static one (constant targets) become MatMul + Add with the same outputs; a Gemm with transB, or
// a second Reshape that does not restore x's leading dims, is left alone.
struct GemmCase {
  const char* name;
  bool shape_targets;  // targets computed from Shape(x), as the exporter writes them
  int64_t trans_b;
  bool restores;       // the second Reshape gives back x's leading dims
  bool fuses;
};

class GemmReshape : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmReshape, CountsAndOutputs) {
  using tfh::test::Builder;
  const GemmCase& c = GetParam();
  Builder b(14);
  constexpr int kFloat = onnx::TensorProto::FLOAT;
  const std::string x =
      b.input("x", kFloat, {int64_t{2}, int64_t{7}, int64_t{16}});
  std::string flat_shape, back_shape;
  if (c.shape_targets) {
    const std::string shape = b.node("Shape", {x});
    auto dim = [&](int64_t i) {  // Shape(x)[i] as a 1-element vector
      return b.node("Gather", {shape, b.ints({i})}, {Builder::attr("axis", int64_t{0})});
    };
    flat_shape = b.node("Concat", {b.ints({-1}), b.node("Slice", {shape, b.ints({-1}), b.ints({1000})})},
                        {Builder::attr("axis", int64_t{0})});
    back_shape = b.node("Concat", {c.restores ? dim(0) : dim(1), c.restores ? dim(1) : dim(0),
                                   b.ints({24})},
                        {Builder::attr("axis", int64_t{0})});
  } else {
    flat_shape = b.ints({-1, 16});
    back_shape = b.ints(c.restores ? std::vector<int64_t>{2, 7, 24} : std::vector<int64_t>{7, 2, 24});
  }
  const std::string w = c.trans_b ? b.weight({24, 16}) : b.weight({16, 24});
  const std::string gemm = b.node("Gemm", {b.node("Reshape", {x, flat_shape}), w, b.weight({24})},
                                  {Builder::attr("transB", c.trans_b)});
  b.output(b.node("Reshape", {gemm, back_shape}));
  TempDir tmp;
  tfh::test::write_model_proto(b.model(), tmp / "in.onnx");
  tfh::test::write_file(tmp / "run.yaml",
                        "version: 1\nmodel: {path: in.onnx}\noutput: out.onnx\npipeline:\n"
                        "  - pass: core.shape_inference\n  - pass: gpt2.gemm_reshape\n"
                        "  - pass: core.eliminate_dead_nodes\n");
  auto r = tfhost({"run", tmp / "run.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<std::string, int> n;
  const onnx::ModelProto out = tfh::test::read_model_proto(tmp / "out.onnx");  // alive in the loop
  for (const auto& node : out.graph().node()) ++n[node.op_type()];
  EXPECT_EQ(n["Gemm"], c.fuses ? 0 : 1);
  EXPECT_EQ(n["MatMul"], c.fuses ? 1 : 0);
  EXPECT_EQ(n["Reshape"], c.fuses ? 0 : 2);
  r = tfhost({"compare", "--baseline_model", tmp / "in.onnx", "--optimized_model", tmp / "out.onnx",
              "--samples", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

INSTANTIATE_TEST_SUITE_P(Built, GemmReshape,
                         ::testing::Values(GemmCase{"exporter_shape_targets", true, 0, true, true},
                                           GemmCase{"constant_targets", false, 0, true, true},
                                           GemmCase{"trans_b_left_alone", false, 1, true, false},
                                           GemmCase{"other_leading_dims", true, 0, false, false},
                                           GemmCase{"swapped_constant_dims", false, 0, false, false}),
                         [](const ::testing::TestParamInfo<GemmCase>& i) {
                           return std::string(i.param.name);
                         });

// gpt2.inputs, the model type's generator, in all three layouts: ids within the vocabulary, a
// left-padded mask over past + new tokens (row 0 unpadded, the newest token always real),
// position ids derived from it as generate() does, past tensors shaped for the layout; and the
// fused model equals the unfused one on them (tfhost compare), fully masked rows included.
class Gpt2Inputs : public ::testing::TestWithParam<const char*> {};

TEST_P(Gpt2Inputs, LeftPaddedGenerationInputs) {
  TempDir tmp;  // perf writes its results next to the model: a copy, not the repository's
  const std::string model = tmp / "model.onnx";
  fs::copy(std::string(TFH_SOURCE_DIR "/models/") + GetParam() + "/model.onnx", model);
  const int64_t B = 5, S = 2, P = 6, T = P + S;
  const auto r = tfhost({"perf", "--model", model, "--model_type", "gpt2", "-b", std::to_string(B),
                         "-s", std::to_string(S), "--past_sequence_length", std::to_string(P),
                         "--samples", "1", "--warmup", "0", "--save_inputs", tmp / "in"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto in = tfh::test::saved_inputs(tmp / "in");
  std::map<std::string, const tfh::test::SavedInput*> by;
  for (const auto& x : in) by[x.name] = &x;
  ASSERT_TRUE(by.count("input_ids"));
  EXPECT_EQ(by["input_ids"]->dims, (std::vector<int64_t>{B, S}));
  for (int64_t id : by["input_ids"]->values) EXPECT_TRUE(id >= 0 && id < 1000) << id;
  const std::string kind = GetParam();
  if (kind.find("nopast") != std::string::npos) {
    EXPECT_EQ(in.size(), 1u);
  } else {
    ASSERT_TRUE(by.count("attention_mask"));
    const auto& mask = *by["attention_mask"];
    EXPECT_EQ(mask.dims, (std::vector<int64_t>{B, T}));
    bool padded = false;
    for (int64_t b = 0; b < B; ++b) {
      int64_t pad = 0;
      while (pad < T && mask.values[b * T + pad] == 0) ++pad;
      if (b == 0) EXPECT_EQ(pad, 0);
      EXPECT_LT(pad, T) << "the newest token is real";
      padded = padded || pad > 0;
      for (int64_t t = pad; t < T; ++t) EXPECT_EQ(mask.values[b * T + t], 1) << "left padding only";
      if (by.count("position_ids"))
        for (int64_t s = 0; s < S; ++s) {
          const int64_t at = P + s;
          EXPECT_EQ(by["position_ids"]->values[b * S + s], at >= pad ? at - pad : 1);
        }
    }
    EXPECT_TRUE(padded);
    for (const auto& x : in)
      if (x.name.rfind("past", 0) == 0)
        EXPECT_EQ(x.dims, kind.find("gpt2hf") == 0 ? (std::vector<int64_t>{B, 4, P, 16})
                                                   : (std::vector<int64_t>{2, B, 4, P, 16}))
            << x.name;
  }
  // The fused model on these inputs.
  ASSERT_EQ(tfhost({"optimize", "--input", model, "--output", tmp / "fused.onnx", "--model_type",
                    "gpt2"}).exit_code, 0);
  const auto c = tfhost({"compare", "--baseline_model", model, "--optimized_model",
                         tmp / "fused.onnx", "--model_type", "gpt2", "-b", std::to_string(B), "-s",
                         std::to_string(S), "--past_sequence_length", std::to_string(P),
                         "--samples", "3"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
}

INSTANTIATE_TEST_SUITE_P(Exports, Gpt2Inputs,
                         ::testing::Values("gpt2past_tiny_opset14", "gpt2past_tiny_opset14_fmask",
                                           "gpt2nopast_tiny_opset14",
                                           "gpt2hf_tiny_opset14_withpast"));

// configs/gpt2_cpu.yaml runs end to end: fully optimized, verify passes on gpt2.inputs, the
// decode-step benchmark table is printed.
TEST(Gpt2Config, CpuConfigRuns) {
  TempDir tmp;
  const auto r = tfhost({"run", TFH_SOURCE_DIR "/configs/gpt2_cpu.yaml", "--set",
                         "output=" + (tmp / "gpt2_tiny_opt.onnx")});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("fully optimized (2 layers)"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("verify: PASS: 5/5 samples"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| optimized | 8 | 1 | 64 |"), std::string::npos) << r.out;
  EXPECT_TRUE(tfh::test::file_exists(tmp / "gpt2_tiny_opt.onnx"));
  // gpt2_fp16.yaml (device: auto) runs too and says where it ran.
  const auto f = tfhost({"run", TFH_SOURCE_DIR "/configs/gpt2_fp16.yaml", "--set",
                         "output=" + (tmp / "gpt2_tiny_fp16.onnx"), "--set", "benchmark=null"});
  ASSERT_EQ(f.exit_code, 0) << f.out << f.err;
  EXPECT_NE(f.out.find("device: auto: verify and benchmark run on the CPU"), std::string::npos)
      << f.out;
  EXPECT_NE(f.out.find("verify: PASS: 5/5 samples"), std::string::npos) << f.out;
}

// Every variant tools/export_gpt2_variants.py makes (tests/data/gpt2_variants: the past, float
// mask, int32 inputs, Hugging Face and no-past layouts at opsets 11-17, old and new transformers
// code) is fully
// optimized, keeps PyTorch's outputs, and runs in ONNX Runtime with the unfused model's outputs.
const char* const kVariantDir = TFH_SOURCE_DIR "/tests/data/gpt2_variants";

std::vector<std::string> variant_names() {
  std::vector<std::string> v;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kVariantDir, ec))
    if (e.is_directory()) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

TEST(Gpt2Variants, AllPresent) {
  EXPECT_EQ(variant_names().size(), 3u * 6u + 2u + 2u) << kVariantDir;  // none silently missing
}

class Gpt2Variants : public ::testing::TestWithParam<std::string> {};

TEST_P(Gpt2Variants, FullyOptimizedWithPyTorchOutputs) {
  const std::string src = std::string(kVariantDir) + "/" + GetParam();
  TempDir tmp;
  const std::string dir = tmp / "case";
  fs::create_directories(dir);
  fs::copy(src + "/test_data_set_0", dir + "/test_data_set_0");
  const auto r = tfhost({"optimize", "--input", src + "/model.onnx", "--output", dir + "/model.onnx",
                         "--model_type", "gpt2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("fully optimized (2 layers)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  std::map<std::string, int> n;
  const onnx::ModelProto m = tfh::test::read_model_proto(dir + "/model.onnx");
  for (const auto& node : m.graph().node()) ++n[node.op_type()];
  const bool hf = GetParam().rfind("gpt2hf", 0) == 0;
  EXPECT_EQ(n[hf ? "MultiHeadAttention" : "Attention"], 2);
  EXPECT_EQ(n["FastGelu"], 2);
  EXPECT_EQ(n["SkipLayerNormalization"], 4);
  EXPECT_EQ(n["EmbedLayerNormalization"], 1);
  for (const char* op : {"Softmax", "ReduceMean", "Tanh", "Where", "Gemm", "Transpose",
                         "LayerNormalization"})
    EXPECT_EQ(n[op], 0) << op;
  const auto check = tfhost({"check", dir, "--atol", "1e-4", "--rtol", "1e-3"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  const auto inputs = tfh::test::read_test_data(src + "/test_data_set_0", "input");
  const tfh::test::Diff d = tfh::test::compare_outputs(
      tfh::test::ort_run(src + "/model.onnx", inputs), tfh::test::ort_run(dir + "/model.onnx", inputs));
  ASSERT_TRUE(d.shapes_match) << d.message;
  EXPECT_LT(d.max_abs, 1e-4) << d.where;
}

INSTANTIATE_TEST_SUITE_P(Exports, Gpt2Variants, ::testing::ValuesIn(variant_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// Greedy generation (`tfhost generate`, present fed back as past) gets exactly the tokens of the
// unfused model from the fused one, in every layout; a prompt that is not token ids is refused.
class Gpt2Generate : public ::testing::TestWithParam<std::string> {};

TEST_P(Gpt2Generate, FusedGeneratesTheSameTokens) {
  const std::string src = GetParam();
  TempDir tmp;
  ASSERT_EQ(tfhost({"optimize", "--input", src, "--output", tmp / "fused.onnx", "--model_type",
                    "gpt2"}).exit_code, 0);
  auto gen = [&](const std::string& model) {
    return tfhost({"generate", "--model", model, "--prompt", "5 17 31 42 8", "--max_new_tokens",
                   "12", "--batch_size", "2"});
  };
  const auto a = gen(src), b = gen(tmp / "fused.onnx");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), ' '), 2 * (12 + 1)) << a.out;  // 12 ids a row
}

INSTANTIATE_TEST_SUITE_P(
    Exports, Gpt2Generate,
    ::testing::Values(TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14/model.onnx",
                      TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14_fmask/model.onnx",
                      TFH_SOURCE_DIR "/models/gpt2hf_tiny_opset14_withpast/model.onnx",
                      TFH_SOURCE_DIR "/models/gpt2nopast_tiny_opset14/model.onnx",
                      TFH_SOURCE_DIR "/tests/data/gpt2_variants/gpt2past_opset11/model.onnx",
                      TFH_SOURCE_DIR "/tests/data/gpt2_variants/gpt2hf_opset17/model.onnx"));

TEST(Gpt2Generate, RefusesABadPrompt) {
  const auto r = tfhost({"generate", "--model", TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14/model.onnx",
                         "--prompt", "5 seventeen"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--prompt: 'seventeen' is not a token id"), std::string::npos) << r.err;
}

// gpt2.from_checkpoint (`tfhost convert gpt2`): the model built from the checkpoint directory
// alone gives PyTorch's outputs for a left-padded prompt and a decode step (tfhost check on the
// checkpoint's test data), and ONNX Runtime runs it with the same outputs.
TEST(Gpt2Convert, CheckpointGivesPyTorchOutputs) {
  const std::string ckpt = TFH_SOURCE_DIR "/models/gpt2_tiny_checkpoint";
  TempDir tmp;
  const std::string dir = tmp / "converted";
  fs::create_directories(dir);
  const auto r = tfhost({"convert", "gpt2", "--checkpoint", ckpt, "--output", dir + "/model.onnx"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("built gpt2.from_checkpoint"), std::string::npos) << r.out;
  std::map<std::string, int> n;
  const onnx::ModelProto m = tfh::test::read_model_proto(dir + "/model.onnx");
  for (const auto& node : m.graph().node()) ++n[node.op_type()];
  EXPECT_EQ(n["Attention"], 2);
  EXPECT_EQ(n["SkipLayerNormalization"], 4);
  EXPECT_EQ(n["FastGelu"], 2);
  EXPECT_EQ(m.graph().input_size(), 5);
  EXPECT_EQ(m.graph().output_size(), 3);
  for (const char* set : {"test_data_set_0", "test_data_set_1"})
    fs::copy(ckpt + "/" + set, dir + "/" + set);
  const auto check = tfhost({"check", dir, "--atol", "1e-4", "--rtol", "1e-3"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  // ONNX Runtime: the decode step entirely; for the prompt, the unpadded positions. (Its left-padded
  // row has query positions whose every key is masked; there ONNX Runtime's Attention lets the
  // future keys in where PyTorch and tfhost do not, which changes only values at padded
  // positions: garbage either way, never attended to afterwards.)
  {
    const std::string set = ckpt + "/test_data_set_1";
    const tfh::test::Diff d = tfh::test::compare_outputs(
        tfh::test::read_test_data(set, "output"),
        tfh::test::ort_run(dir + "/model.onnx", tfh::test::read_test_data(set, "input")));
    ASSERT_TRUE(d.shapes_match) << d.message;
    EXPECT_LT(d.max_abs, 1e-4) << "decode step: " << d.where;
  }
  {
    const std::string set = ckpt + "/test_data_set_0";
    const auto inputs = tfh::test::read_test_data(set, "input");
    const auto want = tfh::test::read_test_data(set, "output");
    const auto got = tfh::test::ort_run(dir + "/model.onnx", inputs);
    const std::vector<double> a = tfh::test::tensor_values(want[0]), b = tfh::test::tensor_values(got[0]);
    const std::vector<double> mask = tfh::test::tensor_values(inputs[2]);  // [B, S] (no past)
    ASSERT_EQ(a.size(), b.size());
    const size_t positions = mask.size(), vocab = a.size() / positions;
    double worst = 0;
    size_t compared = 0;
    for (size_t p = 0; p < positions; ++p) {
      if (mask[p] == 0) continue;  // a padded position
      for (size_t v = 0; v < vocab; ++v)
        worst = std::max(worst, std::fabs(a[p * vocab + v] - b[p * vocab + v]));
      ++compared;
    }
    EXPECT_GT(compared, positions / 2);
    EXPECT_LT(worst, 1e-4) << "prompt: logits at the unpadded positions";
  }
}

// Bad checkpoints: one error line naming the file at fault, exit status 2, nothing written.
TEST(Gpt2Convert, BadCheckpointsFailClearly) {
  const std::string ckpt = TFH_SOURCE_DIR "/models/gpt2_tiny_checkpoint";
  TempDir tmp;
  auto convert = [&](const std::string& dir) {
    return tfhost({"convert", "gpt2", "--checkpoint", dir, "--output", tmp / "out.onnx"});
  };
  auto r = convert(tmp / "missing");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing/config.json: cannot read"), std::string::npos) << r.err;
  // A truncated weight file.
  const std::string bad = tmp / "truncated";
  fs::create_directories(bad);
  fs::copy(ckpt + "/config.json", bad + "/config.json");
  const std::string bytes = tfh::test::read_file(ckpt + "/model.safetensors");
  tfh::test::write_file(bad + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
  r = convert(bad);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("truncated/model.safetensors: tensor '"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("data_offsets outside the data"), std::string::npos) << r.err;
  // A config whose sizes do not match the weights.
  const std::string wrong = tmp / "wrong";
  fs::create_directories(wrong);
  fs::copy(ckpt + "/model.safetensors", wrong + "/model.safetensors");
  std::string cfg = tfh::test::read_file(ckpt + "/config.json");
  const std::string from = "\"n_embd\": 64";
  ASSERT_NE(cfg.find(from), std::string::npos);
  cfg.replace(cfg.find(from), from.size(), "\"n_embd\": 32");
  tfh::test::write_file(wrong + "/config.json", cfg);
  r = convert(wrong);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("expected [1000, 32] by config.json"), std::string::npos) << r.err;
  EXPECT_FALSE(tfh::test::file_exists(tmp / "out.onnx"));
  r = tfhost({"convert", "gpt2", "--checkpoint", ckpt, "--output", tmp / "out.onnx", "-p", "int4"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("precision 'int4': fp32 or fp16"), std::string::npos) << r.err;
  EXPECT_FALSE(tfh::test::file_exists(tmp / "out.onnx"));
}

// -p fp16: float16 weights, activations, past and present (logits cast to float32), within
// float16's tolerance of the float32 model (which equals PyTorch), same top-1 tokens.
TEST(Gpt2Convert, Float16) {
  const std::string ckpt = TFH_SOURCE_DIR "/models/gpt2_tiny_checkpoint";
  TempDir tmp;
  for (const char* p : {"fp32", "fp16"}) {
    const auto r = tfhost({"convert", "gpt2", "--checkpoint", ckpt, "--output",
                           tmp / (std::string(p) + ".onnx"), "-p", p});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const onnx::ModelProto m = tfh::test::read_model_proto(tmp / "fp16.onnx");
  for (const auto& init : m.graph().initializer())
    EXPECT_EQ(init.data_type(), onnx::TensorProto::FLOAT16) << init.name();
  EXPECT_EQ(m.graph().input(3).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT16);
  EXPECT_EQ(m.graph().output(0).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
  const auto c = tfhost({"compare", "--baseline_model", tmp / "fp32.onnx", "--optimized_model",
                         tmp / "fp16.onnx", "--model_type", "gpt2", "-b", "2", "-s", "4",
                         "--past_sequence_length", "6", "--samples", "3", "--atol", "2e-2",
                         "--rtol", "2e-2"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("top-1 agreement 100.0 %"), std::string::npos) << c.out;
}

// The plugin's decode-step kernel: chosen over tfhost's Attention for the fused GPT-2 (with the
// shared kernel behind it for every other case), and on a decode step (one new token, past 6,
// left-padded rows) the fused model gives the unfused model's outputs; a prompt (several new
// tokens) goes through the shared kernel and matches too.
TEST(Gpt2DecodeKernel, ChosenAndExact) {
  const std::string src = TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14/model.onnx";
  TempDir tmp;
  ASSERT_EQ(tfhost({"optimize", "--input", src, "--output", tmp / "fused.onnx", "--model_type",
                    "gpt2"}).exit_code, 0);
  const auto p = tfhost({"profile", "--model", tmp / "fused.onnx", "--model_type", "gpt2", "-b",
                         "2", "-s", "1", "--past_sequence_length", "6", "--samples", "2"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("Plugin kernel: Attention: gpt2.cpu.DecodeAttention (then "
                       "tfhost.cpu.Attention), plugin gpt2 (2 nodes)"),
            std::string::npos)
      << p.out;
  for (const char* s : {"1", "4"}) {  // batch 2: the plugin's kernel decodes
    const auto c = tfhost({"compare", "--baseline_model", src, "--optimized_model",
                           tmp / "fused.onnx", "--model_type", "gpt2", "-b", "2", "-s", s,
                           "--past_sequence_length", "6", "--samples", "4"});
    EXPECT_EQ(c.exit_code, 0) << "sequence " << s << ": " << c.out << c.err;
  }
  // With one key/value buffer for past and present (gpt2.shared_kv_cache) it decodes too,
  // writing the new row in place.
  ASSERT_EQ(tfhost({"optimize", "--input", src, "--output", tmp / "shared.onnx", "--model_type",
                    "gpt2", "--enable_shared_kv_cache"}).exit_code, 0);
  for (const char* b : {"1", "2"}) {
    const auto c = tfhost({"compare", "--baseline_model", src, "--optimized_model",
                           tmp / "shared.onnx", "--model_type", "gpt2", "-b", b, "-s", "1",
                           "--past_sequence_length", "6", "--samples", "4"});
    EXPECT_EQ(c.exit_code, 0) << "shared buffer, batch " << b << ": " << c.out << c.err;
  }
}

// Near misses, made from a real export: a "causal" buffer that is not lower-triangular (a block
// that is not causal attention) and a causal fill that differs from the mask's filter value (one
// Attention filter cannot stand for both) leave the attention unfused, and the report names the
// blocks; the rest still fuses and the outputs do not change.
TEST(Gpt2AttentionNearMisses, LeftAloneAndReported) {
  const std::string src = std::string(kVariantDir) + "/gpt2past_opset14";
  for (const char* what : {"buffer", "fill"}) {
    SCOPED_TRACE(what);
    onnx::ModelProto m = tfh::test::read_model_proto(src + "/model.onnx");
    bool changed = false;
    for (auto& init : *m.mutable_graph()->mutable_initializer()) {
      if (std::string(what) == "buffer" && init.name() == "model.h.0.attn.bias") {
        std::string bytes = init.raw_data();
        bytes[1] = 1;  // row 0 may see key 1: not causal
        init.set_raw_data(bytes);
        changed = true;
      }
    }
    if (std::string(what) == "fill")  // the exporter made the fill one Constant node
      for (auto& n : *m.mutable_graph()->mutable_node())
        if (n.op_type() == "Constant" && n.output(0) == "onnx::Where_202") {
          onnx::TensorProto* t = n.mutable_attribute(0)->mutable_t();
          t->clear_raw_data();
          t->clear_float_data();
          t->add_float_data(-1e4f);  // the mask's filter stays the float32 minimum
          changed = true;
        }
    ASSERT_TRUE(changed);
    TempDir tmp;
    tfh::test::write_model_proto(m, tmp / "in.onnx");
    const auto r = tfhost({"optimize", "--input", tmp / "in.onnx", "--output", tmp / "out.onnx",
                           "--model_type", "gpt2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // (both layers read the same buffer and fill: the exporter shares equal constants)
    EXPECT_NE(r.err.find("2 of 2 self-attention blocks not fused by gpt2.attention (Softmax left: "
                         "/model/h.0/attn/Softmax, /model/h.1/attn/Softmax)"),
              std::string::npos)
        << r.err;
    const auto c = tfhost({"compare", "--baseline_model", tmp / "in.onnx", "--optimized_model",
                           tmp / "out.onnx", "--model_type", "gpt2", "-b", "2", "-s", "3",
                           "--past_sequence_length", "4", "--samples", "2"});
    EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  }
}

// optimize --input_int32 on GPT-2: int32 ids, positions and mask, no Cast left, the same outputs and the same
// generated tokens as the original int64 model.
TEST(Gpt2InputInt32, SameOutputsAndTokens) {
  const std::string src = TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14/model.onnx";
  TempDir tmp;
  const auto r = tfhost({"optimize", "--input", src, "--output", tmp / "o.onnx", "--model_type",
                         "gpt2", "--input_int32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const onnx::ModelProto m = tfh::test::read_model_proto(tmp / "o.onnx");
  for (const auto& in : m.graph().input())
    EXPECT_EQ(in.type().tensor_type().elem_type(), in.name().rfind("past", 0) == 0
                                                       ? onnx::TensorProto::FLOAT
                                                       : onnx::TensorProto::INT32)
        << in.name();
  // The exporter reshapes input_ids and position_ids before the embedding, which the fused
  // EmbedLayerNormalization reads through a Cast to int32: the reshapes now move the int32
  // inputs as they are, with no Cast either way.
  for (const auto& n : m.graph().node()) EXPECT_NE(n.op_type(), "Cast") << n.name();
  const auto c = tfhost({"compare", "--baseline_model", src, "--optimized_model", tmp / "o.onnx",
                         "--model_type", "gpt2", "-b", "3", "-s", "2", "--past_sequence_length",
                         "5", "--samples", "2"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  auto gen = [&](const std::string& model) {
    return tfhost({"generate", "--model", model, "--prompt", "3 9 27", "-n", "8"}).out;
  };
  EXPECT_EQ(gen(src), gen(tmp / "o.onnx"));
}

}  // namespace
