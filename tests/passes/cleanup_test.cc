// core.topological_sort and core.cleanup, the latter through the registry as `tfhost optimize`
// runs it without --model_type.
#include <gtest/gtest.h>

#include "host/passes/core_passes.h"
#include "host/plugin/registry.h"
#include "passes/pass_test_util.h"

namespace tfh::passes {
namespace {
using testing::ModelBuilder;
using testing::count_op;

class Cleanup : public testing::PassTest {};

std::vector<std::string> node_names(const ir::Model& m) {
  std::vector<std::string> out;
  for (const auto& n : m.graph().nodes()) out.push_back(n->name());
  return out;
}

TEST_F(Cleanup, TopologicalSortOrdersNodesAndCountsMoves) {
  ModelBuilder b;
  b.input("x").output("y");
  b.node("Neg", {"r"}, {"y"}, "neg");
  b.node("Relu", {"x"}, {"r"}, "relu");
  auto m = load(b);
  EXPECT_EQ(topological_sort(m->graph()), 2u);
  EXPECT_EQ(node_names(*m), (std::vector<std::string>{"relu", "neg"}));
  EXPECT_EQ(topological_sort(m->graph()), 0u);
}

TEST_F(Cleanup, TheCoreModelTypeCleansAGraphInOnePass) {
  ModelBuilder b;
  b.input("x").output("y");
  b.initializer("unused", {3}, {1, 2, 3});
  b.node("Relu", {"x"}, {"t"}, "relu_early");      // earlier definition of t
  b.node("Neg", {"t"}, {"n"}, "neg");
  b.node("Sigmoid", {"x"}, {"t"}, "sigmoid");       // last definition of t
  b.node("Add", {"t", "n"}, {"s"}, "add");
  b.node("Dropout", {"s"}, {"d"}, "dropout");
  b.node("Identity", {"d"}, {"y"}, "identity");
  b.node("Tanh", {"x"}, {"dead"}, "tanh");
  auto m = load(b);

  plugin::Registry registry;
  const plugin::PassEntry& cleanup = *registry.find_pass("core.cleanup");
  const auto params = plugin::Params::resolve(cleanup.params,
                                              std::map<std::string, std::string>{}, "core.cleanup",
                                              "test");
  ::testing::internal::CaptureStderr();  // the repair warns
  // 1 repaired + 2 bypassed + 1 dead + 1 initializer + nodes moved by the sort (>= 0)
  EXPECT_GE(registry.run_pass(cleanup, *m, params), 5u);
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_op(*m, "Identity") + count_op(*m, "Dropout") + count_op(*m, "Tanh"), 0u);
  EXPECT_EQ(m->graph().num_nodes(), 4u);
  EXPECT_TRUE(m->graph().initializers().empty());
  EXPECT_EQ(testing::output_names(*m), std::vector<std::string>{"y"});

  ModelBuilder ref;  // the same computation written cleanly
  ref.input("x").output("y");
  ref.node("Relu", {"x"}, {"t0"});
  ref.node("Neg", {"t0"}, {"n"});
  ref.node("Sigmoid", {"x"}, {"t"});
  ref.node("Add", {"t", "n"}, {"y"});
  expect_same_outputs(*m, save(ref, "reference"));
}

}  // namespace
}  // namespace tfh::passes
