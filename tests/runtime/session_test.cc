// runtime::Session: planning, buffer reuse, constant folding, kernel selection (plugin kernels by
// priority), and errors that name the input or node at fault.
#include "host/runtime/session.h"

#include <gtest/gtest.h>

#include <limits>

#include "host/plugin/registry.h"
#include "host/runtime/measure.h"
#include "tfhost/core.hpp"
#include "host/util/error.h"
#include "ir/ir_test_util.h"

namespace tfh::runtime {
namespace {

using namespace tfh::ir::test;
constexpr int F = onnx::TensorProto::FLOAT;

std::unique_ptr<ir::Model> load(const onnx::ModelProto& m, TempDir& tmp) {
  write_model(m, tmp / "m.onnx");
  auto model = ir::Model::load(tmp / "m.onnx");
  model->infer_shapes();
  return model;
}

std::unique_ptr<HostTensor> floats(std::vector<int64_t> dims, const std::vector<float>& v) {
  auto t = make_tensor(TFH_TYPE_FLOAT, std::move(dims));
  std::memcpy(t->storage.get(), v.data(), v.size() * sizeof(float));
  return t;
}
const float* data(const HostTensor& t) { return static_cast<const float*>(t.data); }

uint16_t half_bits(float f) {
  auto t = make_tensor(TFH_TYPE_FLOAT, {1});
  std::memcpy(t->storage.get(), &f, 4);
  auto h = convert_tensor(*t, TFH_TYPE_FLOAT16);
  uint16_t bits;
  std::memcpy(&bits, h->data, 2);
  return bits;
}
std::unique_ptr<HostTensor> convert_half(const HostTensor& t) {
  return convert_tensor(t, TFH_TYPE_FLOAT16);
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// x -> Neg -> Neg -> ... (n times) -> y, every tensor [rows, 64].
onnx::ModelProto chain(int n) {
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {-1, 64});
  std::string prev = "x";
  for (int i = 0; i < n; ++i) {
    std::string out = i + 1 == n ? "y" : "t" + std::to_string(i);
    add_node(g, "Neg", {prev}, {out});
    prev = out;
  }
  *g.add_output() = tensor_info("y", F, {-1, 64});
  return m;
}

TEST(Session, RunsAndReusesActivationBuffers) {
  TempDir tmp;
  auto model = load(chain(10), tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  std::vector<float> v(256 * 64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 7) - 3;
  auto x = floats({256, 64}, v);
  auto out = s.run({{"x", x.get()}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->dims, (std::vector<int64_t>{256, 64}));
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(data(*out[0])[i], v[i]) << i;  // 10 negations
  // Nine intermediate 64 KB tensors, at most two alive at once: the pool holds two buffers.
  EXPECT_LE(s.pool_bytes(), 2u * 256 * 64 * 4);
  EXPECT_GT(s.pool_bytes(), 0u);
  // A second run with another row count reuses the session.
  auto x2 = floats({3, 64}, std::vector<float>(3 * 64, 1.f));
  auto out2 = s.run({{"x", x2.get()}});
  EXPECT_EQ(out2[0]->dims, (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(data(*out2[0])[0], 1.f);
}

TEST(Session, FoldsConstantSubgraphsAtPlanTime) {
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {2, 3});
  *g.add_initializer() = float_tensor("w", {2, 3}, {1, 2, 3, 4, 5, 6});
  add_node(g, "Shape", {"w"}, {"ws"});           // folded
  add_node(g, "Neg", {"w"}, {"nw"});             // folded
  add_node(g, "Reshape", {"x", "ws"}, {"xr"});   // runs
  add_node(g, "Add", {"xr", "nw"}, {"y"});       // runs
  *g.add_output() = tensor_info("y", F, {2, 3});
  auto model = load(m, tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  EXPECT_EQ(s.kernel_choices().size(), 2u);
  auto x = floats({2, 3}, {10, 20, 30, 40, 50, 60});
  auto out = s.run({{"x", x.get()}});
  EXPECT_EQ(data(*out[0])[0], 9.f);
  EXPECT_EQ(data(*out[0])[5], 54.f);
}

TEST(Session, InputErrorsNameTheInput) {
  TempDir tmp;
  auto model = load(chain(1), tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  EXPECT_EQ(error_of([&] { s.run({}); }), "input 'x' was not given");
  auto wrong_rank = floats({64}, std::vector<float>(64));
  EXPECT_EQ(error_of([&] { s.run({{"x", wrong_rank.get()}}); }),
            "input 'x': rank 1 given, the model wants 2");
  auto wrong_dim = floats({2, 3}, std::vector<float>(6));
  EXPECT_EQ(error_of([&] { s.run({{"x", wrong_dim.get()}}); }),
            "input 'x': dimension 1 is 3, the model wants 64");
  auto ints = make_tensor(TFH_TYPE_INT64, {1, 64});
  EXPECT_EQ(error_of([&] { s.run({{"x", ints.get()}}); }),
            "input 'x': element type 7 given, the model wants 1");
  EXPECT_EQ(error_of([&] { s.run({{"nope", ints.get()}}); }),
            "input 'nope': the model has no such input");
}

// Slice's bounds as ONNX clamps them: going backward a start below -dim is clamped to 0 (one
// element, not none), and steps as large as INT64_MAX/MIN count without overflowing.
TEST(Session, SliceClampsLikeOnnx) {
  struct Case { int64_t start, end, step; std::vector<float> want; };
  const std::vector<Case> cases = {
      {-100, INT64_MIN, -1, {0}},           // start clamped to 0: x[0]
      {0, 10, INT64_MAX, {0}},              // one element forward
      {INT64_MAX, INT64_MIN, INT64_MIN, {9}},  // one element backward, from the last
      {-3, INT64_MAX, 2, {7, 9}}};
  for (const Case& c : cases) {
    TempDir tmp;
    auto m = new_model();
    auto& g = *m.mutable_graph();
    *g.add_input() = tensor_info("x", F, {10});
    *g.add_initializer() = int64_tensor("s", {1}, {c.start});
    *g.add_initializer() = int64_tensor("e", {1}, {c.end});
    *g.add_initializer() = int64_tensor("a", {1}, {0});
    *g.add_initializer() = int64_tensor("p", {1}, {c.step});
    add_node(g, "Slice", {"x", "s", "e", "a", "p"}, {"y"});
    g.add_output()->set_name("y");
    auto model = load(m, tmp);
    const KernelRegistry kernels;
    Session sess(*model, kernels);
    std::vector<float> v(10);
    for (int i = 0; i < 10; ++i) v[i] = static_cast<float>(i);
    auto x = floats({10}, v);
    auto out = sess.run({{"x", x.get()}});
    ASSERT_EQ(out[0]->num_elements, c.want.size()) << c.start << " " << c.end << " " << c.step;
    for (size_t i = 0; i < c.want.size(); ++i) EXPECT_EQ(data(*out[0])[i], c.want[i]);
  }
}

// ArgMax/ArgMin beyond ONNX's node tests (float data only there): double compared as double
// (values float cannot tell apart), NaN the extreme as NumPy has it (the first NaN; the last with
// select_last_index), axis 0 with keepdims.
TEST(Session, ArgMaxOfDoublesAndNaNs) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    const char* op;
    int64_t select_last;
    std::vector<double> x;  // [2, 3], over axis 1
    std::vector<int64_t> want;
  };
  const std::vector<Case> cases = {
      {"ArgMax", 0, {1.0, 1.0 + 1e-12, 1.0, 5.0, 5.0 - 1e-12, 5.0}, {1, 0}},
      {"ArgMin", 0, {1.0, 1.0 + 1e-12, 1.0, 5.0, 5.0 - 1e-12, 5.0}, {0, 1}},
      {"ArgMax", 0, {2.0, nan, nan, 3.0, 1.0, 2.0}, {1, 0}},
      {"ArgMax", 1, {2.0, nan, nan, 3.0, 1.0, 3.0}, {2, 2}},
      {"ArgMin", 0, {-7.0, 4.0, nan, nan, nan, nan}, {2, 0}}};
  for (const Case& c : cases) {
    TempDir tmp;
    auto m = new_model();
    auto& g = *m.mutable_graph();
    *g.add_input() = tensor_info("x", onnx::TensorProto::DOUBLE, {2, 3});
    auto* n = add_node(g, c.op, {"x"}, {"y"});
    for (auto [name, v] : {std::pair<const char*, int64_t>{"axis", 1}, {"keepdims", 0},
                           {"select_last_index", c.select_last}}) {
      auto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(v);
    }
    g.add_output()->set_name("y");
    auto model = load(m, tmp);
    const KernelRegistry kernels;
    Session sess(*model, kernels);
    auto x = make_tensor(TFH_TYPE_DOUBLE, {2, 3});
    std::memcpy(x->storage.get(), c.x.data(), 6 * sizeof(double));
    auto out = sess.run({{"x", x.get()}});
    ASSERT_EQ(out[0]->type, TFH_TYPE_INT64);
    ASSERT_EQ(out[0]->dims, (std::vector<int64_t>{2}));
    const int64_t* y = static_cast<const int64_t*>(out[0]->data);
    EXPECT_EQ((std::vector<int64_t>{y[0], y[1]}), c.want) << c.op << " " << c.x[1];
  }
  // Axis 0 with keepdims: [1, 3].
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {2, 3});
  add_node(g, "ArgMax", {"x"}, {"y"});
  g.add_output()->set_name("y");
  auto model = load(m, tmp);
  const KernelRegistry kernels;
  Session sess(*model, kernels);
  auto x = floats({2, 3}, {1.f, 9.f, -1.f, 2.f, 3.f, -1.f});
  auto out = sess.run({{"x", x.get()}});
  ASSERT_EQ(out[0]->dims, (std::vector<int64_t>{1, 3}));
  const int64_t* y = static_cast<const int64_t*>(out[0]->data);
  EXPECT_EQ((std::vector<int64_t>{y[0], y[1], y[2]}), (std::vector<int64_t>{1, 0, 0}));
}

// IO binding belongs to CUDA sessions: on a CPU session each entry point says so (tests/cuda
// runs them on a GPU).
TEST(Session, IoBindingOnTheCpuIsAClearError) {
  TempDir tmp;
  auto model = load(chain(1), tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  auto x = floats({1, 64}, std::vector<float>(64, 1.f));
  EXPECT_EQ(error_of([&] { s.run_device({Feed{"x", x.get(), nullptr}}); }),
            "run_device: this session runs on the CPU (IO binding needs device cuda)");
  EXPECT_EQ(error_of([&] { s.to_device(*x); }), "to_device: this session runs on the CPU");
  EXPECT_EQ(error_of([&] { s.to_host(DeviceTensor{}); }), "to_host: this session runs on the CPU");
  // cuda_graph on a CPU session changes nothing.
  SessionOptions o;
  o.cuda_graph = true;
  Session g(*model, kernels, o);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(data(*g.run({{"x", x.get()}})[0])[0], -1.f);
  EXPECT_EQ(g.graph_stats().captured, 0u);
  EXPECT_EQ(g.graph_stats().refused, "");
  s.synchronize();  // a no-op on the CPU
}

// Donated host feeds: the bytes must be the tensor's own, and two feeds cannot donate the same;
// a donation no kernel takes up changes nothing (the feed keeps its bytes, the output is new).
TEST(Session, DonatedHostFeeds) {
  TempDir tmp;
  auto model = load(chain(1), tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  auto x = floats({1, 64}, std::vector<float>(64, 1.f));
  HostTensor view;
  view.set_shape(TFH_TYPE_FLOAT, {1, 64});
  view.data = x->data;
  EXPECT_EQ(error_of([&] { s.run_feeds({Feed{"x", &view, nullptr, true}}); }),
            "input 'x': a donated host tensor must own its bytes");
  const void* before = x->data;
  const auto out = s.run_feeds({Feed{"x", x.get(), nullptr, true}});
  EXPECT_EQ(data(*out[0])[0], -1.f);
  EXPECT_NE(out[0]->data, before);
  EXPECT_EQ(x->data, before);
  EXPECT_EQ(data(*x)[0], 1.f);
}

// A graph input with an initializer is a default the caller may override: fed, the fed value
// is used everywhere (nothing was folded through it); not fed, the default.
TEST(Session, FedValuesOverrideDefaultsAndAreForgottenAfterTheRun) {
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {3});
  *g.add_input() = tensor_info("w", F, {3});
  *g.add_initializer() = float_tensor("w", {3}, {1, 2, 3});
  add_node(g, "Neg", {"w"}, {"nw"});
  add_node(g, "Add", {"x", "nw"}, {"y"});
  *g.add_output() = tensor_info("y", F, {3});
  auto model = load(m, tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  auto x = floats({3}, {0, 0, 0});
  {
    auto w = floats({3}, {10, 10, 10});
    EXPECT_EQ(data(*s.run({{"x", x.get()}, {"w", w.get()}})[0])[0], -10.f);
  }  // the fed w is gone: the next run must use the default, not the freed tensor
  EXPECT_EQ(data(*s.run({{"x", x.get()}})[0])[2], -3.f);
  // A run that fails on a later feed leaves nothing bound: x must be given again.
  {
    auto x2 = floats({3}, {1, 1, 1});
    auto bad = make_tensor(TFH_TYPE_INT64, {3});
    EXPECT_NE(error_of([&] { s.run({{"x", x2.get()}, {"w", bad.get()}}); }), "(no error)");
  }
  EXPECT_EQ(error_of([&] { s.run({}); }), "input 'x' was not given");
}

// Errors of kernels that run in parallel arrive as errors, not as a terminated process.
TEST(Session, LargeIntegerDivisionByZeroIsAnError) {
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("a", onnx::TensorProto::INT64, {-1});
  *g.add_input() = tensor_info("b", onnx::TensorProto::INT64, {-1});
  add_node(g, "Div", {"a", "b"}, {"y"})->set_name("div");
  *g.add_output() = tensor_info("y", onnx::TensorProto::INT64, {-1});
  auto model = load(m, tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  auto a = make_tensor(TFH_TYPE_INT64, {100000});
  auto b = make_tensor(TFH_TYPE_INT64, {100000});
  EXPECT_EQ(error_of([&] { s.run({{"a", a.get()}, {"b", b.get()}}); }),
            "node 'div' (Div): integer division or modulo by zero");
}

TEST(Session, KernelErrorsNameTheNode) {
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {-1});
  *g.add_initializer() = int64_tensor("shape", {2}, {4, 4});
  add_node(g, "Reshape", {"x", "shape"}, {"y"})->set_name("the_reshape");
  *g.add_output() = tensor_info("y", F, {4, 4});
  auto model = load(m, tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  auto x = floats({5}, std::vector<float>(5));
  EXPECT_EQ(error_of([&] { s.run({{"x", x.get()}}); }),
            "node 'the_reshape' (Reshape): cannot reshape [5] to [4,4]");
  // The session stays usable after a failed run.
  auto ok = floats({16}, std::vector<float>(16, 2.f));
  EXPECT_EQ(data(*s.run({{"x", ok.get()}})[0])[15], 2.f);
}

TEST(Session, AnOpWithoutKernelIsAPlanError) {
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {2});
  auto* n = add_node(g, "Mystery", {"x"}, {"y"});
  n->set_domain("com.example");
  n->set_name("m1");
  auto* imp = m.add_opset_import();
  imp->set_domain("com.example");
  imp->set_version(1);
  *g.add_output() = tensor_info("y", F, {2});
  auto model = load(m, tmp);
  const KernelRegistry kernels;
  EXPECT_EQ(error_of([&] { Session s(*model, kernels); }),
            "node 'm1' (com.example.Mystery): no kernel for com.example.Mystery");
}

// x -> Relu -> com.example.AddOne -> y
onnx::ModelProto relu_add_one() {
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {3});
  add_node(g, "Relu", {"x"}, {"r"});
  add_node(g, "AddOne", {"r"}, {"y"})->set_domain("com.example");
  auto* imp = m.add_opset_import();
  imp->set_domain("com.example");
  imp->set_version(1);
  *g.add_output() = tensor_info("y", F, {3});
  return m;
}

TEST(Session, PluginKernelsRunAndAHigherPriorityReplacesTheBuiltin) {
  TempDir tmp;
  auto model = load(relu_add_one(), tmp);
  {  // without the plugin nothing runs AddOne
    const KernelRegistry builtin;
    EXPECT_NE(error_of([&] { Session s(*model, builtin); }).find("no kernel for com.example.AddOne"),
              std::string::npos);
  }
  plugin::Registry r;
  r.load(std::string(TFH_FIXTURE_PLUGIN_DIR) + "/libfixture_kernels.so", {});
  const KernelRegistry kernels(r);
  Session s(*model, kernels);
  auto choices = s.kernel_choices();
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices[0].second, "fixture_kernels");  // priority 10 beats tfhost's 0
  EXPECT_EQ(choices[1].second, "fixture_kernels");
  auto x = floats({3}, {-1, 0, 2});
  auto out = s.run({{"x", x.get()}});
  EXPECT_EQ(data(*out[0])[0], 1001.f);  // relu(-1) + 1000 + 1
  EXPECT_EQ(data(*out[0])[2], 1003.f);
}

// TfhKernelDesc::host_inputs was appended to the descriptor: one that reports the size from
// before the field has no host inputs, whatever lies in memory after it.
TEST(Session, AnOlderKernelDescriptorHasNoHostInputs) {
  const KernelRegistry builtin;
  TfhKernelDesc current = *builtin.kernels().front().desc;
  current.host_inputs = 0x6;
  TfhKernelDesc older = current;
  older.struct_size = static_cast<uint32_t>(offsetof(TfhKernelDesc, host_inputs));
  KernelRegistry r;
  r.add(&current, "current");
  EXPECT_EQ(r.kernels().back().host_inputs, 0x6u);
  r.add(&older, "older");
  EXPECT_EQ(r.kernels().back().host_inputs, 0u);
}

// A kernel specialised for some cases hands the others to the next matching kernel
// (TfhKernelApi::run_next_kernel): the fixture's Neg computes 1-D inputs itself and passes the
// rest to tfhost's; a kernel with no one after it gets a clear error.
TEST(Session, AKernelCanHandACaseToTheNextKernel) {
  TempDir tmp;
  plugin::Registry r;
  r.load(std::string(TFH_FIXTURE_PLUGIN_DIR) + "/libfixture_kernels.so", {});
  const KernelRegistry kernels(r);
  auto m = new_model();
  auto& g = *m.mutable_graph();
  g.add_input()->set_name("x");  // rank decided per run
  g.mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(F);
  add_node(g, "Neg", {"x"}, {"y"});
  g.add_output()->set_name("y");
  g.mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(F);
  auto model = load(m, tmp);
  Session s(*model, kernels);
  EXPECT_EQ(s.kernel_choices()[0].second, "fixture_kernels");
  auto v = floats({2}, {1, -2});
  auto out = s.run({{"x", v.get()}});
  EXPECT_EQ(data(*out[0])[0], 499.f);  // the fixture's own case
  auto mtx = floats({2, 2}, {1, -2, 3, 4});
  out = s.run({{"x", mtx.get()}});
  EXPECT_EQ(data(*out[0])[1], 2.f);  // handed on: tfhost's Neg
  EXPECT_EQ(data(*out[0])[2], -3.f);

  TempDir tmp2;
  auto m2 = relu_add_one();
  auto* hand = m2.mutable_graph()->mutable_node(1)->add_attribute();
  hand->set_name("hand_off");
  hand->set_type(onnx::AttributeProto::INT);
  hand->set_i(1);
  auto model2 = load(m2, tmp2);
  Session s2(*model2, kernels);
  auto x = floats({3}, {-1, 0, 2});
  EXPECT_NE(error_of([&] { s2.run({{"x", x.get()}}); }).find("no other kernel matches this node"),
            std::string::npos);
}

TEST(Session, TypeConstraintsLimitAKernelToTheTypesItDeclares) {
  // The fixture's Relu declares T=float: a double Relu falls back to tfhost's kernel.
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::DOUBLE, {2});
  add_node(g, "Relu", {"x"}, {"y"});
  *g.add_output() = tensor_info("y", onnx::TensorProto::DOUBLE, {2});
  auto model = load(m, tmp);
  plugin::Registry r;
  r.load(std::string(TFH_FIXTURE_PLUGIN_DIR) + "/libfixture_kernels.so", {});
  const KernelRegistry kernels(r);
  Session s(*model, kernels);
  EXPECT_EQ(s.kernel_choices()[0].second, "tfhost");
}

// Gemm with constant weights takes the packed path (B and C folded into oneDNN's weights and
// bias); with B a graph input it takes the general one. Both agree for every transB/C/beta form.
TEST(Session, PackedGemmMatchesTheGeneralPath) {
  for (int64_t M : {1, 5})  // the packed layout is chosen for the first row count seen
  for (int trans_b = 0; trans_b < 2; ++trans_b)
    for (int c_form = 0; c_form < 3; ++c_form) {  // no C, C [N], C [1, N]
      TempDir tmp;
      auto m = new_model();
      auto& g = *m.mutable_graph();
      const int64_t K = 7, N = 3;
      *g.add_input() = tensor_info("a", F, {M, K});
      *g.add_input() = tensor_info("b_in", F, trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N});
      std::vector<float> bv(K * N), cv(N);
      for (size_t i = 0; i < bv.size(); ++i) bv[i] = 0.1f * static_cast<float>((i * 5) % 9) - 0.4f;
      for (int64_t i = 0; i < N; ++i) cv[i] = 0.5f * static_cast<float>(i) - 1.f;
      *g.add_initializer() = float_tensor("b", trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, bv);
      if (c_form == 1) *g.add_initializer() = float_tensor("c", {N}, cv);
      if (c_form == 2) *g.add_initializer() = float_tensor("c", {1, N}, cv);
      for (const char* b : {"b", "b_in"}) {
        std::vector<std::string> ins{"a", b};
        if (c_form) ins.push_back("c");
        auto* n = add_node(g, "Gemm", ins, {std::string("y_") + b});
        for (auto [name, v] : {std::pair<const char*, int64_t>{"transB", trans_b}}) {
          auto* at = n->add_attribute();
          at->set_name(name);
          at->set_type(onnx::AttributeProto::INT);
          at->set_i(v);
        }
        auto* beta = n->add_attribute();
        beta->set_name("beta");
        beta->set_type(onnx::AttributeProto::FLOAT);
        beta->set_f(0.5f);
        *g.add_output() = tensor_info(std::string("y_") + b, F, {M, N});
      }
      auto model = load(m, tmp);
      const KernelRegistry kernels;
      Session s(*model, kernels);
      std::vector<float> av(M * K);
      for (size_t i = 0; i < av.size(); ++i) av[i] = 0.2f * static_cast<float>(i % 6) - 0.5f;
      auto a = floats({M, K}, av);
      auto b_in = floats(trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, bv);
      auto out = s.run({{"a", a.get()}, {"b_in", b_in.get()}});
      for (int64_t i = 0; i < M * N; ++i) {
        // the reference, by hand
        const int64_t r = i / N, col = i % N;
        float want = c_form ? 0.5f * cv[col] : 0.f;
        for (int64_t k = 0; k < K; ++k)
          want += av[r * K + k] * (trans_b ? bv[col * K + k] : bv[k * N + col]);
        EXPECT_NEAR(data(*out[0])[i], want, 1e-5) << "packed, transB " << trans_b << " C " << c_form;
        EXPECT_NEAR(data(*out[1])[i], want, 1e-5) << "general, transB " << trans_b << " C " << c_form;
      }
    }
}

// With release_consumed_constants, weights a kernel packed (every reader consumed them) are
// given back; a weight another node still reads stays.
TEST(Session, ReleasesPackedWeightsOnlyWhenEveryReaderConsumedThem) {
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {2, 4});
  std::vector<float> w(16);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f * static_cast<float>(i % 5) - 0.5f;
  *g.add_initializer() = float_tensor("w_packed", {4, 4}, w);
  *g.add_initializer() = float_tensor("w_shared", {4, 4}, w);
  add_node(g, "MatMul", {"x", "w_packed"}, {"a"});
  add_node(g, "MatMul", {"a", "w_shared"}, {"b"});
  add_node(g, "Add", {"b", "w_shared"}, {"y"});  // reads w_shared as it is
  *g.add_output() = tensor_info("y", F, {4, 4});
  g.mutable_input(0)->CopyFrom(tensor_info("x", F, {4, 4}));
  auto model = load(m, tmp);
  const KernelRegistry kernels;
  std::vector<float> xv(16);
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = 0.1f * static_cast<float>(i);
  auto x = floats({4, 4}, xv);
  std::vector<float> want;
  {
    Session plain(*model, kernels);  // nothing released
    EXPECT_EQ(plain.released_bytes(), 0u);
    auto out = plain.run({{"x", x.get()}});
    want.assign(data(*out[0]), data(*out[0]) + 16);
  }
  SessionOptions so;
  so.release_consumed_constants = true;
  Session s(*model, kernels, so);
  EXPECT_EQ(s.released_bytes(), 16u * 4);  // w_packed only
  EXPECT_TRUE(model->graph().find("w_packed")->initializer()->released());
  EXPECT_FALSE(model->graph().find("w_shared")->initializer()->released());
  EXPECT_THROW(model->graph().find("w_packed")->initializer()->data(), Error);
  for (int run = 0; run < 2; ++run) {
    auto out = s.run({{"x", x.get()}});
    for (size_t i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(data(*out[0])[i], want[i]) << i;
  }
}

// Sequence values inside a graph: SplitToSequence -> SequenceAt / SequenceLength /
// SequenceInsert / ConcatFromSequence.
TEST(Session, SequenceValuesFlowBetweenKernels) {
  TempDir tmp;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", F, {3, 2});
  *g.add_initializer() = int64_tensor("one", {}, {1});
  *g.add_initializer() = int64_tensor("zero", {}, {0});
  auto* split = add_node(g, "SplitToSequence", {"x"}, {"rows"});  // 3 rows of [2], keepdims 0
  auto* kd = split->add_attribute();
  kd->set_name("keepdims");
  kd->set_type(onnx::AttributeProto::INT);
  kd->set_i(0);
  add_node(g, "SequenceAt", {"rows", "one"}, {"row1"});      // x[1]
  add_node(g, "SequenceLength", {"rows"}, {"n"});             // 3
  add_node(g, "SequenceInsert", {"rows", "row1", "zero"}, {"rows2"});  // x[1], x[0], x[1], x[2]
  auto* cat = add_node(g, "ConcatFromSequence", {"rows2"}, {"stacked"});
  for (auto [name, v] : {std::pair<const char*, int64_t>{"axis", 0}, {"new_axis", 1}}) {
    auto* a = cat->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  *g.add_output() = tensor_info("row1", F, {2});
  *g.add_output() = tensor_info("n", onnx::TensorProto::INT64, {});
  *g.add_output() = tensor_info("stacked", F, {4, 2});
  auto model = load(m, tmp);
  const KernelRegistry kernels;
  Session s(*model, kernels);
  auto x = floats({3, 2}, {1, 2, 3, 4, 5, 6});
  auto out = s.run({{"x", x.get()}});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]->dims, (std::vector<int64_t>{2}));
  EXPECT_EQ(data(*out[0])[0], 3.f);
  EXPECT_EQ(data(*out[0])[1], 4.f);
  EXPECT_EQ(*static_cast<const int64_t*>(out[1]->data), 3);
  EXPECT_EQ(out[2]->dims, (std::vector<int64_t>{4, 2}));
  const std::vector<float> want{3, 4, 1, 2, 3, 4, 5, 6};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(data(*out[2])[i], want[i]) << i;
}

// float16 tensors run through the float kernels (computed in float32): the same small network in
// float16 and float32 agrees to float16 precision.
TEST(Session, Float16ModelsRun) {
  auto build = [&](int elem) {
    auto m = new_model();
    m.mutable_opset_import(0)->set_version(17);
    auto& g = *m.mutable_graph();
    *g.add_input() = tensor_info("x", elem, {2, 8});
    onnx::TensorProto w = float_tensor("w", {8, 4}, {});
    onnx::TensorProto b = float_tensor("b", {4}, {});
    onnx::TensorProto gamma = float_tensor("gamma", {4}, {});
    std::vector<float> wv(32), bv(4), gv(4);
    for (int i = 0; i < 32; ++i) wv[i] = 0.1f * static_cast<float>((i * 7) % 11) - 0.5f;
    for (int i = 0; i < 4; ++i) bv[i] = 0.25f * i, gv[i] = 1.f + 0.1f * i;
    for (auto* t : {&w, &b, &gamma}) {
      const std::vector<float>& v = t == &w ? wv : t == &b ? bv : gv;
      t->clear_float_data();
      t->set_data_type(elem);
      std::string raw;
      for (float f : v) {
        if (elem == onnx::TensorProto::FLOAT) {
          raw.append(reinterpret_cast<const char*>(&f), 4);
        } else {
          uint16_t h = half_bits(f);
          raw.append(reinterpret_cast<const char*>(&h), 2);
        }
      }
      t->set_raw_data(raw);
      *g.add_initializer() = *t;
    }
    add_node(g, "MatMul", {"x", "w"}, {"mm"});
    add_node(g, "Add", {"mm", "b"}, {"a"});
    add_node(g, "Erf", {"a"}, {"e"});
    add_node(g, "LayerNormalization", {"e", "gamma", "b"}, {"ln"});
    add_node(g, "Softmax", {"ln"}, {"y"});
    *g.add_output() = tensor_info("y", elem, {2, 4});
    return m;
  };
  TempDir t32, t16;
  auto m32 = load(build(onnx::TensorProto::FLOAT), t32);
  auto m16 = load(build(onnx::TensorProto::FLOAT16), t16);
  const KernelRegistry kernels;
  Session s32(*m32, kernels), s16(*m16, kernels);
  std::vector<float> xv(16);
  for (int i = 0; i < 16; ++i) xv[i] = 0.3f * static_cast<float>(i % 5) - 0.6f;
  auto x32 = floats({2, 8}, xv);
  auto x16 = convert_half(*x32);
  auto y32 = s32.run({{"x", x32.get()}});
  auto y16 = s16.run({{"x", x16.get()}});
  ASSERT_EQ(y16[0]->type, TFH_TYPE_FLOAT16);
  for (size_t i = 0; i < 8; ++i) {
    uint16_t h;
    std::memcpy(&h, static_cast<const char*>(y16[0]->data) + 2 * i, 2);
    EXPECT_NEAR(to_float(Float16{h}), data(*y32[0])[i], 5e-3) << i;
  }
}

}  // namespace
}  // namespace tfh::runtime
