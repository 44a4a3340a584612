// The com.microsoft contrib kernels (kernels/cpu/contrib.cc) against the same computation written
// with standard ONNX ops. Each model holds the contrib node and its reference subgraph side by
// side on the same inputs; one runtime::Session run gives both, and they must agree (max abs
// difference 1e-4 in float32). Masks become the additive biases ONNX Runtime uses
// (mask_filter_value on masked keys, added once more on keys after the query position when
// unidirectional).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "host/runtime/measure.h"
#include "host/runtime/session.h"
#include "tfhost/core.hpp"
#include "ir/ir_test_util.h"

namespace tfh::runtime {
namespace {

using namespace tfh::ir::test;
using Shape = std::vector<int64_t>;
constexpr int F = onnx::TensorProto::FLOAT;
constexpr int F16 = onnx::TensorProto::FLOAT16;
constexpr int I32 = onnx::TensorProto::INT32;
constexpr float kTol = 1e-4f;
constexpr float kFilter = -10000.f;

int64_t count(const Shape& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}
std::string str(const Shape& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

std::vector<float> random_floats(int64_t n, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

// Values float16 represents exactly, so the float16 and float32 paths see the same numbers.
std::vector<float> half_exact(std::vector<float> v) {
  for (float& x : v) x = tfh::to_float(tfh::to_float16(x));
  return v;
}

std::unique_ptr<HostTensor> host_floats(const Shape& dims, const std::vector<float>& v) {
  auto t = make_tensor(TFH_TYPE_FLOAT, dims);
  if (!v.empty()) std::memcpy(t->storage.get(), v.data(), v.size() * sizeof(float));
  return t;
}

// Elements of a float or float16 tensor as float.
std::vector<float> as_floats(const HostTensor& t) {
  if (t.type == TFH_TYPE_FLOAT16) return as_floats(*convert_tensor(t, TFH_TYPE_FLOAT));
  EXPECT_EQ(t.type, TFH_TYPE_FLOAT);
  const float* p = static_cast<const float*>(t.data);
  return std::vector<float>(p, p + t.num_elements);
}

void set_attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void set_attr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void set_attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

// A model under construction (opset 17, com.microsoft 1) with the values fed to its inputs.
class Net {
 public:
  Net() { m_.mutable_opset_import(0)->set_version(17); }
  onnx::GraphProto& g() { return *m_.mutable_graph(); }

  void feed(const std::string& name, const Shape& dims, const std::vector<float>& v, int elem = F) {
    *g().add_input() = tensor_info(name, elem, dims);
    auto t = host_floats(dims, v);
    feeds_.emplace_back(name, elem == F16 ? convert_tensor(*t, TFH_TYPE_FLOAT16) : std::move(t));
  }
  void feed_i32(const std::string& name, const Shape& dims, const std::vector<int32_t>& v) {
    *g().add_input() = tensor_info(name, I32, dims);
    auto t = make_tensor(TFH_TYPE_INT32, dims);
    if (!v.empty()) std::memcpy(t->storage.get(), v.data(), v.size() * sizeof(int32_t));
    feeds_.emplace_back(name, std::move(t));
  }
  void constant(const std::string& name, const Shape& dims, const std::vector<float>& v,
                int elem = F) {
    onnx::TensorProto t = float_tensor(name, dims, v);
    if (elem == F16) {
      auto h = convert_tensor(*host_floats(dims, v), TFH_TYPE_FLOAT16);
      t.set_data_type(F16);
      t.set_raw_data(std::string(static_cast<const char*>(h->data), h->nbytes));
    }
    *g().add_initializer() = t;
  }
  void scalar(const std::string& name, float v) { constant(name, {}, {v}); }
  void ints(const std::string& name, const std::vector<int64_t>& v) {
    *g().add_initializer() = int64_tensor(name, {static_cast<int64_t>(v.size())}, v);
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> ins,
                        std::vector<std::string> outs, const std::string& domain = "") {
    while (!ins.empty() && ins.back().empty()) ins.pop_back();
    return add_node(g(), op, std::move(ins), std::move(outs), "", domain);
  }
  onnx::NodeProto* contrib(const std::string& op, std::vector<std::string> ins,
                           std::vector<std::string> outs) {
    return node(op, std::move(ins), std::move(outs), "com.microsoft");
  }
  void output(const std::string& name, int elem = F) {
    auto* vi = g().add_output();
    vi->set_name(name);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem);
  }
  // Runs once; the graph outputs by name.
  std::map<std::string, std::unique_ptr<HostTensor>> run() {
    TempDir tmp;
    write_model(m_, tmp / "m.onnx");
    auto model = ir::Model::load(tmp / "m.onnx");
    model->infer_shapes();
    const KernelRegistry kernels;
    Session s(*model, kernels);
    std::vector<std::pair<std::string, const HostTensor*>> f;
    for (auto& [name, t] : feeds_) f.emplace_back(name, t.get());
    auto outs = s.run(f);
    std::map<std::string, std::unique_ptr<HostTensor>> named;
    for (int i = 0; i < g().output_size(); ++i) named[g().output(i).name()] = std::move(outs[i]);
    return named;
  }
  // A fed tensor, as it is now (after a run: whether the run left it alone).
  const HostTensor& fed(const std::string& name) const {
    for (const auto& [n, t] : feeds_)
      if (n == name) return *t;
    throw std::logic_error("no feed " + name);
  }

 private:
  onnx::ModelProto m_ = new_model();
  std::vector<std::pair<std::string, std::unique_ptr<HostTensor>>> feeds_;
};

using Outputs = std::map<std::string, std::unique_ptr<HostTensor>>;

// The largest |a - b| of two outputs, which must have the same shape.
float max_diff(const Outputs& outs, const std::string& a, const std::string& b) {
  const HostTensor& ta = *outs.at(a);
  const HostTensor& tb = *outs.at(b);
  EXPECT_EQ(ta.dims, tb.dims) << a << " " << str(ta.dims) << " vs " << b << " " << str(tb.dims);
  if (ta.dims != tb.dims) return INFINITY;
  std::vector<float> va = as_floats(ta), vb = as_floats(tb);
  float m = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const float d = std::fabs(va[i] - vb[i]);
    if (std::isnan(d)) return d;  // NaN fails (and must not be overwritten by a later element)
    if (d > m) m = d;
  }
  return m;
}
#define EXPECT_AGREE(outs, a, b, tol) EXPECT_LT(max_diff(outs, a, b), tol) << a << " vs " << b

// ---- Gelu family --------------------------------------------------------------------------------

// `v` -> gelu(v) with the erf or tanh formula, as standard ops; returns the result's name.
std::string gelu_reference(Net& n, const std::string& v, bool tanh_form) {
  n.scalar("half", 0.5f);
  n.scalar("one", 1.f);
  if (tanh_form) {
    n.scalar("ga", 0.7978845608028654f);
    n.scalar("gb", 0.035677408136300125f);
    n.node("Mul", {v, v}, {"g_vv"});
    n.node("Mul", {"g_vv", "gb"}, {"g_bvv"});
    n.node("Add", {"g_bvv", "ga"}, {"g_inner"});
    n.node("Mul", {"g_inner", v}, {"g_arg"});
    n.node("Tanh", {"g_arg"}, {"g_t"});
  } else {
    n.scalar("sqrt2", std::sqrt(2.f));
    n.node("Div", {v, "sqrt2"}, {"g_arg"});
    n.node("Erf", {"g_arg"}, {"g_t"});
  }
  n.node("Add", {"g_t", "one"}, {"g_1t"});
  n.node("Mul", {v, "g_1t"}, {"g_v1t"});
  n.node("Mul", {"g_v1t", "half"}, {"ref"});
  return "ref";
}

void check_gelu(const std::string& op, const Shape& dims, bool with_bias, bool tanh_form) {
  SCOPED_TRACE(op + " " + str(dims) + (with_bias ? " with bias" : ""));
  std::mt19937 rng(7);
  Net n;
  n.feed("x", dims, random_floats(count(dims), rng, -4.f, 4.f));
  std::string v = "x";
  if (with_bias) {
    n.constant("b", {dims.back()}, random_floats(dims.back(), rng));
    n.node("Add", {"x", "b"}, {"xb"});
    v = "xb";
  }
  n.contrib(op, with_bias ? std::vector<std::string>{"x", "b"} : std::vector<std::string>{"x"},
            {"y"});
  gelu_reference(n, v, tanh_form);
  n.output("y");
  n.output("ref");
  auto outs = n.run();
  EXPECT_AGREE(outs, "y", "ref", kTol);
}

TEST(ContribKernels, GeluIsTheErfFormula) {
  for (const Shape& d : {Shape{2, 3, 5}, Shape{1, 1, 1}, Shape{7}, Shape{3, 50, 129}})
    check_gelu("Gelu", d, false, false);
}

TEST(ContribKernels, BiasGeluAddsTheBiasThenGelu) {
  for (const Shape& d : {Shape{2, 3, 5}, Shape{1, 1, 7}, Shape{4, 40, 131}})
    check_gelu("BiasGelu", d, true, false);
}

TEST(ContribKernels, FastGeluIsTheTanhApproximationWithOptionalBias) {
  for (const Shape& d : {Shape{2, 3, 5}, Shape{1, 1, 3}, Shape{4, 40, 131}}) {
    check_gelu("FastGelu", d, false, true);
    check_gelu("FastGelu", d, true, true);
  }
}

// GemmFastGelu(x, W[, bias]) against MatMul then FastGelu in float32, on the same (float16-exact)
// values: W a constant (packed, or kept 16-bit for float16) or fed (the plain GEMM), 1 to 80 rows
// (the 16-bit kernel's few-row path and the widened one), awkward K and N.
void check_gemm_fast_gelu(const Shape& xd, int64_t N, bool with_bias, bool const_w, int elem) {
  const int64_t K = xd.back();
  SCOPED_TRACE("x " + str(xd) + " N " + std::to_string(N) + (with_bias ? " bias" : "") +
               (const_w ? " constant W" : " fed W") + (elem == F16 ? " float16" : " float"));
  std::mt19937 rng(static_cast<unsigned>(count(xd) + N));
  const std::vector<float> x = half_exact(random_floats(count(xd), rng));
  const std::vector<float> w = half_exact(random_floats(K * N, rng));
  const std::vector<float> b = half_exact(random_floats(N, rng));
  Net n;
  n.feed("x32", xd, x);
  n.feed("w32", {K, N}, w);
  n.constant("b32", {N}, b);
  n.node("MatMul", {"x32", "w32"}, {"p"});
  n.contrib("FastGelu", with_bias ? std::vector<std::string>{"p", "b32"} : std::vector<std::string>{"p"},
            {"want"});
  n.feed("x", xd, x, elem);
  if (const_w)
    n.constant("w", {K, N}, w, elem);
  else
    n.feed("w", {K, N}, w, elem);
  n.constant("b", {N}, b, elem);
  n.contrib("GemmFastGelu", {"x", "w", with_bias ? "b" : ""}, {"got"});
  n.output("want");
  n.output("got", elem);
  const Outputs outs = n.run();
  // float16: one rounding of |y| < 8 (the product in float, the activation before narrowing).
  EXPECT_AGREE(outs, "got", "want", elem == F16 ? 8e-3f : kTol);
}

TEST(ContribKernels, GemmFastGeluIsMatMulThenFastGelu) {
  for (const int elem : {F, F16})
    for (const bool const_w : {true, false})
      for (const bool bias : {true, false}) {
        check_gemm_fast_gelu({1, 13}, 10, bias, const_w, elem);
        check_gemm_fast_gelu({2, 3, 37}, 67, bias, const_w, elem);
        check_gemm_fast_gelu({2, 40, 16}, 24, bias, const_w, elem);
      }
}

TEST(ContribKernels, GemmFastGeluErrors) {
  auto run_with = [](const Shape& wd, int64_t bias_len) {
    Net n;
    n.feed("x", {2, 4}, std::vector<float>(8, 0.1f));
    n.feed("w", wd, std::vector<float>(count(wd), 0.1f));
    n.constant("b", {bias_len}, std::vector<float>(bias_len, 0.f));
    n.contrib("GemmFastGelu", {"x", "w", "b"}, {"y"});
    n.output("y");
    return error_of([&] { n.run(); });
  };
  std::string err = run_with({1, 4, 3}, 3);
  EXPECT_NE(err.find("W [1,4,3] must be a 2-D [K, N] matrix"), std::string::npos) << err;
  err = run_with({4, 3}, 5);
  EXPECT_NE(err.find("bias [5] must be 1-D with W's 3 columns"), std::string::npos) << err;
  EXPECT_EQ(run_with({4, 3}, 3), "");
}

// ---- layer normalizations
// -------------------------------------------------------------------------

struct SkipCase {
  Shape x, skip;
  bool beta, bias;
  float eps;  // 0: the attribute is left out (default 1e-12)
};

// input + skip (+ bias), then LayerNormalization (opset 17) or the RMS-norm formula.
void check_skip_layer_norm(const SkipCase& c, bool simplified) {
  SCOPED_TRACE(
      std::string(simplified ? "SkipSimplifiedLayerNormalization " : "SkipLayerNormalization ") +
      str(c.x) + " skip " + str(c.skip) + (c.beta ? " beta" : "") + (c.bias ? " bias" : ""));
  std::mt19937 rng(11);
  const int64_t h = c.x.back();
  const float eps = c.eps ? c.eps : 1e-12f;
  Net n;
  n.feed("x", c.x, random_floats(count(c.x), rng, -2.f, 2.f));
  n.feed("skip", c.skip, random_floats(count(c.skip), rng, -2.f, 2.f));
  n.constant("gamma", {h}, random_floats(h, rng, 0.5f, 1.5f));
  if (c.beta) n.constant("beta", {h}, random_floats(h, rng));
  if (c.bias) n.constant("bias", {h}, random_floats(h, rng));
  onnx::NodeProto* node =
      simplified
          ? n.contrib("SkipSimplifiedLayerNormalization",
                      {"x", "skip", "gamma", c.bias ? "bias" : ""}, {"y", "mean", "inv", "sum"})
          : n.contrib("SkipLayerNormalization",
                      {"x", "skip", "gamma", c.beta ? "beta" : "", c.bias ? "bias" : ""},
                      {"y", "mean", "inv", "sum"});
  if (c.eps) set_attr(node, "epsilon", c.eps);
  n.node("Add", {"x", "skip"}, {"xs"});
  std::string s = "xs";
  if (c.bias) {
    n.node("Add", {"xs", "bias"}, {"xsb"});
    s = "xsb";
  }
  n.node("ReduceMean", {s}, {"ref_mean"});
  set_attr(n.g().mutable_node(n.g().node_size() - 1), "axes", std::vector<int64_t>{-1});
  if (simplified) {
    n.scalar("eps", eps);
    n.node("Mul", {s, s}, {"sq"});
    set_attr(n.node("ReduceMean", {"sq"}, {"ms"}), "axes", std::vector<int64_t>{-1});
    n.node("Add", {"ms", "eps"}, {"ms_eps"});
    n.node("Sqrt", {"ms_eps"}, {"rms"});
    n.node("Div", {s, "rms"}, {"normed"});
    n.node("Mul", {"normed", "gamma"}, {"ref_y"});
    n.node("Reciprocal", {"rms"}, {"ref_inv"});
  } else {
    auto* ln = n.node("LayerNormalization", {s, "gamma", c.beta ? "beta" : ""},
                      {"ref_y", "ref_mean_ln", "ref_inv"});
    set_attr(ln, "epsilon", eps);
    n.output("ref_mean_ln");
  }
  for (const char* o : {"y", "mean", "inv", "sum", "ref_y", "ref_mean", "ref_inv"}) n.output(o);
  n.output(s);
  auto outs = n.run();
  EXPECT_AGREE(outs, "y", "ref_y", kTol);
  EXPECT_AGREE(outs, "sum", s, kTol);
  EXPECT_AGREE(outs, "mean", "ref_mean", kTol);
  if (!simplified) EXPECT_AGREE(outs, "mean", "ref_mean_ln", kTol);
  // inv_std_var is large where the variance is small: compare relative to its size.
  std::vector<float> inv = as_floats(*outs.at("inv")), ref_inv = as_floats(*outs.at("ref_inv"));
  ASSERT_EQ(inv.size(), ref_inv.size());
  for (size_t i = 0; i < inv.size(); ++i)
    EXPECT_NEAR(inv[i], ref_inv[i], kTol * std::fabs(ref_inv[i]));
}

const SkipCase kSkipCases[] = {
    {{2, 3, 7}, {2, 3, 7}, true, true, 1e-5f},       {{1, 1, 5}, {1, 1, 5}, false, false, 0.f},
    {{3, 4, 6}, {4, 6}, true, false, 1e-5f},          // skip broadcast over the batch
    {{2, 3, 9}, {1, 3, 9}, false, true, 1e-6f},       // skip [1, S, H]
    {{5, 11}, {5, 11}, true, true, 1e-5f},            // 2-D input
    {{2, 40, 257}, {2, 40, 257}, true, true, 1e-5f},  // large enough for the parallel path
};

TEST(ContribKernels, SkipLayerNormalizationIsAddThenLayerNorm) {
  for (const SkipCase& c : kSkipCases) check_skip_layer_norm(c, false);
}

TEST(ContribKernels, SkipSimplifiedLayerNormalizationIsAddThenRmsNorm) {
  for (const SkipCase& c : kSkipCases)
    if (!c.beta) check_skip_layer_norm(c, true);
  check_skip_layer_norm({{2, 40, 257}, {2, 40, 257}, false, true, 1e-5f}, true);
  check_skip_layer_norm({{3, 4, 6}, {4, 6}, false, false, 1e-5f}, true);
}

void check_simplified_layer_norm(const Shape& dims, int64_t axis, const std::string& domain) {
  SCOPED_TRACE("SimplifiedLayerNormalization " + str(dims) + " axis " + std::to_string(axis) +
               " domain '" + domain + "'");
  std::mt19937 rng(5);
  const int64_t r = static_cast<int64_t>(dims.size()), a = axis < 0 ? axis + r : axis;
  Shape norm(dims.begin() + a, dims.end());
  std::vector<int64_t> axes;
  for (int64_t i = a; i < r; ++i) axes.push_back(i);
  Net n;
  n.feed("x", dims, random_floats(count(dims), rng, -3.f, 3.f));
  n.constant("scale", norm, random_floats(count(norm), rng, 0.5f, 1.5f));
  auto* node = n.node("SimplifiedLayerNormalization", {"x", "scale"}, {"y", "inv"}, domain);
  set_attr(node, "axis", axis);
  set_attr(node, "epsilon", 1e-6f);
  n.scalar("eps", 1e-6f);
  n.node("Mul", {"x", "x"}, {"sq"});
  set_attr(n.node("ReduceMean", {"sq"}, {"ms"}), "axes", axes);
  n.node("Add", {"ms", "eps"}, {"ms_eps"});
  n.node("Sqrt", {"ms_eps"}, {"rms"});
  n.node("Div", {"x", "rms"}, {"normed"});
  n.node("Mul", {"normed", "scale"}, {"ref_y"});
  n.node("Reciprocal", {"rms"}, {"ref_inv"});
  for (const char* o : {"y", "inv", "ref_y", "ref_inv"}) n.output(o);
  auto outs = n.run();
  EXPECT_AGREE(outs, "y", "ref_y", kTol);
  EXPECT_AGREE(outs, "inv", "ref_inv", 1e-3f);
}

TEST(ContribKernels, SimplifiedLayerNormalizationIsRmsNorm) {
  check_simplified_layer_norm({2, 3, 8}, -1, "com.microsoft");
  check_simplified_layer_norm({1, 1, 3}, -1, "com.microsoft");
  check_simplified_layer_norm({2, 3, 5}, 1, "com.microsoft");  // over the last two axes
  check_simplified_layer_norm({64, 300}, -1, "com.microsoft");
  check_simplified_layer_norm({2, 3, 8}, -1, "");  // where ONNX Runtime's fusions put it
}

// ---- EmbedLayerNormalization
// ---------------------------------------------------------------------

struct EmbedCase {
  int64_t B, S, H, vocab, max_pos;
  bool segments, mask;
  int positions;  // 0: none (0..S-1), 1: [B, S] input, 2: [1, S] input
};

void check_embed_layer_norm(const EmbedCase& c) {
  SCOPED_TRACE("EmbedLayerNormalization B=" + std::to_string(c.B) + " S=" + std::to_string(c.S) +
               " H=" + std::to_string(c.H) + (c.segments ? " segments" : "") +
               (c.mask ? " mask" : "") + " positions=" + std::to_string(c.positions));
  std::mt19937 rng(3);
  const int64_t B = c.B, S = c.S, H = c.H;
  std::uniform_int_distribution<int32_t> word(0, static_cast<int32_t>(c.vocab - 1));
  std::vector<int32_t> ids(B * S), seg(B * S), mask(B * S), pos;
  std::vector<int32_t> lengths(B);
  for (int64_t b = 0; b < B; ++b) lengths[b] = static_cast<int32_t>(S - (b * (S / 2 + 1)) % S);
  for (int64_t i = 0; i < B * S; ++i) {
    ids[i] = word(rng);
    seg[i] = static_cast<int32_t>((i / 3) % 2);
    mask[i] = (i % S) < lengths[i / S] ? 1 : 0;
  }
  Net n;
  n.feed_i32("ids", {B, S}, ids);
  n.constant("word", {c.vocab, H}, random_floats(c.vocab * H, rng));
  n.constant("pos", {c.max_pos, H}, random_floats(c.max_pos * H, rng));
  n.constant("gamma", {H}, random_floats(H, rng, 0.5f, 1.5f));
  n.constant("beta", {H}, random_floats(H, rng));
  if (c.segments) {
    n.feed_i32("seg", {B, S}, seg);
    n.constant("segemb", {2, H}, random_floats(2 * H, rng));
  }
  if (c.mask) n.feed_i32("mask", {B, S}, mask);
  const int64_t prow = c.positions == 2 ? 1 : B;
  if (c.positions) {
    for (int64_t i = 0; i < prow * S; ++i)
      pos.push_back(static_cast<int32_t>((i * 7 + 3) % c.max_pos));
    n.feed_i32("posids", {prow, S}, pos);
  } else {
    std::vector<int64_t> r;
    for (int64_t s = 0; s < S; ++s) r.push_back(s);
    *n.g().add_initializer() = int64_tensor("range", {S}, r);
  }
  auto* e = n.contrib("EmbedLayerNormalization",
                      {"ids", c.segments ? "seg" : "", "word", "pos", c.segments ? "segemb" : "",
                       "gamma", "beta", c.mask ? "mask" : "", c.positions ? "posids" : ""},
                      {"y", "mask_index", "emb_sum"});
  set_attr(e, "epsilon", 1e-5f);
  n.node("Gather", {"word", "ids"}, {"w"});
  n.node("Gather", {"pos", c.positions ? "posids" : "range"}, {"p"});
  n.node("Add", {"w", "p"}, {"wp"});
  std::string sum = "wp";
  if (c.segments) {
    n.node("Gather", {"segemb", "seg"}, {"sg"});
    n.node("Add", {"wp", "sg"}, {"wps"});
    sum = "wps";
  }
  set_attr(n.node("LayerNormalization", {sum, "gamma", "beta"}, {"ref_y"}), "epsilon", 1e-5f);
  n.output("y");
  n.output("mask_index", I32);
  n.output("emb_sum");
  n.output("ref_y");
  n.output(sum);
  auto outs = n.run();
  EXPECT_AGREE(outs, "y", "ref_y", kTol);
  EXPECT_AGREE(outs, "emb_sum", sum, kTol);
  const HostTensor& mi = *outs.at("mask_index");
  ASSERT_EQ(mi.type, TFH_TYPE_INT32);
  ASSERT_EQ(mi.dims, Shape{B});
  for (int64_t b = 0; b < B; ++b)
    EXPECT_EQ(static_cast<const int32_t*>(mi.data)[b], c.mask ? lengths[b] : 0) << "batch " << b;
}

TEST(ContribKernels, EmbedLayerNormalizationIsGathersAddedThenLayerNorm) {
  check_embed_layer_norm({2, 5, 9, 30, 16, true, true, 0});
  check_embed_layer_norm({3, 1, 4, 7, 4, false, true, 0});     // sequence 1, no segments
  check_embed_layer_norm({2, 6, 8, 11, 10, true, false, 1});   // position_ids [B, S], no mask
  check_embed_layer_norm({3, 4, 5, 11, 9, false, true, 2});    // position_ids [1, S]
  check_embed_layer_norm({4, 70, 96, 50, 80, true, true, 0});  // parallel path
}

TEST(ContribKernels, EmbedLayerNormalizationRejectsOutOfRangeIds) {
  Net n;
  n.feed_i32("ids", {1, 2}, {0, 5});
  n.constant("word", {3, 2}, std::vector<float>(6, 1.f));
  n.constant("pos", {4, 2}, std::vector<float>(8, 1.f));
  n.constant("gamma", {2}, {1, 1});
  n.constant("beta", {2}, {0, 0});
  n.contrib("EmbedLayerNormalization", {"ids", "", "word", "pos", "", "gamma", "beta"}, {"y"});
  n.output("y");
  std::string err = error_of([&] { n.run(); });
  EXPECT_NE(err.find("input_ids value 5 is outside [0, 3)"), std::string::npos) << err;
}

// ---- Attention and MultiHeadAttention ----------------------------------------------------------

enum class Mask { None, End, EndStart, Raw2D, Raw3D };

// The int32 mask input for a case and the additive bias [B, 1, S, T] it means (plus the causal
// part when unidirectional). Every query keeps at least one key.
struct MaskData {
  Shape dims;
  std::vector<int32_t> values;
  std::vector<float> bias;
};
MaskData make_mask(Mask kind, int64_t B, int64_t S, int64_t P, bool causal) {
  const int64_t T = P + S;
  MaskData m;
  std::vector<uint8_t> keep(B * S * T, 1);
  auto at = [&](int64_t b, int64_t s, int64_t j) -> uint8_t& { return keep[(b * S + s) * T + j]; };
  switch (kind) {
    case Mask::None:
      break;
    case Mask::End:
    case Mask::EndStart: {
      m.dims = {kind == Mask::End ? B : 2 * B};
      m.values.resize(m.dims[0]);
      for (int64_t b = 0; b < B; ++b) {
        const int64_t end = T - (b * (T / 2 + 1)) % T;  // differs per batch, at least 1
        const int64_t start = kind == Mask::EndStart ? std::min<int64_t>(b % 2, end - 1) : 0;
        m.values[b] = static_cast<int32_t>(end);
        if (kind == Mask::EndStart) m.values[B + b] = static_cast<int32_t>(start);
        for (int64_t s = 0; s < S; ++s)
          for (int64_t j = 0; j < T; ++j) at(b, s, j) = j >= start && j < end;
      }
      break;
    }
    case Mask::Raw2D:
      m.dims = {B, T};
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < T; ++j) {
          const int32_t v = (j == 0 || (j + b) % 3 != 2) ? (j % 2 ? 1 : 2) : 0;  // > 0 keeps
          m.values.push_back(v);
          for (int64_t s = 0; s < S; ++s) at(b, s, j) = v > 0;
        }
      break;
    case Mask::Raw3D:
      m.dims = {B, S, T};
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s < S; ++s)
          for (int64_t j = 0; j < T; ++j) {
            const int32_t v = (j == 0 || (b + s + j) % 4 != 3) ? 1 : 0;
            m.values.push_back(v);
            at(b, s, j) = v > 0;
          }
      break;
  }
  m.bias.resize(B * S * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t j = 0; j < T; ++j)
        m.bias[(b * S + s) * T + j] =
            (at(b, s, j) ? 0.f : kFilter) + (causal && j > P + s ? kFilter : 0.f);
  return m;
}

// Reference attention from standard ops. q [B,S,N*D], k [B,L,N*D], v [B,L,N*Dv] (after any
// bias); pk/pv: past [B,N,P,D] or ""; bias_name: additive [B,1,S,T] or ""; ab: attention bias or
// "". Produces "ref" [B,S,N*Dv], "ref_k" [B,N,T,D] and "ref_v" [B,N,T,Dv].
void attention_reference(Net& n, const std::string& q, const std::string& k, const std::string& v,
                         int64_t B, int64_t S, int64_t L, int64_t N, int64_t D, int64_t Dv,
                         const std::string& pk, const std::string& pv, const std::string& bias_name,
                         const std::string& ab, float scale) {
  n.ints("r_qshape", {B, S, N, D});
  n.ints("r_kshape", {B, L, N, D});
  n.ints("r_vshape", {B, L, N, Dv});
  n.ints("r_oshape", {B, S, N * Dv});
  set_attr(n.node("Transpose", {n.node("Reshape", {q, "r_qshape"}, {"r_q3"})->output(0)}, {"r_q"}),
           "perm", std::vector<int64_t>{0, 2, 1, 3});
  set_attr(n.node("Transpose", {n.node("Reshape", {k, "r_kshape"}, {"r_k3"})->output(0)},
                  {pk.empty() ? "ref_k" : "r_knew"}),
           "perm", std::vector<int64_t>{0, 2, 1, 3});
  set_attr(n.node("Transpose", {n.node("Reshape", {v, "r_vshape"}, {"r_v3"})->output(0)},
                  {pv.empty() ? "ref_v" : "r_vnew"}),
           "perm", std::vector<int64_t>{0, 2, 1, 3});
  if (!pk.empty()) {
    set_attr(n.node("Concat", {pk, "r_knew"}, {"ref_k"}), "axis", int64_t{2});
    set_attr(n.node("Concat", {pv, "r_vnew"}, {"ref_v"}), "axis", int64_t{2});
  }
  set_attr(n.node("Transpose", {"ref_k"}, {"r_kt"}), "perm", std::vector<int64_t>{0, 1, 3, 2});
  n.scalar("r_scale", scale);
  n.node("MatMul", {"r_q", "r_kt"}, {"r_qk"});
  n.node("Mul", {"r_qk", "r_scale"}, {"r_s0"});
  std::string s = "r_s0";
  if (!bias_name.empty()) {
    n.node("Add", {s, bias_name}, {"r_s1"});
    s = "r_s1";
  }
  if (!ab.empty()) {
    n.node("Add", {s, ab}, {"r_s2"});
    s = "r_s2";
  }
  set_attr(n.node("Softmax", {s}, {"r_p"}), "axis", int64_t{-1});
  n.node("MatMul", {"r_p", "ref_v"}, {"r_o"});
  set_attr(n.node("Transpose", {"r_o"}, {"r_ot"}), "perm", std::vector<int64_t>{0, 2, 1, 3});
  n.node("Reshape", {"r_ot", "r_oshape"}, {"ref"});
}

struct AttnCase {
  const char* name;
  int64_t B, S, Hin, N, Dq, Dv;  // Dv: V hidden size (qkv_hidden_sizes when it differs from Dq)
  int64_t P = 0;                 // past length; present is checked whenever past is given
  Mask mask = Mask::None;
  bool causal = false;
  int ab = 0;         // attention_bias: 0 none, 1 [1, N, S, T], 2 [B, 1, S, T]
  float scale = 0.f;  // 0: default 1/sqrt(head_size)
  bool const_weights = true;
  bool present = false;  // ask for present without past
};

void check_attention(const AttnCase& c) {
  SCOPED_TRACE(std::string("Attention case ") + c.name);
  std::mt19937 rng(17);
  const int64_t B = c.B, S = c.S, N = c.N, D = c.Dq / N, Dvh = c.Dv / N, P = c.P, T = P + S;
  const int64_t W = 2 * c.Dq + c.Dv;
  Net n;
  n.feed("x", {B, S, c.Hin}, random_floats(B * S * c.Hin, rng));
  std::vector<float> w = random_floats(c.Hin * W, rng, -0.5f, 0.5f);
  if (c.const_weights)
    n.constant("w", {c.Hin, W}, w);
  else
    n.feed("w", {c.Hin, W}, w);
  n.constant("b", {W}, random_floats(W, rng));
  MaskData m = make_mask(c.mask, B, S, P, c.causal);
  if (c.mask != Mask::None) n.feed_i32("mask", m.dims, m.values);
  const bool any_bias = c.mask != Mask::None || c.causal;
  if (any_bias) n.feed("mask_bias", {B, 1, S, T}, m.bias);
  if (P) n.feed("past", {2, B, N, P, D}, random_floats(2 * B * N * P * D, rng));
  Shape ab_dims = c.ab == 1 ? Shape{1, N, S, T} : Shape{B, 1, S, T};
  if (c.ab) n.feed("ab", ab_dims, random_floats(count(ab_dims), rng, -2.f, 2.f));
  const bool want_present = P || c.present;
  auto* a = n.contrib(
      "Attention",
      {"x", "w", "b", c.mask != Mask::None ? "mask" : "", P ? "past" : "", c.ab ? "ab" : ""},
      want_present ? std::vector<std::string>{"y", "present"} : std::vector<std::string>{"y"});
  set_attr(a, "num_heads", N);
  if (c.causal) set_attr(a, "unidirectional", int64_t{1});
  if (c.Dv != c.Dq) set_attr(a, "qkv_hidden_sizes", std::vector<int64_t>{c.Dq, c.Dq, c.Dv});
  if (c.scale) set_attr(a, "scale", c.scale);

  n.node("MatMul", {"x", "w"}, {"qkv0"});
  n.node("Add", {"qkv0", "b"}, {"qkv"});
  n.ints("split", {c.Dq, c.Dq, c.Dv});
  set_attr(n.node("Split", {"qkv", "split"}, {"q", "k", "v"}), "axis", int64_t{2});
  std::string pk, pv;
  if (P) {
    n.ints("split_past", {1, 1});
    n.ints("axis0", {0});
    set_attr(n.node("Split", {"past", "split_past"}, {"pk5", "pv5"}), "axis", int64_t{0});
    n.node("Squeeze", {"pk5", "axis0"}, {"pk"});
    n.node("Squeeze", {"pv5", "axis0"}, {"pv"});
    pk = "pk", pv = "pv";
  }
  const float scale = c.scale ? c.scale : 1.f / std::sqrt(static_cast<float>(D));
  attention_reference(n, "q", "k", "v", B, S, S, N, D, Dvh, pk, pv, any_bias ? "mask_bias" : "",
                      c.ab ? "ab" : "", scale);
  n.output("y");
  n.output("ref");
  if (want_present) {
    n.ints("axis0u", {0});
    n.node("Unsqueeze", {"ref_k", "axis0u"}, {"ref_k5"});
    n.node("Unsqueeze", {"ref_v", "axis0u"}, {"ref_v5"});
    set_attr(n.node("Concat", {"ref_k5", "ref_v5"}, {"ref_present"}), "axis", int64_t{0});
    n.output("present");
    n.output("ref_present");
  }
  auto outs = n.run();
  EXPECT_EQ(outs.at("y")->dims, (Shape{B, S, c.Dv}));
  EXPECT_AGREE(outs, "y", "ref", kTol);
  if (want_present) {
    EXPECT_EQ(outs.at("present")->dims, (Shape{2, B, N, T, D}));
    EXPECT_AGREE(outs, "present", "ref_present", kTol);
  }
}

TEST(ContribKernels, AttentionMatchesTheUnfusedSubgraph) {
  const AttnCase cases[] = {
      {"plain", 2, 4, 8, 2, 8, 8},
      {"sequence 1, odd sizes", 1, 1, 7, 3, 9, 9},
      {"batch 3, odd hidden", 3, 5, 11, 1, 5, 5},
      {"weights not constant", 2, 3, 6, 2, 4, 4, 0, Mask::None, false, 0, 0.f, false},
      {"custom scale", 2, 3, 6, 2, 6, 6, 0, Mask::None, false, 0, 0.37f},
      {"v hidden differs", 2, 3, 5, 2, 6, 10},
      {"present without past", 2, 3, 6, 3, 6, 6, 0, Mask::None, false, 0, 0.f, true, true},
      {"large (parallel, packed weights)", 2, 33, 64, 4, 64, 64},
  };
  for (const AttnCase& c : cases) check_attention(c);
}

TEST(ContribKernels, AttentionMasks) {
  const AttnCase cases[] = {
      {"end positions [B]", 3, 5, 8, 2, 8, 8, 0, Mask::End},
      {"ends and starts [2B]", 3, 5, 8, 2, 8, 8, 0, Mask::EndStart},
      {"raw [B, T]", 3, 6, 8, 2, 8, 8, 0, Mask::Raw2D},
      {"raw [B, S, T]", 2, 4, 6, 3, 9, 9, 0, Mask::Raw3D},
      {"raw [B, T], sequence 1", 4, 1, 6, 2, 4, 4, 0, Mask::Raw2D},
      {"end positions, large", 4, 40, 32, 4, 32, 32, 0, Mask::End},
  };
  for (const AttnCase& c : cases) check_attention(c);
}

TEST(ContribKernels, AttentionUnidirectional) {
  const AttnCase cases[] = {
      {"causal", 2, 5, 8, 2, 8, 8, 0, Mask::None, true},
      {"causal with raw mask", 3, 6, 8, 2, 8, 8, 0, Mask::Raw2D, true},
      {"causal with [B, S, T] mask", 2, 4, 8, 4, 8, 8, 0, Mask::Raw3D, true},
  };
  for (const AttnCase& c : cases) check_attention(c);
}

TEST(ContribKernels, AttentionPastAndPresent) {
  const AttnCase cases[] = {
      {"decode step", 2, 1, 8, 2, 8, 8, 3, Mask::Raw2D, true},
      {"prompt after past", 2, 3, 8, 2, 8, 8, 2, Mask::None, true},
      {"past, end positions", 3, 2, 6, 3, 6, 6, 4, Mask::End, true},
      {"past, bidirectional", 1, 4, 8, 4, 8, 8, 5},
      {"past, large", 2, 16, 32, 4, 32, 32, 20, Mask::Raw2D, true},
  };
  for (const AttnCase& c : cases) check_attention(c);
}

TEST(ContribKernels, AttentionBias) {
  const AttnCase cases[] = {
      {"bias [1, N, S, T]", 2, 4, 8, 2, 8, 8, 0, Mask::None, false, 1},
      {"bias [B, 1, S, T] with mask and past", 2, 3, 8, 2, 8, 8, 2, Mask::Raw2D, true, 2},
  };
  for (const AttnCase& c : cases) check_attention(c);
}

TEST(ContribKernels, AttentionRejectsBadMaskShapes) {
  Net n;
  n.feed("x", {2, 3, 4}, std::vector<float>(24, 0.1f));
  n.constant("w", {4, 12}, std::vector<float>(48, 0.1f));
  n.constant("b", {12}, std::vector<float>(12, 0.f));
  n.feed_i32("mask", {2, 4}, std::vector<int32_t>(8, 1));  // T is 3
  set_attr(n.contrib("Attention", {"x", "w", "b", "mask"}, {"y"}), "num_heads", int64_t{2});
  n.output("y");
  std::string err = error_of([&] { n.run(); });
  EXPECT_NE(err.find("mask_index [2,4] is not supported"), std::string::npos) << err;
}

// past_present_share_buffer: the node reads past from a buffer of M rows per head (the first P
// of them the past, the rest junk it must not read), writes present into the same layout, and
// leaves rows after P + S as they were. The reference is the plain Attention over a [.., P, ..]
// past; `activation_past`: the buffer is made by a node (so the runtime can hand it over to
// present), else it is a graph input (so present is a copy). `view_past`: an Identity of a graph
// input (a read-only view of the feed: present is a copy, and the feed keeps its bytes).
struct SharedCase {
  const char* name;
  int64_t B, S, P, M;
  bool full_width_mask;  // mask [B, M] (fixed width) instead of [B, P + S]
  bool activation_past;
  int64_t narrow = 0;    // the mask this much narrower than P + S: its last keys count as masked
  bool view_past = false;
};

void check_shared_attention(const SharedCase& c) {
  SCOPED_TRACE(std::string("shared past/present: ") + c.name);
  std::mt19937 rng(23);
  const int64_t B = c.B, S = c.S, P = c.P, M = c.M, N = 2, D = 4, H = N * D, T = P + S;
  Net n;
  n.feed("x", {B, S, H}, random_floats(B * S * H, rng));
  n.constant("w", {H, 3 * H}, random_floats(H * 3 * H, rng, -0.5f, 0.5f));
  n.constant("b", {3 * H}, random_floats(3 * H, rng));
  const std::vector<float> past = random_floats(2 * B * N * P * D, rng);
  std::vector<float> buf = random_floats(2 * B * N * M * D, rng, 50.f, 60.f);  // junk rows
  for (int64_t h = 0; h < 2 * B * N; ++h)
    std::copy_n(past.begin() + h * P * D, P * D, buf.begin() + h * M * D);
  n.feed("past", {2, B, N, P, D}, past);
  n.feed(c.activation_past || c.view_past ? "buf_in" : "buf", {2, B, N, M, D}, buf);
  if (c.activation_past) {
    n.scalar("zero", 0.f);
    n.node("Add", {"buf_in", "zero"}, {"buf"});
  }
  if (c.view_past) n.node("Identity", {"buf_in"}, {"buf"});
  n.feed_i32("psl", {1}, {static_cast<int32_t>(P)});
  MaskData m = make_mask(Mask::Raw2D, B, S, P, /*causal=*/true);
  const int64_t W = c.full_width_mask ? M : T - c.narrow;
  std::vector<int32_t> wide(B * W, 0);  // entries after P + S mask everything if read
  for (int64_t b = 0; b < B; ++b)
    std::copy_n(m.values.begin() + b * T, std::min(T, W), wide.begin() + b * W);
  for (int64_t b = 0; b < B; ++b)  // keys the narrow mask does not reach: masked
    for (int64_t s = 0; s < S; ++s)
      for (int64_t j = W; j < T; ++j)
        m.bias[(b * S + s) * T + j] = kFilter + (j > P + s ? kFilter : 0.f);
  n.feed_i32("mask", {B, W}, wide);
  n.feed("mask_bias", {B, 1, S, T}, m.bias);
  auto* a = n.contrib("Attention", {"x", "w", "b", "mask", "buf", "", "psl"}, {"y", "present"});
  set_attr(a, "num_heads", N);
  set_attr(a, "unidirectional", int64_t{1});
  set_attr(a, "past_present_share_buffer", int64_t{1});

  n.node("MatMul", {"x", "w"}, {"qkv0"});
  n.node("Add", {"qkv0", "b"}, {"qkv"});
  n.ints("split", {H, H, H});
  set_attr(n.node("Split", {"qkv", "split"}, {"q", "k", "v"}), "axis", int64_t{2});
  n.ints("split_past", {1, 1});
  n.ints("axis0", {0});
  set_attr(n.node("Split", {"past", "split_past"}, {"pk5", "pv5"}), "axis", int64_t{0});
  n.node("Squeeze", {"pk5", "axis0"}, {"pk"});
  n.node("Squeeze", {"pv5", "axis0"}, {"pv"});
  attention_reference(n, "q", "k", "v", B, S, S, N, D, D, "pk", "pv", "mask_bias", "",
                      1.f / std::sqrt(static_cast<float>(D)));
  n.node("Unsqueeze", {"ref_k", "axis0"}, {"ref_k5"});
  n.node("Unsqueeze", {"ref_v", "axis0"}, {"ref_v5"});
  set_attr(n.node("Concat", {"ref_k5", "ref_v5"}, {"ref_present"}), "axis", int64_t{0});
  for (const char* o : {"y", "ref", "present", "ref_present"}) n.output(o);
  auto outs = n.run();
  EXPECT_AGREE(outs, "y", "ref", kTol);
  ASSERT_EQ(outs.at("present")->dims, (Shape{2, B, N, M, D}));
  const std::vector<float> got = as_floats(*outs.at("present"));
  const std::vector<float> want = as_floats(*outs.at("ref_present"));
  float worst = 0;
  size_t junk_changed = 0;
  for (int64_t h = 0; h < 2 * B * N; ++h)
    for (int64_t r = 0; r < M; ++r)
      for (int64_t d = 0; d < D; ++d) {
        const float g = got[(h * M + r) * D + d];
        if (r < T)
          worst = std::max(worst, std::fabs(g - want[(h * T + r) * D + d]));
        else
          junk_changed += g != buf[(h * M + r) * D + d];
      }
  EXPECT_LT(worst, kTol) << "present rows [0, P + S)";
  EXPECT_EQ(junk_changed, 0u) << "present rows after P + S must stay as they were";
  if (c.view_past) EXPECT_EQ(as_floats(n.fed("buf_in")), buf) << "the fed buffer was written";
}

TEST(ContribKernels, AttentionSharedPastPresentBuffer) {
  const SharedCase cases[] = {
      {"decode step, mask [B, P+S]", 2, 1, 3, 8, false, false},
      {"decode step, fixed-width mask [B, M]", 2, 1, 3, 8, true, false},
      {"prompt into an empty buffer", 2, 4, 0, 6, true, false},
      {"buffer exactly full", 1, 2, 5, 7, false, false},
      {"buffer handed over in place", 3, 1, 4, 9, true, true},
      {"buffer a view of the feed: copied", 2, 1, 3, 8, true, false, 0, true},
      {"mask narrower than P + S", 2, 2, 3, 8, false, false, 2},
  };
  for (const SharedCase& c : cases) check_shared_attention(c);
}

TEST(ContribKernels, AttentionSharedBufferErrors) {
  auto run_with = [](std::vector<int32_t> psl, bool give_psl) {
    Net n;
    n.feed("x", {1, 2, 4}, std::vector<float>(8, 0.1f));
    n.constant("w", {4, 12}, std::vector<float>(48, 0.1f));
    n.constant("b", {12}, std::vector<float>(12, 0.f));
    n.feed("buf", {2, 1, 2, 5, 2}, std::vector<float>(40, 0.f));
    if (give_psl) n.feed_i32("psl", {static_cast<int64_t>(psl.size())}, psl);
    auto* a = n.contrib("Attention", {"x", "w", "b", "", "buf", "", give_psl ? "psl" : ""},
                        {"y", "present"});
    set_attr(a, "num_heads", int64_t{2});
    set_attr(a, "past_present_share_buffer", int64_t{1});
    n.output("y");
    n.output("present");
    return error_of([&] { n.run(); });
  };
  std::string err = run_with({}, false);
  EXPECT_NE(err.find("needs past_sequence_length (input 6), one value"), std::string::npos) << err;
  err = run_with({1, 2}, true);
  EXPECT_NE(err.find("needs past_sequence_length (input 6), one value"), std::string::npos) << err;
  err = run_with({4}, true);  // 4 + 2 > 5
  EXPECT_NE(err.find("past_sequence_length 4 + sequence 2 does not fit the shared past/present "
                     "buffer of 5 rows"),
            std::string::npos)
      << err;
  EXPECT_EQ(run_with({3}, true), "");
}

enum class Form { Separate, PackedQKV, PackedKV, HeadsKV };

struct MhaCase {
  const char* name;
  int64_t B, S, L, N, D, Dvh;
  Form form = Form::Separate;
  bool bias = true;
  int64_t P = 0;
  Mask mask = Mask::None;
  bool causal = false;
  int ab = 0;
  bool present = false;
};

void check_mha(const MhaCase& c) {
  SCOPED_TRACE(std::string("MultiHeadAttention case ") + c.name);
  std::mt19937 rng(23);
  const int64_t B = c.B, S = c.S, L = c.L, N = c.N, D = c.D, Dvh = c.Dvh, P = c.P, T = P + L;
  const int64_t Dq = N * D, Dv = N * Dvh;
  std::vector<float> q = random_floats(B * S * Dq, rng), k = random_floats(B * L * Dq, rng),
                     v = random_floats(B * L * Dv, rng);
  Net n;
  n.feed("q", {B, S, Dq}, q);
  n.feed("k", {B, L, Dq}, k);
  n.feed("v", {B, L, Dv}, v);
  std::vector<std::string> ins;
  switch (c.form) {
    case Form::Separate:
      ins = {"q", "k", "v"};
      break;
    case Form::PackedQKV: {
      std::vector<float> qkv(B * S * N * 3 * D);
      for (int64_t r = 0; r < B * S; ++r)
        for (int64_t h = 0; h < N; ++h)
          for (int64_t d = 0; d < D; ++d) {
            qkv[((r * N + h) * 3 + 0) * D + d] = q[r * Dq + h * D + d];
            qkv[((r * N + h) * 3 + 1) * D + d] = k[r * Dq + h * D + d];
            qkv[((r * N + h) * 3 + 2) * D + d] = v[r * Dv + h * D + d];
          }
      n.feed("qkv", {B, S, N, 3, D}, qkv);
      ins = {"qkv", "", ""};
      break;
    }
    case Form::PackedKV: {
      std::vector<float> kv(B * L * N * 2 * D);
      for (int64_t r = 0; r < B * L; ++r)
        for (int64_t h = 0; h < N; ++h)
          for (int64_t d = 0; d < D; ++d) {
            kv[((r * N + h) * 2 + 0) * D + d] = k[r * Dq + h * D + d];
            kv[((r * N + h) * 2 + 1) * D + d] = v[r * Dv + h * D + d];
          }
      n.feed("kv", {B, L, N, 2, D}, kv);
      ins = {"q", "kv", ""};
      break;
    }
    case Form::HeadsKV: {
      std::vector<float> k4(B * N * L * D), v4(B * N * L * Dvh);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < N; ++h)
          for (int64_t l = 0; l < L; ++l) {
            for (int64_t d = 0; d < D; ++d)
              k4[((b * N + h) * L + l) * D + d] = k[(b * L + l) * Dq + h * D + d];
            for (int64_t d = 0; d < Dvh; ++d)
              v4[((b * N + h) * L + l) * Dvh + d] = v[(b * L + l) * Dv + h * Dvh + d];
          }
      n.feed("k4", {B, N, L, D}, k4);
      n.feed("v4", {B, N, L, Dvh}, v4);
      ins = {"q", "k4", "v4"};
      break;
    }
  }
  std::string qn = "q", kn = "k", vn = "v";
  if (c.bias) {
    std::vector<float> bq = random_floats(Dq, rng), bk = random_floats(Dq, rng),
                       bv = random_floats(Dv, rng);
    if (c.form == Form::HeadsKV) {  // key/value already projected: only Q's bias matters
      std::fill(bk.begin(), bk.end(), 0.f);
      std::fill(bv.begin(), bv.end(), 0.f);
    }
    std::vector<float> all = bq;
    all.insert(all.end(), bk.begin(), bk.end());
    all.insert(all.end(), bv.begin(), bv.end());
    n.constant("bias", {2 * Dq + Dv}, all);
    n.constant("bq", {Dq}, bq);
    n.node("Add", {"q", "bq"}, {"qb"});
    qn = "qb";
    if (c.form != Form::HeadsKV) {
      n.constant("bk", {Dq}, bk);
      n.constant("bv", {Dv}, bv);
      n.node("Add", {"k", "bk"}, {"kb"});
      n.node("Add", {"v", "bv"}, {"vb"});
      kn = "kb", vn = "vb";
    }
  }
  ins.push_back(c.bias ? "bias" : "");
  // The mask is over T keys per query; make_mask's (S, P) pair describes T = P + S keys, so
  // cross attention (L != S) is given the key length through P' = T - S.
  MaskData m = make_mask(c.mask, B, S, T - S, c.causal);
  if (c.mask != Mask::None) n.feed_i32("kpm", m.dims, m.values);
  ins.push_back(c.mask != Mask::None ? "kpm" : "");
  const bool any_bias = c.mask != Mask::None || c.causal;
  if (any_bias) n.feed("mask_bias", {B, 1, S, T}, m.bias);
  Shape ab_dims = c.ab == 1 ? Shape{1, N, S, T} : Shape{B, 1, S, T};
  if (c.ab) n.feed("ab", ab_dims, random_floats(count(ab_dims), rng, -2.f, 2.f));
  ins.push_back(c.ab ? "ab" : "");
  if (P) {
    n.feed("past_k", {B, N, P, D}, random_floats(B * N * P * D, rng));
    n.feed("past_v", {B, N, P, Dvh}, random_floats(B * N * P * Dvh, rng));
    ins.push_back("past_k");
    ins.push_back("past_v");
  }
  const bool want_present = P || c.present;
  auto* node = n.contrib("MultiHeadAttention", ins,
                         want_present ? std::vector<std::string>{"y", "present_k", "present_v"}
                                      : std::vector<std::string>{"y"});
  set_attr(node, "num_heads", N);
  if (c.causal) set_attr(node, "unidirectional", int64_t{1});
  attention_reference(n, qn, kn, vn, B, S, L, N, D, Dvh, P ? "past_k" : "", P ? "past_v" : "",
                      any_bias ? "mask_bias" : "", c.ab ? "ab" : "",
                      1.f / std::sqrt(static_cast<float>(D)));
  n.output("y");
  n.output("ref");
  if (want_present) {
    for (const char* o : {"present_k", "present_v", "ref_k", "ref_v"}) n.output(o);
  }
  auto outs = n.run();
  EXPECT_EQ(outs.at("y")->dims, (Shape{B, S, Dv}));
  EXPECT_AGREE(outs, "y", "ref", kTol);
  if (want_present) {
    EXPECT_AGREE(outs, "present_k", "ref_k", kTol);
    EXPECT_AGREE(outs, "present_v", "ref_v", kTol);
  }
}

TEST(ContribKernels, MultiHeadAttentionMatchesTheUnfusedSubgraph) {
  const MhaCase cases[] = {
      {"self, bias", 2, 4, 4, 2, 4, 4},
      {"cross, no bias, v head differs", 2, 3, 6, 3, 2, 5, Form::Separate, false},
      {"sequence 1", 3, 1, 1, 2, 3, 3},
      {"packed QKV", 2, 5, 5, 3, 4, 4, Form::PackedQKV},
      {"packed KV, cross", 2, 3, 7, 2, 4, 4, Form::PackedKV},
      {"key/value split into heads", 2, 3, 5, 2, 4, 6, Form::HeadsKV, true, 0, Mask::None, false, 0,
       true},
      {"large", 2, 40, 40, 4, 16, 16},
  };
  for (const MhaCase& c : cases) check_mha(c);
}

TEST(ContribKernels, MultiHeadAttentionMasksPastAndBias) {
  const MhaCase cases[] = {
      {"key padding [B, L]", 3, 4, 6, 2, 4, 4, Form::Separate, true, 0, Mask::Raw2D},
      {"key lengths [B]", 3, 4, 6, 2, 4, 4, Form::Separate, true, 0, Mask::End},
      {"mask [B, S, T]", 2, 3, 5, 2, 4, 4, Form::Separate, true, 0, Mask::Raw3D},
      {"causal with past", 2, 3, 3, 2, 4, 4, Form::Separate, true, 4, Mask::None, true},
      {"decode step, past, padding", 3, 1, 1, 2, 4, 4, Form::Separate, true, 5, Mask::Raw2D, true},
      {"attention bias [1, N, S, T]", 2, 3, 4, 2, 4, 4, Form::Separate, true, 0, Mask::None, false,
       1},
      {"attention bias [B, 1, S, T], past, present", 2, 2, 2, 2, 4, 4, Form::Separate, true, 3,
       Mask::End, true, 2},
      {"present without past", 2, 3, 3, 2, 4, 4, Form::Separate, true, 0, Mask::None, false, 0,
       true},
  };
  for (const MhaCase& c : cases) check_mha(c);
}

// float16 models run through the same kernels in float32: results within float16 precision of
// the float32 model's.
TEST(ContribKernels, Float16InputsComputeInFloat32) {
  auto build = [](int elem) {
    std::mt19937 rng(29);
    Net n;
    n.feed("x", {2, 3, 8}, random_floats(48, rng), elem);
    n.feed("skip", {2, 3, 8}, random_floats(48, rng), elem);
    n.constant("gamma", {8}, random_floats(8, rng, 0.5f, 1.5f), elem);
    n.constant("beta", {8}, random_floats(8, rng), elem);
    n.constant("w", {8, 24}, random_floats(192, rng, -0.5f, 0.5f), elem);
    n.constant("b", {24}, random_floats(24, rng), elem);
    n.feed_i32("mask", {2, 3}, {1, 1, 1, 1, 1, 0});
    n.contrib("SkipLayerNormalization", {"x", "skip", "gamma", "beta"}, {"ln", "", "", "sum"});
    set_attr(n.contrib("Attention", {"ln", "w", "b", "mask"}, {"att", "present"}), "num_heads",
             int64_t{2});
    n.contrib("FastGelu", {"att", "beta"}, {"fg"});
    n.contrib("Gelu", {"fg"}, {"y"});
    for (const char* o : {"y", "sum", "present"}) n.output(o, elem);
    return n.run();
  };
  auto o32 = build(F);
  auto o16 = build(F16);
  for (const char* o : {"y", "sum", "present"}) {
    SCOPED_TRACE(o);
    ASSERT_EQ(o16.at(o)->type, TFH_TYPE_FLOAT16);
    std::vector<float> a = as_floats(*o32.at(o)), b = as_floats(*o16.at(o));
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 2e-2f) << i;
  }
}

}  // namespace
}  // namespace tfh::runtime

namespace tfh::runtime {
namespace {


// MatMul with a constant float16 (or bfloat16) B [K, N] — kept 16-bit and transposed by the
// kernel, read directly for up to 4 rows of A, widened for more — against the same product in
// float32 (B fed as an input: the plain GEMM). Awkward sizes: K not a multiple of 8, N not of 4.
TEST(HalfWeightKernels, MatMulMatchesFloatForFewAndManyRows) {
  for (const int elem : {F16, static_cast<int>(onnx::TensorProto::BFLOAT16)}) {
    for (int64_t m : {1, 2, 3, 4, 5, 9}) {
      for (auto [K, N] : {std::pair<int64_t, int64_t>{13, 10}, {16, 8}, {37, 67}}) {
        SCOPED_TRACE("m " + std::to_string(m) + " K " + std::to_string(K) + " N " +
                     std::to_string(N) + (elem == F16 ? " float16" : " bfloat16"));
        std::mt19937 rng(static_cast<unsigned>(m * 100 + K));
        std::vector<float> a = half_exact(random_floats(m * K, rng));
        std::vector<float> w = random_floats(K * N, rng);
        for (float& x : w)
          x = elem == F16 ? tfh::to_float(tfh::to_float16(x)) : tfh::to_float(tfh::to_bfloat16(x));
        Net n;
        n.feed("a", {m, K}, a);
        n.feed("wf", {K, N}, w);
        n.node("MatMul", {"a", "wf"}, {"want"});
        n.feed("a16", {m, K}, a, F16);
        if (elem == F16) {
          n.constant("w16", {K, N}, w, F16);
          n.node("MatMul", {"a16", "w16"}, {"got16"});
          n.node("Cast", {"got16"}, {"got"});
        } else {
          onnx::TensorProto t = float_tensor("wb", {K, N}, w);
          std::string raw;
          for (float x : w) {
            const uint16_t b = tfh::to_bfloat16(x).bits;
            raw.append(reinterpret_cast<const char*>(&b), 2);
          }
          t.clear_float_data();
          t.set_data_type(onnx::TensorProto::BFLOAT16);
          t.set_raw_data(raw);
          *n.g().add_initializer() = t;
          n.node("Cast", {"a16"}, {"abf"});
          set_attr(n.g().mutable_node(n.g().node_size() - 1), "to",
                   static_cast<int64_t>(onnx::TensorProto::BFLOAT16));
          n.node("MatMul", {"abf", "wb"}, {"gotb"});
          n.node("Cast", {"gotb"}, {"got"});
        }
        set_attr(n.g().mutable_node(n.g().node_size() - 1), "to", static_cast<int64_t>(F));
        n.output("want");
        n.output("got");
        const Outputs outs = n.run();
        // Only the output's rounding to 16 bits differs (|y| < 10 here).
        EXPECT_AGREE(outs, "got", "want", elem == F16 ? 1e-2f : 8e-2f);
      }
    }
  }
}

// Attention with float16 weights: the QKV product through the 16-bit kernel (few rows: one
// decoding token per row) and the widened one (more rows), against float32 weights.
TEST(HalfWeightKernels, AttentionWithFloat16WeightsMatchesFloat) {
  for (auto [B, S] : {std::pair<int64_t, int64_t>{1, 1}, {2, 2}, {4, 1}, {1, 5}, {2, 7}}) {
    SCOPED_TRACE("B " + std::to_string(B) + " S " + std::to_string(S));
    const int64_t H = 16, N = 2;
    std::mt19937 rng(static_cast<unsigned>(B * 10 + S));
    std::vector<float> x = half_exact(random_floats(B * S * H, rng));
    std::vector<float> w = half_exact(random_floats(H * 3 * H, rng, -0.5f, 0.5f));
    std::vector<float> b = half_exact(random_floats(3 * H, rng));
    Net n;
    n.feed("x", {B, S, H}, x);
    n.constant("w", {H, 3 * H}, w);
    n.constant("b", {3 * H}, b);
    set_attr(n.contrib("Attention", {"x", "w", "b"}, {"want"}), "num_heads", N);
    n.feed("x16", {B, S, H}, x, F16);
    n.constant("w16", {H, 3 * H}, w, F16);
    n.constant("b16", {3 * H}, b, F16);
    set_attr(n.contrib("Attention", {"x16", "w16", "b16"}, {"got16"}), "num_heads", N);
    n.output("want");
    n.output("got16", F16);
    const Outputs outs = n.run();
    EXPECT_AGREE(outs, "got16", "want", 1e-2f);
  }
}

}  // namespace
}  // namespace tfh::runtime

namespace tfh::runtime {
namespace {

// A float16 weight too large to pack (an LM head: over 64 MB as float): 8 rows go through the
// 16-bit kernel in passes of 4, 40 rows through a widened copy; both against float32.
TEST(HalfWeightKernels, MatMulWithAWeightTooLargeToPack) {
  const int64_t K = 2048, N = 8200;  // 16.8M elements: 67 MB as float
  std::mt19937 rng(5);
  std::vector<float> w = half_exact(random_floats(K * N, rng, -0.05f, 0.05f));
  for (int64_t m : {8, 40}) {
    SCOPED_TRACE("m " + std::to_string(m));
    std::vector<float> a = half_exact(random_floats(m * K, rng));
    Net n;
    n.feed("a", {m, K}, a);
    n.feed("wf", {K, N}, w);
    n.node("MatMul", {"a", "wf"}, {"want"});
    n.feed("a16", {m, K}, a, F16);
    n.constant("w16", {K, N}, w, F16);
    n.node("MatMul", {"a16", "w16"}, {"got"});
    n.output("want");
    n.output("got", F16);
    const Outputs outs = n.run();
    EXPECT_AGREE(outs, "got", "want", 1e-2f);
  }
}

}  // namespace
}  // namespace tfh::runtime
