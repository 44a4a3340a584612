// core.repair_duplicate_definitions: the last definition keeps the name; earlier reads are rewired.
#include <gtest/gtest.h>

#include "host/passes/core_passes.h"
#include "host/util/error.h"
#include "passes/pass_test_util.h"

namespace tfh::passes {
namespace {
using testing::ModelBuilder;

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

TEST_F(RepairDuplicateDefinitions, DoesNothingWithoutDuplicates) {
  auto m = load(twice_defined("t_early"));
  EXPECT_EQ(repair_duplicate_definitions(m->graph()), 0u);
  EXPECT_EQ(m->graph().num_nodes(), 4u);
}

}  // namespace
}  // namespace tfh::passes
