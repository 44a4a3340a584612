// The host table over the IR (host/plugin/host_api.cc), through the SDK views and the raw C API.
#include <cmath>

#include "host/util/error.h"
#include "sdk/sdk_test_util.h"

namespace tfh::sdktest {
namespace {

using HostApi = SdkTest;

const TfhGraphApi& G() { return *plugin::host_api()->graph; }
const TfhTensorApi& T() { return *plugin::host_api()->tensor; }

// Takes the status's message (releasing it) and its code.
std::pair<TfhErrorCode, std::string> take(TfhStatus* s) {
  TfhErrorCode code = TFH_OK;
  std::string msg = plugin::take_status_message(s, &code);
  return {code, msg};
}

TEST_F(HostApi, NodeIndexAccessInAnyOrder) {
  GraphBuilder b;
  ir::Value* v = b.input("x");
  for (int i = 0; i < 9; ++i) v = b.node("Relu", {v}, "r" + std::to_string(i));
  b.output(v);
  GraphView g = b.view();
  ASSERT_EQ(g.num_nodes(), 9u);
  for (size_t i : {0, 1, 2, 3, 8, 7, 4, 4, 5, 0, 6})
    EXPECT_EQ(g.node(i).name(), "r" + std::to_string(i) + "_Relu") << i;
  EXPECT_FALSE(g.node(9));
  std::vector<NodeView> all = g.nodes();
  g.remove_node(all[3]);  // edits through the table keep index access right
  EXPECT_EQ(g.node(3).name(), "r4_Relu");
  EXPECT_EQ(g.num_nodes(), 8u);

  // An edit made on the IR directly (same node count) is seen by the next scan.
  ir::Node* r5 = b.g().find("r5")->producer();
  ir::Value* in5 = r5->inputs()[0];
  b.g().remove_node(r5);
  b.g().add_node("neg", "Neg", "", {in5}, {b.g().find("r5")});
  std::vector<std::string> names;
  for (NodeView n : g.nodes()) names.emplace_back(n.name());
  EXPECT_EQ(names, (std::vector<std::string>{"r0_Relu", "r1_Relu", "r2_Relu", "r4_Relu", "r6_Relu",
                                             "r7_Relu", "r8_Relu", "neg"}));
}

TEST_F(HostApi, ValuesAndNodes) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* c = b.scalar("c", 2.f);
  ir::Value* y = b.node("Mul", {x, c}, "y");
  b.output(y);
  GraphView g = b.view();
  ValueView vx = g.find("x"), vy = g.find("y");
  EXPECT_FALSE(g.find("nope"));
  EXPECT_TRUE(vx.is_graph_input());
  EXPECT_TRUE(vy.is_graph_output());
  EXPECT_FALSE(vx.producer());
  size_t out_idx = 9;
  NodeView mul = vy.producer(&out_idx);
  EXPECT_EQ(out_idx, 0u);
  EXPECT_TRUE(mul.is("Mul"));
  EXPECT_TRUE(mul.is("Mul", "ai.onnx"));
  EXPECT_EQ(mul.inputs().size(), 2u);
  ASSERT_EQ(vx.consumers().size(), 1u);
  EXPECT_EQ(vx.consumers()[0].node, mul);
  EXPECT_EQ(g.find("c").consumers()[0].input, 1u);
  EXPECT_EQ(vx.elem_type(), TFH_TYPE_FLOAT);
  EXPECT_EQ(vx.kind(), TFH_VALUE_TENSOR);
  EXPECT_EQ(vx.rank(), 2);
  EXPECT_EQ(vx.dim(1).value, 4);
  EXPECT_THROW(vx.dim(2), sdk::Error);
  EXPECT_EQ(g.find("c").rank(), 0);
  EXPECT_EQ(g.inputs().size(), 1u);
  EXPECT_EQ(g.outputs().size(), 1u);
  EXPECT_EQ(g.initializers().size(), 1u);
  EXPECT_EQ(g.opset(), 13);
  EXPECT_EQ(g.opset("ai.onnx"), 13);
  EXPECT_EQ(g.opset("com.microsoft"), -1);
  EXPECT_EQ(g.since_version(mul), 13);
  EXPECT_EQ(g.since_version(g.find("x").consumers()[0].node), 13);

  // Symbolic dims.
  ValueView sym = g.find("y");
  sym.set_type(TFH_TYPE_FLOAT16, {Dim{-1, "batch"}, Dim{4, ""}, Dim{}});
  EXPECT_EQ(sym.elem_type(), TFH_TYPE_FLOAT16);
  std::vector<Dim> shape = sym.shape();
  ASSERT_EQ(shape.size(), 3u);
  EXPECT_EQ(shape[0].symbol, "batch");
  EXPECT_FALSE(shape[0].known());
  EXPECT_EQ(shape[1].value, 4);
  EXPECT_TRUE(shape[2].symbol.empty());
  sym.set_type(TFH_TYPE_FLOAT, {}, /*shape_known=*/false);
  EXPECT_EQ(sym.rank(), -1);

  // Null handles give defaults, never a crash.
  EXPECT_EQ(G().graph_num_nodes(nullptr), 0u);
  EXPECT_STREQ(G().node_op_type(nullptr), "");
  EXPECT_EQ(G().value_rank(nullptr), -1);
  EXPECT_EQ(G().value_constant(nullptr), nullptr);
  EXPECT_EQ(take(G().graph_remove_node(nullptr, nullptr)).first, TFH_INVALID_ARGUMENT);
}

TEST_F(HostApi, ConstantViewsAreCachedAndTyped) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  ir::Value* c = b.scalar("c", 0.25f, {2});
  ir::Value* k = b.constant_node("k", 3.f);
  ir::Value* kf = b.constant_node("kf", 5.f, /*as_value_float=*/true);
  ir::Node* ints = b.g().add_node("ints", "Constant", "", {}, {b.g().add_value("ki")});
  ints->set_attr("value_ints").set_type(onnx::AttributeProto::INTS);
  ints->set_attr("value_ints").add_ints(4);
  ints->set_attr("value_ints").add_ints(5);
  b.output(b.node("Add", {b.node("Mul", {x, c}, "m"), k}, "y"));
  b.output(b.node("Add", {b.g().find("y"), kf}, "z"));
  GraphView g = b.view();

  TensorView tc = g.find("c").constant();
  ASSERT_TRUE(tc);
  EXPECT_EQ(tc.handle(), g.find("c").constant().handle()) << "one view per source";
  EXPECT_EQ(tc.dtype(), TFH_TYPE_FLOAT);
  EXPECT_EQ(tc.size(), 2u);
  EXPECT_EQ(tc.nbytes(), 8u);
  EXPECT_EQ(tc.data<float>()[1], 0.25f);
  EXPECT_THROW(tc.data<int64_t>(), sdk::Error);
  EXPECT_EQ(g.find("k").constant().uniform_value(), 3.0);
  EXPECT_EQ(g.find("kf").constant().rank(), 0u);
  EXPECT_EQ(g.find("kf").constant().uniform_value(), 5.0);
  TensorView ti = g.find("ki").constant();
  EXPECT_EQ(ti.dtype(), TFH_TYPE_INT64);
  EXPECT_EQ(std::vector<int64_t>(ti.data<int64_t>().begin(), ti.data<int64_t>().end()),
            (std::vector<int64_t>{4, 5}));
  EXPECT_FALSE(g.find("x").constant());
  EXPECT_FALSE(g.find("m").constant());
  EXPECT_EQ(T().tensor_mutable_data(const_cast<TfhTensor*>(tc.handle())), nullptr)
      << "host views are read-only";
  T().tensor_release(const_cast<TfhTensor*>(tc.handle()));  // ignored for views
  EXPECT_EQ(g.find("c").constant().size(), 2u);

  // The `value` attribute, read as an attribute.
  TensorView attr = g.find("k").producer().attr_tensor("value");
  EXPECT_EQ(attr.uniform_value(), 3.0);

  // A view stays valid while the plugin asks for others and for the same one again: the data of
  // a copied attribute (value_ints, value_float) is not freed by a second lookup.
  const int64_t* held = ti.data<int64_t>().begin();
  const float* held_f = g.find("kf").constant().data<float>().begin();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(g.find("ki").constant().data<int64_t>().begin(), held);
    EXPECT_EQ(g.find("kf").constant().data<float>().begin(), held_f);
  }
  EXPECT_EQ(held[0], 4);
  EXPECT_EQ(held[1], 5);
  EXPECT_EQ(*held_f, 5.f);
}

TEST_F(HostApi, Float16AndFriends) {
  EXPECT_EQ(to_float(Float16{0x3c00}), 1.0f);
  EXPECT_EQ(to_float(Float16{0xc000}), -2.0f);
  EXPECT_EQ(to_float(Float16{0x0001}), 5.9604645e-08f);  // smallest subnormal
  EXPECT_EQ(to_float(Float16{0x0200}), 3.0517578e-05f);
  EXPECT_TRUE(std::isinf(to_float(Float16{0x7c00})));
  EXPECT_EQ(to_float(BFloat16{0x3f80}), 1.0f);
  // float -> float16: exact values, ties to even, subnormals, overflow, NaN.
  EXPECT_EQ(to_float16(1.0f).bits, 0x3c00);
  EXPECT_EQ(to_float16(-2.0f).bits, 0xc000);
  EXPECT_EQ(to_float16(65504.f).bits, 0x7bff);
  EXPECT_EQ(to_float16(65536.f).bits, 0x7c00);
  EXPECT_EQ(to_float16(5.9604645e-08f).bits, 0x0001);
  EXPECT_EQ(to_float16(1e-9f).bits, 0x0000);
  EXPECT_EQ(to_float16(1.0f + 0x1p-11f).bits, 0x3c00);          // tie rounds to even
  EXPECT_EQ(to_float16(1.0f + 3 * 0x1p-11f).bits, 0x3c02);      // tie rounds to even (up)
  EXPECT_TRUE(std::isnan(to_float(to_float16(std::nanf("")))));
  for (uint16_t h : {0x0001, 0x03ff, 0x0400, 0x3555, 0x7bff, 0x8001, 0xfbff})
    EXPECT_EQ(to_float16(to_float(Float16{h})).bits, h) << h;
  // float -> bfloat16
  EXPECT_EQ(to_bfloat16(1.0f).bits, 0x3f80);
  EXPECT_EQ(to_bfloat16(1.0f + 0x1p-8f).bits, 0x3f80);           // tie rounds to even
  EXPECT_EQ(to_bfloat16(1.0f + 3 * 0x1p-8f).bits, 0x3f82);
  EXPECT_TRUE(std::isnan(to_float(to_bfloat16(std::nanf("")))));
}

// A converter that builds a model adds inputs and outputs (ABI 1's graph_add_input/_output).
TEST_F(HostApi, GraphInputsAndOutputsCanBeAdded) {
  GraphBuilder b;
  GraphView g = b.view();
  ValueView x = g.add_input("ids", TFH_TYPE_INT64, {-1, 7}, {"batch"});
  EXPECT_TRUE(x.is_graph_input());
  EXPECT_EQ(x.elem_type(), TFH_TYPE_INT64);
  ASSERT_EQ(x.rank(), 2);
  EXPECT_EQ(x.dim(0).symbol, "batch");
  EXPECT_EQ(x.dim(1).value, 7);
  NodeView n = g.add_node("Cast", "", {x}, {"y"});
  n.set_attr("to", int64_t{TFH_TYPE_FLOAT});
  g.add_output(n.output(0));
  ASSERT_EQ(g.outputs().size(), 1u);
  EXPECT_EQ(g.outputs()[0].name(), "y");
  ASSERT_EQ(b.g().inputs().size(), 1u);
  EXPECT_EQ(b.g().inputs()[0]->name(), "ids");
  EXPECT_THROW(g.add_input("ids", TFH_TYPE_FLOAT, {1}), tfh::sdk::Error);  // the name exists
}

TEST_F(HostApi, AttributesGetAndSet) {
  GraphBuilder b;
  b.output(b.node("Relu", {b.input("x")}, "r"));
  NodeView n = b.view().find("r").producer();
  n.set_attr("i", int64_t{3});
  n.set_attr("f", 1.5f);
  n.set_attr("s", "hello");
  n.set_attr("is", std::vector<int64_t>{1, 2});
  n.set_attr("fs", std::vector<float>{0.5f});
  Tensor t = Tensor::from<float>({2}, {1.f, 2.f});
  n.set_attr("t", t.view());
  EXPECT_EQ(n.attr_int("i"), 3);
  EXPECT_EQ(n.attr_float("f"), 1.5f);
  EXPECT_EQ(n.attr_string("s"), "hello");
  EXPECT_EQ(n.attr_ints("is"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(n.attr_floats("fs"), std::vector<float>{0.5f});
  EXPECT_EQ(n.attr_tensor("t").data<float>()[1], 2.f);
  EXPECT_EQ(n.attr_type("is"), TFH_ATTR_INTS);
  EXPECT_EQ(n.attr_int("missing", 7), 7);
  EXPECT_EQ(n.attr_string("missing", "d"), "d");
  n.set_attr("i", int64_t{4});  // replaces
  EXPECT_EQ(n.attr_int("i"), 4);
  EXPECT_EQ(G().node_num_attrs(n.handle()), 6u);
  try {
    n.attr_float("i");
    FAIL();
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), TFH_INVALID_ARGUMENT);
    EXPECT_STREQ(e.what(), "attribute 'i' of node 'r_Relu' is int, not float");
  }
  try {
    n.attr_int("missing");
    FAIL();
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), TFH_NOT_FOUND);
  }
  n.remove_attr("s");
  EXPECT_FALSE(n.has_attr("s"));
  EXPECT_THROW(n.remove_attr("s"), sdk::Error);
}

TEST_F(HostApi, AddNodeOutputsRules) {
  GraphBuilder b;
  ir::Value* x = b.input("x");
  b.output(b.node("Relu", {x}, "r"));
  GraphView g = b.view();
  size_t before = g.num_nodes();

  // An output that still has a producer, a graph input, or twice in one call: refused, no change.
  for (std::vector<std::string> outs : {std::vector<std::string>{"r"}, {"x"}, {"n1", "n1"}}) {
    const char* names[2] = {outs[0].c_str(), outs.size() > 1 ? outs[1].c_str() : nullptr};
    const TfhValue* in[1] = {g.find("x").handle()};
    TfhNode* out = nullptr;
    auto [code, msg] =
        take(G().graph_add_node(g.handle(), nullptr, "Neg", "", in, 1, names, outs.size(), &out));
    EXPECT_NE(code, TFH_OK) << outs[0];
    EXPECT_EQ(out, nullptr) << "out untouched";
    EXPECT_EQ(g.num_nodes(), before);
    EXPECT_FALSE(g.find("n1"));
  }
  const char* const taken[] = {"r"};
  auto [code, msg] =
      take(G().graph_add_node(g.handle(), nullptr, "Neg", "", nullptr, 0, taken, 1, nullptr));
  EXPECT_EQ(code, TFH_INVALID_GRAPH);
  EXPECT_NE(msg.find("is produced by node 'r_Relu'"), std::string::npos) << msg;

  // A new output, an omitted one, and an existing output whose producer was removed.
  NodeView neg = g.add_node("Neg", "", {g.find("x")}, {"n", ""}, "my_neg");
  EXPECT_EQ(neg.name(), "my_neg");
  EXPECT_EQ(neg.num_outputs(), 2u);
  EXPECT_FALSE(neg.output(1));
  g.remove_node(g.find("r").producer());
  NodeView again = g.add_node("Relu", "", {g.find("n")}, {"r"});
  EXPECT_FALSE(again.name().empty()) << "a name is generated";
  EXPECT_EQ(g.find("r").producer(), again);
  EXPECT_TRUE(g.find("r").is_graph_output());
  g.topological_sort();
  EXPECT_NO_THROW(b.g().validate());
}

TEST_F(HostApi, InitializersAndTensors) {
  GraphBuilder b;
  b.output(b.node("Relu", {b.input("x")}, "r"));
  GraphView g = b.view();
  Tensor t(TFH_TYPE_INT64, {3});
  EXPECT_EQ(t.view().nbytes(), 24u);
  EXPECT_EQ(t.view().data<int64_t>()[2], 0) << "zero-filled";
  t.mutable_data<int64_t>()[2] = 9;
  ValueView v = g.add_initializer("shape", std::move(t));
  EXPECT_FALSE(t) << "ownership passed";
  EXPECT_EQ(v.name(), "shape");
  EXPECT_EQ(v.constant().data<int64_t>()[2], 9);
  EXPECT_THROW(g.add_initializer("shape", Tensor::scalar(1.f)), sdk::Error) << "name taken";
  ValueView gen = g.add_initializer("", Tensor::scalar(int32_t{5}));
  EXPECT_FALSE(gen.name().empty());
  std::string gen_name(gen.name());
  g.remove_initializer(gen);
  EXPECT_FALSE(g.find(gen_name));
  EXPECT_EQ(g.initializers().size(), 1u);

  TfhTensor* s = nullptr;
  EXPECT_EQ(take(T().tensor_create(TFH_TYPE_STRING, nullptr, 0, &s)).first, TFH_NOT_IMPLEMENTED);
  int64_t neg[1] = {-1};
  EXPECT_EQ(take(T().tensor_create(TFH_TYPE_FLOAT, neg, 1, &s)).first, TFH_INVALID_ARGUMENT);
  int64_t four[1] = {4};
  ASSERT_EQ(T().tensor_create(TFH_TYPE_INT4, four, 1, &s), nullptr);
  EXPECT_EQ(T().tensor_nbytes(s), 2u) << "4-bit types are packed";
  T().tensor_release(s);

  std::string name = g.unique_name("tmp");
  EXPECT_NE(name, g.unique_name("tmp")) << "never the same name twice";
  char small[3];
  EXPECT_EQ(take(G().graph_unique_name(g.handle(), "long_prefix", small, sizeof small)).first,
            TFH_INVALID_ARGUMENT);
}

TEST_F(HostApi, TensorListTakesOwnership) {
  plugin::TensorList list;
  TensorListView out(list.c_handle());
  out.add("input_ids", Tensor::from<int64_t>({1, 3}, {1, 2, 3}));
  out.add("mask", Tensor::from<int64_t>({1, 3}, {1, 1, 0}));
  EXPECT_THROW(out.add("mask", Tensor::scalar(1.f)), sdk::Error);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list.name(1), "mask");
  TensorView t(list.tensor(0));
  EXPECT_EQ(t.data<int64_t>()[2], 3);
  auto ir_t = plugin::to_ir_tensor(list.tensor(0), "input_ids");
  EXPECT_EQ(ir_t->name(), "input_ids");
  EXPECT_EQ(ir_t->dims(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(static_cast<const int64_t*>(ir_t->data())[1], 2);
}

// An op's shape inference written with the SDK and run by the host as an ir::ShapeHook.
void infer_like_input0(ShapeContextView c) {
  if (c.num_inputs() < 1 || c.input_rank(0) < 0) sdk::fail("input 0 has no shape");
  std::vector<Dim> s = c.input_shape(0);
  s.back().value = 2 * s.back().value;
  c.set_output(0, c.input_type(0), s);
}

TEST_F(HostApi, ShapeHookRunsPluginInference) {
  static constexpr TfhOpDesc kOp =
      tfh::op("com.microsoft", "Double", 1, "", wrap_shape<infer_like_input0>);
  ir::ShapeHook hook = plugin::make_shape_hook(&kOp);
  ASSERT_TRUE(hook);
  onnx::TypeProto in;
  in.mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT16);
  in.mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_param("batch");
  in.mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(8);
  ir::ShapeInferenceContext ctx;
  ctx.input_types = {&in};
  ctx.input_constants = {nullptr};
  ctx.output_types.resize(1);
  hook(ctx);
  const auto& out = ctx.output_types[0].tensor_type();
  EXPECT_EQ(out.elem_type(), onnx::TensorProto::FLOAT16);
  ASSERT_EQ(out.shape().dim_size(), 2);
  EXPECT_EQ(out.shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(out.shape().dim(1).dim_value(), 16);

  ir::ShapeInferenceContext empty;
  empty.output_types.resize(1);
  try {
    hook(empty);
    FAIL();
  } catch (const tfh::Error& e) {
    EXPECT_STREQ(e.what(), "node '?' (com.microsoft.Double): input 0 has no shape");
  }
  static constexpr TfhOpDesc kNoInfer = tfh::op("com.microsoft", "X", 1, "", nullptr);
  EXPECT_FALSE(plugin::make_shape_hook(&kNoInfer));
}

}  // namespace
}  // namespace tfh::sdktest
