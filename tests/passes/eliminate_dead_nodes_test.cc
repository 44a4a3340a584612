// core.eliminate_dead_nodes: nodes that reach no graph output go; subgraph reads keep nodes alive.
#include <gtest/gtest.h>

#include "host/passes/core_passes.h"
#include "passes/pass_test_util.h"

namespace tfh::passes {
namespace {
using testing::ModelBuilder;
using testing::count_op;

class EliminateDeadNodes : public testing::PassTest {};

TEST_F(EliminateDeadNodes, RemovesABranchThatReachesNoOutput) {
  ModelBuilder b;
  b.input("x").output("y");
  b.node("Relu", {"x"}, {"y"});
  b.node("Sigmoid", {"x"}, {"s"});
  b.node("Tanh", {"s"}, {"u"});
  auto m = load(b);
  EXPECT_EQ(eliminate_dead_nodes(m->graph()), 2u);
  EXPECT_EQ(m->graph().num_nodes(), 1u);
  EXPECT_EQ(count_op(*m, "Relu"), 1u);
  EXPECT_EQ(m->graph().find("s"), nullptr);
  EXPECT_EQ(m->graph().find("u"), nullptr);
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

TEST_F(EliminateDeadNodes, KeepsANodeWithOneLiveOutput) {
  ModelBuilder b;
  b.input("x").output("y");
  b.initializer("split", {2}, {1, 2});
  b.node("Split", {"x", "split"}, {"a", "unused"}).add_attribute()->CopyFrom([] {
    onnx::AttributeProto axis;
    axis.set_name("axis");
    axis.set_type(onnx::AttributeProto::INT);
    axis.set_i(1);
    return axis;
  }());
  b.node("Relu", {"a"}, {"y"});
  b.graph().mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape()
      ->mutable_dim(1)->set_dim_value(1);
  auto m = load(b);
  EXPECT_EQ(eliminate_dead_nodes(m->graph()), 0u);
  EXPECT_EQ(m->graph().num_nodes(), 2u);
}

TEST_F(EliminateDeadNodes, KeepsANodeReadOnlyFromInsideASubgraph) {
  ModelBuilder b;
  b.input("x").input("cond", {}, onnx::TensorProto::BOOL).output("y");
  b.node("Neg", {"x"}, {"a"});       // read only by the If's then-branch
  b.node("Sigmoid", {"x"}, {"dead"});  // read by nobody
  auto& if_node = b.node("If", {"cond"}, {"y"});
  testing::set_graph_attr(if_node, "then_branch", testing::identity_branch("a", "then_out"));
  testing::set_graph_attr(if_node, "else_branch", testing::identity_branch("x", "else_out"));
  auto m = load(b);
  EXPECT_EQ(eliminate_dead_nodes(m->graph()), 1u);
  EXPECT_EQ(count_op(*m, "Neg"), 1u);
  EXPECT_EQ(count_op(*m, "Sigmoid"), 0u);
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

}  // namespace
}  // namespace tfh::passes
