// core.remove_unused_initializers: unread weights go, with the graph inputs that mirror them.
#include <gtest/gtest.h>

#include "host/passes/core_passes.h"
#include "passes/pass_test_util.h"

namespace tfh::passes {
namespace {
using testing::ModelBuilder;

class RemoveUnusedInitializers : public testing::PassTest {};

std::vector<std::string> names(const std::vector<ir::Value*>& values) {
  std::vector<std::string> out;
  for (const ir::Value* v : values) out.push_back(v->name());
  return out;
}

TEST_F(RemoveUnusedInitializers, RemovesOnlyUnreadInitializers) {
  ModelBuilder b;
  b.input("x").output("y").output("kept_as_output", {1});
  b.initializer("bias", {3}, {1, 2, 3});
  b.initializer("unused", {3}, {4, 5, 6});
  b.initializer("kept_as_output", {1}, {7});
  b.node("Add", {"x", "bias"}, {"y"});
  auto m = load(b);
  EXPECT_EQ(remove_unused_initializers(m->graph()), 1u);
  EXPECT_EQ(names(m->graph().initializers()), (std::vector<std::string>{"bias", "kept_as_output"}));
  EXPECT_EQ(m->graph().find("unused"), nullptr);
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

// IR version 3 lists every initializer as a graph input too.
TEST_F(RemoveUnusedInitializers, DropsTheGraphInputsThatMirrorRemovedInitializers) {
  ModelBuilder b(8, 3);
  b.input("x").input("bias", {3}).input("unused", {3}).output("y");
  b.initializer("bias", {3}, {1, 2, 3});
  b.initializer("unused", {3}, {4, 5, 6});
  b.node("Add", {"x", "bias"}, {"y"});
  auto m = load(b);
  EXPECT_EQ(remove_unused_initializers(m->graph()), 1u);
  EXPECT_EQ(names(m->graph().inputs()), (std::vector<std::string>{"x", "bias"}));
  EXPECT_EQ(names(m->graph().initializers()), (std::vector<std::string>{"bias"}));
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

TEST_F(RemoveUnusedInitializers, KeepsMirroredInitializersWhenInputsAreNotPruned) {
  ModelBuilder b(8, 3);
  b.input("x").input("unused", {3}).output("y");
  b.initializer("unused", {3}, {4, 5, 6});
  b.node("Relu", {"x"}, {"y"});
  auto m = load(b);
  EXPECT_EQ(remove_unused_initializers(m->graph(), {/*prune_inputs=*/false}), 0u);
  EXPECT_EQ(names(m->graph().inputs()), (std::vector<std::string>{"x", "unused"}));
  EXPECT_EQ(m->graph().initializers().size(), 1u);
}

TEST_F(RemoveUnusedInitializers, KeepsAnInitializerReadFromInsideASubgraph) {
  ModelBuilder b;
  b.input("x").input("cond", {}, onnx::TensorProto::BOOL).output("y");
  b.initializer("w", {2, 3}, {1, 2, 3, 4, 5, 6});
  auto& if_node = b.node("If", {"cond"}, {"y"});
  testing::set_graph_attr(if_node, "then_branch", testing::identity_branch("w", "then_out"));
  testing::set_graph_attr(if_node, "else_branch", testing::identity_branch("x", "else_out"));
  auto m = load(b);
  EXPECT_EQ(remove_unused_initializers(m->graph()), 0u);
  EXPECT_EQ(names(m->graph().initializers()), (std::vector<std::string>{"w"}));
}

}  // namespace
}  // namespace tfh::passes
