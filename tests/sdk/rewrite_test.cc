// Collect-then-commit rewriting (sdk/include/tfhost/rewrite.hpp) on small IR graphs, through
// host_api(), with before/after outputs compared in ONNX Runtime.
#include <cmath>

#include "sdk/sdk_test_util.h"
#include "support/ort_reference.h"
#include "support/test_util.h"

namespace tfh::sdktest {
namespace {

using SdkRewrite = SdkTest;

onnx::TensorProto float_input(const std::string& name, std::vector<int64_t> dims) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  size_t n = 1;
  for (int64_t d : dims) {
    t.add_dims(d);
    n *= static_cast<size_t>(d);
  }
  for (size_t i = 0; i < n; ++i) t.add_float_data(std::sin(0.7f * static_cast<float>(i)) * 3.f);
  return t;
}

TEST_F(SdkRewrite, GeluFusionCountsValidityAndOutputs) {
  GraphBuilder b;
  b.output(build_gelu(b, b.input("x"), ""));
  test::TempDir dir;
  b.model().save(dir / "before.onnx");

  EXPECT_EQ(fuse_gelu(b.view()), 1u);
  auto counts = b.op_counts();
  EXPECT_EQ(counts, (std::map<std::string, int>{{"com.microsoft.Gelu", 1}}));
  EXPECT_EQ(b.model().opset("com.microsoft"), 1) << "the contrib domain is imported";
  EXPECT_NO_THROW(b.g().validate());
  ASSERT_EQ(b.g().outputs().size(), 1u);
  EXPECT_EQ(b.g().outputs()[0]->name(), "y") << "the graph output keeps its name";
  EXPECT_EQ(b.g().outputs()[0]->producer()->op_type(), "Gelu");
  EXPECT_TRUE(b.g().initializers().empty()) << "constants only the fused nodes read are dropped";

  EXPECT_EQ(fuse_gelu(b.view()), 0u) << "a second run reaches a fixed point";
  EXPECT_EQ(b.op_counts(), counts);

  b.model().save(dir / "after.onnx");
  std::vector<onnx::TensorProto> inputs{float_input("x", {2, 4})};
  auto before = test::ort_run(dir / "before.onnx", inputs);
  auto after = test::ort_run(dir / "after.onnx", inputs);
  test::Diff d = test::compare_outputs(before, after);
  EXPECT_TRUE(d.message.empty()) << d.message;
  EXPECT_LE(d.max_abs, 1e-5) << d.where;
}

TEST_F(SdkRewrite, SwappedOperandsAndConstantNodes) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  // Swapped operand order everywhere, with constants from Constant nodes.
  ir::Value* d = b.node("Div", {x, b.constant_node("c", 1.41421f)}, "div");
  ir::Value* a =
      b.node("Add", {b.constant_node("one", 1.f, true), b.node("Erf", {d}, "erf")}, "add");
  ir::Value* m = b.node("Mul", {a, x}, "mul");
  b.output(b.node("Mul", {b.constant_node("half", 0.5f), m}, "y"));
  EXPECT_EQ(fuse_gelu(b.view()), 1u);
  EXPECT_EQ(b.op_counts(), (std::map<std::string, int>{{"com.microsoft.Gelu", 1}}))
      << "dead Constant nodes go with the match";
  EXPECT_NO_THROW(b.g().validate());
}

TEST_F(SdkRewrite, OpsetMismatchLeavesGraphUnchanged) {
  GraphBuilder b(11);
  b.output(build_gelu(b, b.input("x"), ""));
  auto before = b.op_counts();
  auto x = Any("x");
  auto erf = Op("Erf", {Op("Div", {x, Const(1.4142).tol(1e-3)}).opset({13})});  // Div-7 here
  auto gelu = Op("Mul", {Op("Mul", {x, Op("Add", {erf, Const(1.0)})}), Const(0.5)});
  EXPECT_EQ(rewrite(b.view(), gelu, ReplaceWith("com.microsoft", "Gelu", {"x"})), 0u);
  EXPECT_EQ(b.op_counts(), before);
  EXPECT_EQ(b.g().initializers().size(), 3u);
  EXPECT_EQ(b.model().opset("com.microsoft"), -1) << "nothing created, nothing imported";
}

TEST_F(SdkRewrite, EscapingIntermediateLeavesGraphUnchanged) {
  GraphBuilder b;
  b.output(build_gelu(b, b.input("x"), ""));
  b.output(b.g().find("add"));  // an intermediate is also a graph output
  auto before = b.op_counts();
  EXPECT_EQ(fuse_gelu(b.view()), 0u);
  EXPECT_EQ(b.op_counts(), before);
  EXPECT_NO_THROW(b.g().validate());
}

TEST_F(SdkRewrite, TwoSubgraphsFuseInOneRun) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* y1 = build_gelu(b, x, "a_");
  b.output(build_gelu(b, y1, "b_", /*swapped=*/true));
  EXPECT_EQ(fuse_gelu(b.view()), 2u);
  EXPECT_EQ(b.op_counts(), (std::map<std::string, int>{{"com.microsoft.Gelu", 2}}));
  EXPECT_NO_THROW(b.g().validate());
  // The chained Gelus read each other through the taken-over name.
  const ir::Value* out = b.g().outputs()[0];
  EXPECT_EQ(out->producer()->inputs()[0]->name(), "a_y");
  EXPECT_EQ(out->producer()->inputs()[0]->producer()->op_type(), "Gelu");
}

TEST_F(SdkRewrite, OverlappingMatchesCommitOnce) {
  // Add(Add(Add(x, y), z), w): "Add of an Add" matches at the second and third Add, which share
  // the second one. Only the first (in graph order) is committed.
  GraphBuilder b;
  ir::Value* a1 = b.node("Add", {b.input("x"), b.input("y")}, "a1");
  ir::Value* a2 = b.node("Add", {a1, b.input("z")}, "a2");
  b.output(b.node("Add", {a2, b.input("w")}, "a3"));
  auto add3 = Op("Add", {Op("Add", {Any("a"), Any("b")}), Any("c")});
  Action to_sum = ReplaceWith("", "Sum", {"a", "b", "c"});
  EXPECT_EQ(rewrite(b.view(), add3, to_sum), 1u);
  EXPECT_EQ(b.op_counts(), (std::map<std::string, int>{{"Add", 1}, {"Sum", 1}}));
  EXPECT_NO_THROW(b.g().validate());
  EXPECT_EQ(b.g().find("a2")->producer()->op_type(), "Sum");
  EXPECT_EQ(rewrite(b.view(), add3, to_sum), 0u) << "fixed point";
}

TEST_F(SdkRewrite, RulesAreTriedInOrderAndActionsMayDecline) {
  GraphBuilder b;
  b.output(b.node("Relu", {b.input("x")}, "r"));
  int declined = 0;
  Rewriter rw(b.view());
  rw.add(Op("Relu", {Any("x")}), [&](const Match&, Edit&) {
    ++declined;
    return false;
  });
  rw.add(Op("Relu", {Any("x")}), ReplaceWith("", "LeakyRelu", {"x"}, {}, {Attr("alpha", 0.0)}));
  EXPECT_EQ(rw.run(), 1u);
  EXPECT_EQ(declined, 1);
  ir::Node* n = b.g().outputs()[0]->producer();
  EXPECT_EQ(n->op_type(), "LeakyRelu");
  ASSERT_NE(n->attr("alpha"), nullptr);
  EXPECT_EQ(n->attr("alpha")->f(), 0.f);
}

TEST_F(SdkRewrite, GenericEditAddsInitializersAndNodes) {
  // Div(x, c) => Mul(x, 1/c)
  GraphBuilder b;
  b.output(b.node("Div", {b.input("x"), b.scalar("c", 4.f)}, "q"));
  test::TempDir dir;
  b.model().save(dir / "before.onnx");
  auto div = Op("Div", {Any("x"), Const().as("c").where([](TensorView t) {
                          return t.dtype() == TFH_TYPE_FLOAT && t.uniform_value();
                        })});
  size_t n = rewrite(b.view(), div, [](const Match& m, Edit& e) {
    double c = *m.constant("c").uniform_value();
    std::string inv = e.add_initializer("inv_c", Tensor::scalar(static_cast<float>(1.0 / c)));
    e.add_node("", "Mul", {m["x"], inv}, {e.root_output()});
    return true;
  });
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(b.op_counts(), (std::map<std::string, int>{{"Mul", 1}}));
  ASSERT_EQ(b.g().initializers().size(), 1u) << "c dropped, inv_c added";
  EXPECT_EQ(b.g().initializers()[0]->name(), "inv_c");
  EXPECT_NO_THROW(b.g().validate());
  b.model().save(dir / "after.onnx");
  std::vector<onnx::TensorProto> inputs{float_input("x", {2, 4})};
  test::Diff d = test::compare_outputs(test::ort_run(dir / "before.onnx", inputs),
                                       test::ort_run(dir / "after.onnx", inputs));
  EXPECT_LE(d.max_abs, 1e-6) << d.where << d.message;
}

TEST_F(SdkRewrite, MayEscapeNodesAreKept) {
  // Erf(Div(x, 2)) with the Div output also a graph output: Div stays, Erf is replaced.
  GraphBuilder b;
  b.output(b.node("Erf", {b.node("Div", {b.input("x"), b.scalar("two", 2.f)}, "div")}, "erf"));
  b.output(b.g().find("div"));
  auto p = Op("Erf", {Op("Div", {Any("x"), Const(2)}).may_escape().as("div")});
  EXPECT_EQ(rewrite(b.view(), p, ReplaceWith("custom", "ErfHalf", {"x"})), 1u);
  EXPECT_EQ(b.op_counts(), (std::map<std::string, int>{{"Div", 1}, {"custom.ErfHalf", 1}}));
  EXPECT_EQ(b.g().initializers().size(), 1u) << "the kept Div still reads the constant";
  EXPECT_EQ(b.model().opset("custom"), 1);
  EXPECT_NO_THROW(b.g().validate());
}

// The replacement reads "div", an intermediate the rewrite removes.
size_t fuse_gelu_badly(GraphView g) {
  return rewrite(g, gelu_pattern(), ReplaceWith("com.microsoft", "Gelu", {"div"}));
}

TEST_F(SdkRewrite, BadEditFailsBeforeAnyChange) {
  GraphBuilder b;
  b.output(build_gelu(b, b.input("x"), ""));
  auto before = b.op_counts();
  EXPECT_THROW(fuse_gelu_badly(b.view()), sdk::Error);
  EXPECT_EQ(b.op_counts(), before);
  EXPECT_NO_THROW(b.g().validate());

  // Through a trampoline the exception becomes a status for the host.
  size_t n_changed = 77;
  TfhStatus* s = wrap_pass<fuse_gelu_badly>(plugin::to_c(&b.model()), nullptr, &n_changed);
  TfhErrorCode code = TFH_OK;
  std::string msg = plugin::take_status_message(s, &code);
  EXPECT_EQ(code, TFH_INVALID_GRAPH);
  EXPECT_NE(msg.find("is produced by a node the rewrite removes"), std::string::npos) << msg;
  EXPECT_EQ(n_changed, 77u) << "outputs untouched on error";
}

}  // namespace
}  // namespace tfh::sdktest
