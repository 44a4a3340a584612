// Shape inference: ONNX's inference for standard ops, hooks for contrib ops, results in value
// infos.
#include "ir_test_util.h"

namespace tfh::ir::test {
namespace {

std::string shape_of(const Value* v) {
  if (!v->has_info() || !v->info().type().has_tensor_type()) return "?";
  const auto& t = v->info().type().tensor_type();
  std::string s = std::to_string(t.elem_type()) + ":[";
  for (int i = 0; i < t.shape().dim_size(); ++i) {
    const auto& d = t.shape().dim(i);
    s += (i ? "," : "") + (d.has_dim_value() ? std::to_string(d.dim_value())
                                             : d.has_dim_param() ? d.dim_param() : "?");
  }
  return s + (t.has_shape() ? "]" : "]noshape");
}

constexpr int F = onnx::TensorProto::FLOAT;

// x[N,4] -> MatMul(w[4,8]) -> Add(b[8]) -> Relu -> r
// r -> Reshape(r, [0,2,4]) -> r3                                   (shape from an initializer)
// Shape(x) -> Gather(0) -> Unsqueeze -> Concat([8]) -> Reshape(r) -> r2 -> Identity -> out
//                                                         (shape computed from x: data propagation)
onnx::ModelProto standard_chain() {
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {-1, 4});
  *g.add_initializer() = float_tensor("w", {4, 8}, std::vector<float>(32, 0.5f));
  *g.add_initializer() = float_tensor("b", {8}, std::vector<float>(8, 1.f));
  *g.add_initializer() = int64_tensor("shape3", {3}, {0, 2, 4});
  *g.add_initializer() = int64_tensor("zero", {}, {0});
  *g.add_initializer() = int64_tensor("axes0", {1}, {0});
  *g.add_initializer() = int64_tensor("eight", {1}, {8});
  add_node(g, "MatMul", {"x", "w"}, {"mm"});
  add_node(g, "Add", {"mm", "b"}, {"biased"});
  add_node(g, "Relu", {"biased"}, {"r"});
  add_node(g, "Reshape", {"r", "shape3"}, {"r3"});
  add_node(g, "Shape", {"x"}, {"xs"});
  add_node(g, "Gather", {"xs", "zero"}, {"n"});
  add_node(g, "Unsqueeze", {"n", "axes0"}, {"n1"});
  add_node(g, "Concat", {"n1", "eight"}, {"newshape"})->add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("axis");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(0);
    return a;
  }());
  add_node(g, "Reshape", {"r", "newshape"}, {"r2"});
  add_node(g, "Identity", {"r2"}, {"out"});
  // Declared outputs: one with a symbol inference must not override, one with unknown dims.
  *g.add_output() = tensor_info("out", F, {-1, 8});
  g.mutable_output(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(0)
      ->set_dim_param("batch");
  auto out = tensor_info("r3", 0, {});
  auto* shape = out.mutable_type()->mutable_tensor_type()->mutable_shape();
  for (int i = 0; i < 3; ++i) shape->add_dim();
  *g.add_output() = out;
  return m;
}

TEST(ShapeInference, StandardChain) {
  TempDir dir;
  write_model(standard_chain(), dir / "chain.onnx");
  for (bool external : {false, true}) {
    SCOPED_TRACE(external);
    auto model = Model::load(dir / "chain.onnx");
    if (external) {  // every initializer external: small ones are read from the mapping
      SaveOptions opts;
      opts.use_external_data = true;
      opts.external_threshold = 0;
      model->save(dir / "ext.onnx", opts);
      model = Model::load(dir / "ext.onnx");
      ASSERT_TRUE(model->graph().find("shape3")->initializer()->is_external());
    }
    size_t typed = model->infer_shapes();
    const Graph& g = model->graph();
    EXPECT_EQ(shape_of(g.find("mm")), "1:[N,8]");
    EXPECT_EQ(shape_of(g.find("biased")), "1:[N,8]");
    EXPECT_EQ(shape_of(g.find("r")), "1:[N,8]");
    EXPECT_EQ(shape_of(g.find("r3")), "1:[N,2,4]");    // unknown fields of a declared output filled
    EXPECT_EQ(shape_of(g.find("newshape")), "7:[2]");
    EXPECT_EQ(shape_of(g.find("r2")), "1:[N,8]");      // from the shape computed on x
    EXPECT_EQ(shape_of(g.find("out")), "1:[batch,8]");  // declared symbol kept
    EXPECT_GE(typed, 8u);
    EXPECT_EQ(model->infer_shapes(), 0u);  // nothing new the second time
  }
  // The inferred types are saved as value_info and come back.
  auto model = Model::load(dir / "chain.onnx");
  model->infer_shapes();
  model->save(dir / "typed.onnx");
  onnx::ModelProto saved;
  ASSERT_TRUE(saved.ParseFromString(read_file(dir / "typed.onnx")));
  std::set<std::string> names;
  for (const auto& vi : saved.graph().value_info()) names.insert(vi.name());
  EXPECT_TRUE(names.count("mm") && names.count("r") && names.count("n1")) << names.size();
  EXPECT_FALSE(names.count("out"));  // graph outputs keep their own entries
  EXPECT_EQ(shape_of(Model::load(dir / "typed.onnx")->graph().find("biased")), "1:[N,8]");
}

// x[N,4] -> com.microsoft FakeGelu -> t -> Relu -> y -> Transpose -> z
onnx::ModelProto contrib_chain() {
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {-1, 4});
  add_node(g, "FakeGelu", {"x"}, {"t"}, "gelu", "com.microsoft");
  add_node(g, "Relu", {"t"}, {"y"}, "relu");
  add_node(g, "Transpose", {"y"}, {"z"}, "transpose");
  *g.add_output() = tensor_info("z", 0, {});
  g.mutable_output(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  return m;
}

TEST(ShapeInference, ContribOpHookFeedsStandardOps) {
  TempDir dir;
  write_model(contrib_chain(), dir / "contrib.onnx");
  {
    auto model = Model::load(dir / "contrib.onnx");  // no hook: unknown op, no failure
    EXPECT_NO_THROW(model->infer_shapes());
    EXPECT_EQ(shape_of(model->graph().find("t")), "?");
    EXPECT_EQ(shape_of(model->graph().find("y")), "?");
  }
  auto model = Model::load(dir / "contrib.onnx");
  ShapeHooks hooks;
  int calls = 0;
  hooks.add("com.microsoft", "FakeGelu", [&](ShapeInferenceContext& c) {
    ++calls;
    EXPECT_EQ(c.node->name(), "gelu");
    ASSERT_EQ(c.input_types.size(), 1u);
    ASSERT_NE(c.input_types[0], nullptr);
    c.output_types[0] = *c.input_types[0];  // elementwise
  });
  model->infer_shapes(&hooks);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(shape_of(model->graph().find("t")), "1:[N,4]");
  EXPECT_EQ(shape_of(model->graph().find("y")), "1:[N,4]");
  EXPECT_EQ(shape_of(model->graph().find("z")), "1:[4,N]");
}

TEST(ShapeInference, HookErrorsNameTheNode) {
  TempDir dir;
  write_model(contrib_chain(), dir / "contrib.onnx");
  auto model = Model::load(dir / "contrib.onnx");
  ShapeHooks hooks;
  hooks.add("com.microsoft", "FakeGelu", [](ShapeInferenceContext& c) {
    TFH_THROW(describe(*c.node), ": FakeGelu needs 2 inputs");
  });
  std::string msg = error_of([&] { model->infer_shapes(&hooks); });
  EXPECT_NE(msg.find("node 'gelu'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("contrib.onnx"), std::string::npos) << msg;
}

// If: ONNX infers both bodies (which read the outer `a`) and merges their output types.
TEST(ShapeInference, IfBodiesSeeOuterScopeTypes) {
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {-1, 3});
  *g.add_input() = tensor_info("cond", onnx::TensorProto::BOOL, {});
  add_node(g, "Relu", {"x"}, {"a"}, "relu");
  auto* iff = add_node(g, "If", {"cond"}, {"y"}, "if");
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* attr = iff->add_attribute();
    attr->set_name(branch);
    attr->set_type(onnx::AttributeProto::GRAPH);
    auto& body = *attr->mutable_g();
    body.set_name(branch);
    add_node(body, "Neg", {"a"}, {std::string(branch) + "_out"});
    body.add_output()->set_name(std::string(branch) + "_out");  // no declared type
  }
  add_node(g, "Relu", {"y"}, {"z"}, "after");
  g.add_output()->set_name("z");
  TempDir dir;
  write_model(m, dir / "if.onnx");
  auto model = Model::load(dir / "if.onnx");
  model->infer_shapes();
  EXPECT_EQ(shape_of(model->graph().find("y")), "1:[N,3]");
  EXPECT_EQ(shape_of(model->graph().find("z")), "1:[N,3]");
  // The bodies themselves are not changed by inference.
  EXPECT_EQ(model->graph().find("y")->producer()->attr("then_branch")->g().value_info_size(), 0);
}

TEST(ShapeInference, RealModelsGetTyped) {
  for (const auto& path : model_files()) {
    SCOPED_TRACE(path);
    auto model = Model::load(path);
    size_t typed = model->infer_shapes();
    size_t outputs = 0, known = 0;
    for (const auto& n : model->graph().nodes())
      for (const Value* v : n->outputs()) {
        ++outputs;
        known += v && v->elem_type() != 0;
      }
    EXPECT_GT(typed, outputs / 2);
    EXPECT_GT(known, outputs * 9 / 10) << known << " of " << outputs;
  }
}

}  // namespace
}  // namespace tfh::ir::test
