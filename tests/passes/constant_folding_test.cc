// core.constant_folding: nodes computed from constants alone become initializers (evaluated by
// tfhost's CPU kernels); random ops, nodes reading a graph input (or an overridable initializer)
// and results that would blow a small tensor up past max_bytes stay. Outputs are unchanged in
// ONNX Runtime.
#include <gtest/gtest.h>

#include "host/passes/core_passes.h"
#include "passes/pass_test_util.h"

namespace tfh::passes {
namespace {
using testing::ModelBuilder;
using testing::count_op;

void int_attr(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void ints_attr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void int64_init(ModelBuilder& b, const std::string& name, const std::vector<int64_t>& v) {
  onnx::TensorProto* t = b.graph().add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(v.size()));
  for (int64_t x : v) t->add_int64_data(x);
}

class ConstantFolding : public testing::PassTest {};

TEST_F(ConstantFolding, FoldsWeightTransformsAndShapeArithmetic) {
  ModelBuilder b(14);
  b.input("x", {2, 3}).output("y", {3, 2});
  // W^T computed at run time: Transpose of a weight, scaled by a Constant node's 2.
  b.initializer("W", {3, 3}, {0.5f, -1.f, 0.25f, 2.f, 0.1f, -0.3f, 1.f, 1.f, -2.f});
  auto& two = b.node("Constant", {}, {"two"}, "two");
  auto* v = two.add_attribute();
  v->set_name("value");
  v->set_type(onnx::AttributeProto::TENSOR);
  v->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  v->mutable_t()->add_float_data(2.f);
  ints_attr(b.node("Transpose", {"W"}, {"Wt"}, "transpose"), "perm", {1, 0});
  b.node("Mul", {"Wt", "two"}, {"W2"}, "scale");
  b.node("MatMul", {"x", "W2"}, {"m"}, "matmul");
  // The target shape [3, 2] from Shape(W)[0] and a constant: Shape/Gather/Unsqueeze/Concat.
  int64_init(b, "zero", {0});
  int64_init(b, "two_i", {2});
  b.node("Shape", {"W"}, {"ws"}, "shape");
  int_attr(b.node("Gather", {"ws", "zero"}, {"rows"}, "gather"), "axis", 0);
  int_attr(b.node("Concat", {"rows", "two_i"}, {"target"}, "concat"), "axis", 0);
  b.node("Reshape", {"m", "target"}, {"y"}, "reshape");
  auto m = load(b);
  EXPECT_EQ(constant_folding(*m), 6u);  // two, transpose, scale, shape, gather, concat
  EXPECT_EQ(count_op(*m, "Transpose"), 0u);
  EXPECT_EQ(count_op(*m, "Constant"), 0u);
  EXPECT_EQ(m->graph().num_nodes(), 2u);  // MatMul, Reshape
  EXPECT_NE(m->graph().find("W2")->initializer(), nullptr);
  EXPECT_NE(m->graph().find("target")->initializer(), nullptr);
  EXPECT_EQ(m->graph().find("Wt"), nullptr);  // intermediate results leave no value behind
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

TEST_F(ConstantFolding, LeavesInputsRandomOpsAndBlowUpsAlone) {
  ModelBuilder b(14);
  b.input("x", {2, 3}).output("y", {2, 3}).output("big", {64, 1024});
  b.initializer("k", {1}, {3.f});
  b.node("Mul", {"x", "k"}, {"xk"}, "reads_input");
  auto& r = b.node("RandomUniformLike", {"x"}, {"noise"}, "random");
  (void)r;
  b.node("Mul", {"noise", "k"}, {"scaled_noise"}, "after_random");
  b.node("Sub", {"xk", "scaled_noise"}, {"d"}, "sub");
  b.node("Sub", {"d", "d"}, {"zero"}, "zero");   // 0 whatever the noise: outputs comparable
  b.node("Add", {"xk", "zero"}, {"y"}, "add");
  // Expand of one float to 256 KiB: larger than max_bytes (64 KiB here) and than its inputs.
  int64_init(b, "shape", {64, 1024});
  b.node("Expand", {"k", "shape"}, {"big"}, "expand");
  auto m = load(b);
  EXPECT_EQ(constant_folding(*m, 64 << 10), 0u);
  EXPECT_EQ(m->graph().num_nodes(), 7u);
  EXPECT_EQ(constant_folding(*m, 1 << 20), 1u);  // with room for it, the Expand goes
  EXPECT_NE(m->graph().find("big")->initializer(), nullptr);
  expect_same_outputs(*m, tmp_ / "before.onnx");
}

}  // namespace
}  // namespace tfh::passes
