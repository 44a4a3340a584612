// core.remove_identity: Identity and inference-form Dropout bypassed, graph output names kept.
#include <gtest/gtest.h>

#include "host/passes/core_passes.h"
#include "passes/pass_test_util.h"

namespace tfh::passes {
namespace {
using testing::ModelBuilder;
using testing::count_op;
using testing::output_names;

class RemoveIdentity : public testing::PassTest {};

TEST_F(RemoveIdentity, BypassesAChainOfIdentities) {
  ModelBuilder b;
  b.input("x").output("y");
  b.node("Identity", {"x"}, {"t1"});
  b.node("Identity", {"t1"}, {"t2"});
  b.node("Relu", {"t2"}, {"y"});
  auto m = load(b);
  EXPECT_EQ(remove_identity(*m), 2u);
  EXPECT_EQ(count_op(*m, "Identity"), 0u);
  EXPECT_EQ(m->graph().num_nodes(), 1u);
  EXPECT_EQ(m->graph().find("t1"), nullptr);  // no stray values left behind
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

TEST_F(RemoveIdentity, AGraphOutputKeepsItsName) {
  ModelBuilder b;
  b.input("x").output("y").output("z");
  b.node("Relu", {"x"}, {"r"});
  b.node("Identity", {"r"}, {"y"});
  b.node("Neg", {"y"}, {"z"});
  auto m = load(b);
  EXPECT_EQ(remove_identity(*m), 1u);
  EXPECT_EQ(count_op(*m, "Identity"), 0u);
  EXPECT_EQ(output_names(*m), (std::vector<std::string>{"y", "z"}));
  EXPECT_EQ(m->graph().find("y")->producer()->op_type(), "Relu");
  EXPECT_EQ(m->graph().find("r"), nullptr);
  EXPECT_EQ(m->graph().find("y")->elem_type(), onnx::TensorProto::FLOAT);  // declared type kept
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

TEST_F(RemoveIdentity, KeepsAnIdentityFromAGraphInputToAGraphOutput) {
  ModelBuilder b;
  b.input("x").output("y").output("w");
  b.node("Identity", {"x"}, {"y"});
  b.node("Identity", {"x"}, {"t"});
  b.node("Identity", {"t"}, {"w"});
  auto m = load(b);
  // x -> y cannot go (renaming x would rename a model input); t -> w collapses into one Identity.
  EXPECT_EQ(remove_identity(*m), 1u);
  EXPECT_EQ(count_op(*m, "Identity"), 2u);
  EXPECT_EQ(output_names(*m), (std::vector<std::string>{"y", "w"}));
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

TEST_F(RemoveIdentity, RewritesSubgraphReadsOfTheBypassedValue) {
  ModelBuilder b;
  b.input("x").input("cond", {}, onnx::TensorProto::BOOL).output("y");
  b.node("Relu", {"x"}, {"r"});
  b.node("Identity", {"r"}, {"a"});
  auto& if_node = b.node("If", {"cond"}, {"y"});
  testing::set_graph_attr(if_node, "then_branch", testing::identity_branch("a", "then_out"));
  testing::set_graph_attr(if_node, "else_branch", testing::identity_branch("x", "else_out"));
  auto m = load(b);
  EXPECT_EQ(remove_identity(*m), 1u);
  EXPECT_EQ(count_op(*m, "Identity"), 0u);
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

// Dropout-7..11: identity at inference; the ratio is an attribute.
TEST_F(RemoveIdentity, RemovesOpset11DropoutWhoseMaskIsUnused) {
  ModelBuilder b(11, 6);
  b.input("x").output("y");
  testing::set_float_attr(b.node("Dropout", {"x"}, {"d", "mask"}), "ratio", 0.1f);
  b.node("Relu", {"d"}, {"y"});
  auto m = load(b);
  EXPECT_EQ(remove_identity(*m), 1u);
  EXPECT_EQ(count_op(*m, "Dropout"), 0u);
  EXPECT_EQ(m->graph().find("mask"), nullptr);
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

TEST_F(RemoveIdentity, KeepsADropoutWhoseMaskIsRead) {
  ModelBuilder b(11, 6);
  b.input("x").output("y").output("mask", {2, 3}, onnx::TensorProto::BOOL);
  b.node("Dropout", {"x"}, {"d", "mask"});
  b.node("Relu", {"d"}, {"y"});
  auto m = load(b);
  EXPECT_EQ(remove_identity(*m), 0u);
  EXPECT_EQ(count_op(*m, "Dropout"), 1u);
}

// Dropout-12+: ratio and training_mode are inputs; training_mode absent or constant false.
TEST_F(RemoveIdentity, RemovesOpset13DropoutNotInTraining) {
  ModelBuilder b(13);
  b.input("x").output("y1").output("y2");
  b.initializer("ratio", {}, {0.5f}).bool_initializer("training", false);
  b.node("Dropout", {"x", "ratio", "training"}, {"d1"});
  b.node("Dropout", {"x", "ratio"}, {"d2", ""});
  b.node("Relu", {"d1"}, {"y1"});
  b.node("Neg", {"d2"}, {"y2"});
  auto m = load(b);
  EXPECT_EQ(remove_identity(*m), 2u);
  EXPECT_EQ(count_op(*m, "Dropout"), 0u);
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

TEST_F(RemoveIdentity, KeepsOpset13DropoutInTrainingOrWithAFedTrainingMode) {
  ModelBuilder b(13);
  b.input("x").input("fed", {}, onnx::TensorProto::BOOL).output("y1").output("y2");
  b.initializer("ratio", {}, {0.5f}).bool_initializer("training", true);
  b.node("Dropout", {"x", "ratio", "training"}, {"d1"});
  b.node("Dropout", {"x", "ratio", "fed"}, {"d2"});
  b.node("Relu", {"d1"}, {"y1"});
  b.node("Relu", {"d2"}, {"y2"});
  auto m = load(b);
  EXPECT_EQ(remove_identity(*m), 0u);
  EXPECT_EQ(count_op(*m, "Dropout"), 2u);
}

TEST_F(RemoveIdentity, LeavesDropoutWhenAskedTo) {
  ModelBuilder b(13);
  b.input("x").output("y");
  b.node("Dropout", {"x"}, {"d"});
  b.node("Identity", {"d"}, {"t"});
  b.node("Relu", {"t"}, {"y"});
  auto m = load(b);
  EXPECT_EQ(remove_identity(*m, {/*dropout=*/false}), 1u);
  EXPECT_EQ(count_op(*m, "Dropout"), 1u);
  EXPECT_EQ(count_op(*m, "Identity"), 0u);
}

}  // namespace
}  // namespace tfh::passes
