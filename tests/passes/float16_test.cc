// core.float16 / core.bfloat16 on built graphs: which nodes convert, where Casts go, keep_io_types,
// block lists, weight clamping, and the automatic block list on overflow and cancellation cases
// that NaN or diverge without it. Every converted model passes ONNX's checker and strict shape
// inference, and runs in tfhost's runtime (and ONNX Runtime, for float16) close to float32.
#include <gtest/gtest.h>
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "host/passes/float16.h"
#include "host/passes/float16_auto.h"
#include "host/plugin/registry.h"
#include "host/runtime/session.h"
#include "host/runtime/tensor_io.h"
#include "host/util/error.h"
#include "passes/pass_test_util.h"
#include "tfhost/core.hpp"

namespace tfh::passes {
namespace {
using testing::ModelBuilder;
using testing::count_op;

constexpr int kFloat = onnx::TensorProto::FLOAT, kHalf = onnx::TensorProto::FLOAT16,
              kBHalf = onnx::TensorProto::BFLOAT16, kInt64 = onnx::TensorProto::INT64;

void set_int_attr(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// x[2,3] -> MatMul W -> Add (a Constant node) -> CumSum -> Mul (ids cast to float) -> y,
// plus a second output z = Relu(MatMul).
ModelBuilder mixed_model() {
  ModelBuilder b(14);
  b.input("x", {2, 3}).input("ids", {2, 3}, kInt64).output("y", {2, 3}).output("z", {2, 3});
  b.initializer("W", {3, 3}, {0.5f, -1.f, 0.25f, 2.f, 0.1f, -0.3f, 1.f, 1.f, -2.f});
  onnx::TensorProto axis;
  axis.set_name("axis");
  axis.set_data_type(kInt64);
  axis.add_int64_data(1);
  *b.graph().add_initializer() = axis;
  auto& c = b.node("Constant", {}, {"c"}, "const");
  auto* v = c.add_attribute();
  v->set_name("value");
  v->set_type(onnx::AttributeProto::TENSOR);
  v->mutable_t()->set_data_type(kFloat);
  v->mutable_t()->add_dims(3);
  for (float f : {1.f, 2.f, 3.f}) v->mutable_t()->add_float_data(f);
  b.node("MatMul", {"x", "W"}, {"m"}, "matmul");
  b.node("Add", {"m", "c"}, {"a"}, "add");
  b.node("CumSum", {"a", "axis"}, {"cs"}, "cumsum");
  set_int_attr(b.node("Cast", {"ids"}, {"f"}, "cast_ids"), "to", kFloat);
  b.node("Mul", {"cs", "f"}, {"y"}, "mul");
  b.node("Relu", {"m"}, {"z"}, "relu");
  return b;
}

class Float16Pass : public testing::PassTest {
 protected:
  // Runs the registered pass `name` with `with` (YAML) on `m`.
  size_t run_pass(ir::Model& m, const std::string& name, const std::string& with = "{}") {
    const plugin::PassEntry* p = registry_.find_pass(name);
    EXPECT_NE(p, nullptr) << name;
    const auto params = plugin::Params::resolve(p->params, YAML::Load(with), name, "");
    return registry_.run_pass(*p, m, params);
  }

  // The model passes ONNX's checker and strict shape inference (types checked).
  void expect_valid_onnx(ir::Model& m, const std::string& name) {
    const std::string path = tmp_ / (name + ".onnx");
    m.save(path);
    onnx::ModelProto proto = test::read_model_proto(path);
    EXPECT_NO_THROW(onnx::checker::check_model(proto)) << name;
    onnx::ShapeInferenceOptions opts{true, 1, false};
    EXPECT_NO_THROW(onnx::shape_inference::InferShapes(proto, onnx::OpSchemaRegistry::Instance(), opts))
        << name;
  }

  // Outputs of `m` in tfhost's runtime, as doubles, for x = 0.25 i - 0.6 and ids = i % 3 + 1,
  // fed in the type each input has (float inputs converted).
  std::vector<std::vector<double>> run(const ir::Model& m, double x_scale = 1.0) {
    const runtime::KernelRegistry kernels(registry_);
    runtime::Session s(m, kernels);
    std::vector<std::unique_ptr<plugin::HostTensor>> held;
    std::vector<std::pair<std::string, const plugin::HostTensor*>> feeds;
    for (const ir::Value* in : s.inputs()) {
      const auto type = static_cast<TfhDataType>(in->elem_type());
      auto t = runtime::make_tensor(type, {2, 3});
      for (int i = 0; i < 6; ++i) {
        const double x = (0.25 * i - 0.6) * x_scale;
        void* d = const_cast<void*>(t->data);
        if (type == TFH_TYPE_INT64) static_cast<int64_t*>(d)[i] = i % 3 + 1;
        if (type == TFH_TYPE_FLOAT) static_cast<float*>(d)[i] = static_cast<float>(x);
        if (type == TFH_TYPE_FLOAT16) static_cast<Float16*>(d)[i] = to_float16(static_cast<float>(x));
        if (type == TFH_TYPE_BFLOAT16) static_cast<BFloat16*>(d)[i] = to_bfloat16(static_cast<float>(x));
      }
      feeds.emplace_back(in->name(), t.get());
      held.push_back(std::move(t));
    }
    std::vector<std::vector<double>> out;
    for (const auto& t : s.run(feeds)) {
      std::vector<double> v;
      for (size_t i = 0; i < t->num_elements; ++i) v.push_back(runtime::element_as_double(*t, i));
      out.push_back(v);
    }
    return out;
  }

  static double max_rel_diff(const std::vector<std::vector<double>>& a,
                             const std::vector<std::vector<double>>& b) {
    double worst = 0;
    for (size_t k = 0; k < a.size(); ++k)
      for (size_t i = 0; i < a[k].size(); ++i) {
        if (std::isnan(b[k][i]) || std::isinf(b[k][i])) return std::numeric_limits<double>::infinity();
        worst = std::max(worst, std::fabs(a[k][i] - b[k][i]) / std::max(1.0, std::fabs(a[k][i])));
      }
    return worst;
  }

  int32_t type_of(const ir::Model& m, const std::string& value) {
    const ir::Value* v = m.graph().find(value);
    return v ? v->elem_type() : -1;
  }

  plugin::Registry registry_;
};

TEST_F(Float16Pass, ConvertsKeepsBlockedOpsAndCastsOnlyWhereTypesChange) {
  auto m = load(mixed_model());
  const auto want = run(*m);
  EXPECT_GT(run_pass(*m, "core.float16", "{keep_io_types: true}"), 0u);
  // Graph inputs and outputs keep float32; the weights, the Constant and the MatMul are float16.
  EXPECT_EQ(type_of(*m, "x"), kFloat);
  EXPECT_EQ(type_of(*m, "y"), kFloat);
  EXPECT_EQ(type_of(*m, "z"), kFloat);
  EXPECT_EQ(type_of(*m, "W"), kHalf);
  EXPECT_EQ(type_of(*m, "m"), kHalf);
  // CumSum is on the default block list: float32 in and out.
  EXPECT_EQ(type_of(*m, "cs"), kFloat);
  const ir::Node* cumsum = m->graph().find("cs")->producer();
  EXPECT_EQ(cumsum->inputs()[0]->elem_type(), kFloat);
  // Cast(ids, to=float) feeding a float16 Mul became Cast(to=float16).
  const ir::Node* cast_ids = m->graph().find("f")->producer();
  EXPECT_EQ(cast_ids->attr("to")->i(), kHalf);
  // Casts: x->fp16, a->fp32 (CumSum), cs->fp16 (Mul), y and z back to fp32 = 5, plus cast_ids.
  EXPECT_EQ(count_op(*m, "Cast"), 6u);
  for (const auto& n : m->graph().nodes()) {  // no Cast back-to-back with its inverse
    if (n->op_type() != "Cast") continue;
    const ir::Node* p = n->inputs()[0]->producer();
    EXPECT_FALSE(p && p->op_type() == "Cast" && p->inputs()[0]->elem_type() == n->attr("to")->i())
        << n->name();
  }
  expect_valid_onnx(*m, "fp16");
  EXPECT_LT(max_rel_diff(want, run(*m)), 1e-2);
  // ONNX Runtime loads it and agrees with the float32 original.
  std::vector<onnx::TensorProto> inputs(2);
  inputs[0].set_name("x");
  inputs[0].set_data_type(kFloat);
  inputs[1].set_name("ids");
  inputs[1].set_data_type(kInt64);
  for (auto& t : inputs) t.add_dims(2), t.add_dims(3);
  for (int i = 0; i < 6; ++i) {
    inputs[0].add_float_data(0.25f * i - 0.6f);
    inputs[1].add_int64_data(i % 3 + 1);
  }
  const auto ort_want = test::ort_run(tmp_ / "before.onnx", inputs);
  const auto ort_got = test::ort_run(tmp_ / "fp16.onnx", inputs);
  const test::Diff d = test::compare_outputs(ort_want, ort_got);
  EXPECT_TRUE(d.message.empty()) << d.message;
  EXPECT_LT(d.max_abs, 5e-2) << d.where;
}

TEST_F(Float16Pass, WithoutKeepIoTypesInputsAndOutputsBecomeFloat16) {
  auto m = load(mixed_model());
  const auto want = run(*m);
  run_pass(*m, "core.float16");
  EXPECT_EQ(type_of(*m, "x"), kHalf);
  EXPECT_EQ(type_of(*m, "ids"), kInt64);  // not a float: untouched
  EXPECT_EQ(type_of(*m, "z"), kHalf);
  EXPECT_EQ(type_of(*m, "y"), kHalf);     // Mul is float16; only CumSum stays float32
  expect_valid_onnx(*m, "io16");
  EXPECT_LT(max_rel_diff(want, run(*m)), 1e-2);
}

TEST_F(Float16Pass, KeepIoTypesByNameAndBlockLists) {
  auto m = load(mixed_model());
  const auto want = run(*m);
  run_pass(*m, "core.float16",
           "{keep_io_types: [x, z], node_block_list: [relu], op_block_list: [Add], "
           "default_op_block_list: false}");
  EXPECT_EQ(type_of(*m, "x"), kFloat);
  EXPECT_EQ(type_of(*m, "z"), kFloat);
  EXPECT_EQ(type_of(*m, "y"), kHalf);
  EXPECT_EQ(type_of(*m, "a"), kFloat);   // Add blocked by op type
  EXPECT_EQ(type_of(*m, "cs"), kHalf);   // CumSum converted: the default list was dropped
  EXPECT_EQ(m->graph().find("z")->producer()->op_type(), "Relu");  // float32 Relu, no Cast back
  expect_valid_onnx(*m, "lists");
  EXPECT_LT(max_rel_diff(want, run(*m)), 1e-2);
}

TEST_F(Float16Pass, BadNamesAreClearErrorsAndLeaveTheModelAlone) {
  auto m = load(mixed_model());
  try {
    run_pass(*m, "core.float16", "{keep_io_types: [nope]}");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("keep_io_types names 'nope'"), std::string::npos) << e.what();
  }
  try {
    run_pass(*m, "core.float16", "{node_block_list: [missing_node]}");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'missing_node'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(type_of(*m, "W"), kFloat);
}

TEST_F(Float16Pass, WeightsClampedToTheFloat16Range) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  const std::vector<float> w = {1e-9f, -1e-9f, 1e6f, -1e6f, 0.f, inf, nan, 1.5f};
  ModelBuilder b(14);
  b.input("x", {8}).output("y", {8});
  b.initializer("w", {8}, w);
  b.node("Mul", {"x", "w"}, {"y"}, "mul");
  auto m = load(b);
  run_pass(*m, "core.float16");
  const ir::Tensor* t = m->graph().find("w")->initializer();
  ASSERT_EQ(t->dtype(), kHalf);
  const Float16* h = static_cast<const Float16*>(t->data());
  const float sub = 5.960464477539063e-08f;
  const std::vector<float> want = {sub, -sub, 65504.f, -65504.f, 0.f, inf};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(to_float(h[i]), want[i]) << i;
  EXPECT_TRUE(std::isnan(to_float(h[6])));
  EXPECT_EQ(to_float(h[7]), 1.5f);
  // A user limit: tiny values to the smallest normal instead.
  auto m2 = load(b, "before2");
  run_pass(*m2, "core.float16", "{min_positive_val: 6.103515625e-05, max_finite_val: 1000}");
  const Float16* h2 = static_cast<const Float16*>(m2->graph().find("w")->initializer()->data());
  EXPECT_EQ(to_float(h2[0]), 6.103515625e-05f);
  EXPECT_EQ(to_float(h2[3]), -1000.f);
}

TEST_F(Float16Pass, ForceInitializersStoresEveryWeightInFloat16) {
  auto m = load(mixed_model());
  const auto want = run(*m);
  run_pass(*m, "core.float16", "{keep_io_types: true, op_block_list: [MatMul], force_fp16_initializers: true}");
  EXPECT_EQ(type_of(*m, "W"), kHalf);  // read by the float32 MatMul through a Cast
  EXPECT_EQ(m->graph().find("m")->producer()->inputs()[1]->producer()->op_type(), "Cast");
  expect_valid_onnx(*m, "force");
  EXPECT_LT(max_rel_diff(want, run(*m)), 1e-2);
}

TEST_F(Float16Pass, BFloat16RunsInTheRuntime) {
  auto m = load(mixed_model());
  const auto want = run(*m);
  run_pass(*m, "core.bfloat16");
  EXPECT_EQ(type_of(*m, "x"), kBHalf);
  EXPECT_EQ(type_of(*m, "W"), kBHalf);
  EXPECT_EQ(type_of(*m, "cs"), kFloat);
  expect_valid_onnx(*m, "bf16");
  EXPECT_LT(max_rel_diff(want, run(*m)), 5e-2);
}

TEST_F(Float16Pass, BFloat16NeedsOpset13) {
  ModelBuilder b(11);  // Cast-6 has no bfloat16: no bfloat16 model can be written at opset 11
  b.input("x", {2, 3}).output("y", {2, 3});
  b.node("Relu", {"x"}, {"y"}, "relu");
  auto m = load(b);
  try {
    run_pass(*m, "core.bfloat16");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("opset 11; bfloat16 needs opset 13"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(type_of(*m, "x"), kFloat);
}

TEST_F(Float16Pass, OpsWithoutTheTargetTypeStayFloat32) {
  ModelBuilder b(13);  // Einsum-12 has no bfloat16 (float16 only)
  b.input("x", {2, 3}).output("y", {2, 3});
  b.initializer("W", {3, 3}, {0.5f, -1.f, 0.25f, 2.f, 0.1f, -0.3f, 1.f, 1.f, -2.f});
  auto& e = b.node("Einsum", {"x", "W"}, {"m"}, "einsum");
  auto* eq = e.add_attribute();
  eq->set_name("equation");
  eq->set_type(onnx::AttributeProto::STRING);
  eq->set_s("ij,jk->ik");
  b.node("Relu", {"m"}, {"y"}, "relu");
  auto m = load(b);
  const auto want = run(*m);
  run_pass(*m, "core.bfloat16", "{keep_io_types: true}");
  EXPECT_EQ(type_of(*m, "W"), kFloat);  // read by the float32 Einsum only
  EXPECT_EQ(type_of(*m, "m"), kFloat);
  EXPECT_EQ(m->graph().find("y")->producer()->op_type(), "Cast");  // Relu-13 is bfloat16
  expect_valid_onnx(*m, "einsum");
  EXPECT_LT(max_rel_diff(want, run(*m)), 5e-2);
}

TEST_F(Float16Pass, CastsToOtherTypesKeepTheirTarget) {
  ModelBuilder b(14);
  b.input("x", {2, 3}).output("y", {2, 3}, onnx::TensorProto::INT32);
  b.node("Relu", {"x"}, {"r"}, "relu");
  set_int_attr(b.node("Cast", {"r"}, {"y"}, "to_int"), "to", onnx::TensorProto::INT32);
  auto m = load(b);
  const auto want = run(*m);
  run_pass(*m, "core.float16", "{keep_io_types: true}");
  const ir::Node* cast = m->graph().find("y")->producer();
  EXPECT_EQ(cast->attr("to")->i(), onnx::TensorProto::INT32);
  EXPECT_EQ(cast->inputs()[0]->elem_type(), kHalf);  // reads the float16 Relu directly
  expect_valid_onnx(*m, "to_int");
  EXPECT_EQ(max_rel_diff(want, run(*m)), 0.0);
}

// y = s / (s + 1) with s = (1000 x)^2: s passes 65504 for |x| > 0.26, so in float16 s is inf and
// y NaN; float32 gives y ~ 1.
ModelBuilder overflow_model() {
  ModelBuilder b(14);
  b.input("x", {2, 3}).output("y", {2, 3});
  b.initializer("k", {1}, {1000.f});
  b.initializer("one", {1}, {1.f});
  b.node("Mul", {"x", "k"}, {"h"}, "scale");
  b.node("Mul", {"h", "h"}, {"s"}, "square");
  b.node("Add", {"s", "one"}, {"t"}, "plus_one");
  b.node("Div", {"s", "t"}, {"y"}, "ratio");
  return b;
}

TEST_F(Float16Pass, OverflowNaNsWithoutAutoBlock) {
  auto m = load(overflow_model());
  run_pass(*m, "core.float16", "{keep_io_types: true}");
  EXPECT_TRUE(std::isinf(max_rel_diff(run(*load(overflow_model(), "ref")), run(*m))));
}

TEST_F(Float16Pass, AutoBlockKeepsTheOverflowInFloat32AndSaysWhy) {
  auto ref = load(overflow_model());
  const auto want = run(*ref);
  AutoBlockOptions a;
  a.registry = &registry_;
  a.model_type = "core";
  FloatConvertOptions base;
  base.keep_io_all = true;
  const auto blocked = find_float_blocks(*ref, base, a);
  ASSERT_EQ(blocked.count("square"), 1u);
  EXPECT_NE(blocked.at("square").find("beyond float16's 6.55e+04"), std::string::npos)
      << blocked.at("square");
  EXPECT_EQ(blocked.count("plus_one"), 1u);
  EXPECT_EQ(blocked.count("ratio"), 1u);
  EXPECT_EQ(blocked.count("scale"), 0u);  // 1000 x fits float16
  // Through the pass: the same nodes stay float32 and the outputs match float32.
  auto m = load(overflow_model(), "again");
  run_pass(*m, "core.float16", "{keep_io_types: true, auto_block: true}");
  EXPECT_EQ(type_of(*m, "h"), kHalf);
  EXPECT_EQ(type_of(*m, "s"), kFloat);
  expect_valid_onnx(*m, "auto");
  EXPECT_LT(max_rel_diff(want, run(*m)), 1e-2);
}

// y = (x + 3000) - 3000: float16 spaces values near 3000 two apart, so y loses x's fraction;
// no value leaves the range, only the divergence run finds it (and blames the Add, whose
// rounding the float32 Sub cannot undo).
TEST_F(Float16Pass, AutoBlockFindsCancellation) {
  ModelBuilder b(14);
  b.input("x", {2, 3}).output("y", {2, 3});
  b.initializer("big", {1}, {3000.f});
  b.node("Add", {"x", "big"}, {"a"}, "shift");
  b.node("Sub", {"a", "big"}, {"y"}, "unshift");
  auto m = load(b);
  const auto want = run(*m);
  {
    auto plain = load(b, "plain");
    run_pass(*plain, "core.float16", "{keep_io_types: true}");
    EXPECT_GT(max_rel_diff(want, run(*plain)), 0.05);
  }
  run_pass(*m, "core.float16", "{keep_io_types: true, auto_block: true}");
  EXPECT_EQ(type_of(*m, "a"), kFloat);
  EXPECT_LT(max_rel_diff(want, run(*m)), 1e-5);
}

TEST_F(Float16Pass, BFloat16ConstantOfShapeBeforeOpset20StaysFloat) {
  ModelBuilder b(14);  // ConstantOfShape takes bfloat16 only from opset 20
  b.input("x", {2, 3}).output("y", {2, 3});
  onnx::TensorProto shape;
  shape.set_name("shape");
  shape.set_data_type(kInt64);
  shape.add_dims(2);
  shape.add_int64_data(2);
  shape.add_int64_data(3);
  *b.graph().add_initializer() = shape;
  b.node("ConstantOfShape", {"shape"}, {"ones"}, "fill");  // float zeros
  b.node("Add", {"x", "ones"}, {"y"}, "add");
  auto m = load(b);
  run_pass(*m, "core.bfloat16");
  EXPECT_EQ(type_of(*m, "ones"), kFloat);
  EXPECT_EQ(type_of(*m, "y"), kBHalf);
  expect_valid_onnx(*m, "cos");
}

TEST_F(Float16Pass, ValuesReadInsideSubgraphsKeepTheirType) {
  ModelBuilder b(14);
  b.input("x", {2, 3}).input("c", {}, onnx::TensorProto::BOOL).output("y", {2, 3}).output("z", {2, 3});
  b.node("Relu", {"x"}, {"r"}, "relu");
  auto& iff = b.node("If", {"c"}, {"y"}, "branch");
  testing::set_graph_attr(iff, "then_branch", testing::identity_branch("r", "t_out"));
  testing::set_graph_attr(iff, "else_branch", testing::identity_branch("x", "e_out"));
  b.node("Neg", {"x"}, {"z"}, "neg");
  auto m = load(b);
  run_pass(*m, "core.float16");
  EXPECT_EQ(type_of(*m, "r"), kFloat);  // Relu kept: its output is read by a body
  EXPECT_EQ(type_of(*m, "x"), kFloat);  // the else body reads the input itself
  EXPECT_EQ(type_of(*m, "z"), kHalf);   // Neg converted, reading x through a Cast
  expect_valid_onnx(*m, "subgraph");
}

TEST_F(Float16Pass, PassThroughInputsAndKeptInitializersKeepTheirType) {
  ModelBuilder b(14);
  b.input("x", {2, 3}).input("W", {3, 3}).output("x", {2, 3}).output("y", {2, 3});
  b.initializer("W", {3, 3}, {0.5f, -1.f, 0.25f, 2.f, 0.1f, -0.3f, 1.f, 1.f, -2.f});
  b.node("MatMul", {"x", "W"}, {"y"}, "matmul");
  auto m = load(b);
  const auto want = run(*m);
  run_pass(*m, "core.float16", "{keep_io_types: [W]}");
  EXPECT_EQ(type_of(*m, "x"), kFloat);  // an input that is also an output
  EXPECT_EQ(type_of(*m, "W"), kFloat);  // overridable by a caller who feeds float32
  EXPECT_EQ(type_of(*m, "y"), kHalf);
  const ir::Node* mm = m->graph().find("y")->producer();
  EXPECT_EQ(mm->inputs()[1]->elem_type(), kHalf);  // a rounded copy of W
  expect_valid_onnx(*m, "passthrough");
}

TEST_F(Float16Pass, NodesReadingValuesOfUnknownTypeStayFloat32) {
  ModelBuilder b(14);
  auto* ms = b.graph().mutable_node();  // keep the builder's opset; add the custom domain
  (void)ms;
  b.input("x", {2, 3}).output("y", {2, 3});
  b.initializer("W", {3, 3}, {0.5f, -1.f, 0.25f, 2.f, 0.1f, -0.3f, 1.f, 1.f, -2.f});
  b.node("Mystery", {"x"}, {"f"}, "mystery").set_domain("example.custom");
  b.node("MatMul", {"f", "W"}, {"y"}, "matmul");
  onnx::ModelProto proto = b.proto();
  auto* op = proto.add_opset_import();
  op->set_domain("example.custom");
  op->set_version(1);
  const std::string path = tmp_ / "custom.onnx";
  test::write_model_proto(proto, path);
  auto m = ir::Model::load(path);
  run_pass(*m, "core.float16");
  EXPECT_EQ(type_of(*m, "W"), kFloat);
  EXPECT_EQ(m->graph().find("y")->producer()->op_type(), "MatMul");
}

// The cancellation case with unnamed nodes: the Sub making the kept graph output is found by
// the divergence run, on a copy where it writes 'y_fp16'; it is still known as "output:y".
TEST_F(Float16Pass, AutoBlockKeysUnnamedNodesByTheirOriginalOutput) {
  ModelBuilder b(14);
  b.input("x", {2, 3}).output("y", {2, 3});
  b.initializer("big", {1}, {3000.f});
  b.node("Add", {"x", "big"}, {"a"}).clear_name();
  b.node("Sub", {"a", "big"}, {"y"}).clear_name();
  auto m = load(b);
  const auto want = run(*m);
  run_pass(*m, "core.float16", "{keep_io_types: true, auto_block: true}");
  EXPECT_EQ(type_of(*m, "a"), kFloat);
  EXPECT_EQ(m->graph().find("y")->producer()->op_type(), "Sub");  // float32: no Cast back
  EXPECT_LT(max_rel_diff(want, run(*m)), 1e-5);
}

}  // namespace
}  // namespace tfh::passes
