// Graph edits keep use-def chains exact; topological sort; cycles; implicit (subgraph) inputs.
#include <random>

#include "ir_test_util.h"

namespace tfh::ir::test {
namespace {

std::vector<std::string> order(const Graph& g) {
  std::vector<std::string> out;
  for (const auto& n : g.nodes()) out.push_back(n->name());
  return out;
}

// Every node's inputs are produced earlier in the list (or are graph inputs/initializers).
bool is_topological(const Graph& g) {
  std::set<const Node*> done;
  for (const auto& n : g.nodes()) {
    for (const Value* v : n->inputs())
      if (v && v->producer() && !done.count(v->producer())) return false;
    done.insert(n.get());
  }
  return true;
}

TEST(GraphEdit, TopologicalSortIsStable) {
  Graph g;
  Value* x = g.add_value("x");
  g.add_graph_input(x);
  auto v = [&](const char* n) { return g.add_value(n); };
  Value *a = v("a"), *b = v("b"), *c = v("c"), *d = v("d"), *e = v("e");
  g.add_node("D", "Relu", "", {c}, {d});
  g.add_node("A", "Relu", "", {x}, {a});
  g.add_node("C", "Relu", "", {b}, {c});
  g.add_node("B", "Relu", "", {a}, {b});
  g.add_node("E", "Relu", "", {x}, {e});
  EXPECT_FALSE(is_topological(g));
  g.topological_sort();
  EXPECT_TRUE(is_topological(g));
  // Among ready nodes the earliest in the current order goes first.
  EXPECT_EQ(order(g), (std::vector<std::string>{"A", "B", "C", "D", "E"}));
  EXPECT_EQ(use_def_problems(g), "");
}

TEST(GraphEdit, TopologicalSortOfARealModelShuffled) {
  auto model = Model::load(model_files().front());
  Graph& g = model->graph();
  std::vector<std::string> before = order(g);
  g.topological_sort();  // already sorted: unchanged
  EXPECT_EQ(order(g), before);

  // Rebuild the same nodes in a shuffled order in a second graph.
  Graph shuffled;
  for (const Value* in : g.inputs()) shuffled.add_graph_input(shuffled.add_value(in->name()));
  for (const Value* w : g.initializers()) shuffled.get_or_add_value(w->name());
  std::vector<const Node*> nodes;
  for (const auto& n : g.nodes()) nodes.push_back(n.get());
  std::mt19937 rng(7);
  std::shuffle(nodes.begin(), nodes.end(), rng);
  for (const Node* n : nodes) {
    std::vector<Value*> ins, outs;
    for (const Value* v : n->inputs())
      ins.push_back(v ? shuffled.get_or_add_value(v->name()) : nullptr);
    for (const Value* v : n->outputs())
      outs.push_back(v ? shuffled.get_or_add_value(v->name()) : nullptr);
    shuffled.add_node(n->name(), n->op_type(), n->domain(), ins, outs);
  }
  ASSERT_FALSE(is_topological(shuffled));
  shuffled.topological_sort();
  EXPECT_TRUE(is_topological(shuffled));
  EXPECT_EQ(shuffled.num_nodes(), g.num_nodes());
  EXPECT_EQ(use_def_problems(shuffled), "");
}

TEST(GraphEdit, CycleIsReportedNamingANodeInIt) {
  Graph g;
  Value* x = g.add_value("x");
  g.add_graph_input(x);
  Value *a = g.add_value("a"), *b = g.add_value("b"), *y = g.add_value("y");
  Node* na = g.add_node("in_cycle_a", "Relu", "", {x}, {a});
  g.add_node("in_cycle_b", "Relu", "", {a}, {b});
  g.add_node("downstream", "Relu", "", {b}, {y});
  g.set_input(na, 0, b);  // a -> b -> a
  std::vector<std::string> before = order(g);
  std::string msg = error_of([&] { g.topological_sort(); });
  EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
  EXPECT_NE(msg.find("in_cycle_"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("downstream"), std::string::npos) << msg;
  EXPECT_EQ(order(g), before);  // a failed sort changes nothing
  EXPECT_NE(error_of([&] { g.validate(); }).find("cycle"), std::string::npos);
  g.set_input(na, 0, x);
  EXPECT_NO_THROW(g.validate());
}

TEST(GraphEdit, UseDefStaysExactUnderEdits) {
  Graph g;
  Value* x = g.add_value("x");
  g.add_graph_input(x);
  auto w =
      std::make_unique<Tensor>(std::make_unique<onnx::TensorProto>(float_tensor("w", {2}, {1, 2})));
  Value* wv = g.add_initializer(std::move(w));
  Value *a = g.add_value("a"), *b = g.add_value("b"), *y = g.add_value("y");
  Node* n1 = g.add_node("n1", "Add", "", {x, wv}, {a});
  Node* n2 = g.add_node("n2", "Mul", "", {a, a}, {b});  // one value in two slots
  g.add_node("n3", "Relu", "", {b}, {y});
  g.add_graph_output(y);
  ASSERT_EQ(use_def_problems(g), "");
  EXPECT_EQ(a->consumers().size(), 2u);
  EXPECT_EQ(a->producer(), n1);

  Value* a_new = g.add_value("a_new");
  g.set_output(n1, 0, a_new);  // re-point the output: `a` is left unproduced
  EXPECT_EQ(a->producer(), nullptr);
  EXPECT_EQ(a_new->producer(), n1);
  EXPECT_EQ(use_def_problems(g, {a}), "");
  EXPECT_NE(error_of([&] { g.set_output(n2, 0, a_new); }).find("already produced"),
            std::string::npos);
  g.set_output(n1, 0, a);
  g.remove_value(a_new);
  EXPECT_EQ(a->producer(), n1);

  g.set_input(n2, 1, x);
  EXPECT_EQ(use_def_problems(g), "");
  g.set_input(n2, 3, wv);  // grows the input list; slot 2 omitted
  EXPECT_EQ(n2->inputs().size(), 4u);
  EXPECT_EQ(n2->inputs()[2], nullptr);
  EXPECT_EQ(use_def_problems(g), "");

  // Bypass n3: y's users (the graph output) now read b.
  g.replace_all_uses(y, b);
  EXPECT_TRUE(b->is_graph_output());
  EXPECT_FALSE(y->is_graph_output());
  EXPECT_EQ(g.outputs(), std::vector<Value*>{b});
  Node* n3 = y->producer();
  g.remove_node(n3);
  EXPECT_EQ(n3->name(), "n3");  // still readable after removal
  EXPECT_EQ(y->producer(), nullptr);
  EXPECT_EQ(g.num_nodes(), 2u);
  g.remove_value(y);
  EXPECT_EQ(g.find("y"), nullptr);
  EXPECT_EQ(use_def_problems(g, {a, b, x, wv}), "");

  g.rename_value(a, "a2");
  EXPECT_EQ(g.find("a"), nullptr);
  EXPECT_EQ(g.find("a2"), a);
  g.rename_value(wv, "w2");
  EXPECT_EQ(wv->initializer()->proto().name(), "w2");
  EXPECT_EQ(use_def_problems(g, {a, b, x, wv}), "");

  g.remove_node(n2);
  EXPECT_TRUE(a->consumers().empty());
  EXPECT_EQ(wv->consumers().size(), 1u);  // n1 still reads it
  EXPECT_EQ(use_def_problems(g, {a, b, x, wv}), "");
  g.remove_initializer(wv);  // still read by n1: the value stays, now undefined
  EXPECT_EQ(g.find("w2"), wv);
  EXPECT_TRUE(g.initializers().empty());
  std::string msg = error_of([&] { g.validate(); });
  EXPECT_NE(msg.find("node 'n1': input 'w2' is not produced"), std::string::npos) << msg;
}

TEST(GraphEdit, MisuseIsRefusedWithNames) {
  Graph g;
  Value* x = g.add_value("x");
  g.add_graph_input(x);
  Value* a = g.add_value("a");
  Node* n = g.add_node("maker", "Relu", "", {x}, {a});
  EXPECT_NE(error_of([&] { g.add_value("a"); }).find("'a' already exists"), std::string::npos);
  EXPECT_NE(error_of([&] { g.add_node("again", "Relu", "", {x}, {a}); }).find("node 'maker'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { g.add_node("bad", "Relu", "", {a}, {x}); }).find("graph input"),
            std::string::npos);
  EXPECT_NE(error_of([&] { g.remove_value(a); }).find("'a'"), std::string::npos);
  EXPECT_NE(error_of([&] { g.rename_value(a, "x"); }).find("'x'"), std::string::npos);
  Graph other;
  Value* stranger = other.add_value("s");
  EXPECT_NE(error_of([&] { g.set_input(n, 0, stranger); }).find("does not belong"),
            std::string::npos);
  g.remove_node(n);
  EXPECT_NE(error_of([&] { g.remove_node(n); }).find("was removed"), std::string::npos);
  // A node input nothing produces is caught by validate().
  g.add_node("reader", "Relu", "", {a}, {g.add_value("b")});
  std::string msg = error_of([&] { g.validate(); });
  EXPECT_NE(msg.find("node 'reader': input 'a' is not produced"), std::string::npos) << msg;
}

TEST(GraphEdit, UniqueNameNeverRepeats) {
  Graph g;
  g.add_value("t");
  std::string a = g.unique_name("t"), b = g.unique_name("t"), c = g.unique_name("fresh");
  EXPECT_NE(a, "t");
  EXPECT_NE(a, b);
  EXPECT_EQ(c, "fresh");
  EXPECT_NE(g.unique_name("fresh"), "fresh");
}

// main graph: x, a = Relu(x), If(cond) { then: Identity(a) } -> y
onnx::ModelProto if_model() {
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2});
  *g.add_input() = tensor_info("cond", onnx::TensorProto::BOOL, {});
  add_node(g, "Relu", {"x"}, {"a"}, "relu");
  auto* iff = add_node(g, "If", {"cond"}, {"y"}, "if");
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* attr = iff->add_attribute();
    attr->set_name(branch);
    attr->set_type(onnx::AttributeProto::GRAPH);
    auto& body = *attr->mutable_g();
    body.set_name(branch);
    add_node(body, "Identity", {"a"}, {std::string(branch) + "_out"});
    *body.add_output() = tensor_info(std::string(branch) + "_out", onnx::TensorProto::FLOAT, {2});
  }
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {2});
  return m;
}

TEST(GraphEdit, SubgraphReadsAreImplicitInputs) {
  TempDir dir;
  write_model(if_model(), dir / "if.onnx");
  auto model = Model::load(dir / "if.onnx");
  Graph& g = model->graph();
  Value* a = g.find("a");
  Node* iff = g.find("y")->producer();
  ASSERT_EQ(iff->implicit_inputs(), std::vector<Value*>{a});
  // The only use of `a` is inside the If bodies: dead-code elimination must see it.
  ASSERT_EQ(a->consumers().size(), 1u);
  EXPECT_EQ(a->consumers()[0], std::make_pair(iff, Node::kImplicitSlot));
  EXPECT_EQ(use_def_problems(g), "");

  // Replacing `a` rewrites the bodies' references too.
  Value* x = g.find("x");
  g.replace_all_uses(a, x);
  EXPECT_TRUE(a->consumers().empty());
  EXPECT_EQ(iff->implicit_inputs(), std::vector<Value*>{x});
  EXPECT_EQ(iff->attr("then_branch")->g().node(0).input(0), "x");
  EXPECT_EQ(use_def_problems(g, {a}), "");
  g.rename_value(x, "input_x");
  EXPECT_EQ(iff->attr("else_branch")->g().node(0).input(0), "input_x");
  g.remove_node(a->producer());
  g.remove_value(a);
  model->save(dir / "out.onnx");
  auto back = Model::load(dir / "out.onnx");
  EXPECT_EQ(back->graph().find("y")->producer()->implicit_inputs(),
            std::vector<Value*>{back->graph().find("input_x")});
  EXPECT_NO_THROW(back->graph().validate());
}

TEST(GraphEdit, SubgraphShadowingIsNotAnOuterRead) {
  auto m = if_model();
  // The then-branch defines its own `a` first: only the else-branch reads the outer one.
  auto* body = m.mutable_graph()->mutable_node(1)->mutable_attribute(0)->mutable_g();
  auto* shadow = body->add_node();
  *shadow = body->node(0);
  body->mutable_node(0)->set_op_type("Constant");
  body->mutable_node(0)->clear_input();
  body->mutable_node(0)->set_output(0, "a");
  body->mutable_node(1)->set_input(0, "a");
  TempDir dir;
  write_model(m, dir / "shadow.onnx");
  auto model = Model::load(dir / "shadow.onnx");
  Graph& g = model->graph();
  g.rename_value(g.find("a"), "outer_a");
  const Node* iff = g.find("y")->producer();
  EXPECT_EQ(iff->attr("then_branch")->g().node(1).input(0), "a");  // its own, untouched
  EXPECT_EQ(iff->attr("else_branch")->g().node(0).input(0), "outer_a");
}

}  // namespace
}  // namespace tfh::ir::test
