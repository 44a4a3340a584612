// Each bert fusion on small graphs built here, one per pattern variant the exporters produce
// (opsets 11-12 with axes as attributes, 13+ and 18 with axes as inputs; Div or Mul scales;
// masks cast or not; float16 LayerNorm with float32 statistics; ...) and the near misses that
// must be left alone. Every case runs the fusion alone from a pipeline config, checks the op
// counts, and compares the model before and after through tfhost's CPU runtime (`tfhost compare`
// on the same dummy inputs).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "support/onnx_builder.h"
#include "support/ort_reference.h"
#include "support/test_util.h"

namespace {

using tfh::test::Builder;
using tfh::test::Dim;
using tfh::test::TempDir;
constexpr int kFloat = onnx::TensorProto::FLOAT;
constexpr int kHalf = onnx::TensorProto::FLOAT16;
constexpr int kInt64 = onnx::TensorProto::INT64;
const std::vector<Dim> kBSH{std::string("batch"), std::string("sequence"), int64_t{16}};

struct Fused {
  std::map<std::string, int> ops;  // after the pass
  onnx::ModelProto model;
};

// Runs `passes` (after shape inference) on the built model, checks that the outputs did not change
// through tfhost's runtime (and, given inputs, through ONNX Runtime), and returns the op counts.
Fused fuse(Builder& b, const std::vector<std::string>& passes, double atol = 1e-4,
           const std::vector<onnx::TensorProto>& ort_inputs = {}) {
  TempDir tmp;
  tfh::test::write_model_proto(b.model(), tmp / "in.onnx");
  std::string yaml = "version: 1\nmodel: {path: in.onnx}\noutput: out.onnx\npipeline:\n"
                     "  - pass: core.shape_inference\n";
  for (const auto& p : passes) yaml += "  - pass: " + p + "\n";
  yaml += "  - pass: core.eliminate_dead_nodes\n";
  tfh::test::write_file(tmp / "run.yaml", yaml);
  auto r = tfh::test::run_command({TFH_TFHOST_EXE, "run", tmp / "run.yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  Fused f;
  if (r.exit_code != 0) return f;
  f.model = tfh::test::read_model_proto(tmp / "out.onnx");
  for (const auto& n : f.model.graph().node()) ++f.ops[n.op_type()];
  r = tfh::test::run_command({TFH_TFHOST_EXE, "compare", "--baseline_model", tmp / "in.onnx",
                              "--optimized_model", tmp / "out.onnx", "-b", "2", "-s", "7",
                              "--samples", "2", "--atol", std::to_string(atol), "--rtol", "1e-3"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  if (!ort_inputs.empty()) {
    const tfh::test::Diff d = tfh::test::compare_outputs(
        tfh::test::ort_run(tmp / "in.onnx", ort_inputs),
        tfh::test::ort_run(tmp / "out.onnx", ort_inputs));
    EXPECT_TRUE(d.shapes_match) << d.message;
    EXPECT_LT(d.max_abs, atol) << "ONNX Runtime: " << d.where;
  }
  return f;
}

const onnx::AttributeProto* find_attr(const onnx::ModelProto& m, const std::string& op,
                                      const std::string& name) {
  for (const auto& n : m.graph().node())
    if (n.op_type() == op)
      for (const auto& a : n.attribute())
        if (a.name() == name) return &a;
  return nullptr;
}

// ---- LayerNorm ----------------------------------------------------------------------------------

struct LnCase {
  const char* name;
  int64_t opset;
  int64_t axis;     // reduction axis (-1 or 2: last; 1: not)
  float exponent;   // Pow's exponent (2 fuses)
  bool cast_form;   // float16 x, statistics in float32 between Casts
  bool fuses;
};

std::string layer_norm(Builder& b, const std::string& x, const LnCase& c, float eps) {
  const int elem = c.cast_form ? kHalf : kFloat;
  const std::string mean = b.reduce_mean(x, c.axis, c.opset);
  std::string d = b.node("Sub", {x, mean});
  if (c.cast_form) d = b.node("Cast", {d}, {Builder::attr("to", int64_t{kFloat})});
  const std::string var =
      b.reduce_mean(b.node("Pow", {d, b.scalar(c.exponent)}), c.axis, c.opset);
  const std::string sd = b.node("Sqrt", {b.node("Add", {var, b.scalar(eps)})});
  std::string n = b.node("Div", {d, sd});
  if (c.cast_form) n = b.node("Cast", {n}, {Builder::attr("to", int64_t{elem})});
  const std::string scaled = b.node("Mul", {n, b.weight({16}, 0.3f, 1.f, elem)});
  return b.node("Add", {scaled, b.weight({16}, 0.3f, 0.f, elem)});
}

class LayerNormVariants : public ::testing::TestWithParam<LnCase> {};

TEST_P(LayerNormVariants, CountsAndOutputs) {
  const LnCase& c = GetParam();
  Builder b(c.opset);
  const int elem = c.cast_form ? kHalf : kFloat;
  const std::string y = layer_norm(b, b.input("x", elem, kBSH), c, 1e-5f);
  b.output(y, elem);
  const Fused f = fuse(b, {"bert.layer_norm"}, c.cast_form ? 2e-2 : 1e-4);
  EXPECT_EQ(f.ops.count("LayerNormalization") ? f.ops.at("LayerNormalization") : 0, c.fuses ? 1 : 0);
  EXPECT_EQ(f.ops.count("ReduceMean") ? f.ops.at("ReduceMean") : 0, c.fuses ? 0 : 2);
  if (c.fuses) {
    const onnx::AttributeProto* eps = find_attr(f.model, "LayerNormalization", "epsilon");
    ASSERT_NE(eps, nullptr);
    EXPECT_FLOAT_EQ(eps->f(), 1e-5f);  // the graph's epsilon, not a default
  }
}

INSTANTIATE_TEST_SUITE_P(
    Built, LayerNormVariants,
    ::testing::Values(LnCase{"opset11_axes_attribute", 11, -1, 2.f, false, true},
                      LnCase{"opset13_positive_axis", 13, 2, 2.f, false, true},
                      LnCase{"opset18_axes_input", 18, -1, 2.f, false, true},
                      LnCase{"float16_with_float32_statistics", 14, -1, 2.f, true, true},
                      LnCase{"not_the_last_axis", 13, 1, 2.f, false, false},
                      LnCase{"pow_3_is_not_a_variance", 13, -1, 3.f, false, false}),
    [](const ::testing::TestParamInfo<LnCase>& i) { return std::string(i.param.name); });

// ---- Gelu / FastGelu ----------------------------------------------------------------------------

enum class GeluForm { kDivFirstMulHalfLast, kMulInvSqrt2HalfFirst, kWrongOne, kTanhPow, kTanhMulCube, kTanhWrongCoeff };
struct GeluCase {
  const char* name;
  GeluForm form;
  const char* op;  // fused op expected, "" for none
};

class GeluVariants : public ::testing::TestWithParam<GeluCase> {};

TEST_P(GeluVariants, CountsAndOutputs) {
  const GeluCase& c = GetParam();
  Builder b(13);
  const std::string x = b.input("x", kFloat, kBSH);
  std::string y;
  switch (c.form) {
    case GeluForm::kDivFirstMulHalfLast:
    case GeluForm::kWrongOne: {
      const std::string erf = b.node("Erf", {b.node("Div", {x, b.scalar(1.4142135f)})});
      const std::string cdf =
          b.node("Add", {erf, b.scalar(c.form == GeluForm::kWrongOne ? 2.f : 1.f)});
      y = b.node("Mul", {b.node("Mul", {x, cdf}), b.scalar(0.5f)});
      break;
    }
    case GeluForm::kMulInvSqrt2HalfFirst: {
      const std::string erf = b.node("Erf", {b.node("Mul", {b.scalar(0.70710678f), x})});
      y = b.node("Mul", {b.node("Mul", {x, b.scalar(0.5f)}), b.node("Add", {b.scalar(1.f), erf})});
      break;
    }
    default: {
      const std::string cube = c.form == GeluForm::kTanhMulCube
                                   ? b.node("Mul", {b.node("Mul", {x, x}), x})
                                   : b.node("Pow", {x, b.scalar(3.f)});
      const float k = c.form == GeluForm::kTanhWrongCoeff ? 0.1f : 0.044715f;
      const std::string inner =
          b.node("Mul", {b.node("Add", {x, b.node("Mul", {b.scalar(k), cube})}),
                         b.scalar(0.79788456f)});
      const std::string cdf = b.node("Add", {b.node("Tanh", {inner}), b.scalar(1.f)});
      y = b.node("Mul", {b.node("Mul", {b.scalar(0.5f), x}), cdf});
    }
  }
  b.output(y);
  const Fused f = fuse(b, {"bert.gelu", "bert.fast_gelu"});
  int fused = 0;
  for (const char* op : {"Gelu", "FastGelu"})
    if (f.ops.count(op)) fused += f.ops.at(op);
  EXPECT_EQ(fused, *c.op ? 1 : 0);
  if (*c.op) {
    EXPECT_EQ(f.ops.count(c.op), 1u);
    EXPECT_EQ(f.ops.size(), 1u) << "only the fused op is left";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Built, GeluVariants,
    ::testing::Values(GeluCase{"erf_div_sqrt2_half_last", GeluForm::kDivFirstMulHalfLast, "Gelu"},
                      GeluCase{"erf_mul_inv_sqrt2_half_first", GeluForm::kMulInvSqrt2HalfFirst, "Gelu"},
                      GeluCase{"erf_plus_two_is_not_gelu", GeluForm::kWrongOne, ""},
                      GeluCase{"tanh_pow3", GeluForm::kTanhPow, "FastGelu"},
                      GeluCase{"tanh_x_times_x_times_x", GeluForm::kTanhMulCube, "FastGelu"},
                      GeluCase{"tanh_wrong_coefficient", GeluForm::kTanhWrongCoeff, ""}),
    [](const ::testing::TestParamInfo<GeluCase>& i) { return std::string(i.param.name); });

// ---- Attention ----------------------------------------------------------------------------------

struct AttnCase {
  const char* name;
  int64_t opset;
  bool scale_as_mul;  // scores * 1/sqrt(d) instead of / sqrt(d)
  bool float_mask;    // a float mask input: no Cast in the mask path
  int64_t qkv_width;  // Q/K projection width (16 = hidden; 8 = pruned heads)
  int64_t v_width;    // V's (qkv_hidden_sizes when it differs)
  int64_t softmax_axis;
  bool fuses;
};

class AttentionVariants : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionVariants, CountsAndOutputs) {
  const AttnCase& c = GetParam();
  const int64_t hidden = 16, head = 4, heads = c.qkv_width / head;
  Builder b(c.opset);
  const std::string x = b.input("x", kFloat, kBSH);
  const std::string mask = b.input("attention_mask", c.float_mask ? kFloat : kInt64,
                                   {std::string("batch"), std::string("sequence")});
  auto proj = [&](const std::vector<int64_t>& perm, int64_t width) {
    const std::string p = b.node("Add", {b.node("MatMul", {x, b.weight({hidden, width})}),
                                         b.weight({width}, 0.1f)});
    const std::string r = b.node("Reshape", {p, b.ints({0, 0, heads, width / heads})});
    return b.node("Transpose", {r}, {Builder::attr("perm", perm)});
  };
  const std::string q = proj({0, 2, 1, 3}, c.qkv_width), k = proj({0, 2, 3, 1}, c.qkv_width);
  const std::string v = proj({0, 2, 1, 3}, c.v_width);
  const std::string qk = b.node("MatMul", {q, k});
  const std::string scaled = c.scale_as_mul ? b.node("Mul", {qk, b.scalar(0.5f)})
                                            : b.node("Div", {qk, b.scalar(2.f)});
  std::string m = b.unsqueeze(b.unsqueeze(mask, 1, c.opset), 2, c.opset);
  if (!c.float_mask) m = b.node("Cast", {m}, {Builder::attr("to", int64_t{kFloat})});
  const std::string additive =
      b.node("Mul", {b.node("Sub", {b.scalar(1.f), m}), b.scalar(-10000.f)});
  const std::string probs = b.node("Softmax", {b.node("Add", {scaled, additive})},
                                   {Builder::attr("axis", c.softmax_axis)});
  const std::string ctx = b.node("Transpose", {b.node("MatMul", {probs, v})},
                                 {Builder::attr("perm", std::vector<int64_t>{0, 2, 1, 3})});
  const std::string merged = b.node("Reshape", {ctx, b.ints({0, 0, c.v_width})});
  b.output(b.node("MatMul", {merged, b.weight({c.v_width, hidden})}));
  // The fused model in ONNX Runtime too: batch 2, sequence 7, the second row padded after 4.
  std::vector<onnx::TensorProto> in(2);
  in[0].set_name("x");
  in[0].set_data_type(kFloat);
  for (int64_t d : {2, 7, 16}) in[0].add_dims(d);
  for (int i = 0; i < 2 * 7 * 16; ++i) in[0].add_float_data(std::sin(0.37f * i));
  in[1].set_name("attention_mask");
  in[1].set_data_type(c.float_mask ? kFloat : kInt64);
  for (int64_t d : {2, 7}) in[1].add_dims(d);
  for (int i = 0; i < 14; ++i) {
    const int keep = i < 7 || i % 7 < 4;
    if (c.float_mask) in[1].add_float_data(static_cast<float>(keep));
    else in[1].add_int64_data(keep);
  }
  const Fused f = fuse(b, {"bert.attention"}, 1e-4, in);
  EXPECT_EQ(f.ops.count("Attention") ? f.ops.at("Attention") : 0, c.fuses ? 1 : 0);
  EXPECT_EQ(f.ops.count("Softmax") ? f.ops.at("Softmax") : 0, c.fuses ? 0 : 1);
  if (c.fuses) {
    const onnx::AttributeProto* n = find_attr(f.model, "Attention", "num_heads");
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->i(), heads);
    const onnx::AttributeProto* filter = find_attr(f.model, "Attention", "mask_filter_value");
    ASSERT_NE(filter, nullptr);
    EXPECT_EQ(filter->f(), -10000.f);  // the graph's filter value is kept
    const onnx::AttributeProto* sizes = find_attr(f.model, "Attention", "qkv_hidden_sizes");
    EXPECT_EQ(sizes != nullptr, c.v_width != c.qkv_width);
    if (sizes)
      EXPECT_EQ(std::vector<int64_t>(sizes->ints().begin(), sizes->ints().end()),
                (std::vector<int64_t>{c.qkv_width, c.qkv_width, c.v_width}));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Built, AttentionVariants,
    ::testing::Values(AttnCase{"opset11_div_cast_mask", 11, false, false, 16, 16, -1, true},
                      AttnCase{"opset13_mul_scale", 13, true, false, 16, 16, 3, true},
                      AttnCase{"opset13_float_mask_no_cast", 13, false, true, 16, 16, -1, true},
                      AttnCase{"pruned_heads", 13, false, false, 8, 8, -1, true},
                      AttnCase{"wider_value_heads", 13, false, false, 8, 12, -1, true},
                      AttnCase{"softmax_not_over_keys", 13, false, false, 16, 16, 2, false}),
    [](const ::testing::TestParamInfo<AttnCase>& i) { return std::string(i.param.name); });

// ---- SkipLayerNormalization ---------------------------------------------------------------------

// The residual sum read elsewhere too becomes the op's 4th output; a constant skip is no residual.
TEST(SkipLayerNormVariants, SumUsedElsewhereAndConstantSkip) {
  for (const bool constant_skip : {false, true}) {
    SCOPED_TRACE(constant_skip ? "constant skip" : "sum used elsewhere");
    Builder b(17);
    const std::string x = b.input("x", kFloat, kBSH);
    const std::string skip = constant_skip ? b.weight({16}) : b.input("skip", kFloat, kBSH);
    const std::string dense =
        b.node("Add", {b.node("MatMul", {x, b.weight({16, 16})}), b.weight({16}, 0.1f)});
    const std::string sum = b.node("Add", {dense, skip});
    b.output(b.node("LayerNormalization", {sum, b.weight({16}, 0.3f, 1.f), b.weight({16})},
                    {Builder::attr("axis", int64_t{-1})}));
    b.output(b.node("Relu", {sum}));  // another reader of the sum
    const Fused f = fuse(b, {"bert.skip_layer_norm"});
    EXPECT_EQ(f.ops.count("SkipLayerNormalization") ? 1 : 0, constant_skip ? 0 : 1);
    if (!constant_skip) EXPECT_EQ(f.ops.count("Add"), 0u) << "the op took the sum over";
    if (!constant_skip)
      for (const auto& n : f.model.graph().node())
        if (n.op_type() == "SkipLayerNormalization") {
          ASSERT_EQ(n.output_size(), 4);
          EXPECT_EQ(n.input_size(), 5) << "the dense bias is folded in";
        }
  }
}

}  // namespace
