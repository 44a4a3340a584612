// core.repair_duplicate_definitions: the last definition keeps the name; earlier reads are rewired.
#include <gtest/gtest.h>

#include "host/passes/core_passes.h"
#include "host/util/error.h"
#include "passes/pass_test_util.h"

namespace tfh::passes {
namespace {
using testing::identity_branch;
using testing::ModelBuilder;
using testing::set_graph_attr;

class RepairDuplicateDefinitions : public testing::PassTest {};

// x -> Relu -> t -> Neg -> a ;  x -> Sigmoid -> t -> Tanh -> b ;  outputs a, b, t
ModelBuilder twice_defined(const std::string& first_t) {
  ModelBuilder b;
  b.input("x").output("a").output("b").output("t");
  b.node("Relu", {"x"}, {first_t}, "relu");
  b.node("Neg", {first_t}, {"a"}, "neg");
  b.node("Sigmoid", {"x"}, {"t"}, "sigmoid");
  b.node("Tanh", {"t"}, {"b"}, "tanh");
  return b;
}

TEST_F(RepairDuplicateDefinitions, KeepsTheLastDefinitionAndRewiresEarlierReads) {
  auto m = load(twice_defined("t"));
  EXPECT_THROW(m->graph().validate(), tfh::Error);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(repair_duplicate_definitions(m->graph()), 1u);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("value 't' is defined by node 'relu' and again by node 'sigmoid'"),
            std::string::npos) << log;

  const ir::Graph& g = m->graph();
  g.validate();
  const ir::Value* t = g.find("t");
  EXPECT_EQ(t->producer()->name(), "sigmoid");
  ASSERT_EQ(t->consumers().size(), 1u);
  EXPECT_EQ(t->consumers()[0].first->name(), "tanh");
  const ir::Node* neg = nullptr;
  for (const auto& n : g.nodes())
    if (n->name() == "neg") neg = n.get();
  ASSERT_NE(neg, nullptr);
  EXPECT_NE(neg->inputs()[0], t);
  EXPECT_EQ(neg->inputs()[0]->producer()->name(), "relu");
  EXPECT_EQ(testing::output_names(*m), (std::vector<std::string>{"a", "b", "t"}));
  // Same results as the model written without the clash.
  expect_same_outputs(*m, save(twice_defined("t_early"), "reference"));
}

std::vector<std::string> node_names(const ir::Graph& g) {
  std::vector<std::string> out;
  for (const auto& n : g.nodes()) out.push_back(n->name());
  return out;
}

const ir::Node* node_named(const ir::Graph& g, const std::string& name) {
  for (const auto& n : g.nodes())
    if (n->name() == name) return n.get();
  return nullptr;
}

TEST_F(RepairDuplicateDefinitions, TheEarlierDefinerKeepsItsPositionAndDocString) {
  ModelBuilder b = twice_defined("t");
  b.graph().mutable_node(0)->set_doc_string("relu, as exported");
  auto m = load(b);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(repair_duplicate_definitions(m->graph()), 1u);
  ::testing::internal::GetCapturedStderr();

  const ir::Graph& g = m->graph();
  EXPECT_EQ(node_names(g), (std::vector<std::string>{"relu", "neg", "sigmoid", "tanh"}));
  const ir::Node* relu = node_named(g, "relu");
  ASSERT_NE(relu, nullptr);
  EXPECT_EQ(relu->doc_string(), "relu, as exported");
  EXPECT_EQ(relu->outputs()[0]->name(), "t_0");
  EXPECT_EQ(node_named(g, "neg")->inputs()[0], relu->outputs()[0]);
  // And so in the saved model.
  expect_same_outputs(*m, save(twice_defined("t_early"), "reference"));
  const onnx::ModelProto saved = test::read_model_proto(tmp_ / "after.onnx");
  ASSERT_EQ(saved.graph().node_size(), 4);
  EXPECT_EQ(saved.graph().node(0).name(), "relu");
  EXPECT_EQ(saved.graph().node(0).doc_string(), "relu, as exported");
  EXPECT_EQ(saved.graph().node(0).output(0), "t_0");
}

// cond -> If(then: Identity(x), else: Identity(x)) -> t ; Neg(t) -> a ; Sigmoid(x) -> t ; Tanh(t)
ModelBuilder if_defined_first(const std::string& first_t) {
  ModelBuilder b;
  b.input("x").output("a").output("b").output("t").bool_initializer("cond", true);
  onnx::NodeProto& n = b.node("If", {"cond"}, {first_t}, "if");
  set_graph_attr(n, "then_branch", identity_branch("x", "then_out"));
  set_graph_attr(n, "else_branch", identity_branch("x", "else_out"));
  b.node("Neg", {first_t}, {"a"}, "neg");
  b.node("Sigmoid", {"x"}, {"t"}, "sigmoid");
  b.node("Tanh", {"t"}, {"b"}, "tanh");
  return b;
}

TEST_F(RepairDuplicateDefinitions, AnEarlierSubgraphDefinerKeepsItsImplicitInputs) {
  auto m = load(if_defined_first("t"));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(repair_duplicate_definitions(m->graph()), 1u);
  ::testing::internal::GetCapturedStderr();

  const ir::Graph& g = m->graph();
  EXPECT_EQ(node_names(g), (std::vector<std::string>{"if", "neg", "sigmoid", "tanh"}));
  const ir::Node* if_node = node_named(g, "if");
  const ir::Value* x = g.find("x");
  EXPECT_EQ(if_node->implicit_inputs(), (std::vector<ir::Value*>{const_cast<ir::Value*>(x)}));
  bool read_by_if = false;
  for (const auto& [n, slot] : x->consumers())
    read_by_if |= n == if_node && slot == ir::Node::kImplicitSlot;
  EXPECT_TRUE(read_by_if);
  EXPECT_EQ(if_node->attributes().size(), 2u);
  expect_same_outputs(*m, save(if_defined_first("t_early"), "reference"));
}

// Relu -> t ; Neg(t) ; Sigmoid -> t ; Tanh(t) ; Abs -> t ; Exp(t): each read sees the one before.
ModelBuilder thrice_defined(const std::string& t1, const std::string& t2) {
  ModelBuilder b;
  b.input("x").output("a").output("b").output("c").output("t");
  b.node("Relu", {"x"}, {t1}, "relu");
  b.node("Neg", {t1}, {"a"}, "neg");
  b.node("Sigmoid", {"x"}, {t2}, "sigmoid");
  b.node("Tanh", {t2}, {"b"}, "tanh");
  b.node("Abs", {"x"}, {"t"}, "abs");
  b.node("Exp", {"t"}, {"c"}, "exp");
  return b;
}

TEST_F(RepairDuplicateDefinitions, EachReadSeesTheDefinitionBeforeIt) {
  auto m = load(thrice_defined("t", "t"));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(repair_duplicate_definitions(m->graph()), 2u);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("value 't' is defined by node 'sigmoid' and again by node 'abs'"),
            std::string::npos) << log;
  const ir::Graph& g = m->graph();
  EXPECT_EQ(node_names(g),
            (std::vector<std::string>{"relu", "neg", "sigmoid", "tanh", "abs", "exp"}));
  EXPECT_EQ(node_named(g, "neg")->inputs()[0]->producer()->name(), "relu");
  EXPECT_EQ(node_named(g, "tanh")->inputs()[0]->producer()->name(), "sigmoid");
  EXPECT_EQ(node_named(g, "exp")->inputs()[0], g.find("t"));
  expect_same_outputs(*m, save(thrice_defined("t1", "t2"), "reference"));
}

TEST_F(RepairDuplicateDefinitions, DoesNothingWithoutDuplicates) {
  auto m = load(twice_defined("t_early"));
  EXPECT_EQ(repair_duplicate_definitions(m->graph()), 0u);
  EXPECT_EQ(m->graph().num_nodes(), 4u);
}

}  // namespace
}  // namespace tfh::passes
