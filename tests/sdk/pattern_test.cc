// The pattern matcher (sdk/include/tfhost/pattern.hpp) on small IR graphs, through host_api().
#include "sdk/sdk_test_util.h"

namespace tfh::sdktest {
namespace {

using SdkPattern = SdkTest;

NodeView node_producing(GraphBuilder& b, const std::string& value) {
  return GraphView(b.view()).find(value).producer();
}

TEST_F(SdkPattern, GeluMatchesWithCaptures) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  b.output(build_gelu(b, x, ""));
  std::optional<Match> m = gelu_pattern().match(b.view(), node_producing(b, "y"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->root().name(), "y_Mul");
  EXPECT_EQ(m->nodes().size(), 5u);
  EXPECT_EQ(m->nodes().back(), m->root()) << "producers first, the root last";
  EXPECT_EQ(m->operator[]("x").name(), "x");
  EXPECT_EQ(m->node("div").op_type(), "Div");
  EXPECT_EQ(m->operator[]("div").name(), "div");
  EXPECT_TRUE(m->has("x"));
  EXPECT_FALSE(m->has("nope"));
  EXPECT_THROW((*m)["nope"], sdk::Error);
  EXPECT_THROW(m->node("x"), sdk::Error) << "x is an Any capture, not a node";

  // Anchored anywhere else, the Gelu pattern does not match.
  EXPECT_FALSE(gelu_pattern().match(b.view(), node_producing(b, "mul")));
  EXPECT_FALSE(gelu_pattern().match(b.view(), node_producing(b, "erf")));
}

TEST_F(SdkPattern, CommutativeOperandsSwapped) {
  GraphBuilder b;
  b.output(build_gelu(b, b.input("x"), "", /*swapped=*/true));
  EXPECT_TRUE(gelu_pattern().match(b.view(), node_producing(b, "y")));

  // Without .commutative() only the written operand order matches.
  auto x = Any("x");
  auto cdf = Op("Add", {Op("Erf", {Op("Div", {x, Const(1.4142).tol(1e-3)})}), Const(1.0)});
  auto strict = Op("Mul", {Op("Mul", {x, cdf}), Const(0.5)});
  EXPECT_FALSE(strict.match(b.view(), node_producing(b, "y")));
}

TEST_F(SdkPattern, SameCaptureNameMustBindSameValue) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* z = b.input("z");
  // Mul(z, cdf(x)): the two uses of "x" see different values.
  ir::Value* d = b.node("Div", {x, b.scalar("c", 1.4142f)}, "div");
  ir::Value* a = b.node("Add", {b.node("Erf", {d}, "erf"), b.scalar("one", 1.f)}, "add");
  ir::Value* m = b.node("Mul", {z, a}, "mul");
  b.output(b.node("Mul", {m, b.scalar("half", 0.5f)}, "y"));
  EXPECT_FALSE(gelu_pattern().match(b.view(), node_producing(b, "y")));
}

TEST_F(SdkPattern, SharedSubpatternMustBeTheSameNode) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* s1 = b.node("Sigmoid", {x}, "s1");
  ir::Value* s2 = b.node("Sigmoid", {x}, "s2");
  ir::Value* s3 = b.node("Sigmoid", {x}, "s3");
  b.output(b.node("Mul", {s1, s1}, "same"));
  b.output(b.node("Mul", {s2, s3}, "different"));
  auto sig = Op("Sigmoid", {Any("x")});
  auto square = Op("Mul", {sig, sig});
  EXPECT_TRUE(square.match(b.view(), node_producing(b, "same")));
  EXPECT_FALSE(square.match(b.view(), node_producing(b, "different")))
      << "one pattern object used twice must match one node";
}

TEST_F(SdkPattern, OneOfAlternativeGeluForms) {
  // ORT's second form: Mul(Mul(x, 0.5), cdf) instead of Mul(Mul(x, cdf), 0.5).
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* d = b.node("Div", {x, b.scalar("c", 1.4142135f)}, "div");
  ir::Value* a = b.node("Add", {b.node("Erf", {d}, "erf"), b.scalar("one", 1.f)}, "add");
  ir::Value* h = b.node("Mul", {x, b.scalar("half", 0.5f)}, "halfx");
  b.output(b.node("Mul", {h, a}, "y"));

  auto xp = Any("x");
  auto cdf =
      Op("Add", {Op("Erf", {Op("Div", {xp, Const(1.4142).tol(1e-3)})}), Const(1.0)}).commutative();
  auto form1 = Op("Mul", {Op("Mul", {xp, cdf}).commutative(), Const(0.5)}).commutative();
  auto form2 = Op("Mul", {Op("Mul", {xp, Const(0.5)}).commutative(), cdf}).commutative();
  EXPECT_FALSE(form1.match(b.view(), node_producing(b, "y")));
  EXPECT_TRUE(form2.match(b.view(), node_producing(b, "y")));
  auto either = OneOf(form1, form2).as("gelu");
  std::optional<Match> m = either.match(b.view(), node_producing(b, "y"));
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["gelu"].name(), "y");
  EXPECT_EQ(m->nodes().size(), 5u);
}

// Unsqueeze: axes as an attribute up to opset 12, as an input from opset 13.
Pattern unsqueeze0() {
  auto x = Any("x");
  return OneOf(Op("Unsqueeze", {x}).opset({1, 11}).where([](NodeView n) {
    return n.attr_ints("axes", {}) == std::vector<int64_t>{0};
  }),
               Op("Unsqueeze", {x, Const(0)}).opset({13}));
}

TEST_F(SdkPattern, OneOfAttributeAxesVersusInputAxes) {
  GraphBuilder old_form(11);
  ir::Value* u = old_form.node("Unsqueeze", {old_form.input("x")}, "u");
  u->producer()->set_attr("axes").set_type(onnx::AttributeProto::INTS);
  u->producer()->set_attr("axes").add_ints(0);
  old_form.output(u, onnx::TensorProto::FLOAT, {1, 2, 4});
  std::optional<Match> m = unsqueeze0().match(old_form.view(), node_producing(old_form, "u"));
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["x"].name(), "x");

  GraphBuilder new_form(13);
  ir::Value* axes = new_form.int_initializer("axes", {0}, {1});
  new_form.output(new_form.node("Unsqueeze", {new_form.input("x"), axes}, "u"),
                  onnx::TensorProto::FLOAT, {1, 2, 4});
  EXPECT_TRUE(unsqueeze0().match(new_form.view(), node_producing(new_form, "u")));

  // The input form at opset 11 is not Unsqueeze-13: no alternative applies.
  GraphBuilder mixed(11);
  ir::Value* axes11 = mixed.int_initializer("axes", {0}, {1});
  mixed.output(mixed.node("Unsqueeze", {mixed.input("x"), axes11}, "u"), onnx::TensorProto::FLOAT,
               {1, 2, 4});
  EXPECT_FALSE(unsqueeze0().match(mixed.view(), node_producing(mixed, "u")));
}

TEST_F(SdkPattern, ConstantTolerance) {
  auto build = [](float c) {
    auto b = std::make_unique<GraphBuilder>();
    b->output(b->node("Mul", {b->input("x"), b->scalar("c", c)}, "y"));
    return b;
  };
  auto near = build(0.70710f), far = build(0.8f);
  auto loose = Op("Mul", {Any("x"), Const(0.7071067).tol(1e-4)});
  auto exact = Op("Mul", {Any("x"), Const(0.7071067)});
  EXPECT_TRUE(loose.match(near->view(), node_producing(*near, "y")));
  EXPECT_FALSE(exact.match(near->view(), node_producing(*near, "y"))) << "default tol is 1e-6";
  EXPECT_FALSE(loose.match(far->view(), node_producing(*far, "y")));

  // Constant data of other types and shapes: int64, float16, a [3] tensor of equal elements,
  // and a Constant node.
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* two_i = b.int_initializer("two_i", {2}, {});
  auto f16 = std::make_unique<onnx::TensorProto>();
  f16->set_name("two_h");
  f16->set_data_type(onnx::TensorProto::FLOAT16);
  f16->add_int32_data(0x4000);  // 2.0 in IEEE half
  ir::Value* two_h = b.g().add_initializer(std::make_unique<ir::Tensor>(std::move(f16)));
  ir::Value* two_v = b.scalar("two_v", 2.f, {3});
  ir::Value* two_c = b.constant_node("two_c", 2.f, /*as_value_float=*/true);
  ir::Value* mixed = b.int_initializer("mixed", {2, 3}, {2});
  for (ir::Value* c : {two_i, two_h, two_v, two_c, mixed})
    b.output(b.node("Mul", {x, c}, "y_" + c->name()));
  auto times_two = Op("Mul", {Any("x"), Const(2).as("c")});
  for (const char* name : {"two_i", "two_h", "two_v", "two_c"}) {
    std::optional<Match> m = times_two.match(b.view(), node_producing(b, std::string("y_") + name));
    ASSERT_TRUE(m) << name;
    EXPECT_EQ(m->constant("c").uniform_value(), 2.0) << name;
  }
  EXPECT_FALSE(times_two.match(b.view(), node_producing(b, "y_mixed")));
  EXPECT_TRUE(Op("Mul", {Any(), Const()}).match(b.view(), node_producing(b, "y_mixed")))
      << "Const() is any constant";
  EXPECT_FALSE(Op("Mul", {Const(), Any()}).match(b.view(), node_producing(b, "y_mixed")));
}

TEST_F(SdkPattern, InitializerThatIsAGraphInputIsNotConstant) {
  GraphBuilder b;
  ir::Value* c = b.scalar("c", 0.5f);
  b.g().add_graph_input(c);  // an overridable default
  b.output(b.node("Mul", {b.input("x"), c}, "y"));
  EXPECT_FALSE(Op("Mul", {Any(), Const(0.5)}).match(b.view(), node_producing(b, "y")));
}

TEST_F(SdkPattern, OpsetSinceVersions) {
  auto div13 = Op("Div", {Any("x"), Any("y")}).opset({13});
  auto div7_13 = Op("Div", {Any("x"), Any("y")}).opset({7, 13});
  GraphBuilder at11(11), at13(13), at14(14);
  for (GraphBuilder* b : {&at11, &at13, &at14})
    b->output(b->node("Div", {b->input("x"), b->input("y")}, "q"));
  EXPECT_FALSE(div13.match(at11.view(), node_producing(at11, "q"))) << "Div at opset 11 is Div-7";
  EXPECT_TRUE(div7_13.match(at11.view(), node_producing(at11, "q")));
  EXPECT_TRUE(div13.match(at13.view(), node_producing(at13, "q")));
  EXPECT_FALSE(div7_13.match(at14.view(), node_producing(at14, "q")))
      << "Div at opset 14 is Div-14, not listed";
  EXPECT_EQ(at14.view().since_version(node_producing(at14, "q")), 14);
}

TEST_F(SdkPattern, DomainCheck) {
  GraphBuilder b;
  b.model().set_opset("com.microsoft", 1);
  b.model().set_opset("custom", 1);
  ir::Value* x = b.input("x");
  b.output(b.node("Gelu", {x}, "ms", "com.microsoft"));
  b.output(b.node("Gelu", {x}, "other", "custom"));
  b.output(b.node("Erf", {x}, "erf_custom", "custom"));
  auto ms = Op("Gelu", {Any("x")}).domain("com.microsoft");
  EXPECT_TRUE(ms.match(b.view(), node_producing(b, "ms")));
  EXPECT_FALSE(ms.match(b.view(), node_producing(b, "other")));
  EXPECT_FALSE(Op("Gelu", {Any()}).match(b.view(), node_producing(b, "ms")))
      << "patterns default to the ONNX domain";
  EXPECT_FALSE(Op("Erf", {Any()}).match(b.view(), node_producing(b, "erf_custom")));
  // A contrib op the host has no schema for: the imported opset must reach the listed version.
  EXPECT_TRUE(ms.opset({1}).match(b.view(), node_producing(b, "ms")));
  EXPECT_FALSE(ms.opset({2}).match(b.view(), node_producing(b, "ms")));
}

TEST_F(SdkPattern, EscapingIntermediateDoesNotMatch) {
  {  // the Erf output is also read by another node
    GraphBuilder b;
    b.output(build_gelu(b, b.input("x"), ""));
    b.output(b.node("Identity", {b.g().find("erf")}, "leak"));
    EXPECT_FALSE(gelu_pattern().match(b.view(), node_producing(b, "y")));
  }
  {  // the Div output is a graph output
    GraphBuilder b;
    b.output(build_gelu(b, b.input("x"), ""));
    b.output(b.g().find("div"));
    EXPECT_FALSE(gelu_pattern().match(b.view(), node_producing(b, "y")));
  }
  {  // ... unless the pattern allows that node to escape
    GraphBuilder b;
    b.output(b.node("Erf", {b.node("Div", {b.input("x"), b.scalar("c", 2.f)}, "div")}, "erf"));
    b.output(b.g().find("div"));
    auto strict = Op("Erf", {Op("Div", {Any("x"), Const(2)})});
    auto lenient = Op("Erf", {Op("Div", {Any("x"), Const(2)}).may_escape()});
    EXPECT_FALSE(strict.match(b.view(), node_producing(b, "erf")));
    EXPECT_TRUE(lenient.match(b.view(), node_producing(b, "erf")));
  }
}

TEST_F(SdkPattern, WhereChecksAndOutputIndex) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* s0 = b.g().add_value("s0");
  ir::Value* s1 = b.g().add_value("s1");
  ir::Node* split = b.g().add_node("split", "Split", "", {x}, {s0, s1});
  split->set_attr("axis").set_type(onnx::AttributeProto::INT);
  split->set_attr("axis").set_i(1);
  b.output(b.node("Relu", {s0}, "r0"), onnx::TensorProto::FLOAT, {2, 2});
  b.output(b.node("Relu", {s1}, "r1"), onnx::TensorProto::FLOAT, {2, 2});

  auto second = Op("Relu", {Op("Split").output(1).may_escape().as("split")});
  EXPECT_FALSE(second.match(b.view(), node_producing(b, "r0")));
  std::optional<Match> m = second.match(b.view(), node_producing(b, "r1"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->node("split").name(), "split");
  EXPECT_EQ((*m)["split"].name(), "s1");

  auto axis1 =
      Op("Relu",
         {Op("Split").may_escape().where([](NodeView n) { return n.attr_int("axis", 0) == 1; })});
  auto axis0 =
      Op("Relu",
         {Op("Split").may_escape().where([](NodeView n) { return n.attr_int("axis", 0) == 0; })});
  EXPECT_TRUE(axis1.match(b.view(), node_producing(b, "r0")));
  EXPECT_FALSE(axis0.match(b.view(), node_producing(b, "r0")));

  // A check over captures, and one over a value.
  auto reads_s0 =
      Op("Relu", {Any("in")}).where([](const Match& mm) { return mm["in"].name() == "s0"; });
  EXPECT_TRUE(reads_s0.match(b.view(), node_producing(b, "r0")));
  EXPECT_FALSE(reads_s0.match(b.view(), node_producing(b, "r1")));
  auto named_s1 = Op("Relu", {Any("in").where([](ValueView v) { return v.name() == "s1"; })});
  EXPECT_FALSE(named_s1.match(b.view(), node_producing(b, "r0")));
  EXPECT_TRUE(named_s1.match(b.view(), node_producing(b, "r1")));
}

TEST_F(SdkPattern, InputCountIsExact) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* c = b.g().add_value("clip");
  b.g().add_node("clip_node", "Clip", "", {x, nullptr, b.scalar("max", 6.f)}, {c});
  b.output(c);
  EXPECT_FALSE(Op("Clip", {Any()}).match(b.view(), node_producing(b, "clip")));
  EXPECT_FALSE(Op("Clip", {Any(), Any(), Any()}).match(b.view(), node_producing(b, "clip")))
      << "an omitted input matches nothing";
  EXPECT_TRUE(Op("Clip").match(b.view(), node_producing(b, "clip")));
}

TEST_F(SdkPattern, ModifiersCheckThePatternKind) {
  EXPECT_THROW(Any("x").commutative(), sdk::Error);
  EXPECT_THROW(Const(1).opset({13}), sdk::Error);
  EXPECT_THROW(Op("Add").tol(1e-3), sdk::Error);
  GraphBuilder b;
  b.output(b.node("Relu", {b.input("x")}, "r"));
  EXPECT_THROW(Any("x").match(b.view(), node_producing(b, "r")), sdk::Error)
      << "the root must be an Op";
  EXPECT_EQ(OneOf(Op("Add"), Op("Sub")).root_op_types(), (std::vector<std::string>{"Add", "Sub"}));
}

}  // namespace
}  // namespace tfh::sdktest
