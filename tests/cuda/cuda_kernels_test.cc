// tfhost's CUDA kernels (kernels/cuda) against its CPU kernels for the same op: each case runs a
// one-node model through the CPU runtime and the CUDA launcher on the same inputs, in float32 and
// float16, on the usual transformer shapes and awkward ones (odd widths, single rows, widths below
// and above a block). Skipped, with the reason, when this machine has no CUDA GPU.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "host/plugin/registry.h"
#include "host/runtime/inputs.h"
#include "host/runtime/kernel_registry.h"
#include "host/runtime/measure.h"
#include "host/runtime/session.h"
#include "host/runtime/tensor_io.h"
#include "support/test_util.h"
#include "ir/ir_test_util.h"
#include "kernels/common/device_info.h"
#include "kernels/cuda/cuda_kernels.h"
#include "tfhost/core.hpp"

namespace tfh::kernels::cuda {
namespace {

using namespace tfh::ir::test;
using Shape = std::vector<int64_t>;
using Floats = std::vector<float>;
constexpr int F32 = onnx::TensorProto::FLOAT, F16 = onnx::TensorProto::FLOAT16,
              I32 = onnx::TensorProto::INT32;

int64_t count(const Shape& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

Floats random_floats(int64_t n, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  Floats v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}
// The values as the type stores them (float16: rounded), so both engines see the same numbers.
Floats stored(Floats v, int elem) {
  if (elem == F16)
    for (float& x : v) x = to_float(to_float16(x));
  return v;
}

struct In {
  std::string name;
  Shape dims;
  Floats values;
  int elem = F32;  // F32, F16 or I32 (values then hold the integers)
};

// Runs one node on tfhost's CPU runtime; the outputs as floats.
std::vector<Floats> cpu_node(const std::string& op, const std::string& domain, int64_t opset,
                             const std::vector<In>& ins, const std::vector<std::string>& outs,
                             const std::function<void(onnx::NodeProto*)>& attrs = {}) {
  onnx::ModelProto m = new_model();
  m.mutable_opset_import(0)->set_version(opset);
  onnx::GraphProto& g = *m.mutable_graph();
  std::vector<std::string> in_names;
  for (const In& in : ins) {
    in_names.push_back(in.name);
    if (!in.name.empty()) *g.add_input() = tensor_info(in.name, in.elem, in.dims);
  }
  onnx::NodeProto* n = add_node(g, op, in_names, outs, "node", domain);
  if (attrs) attrs(n);
  for (const std::string& o : outs)
    if (!o.empty()) {
      auto* vi = g.add_output();
      vi->set_name(o);
    }
  TempDir tmp;
  write_model(m, tmp / "m.onnx");
  auto model = ir::Model::load(tmp / "m.onnx");
  model->infer_shapes();
  const runtime::KernelRegistry kernels;
  runtime::Session s(*model, kernels);
  std::vector<std::unique_ptr<runtime::HostTensor>> held;
  std::vector<std::pair<std::string, const runtime::HostTensor*>> feeds;
  for (const In& in : ins) {
    if (in.name.empty()) continue;
    std::unique_ptr<runtime::HostTensor> t;
    if (in.elem == I32) {
      t = runtime::make_tensor(TFH_TYPE_INT32, in.dims);
      for (size_t i = 0; i < in.values.size(); ++i)
        reinterpret_cast<int32_t*>(t->storage.get())[i] = static_cast<int32_t>(in.values[i]);
    } else {
      t = runtime::make_tensor(TFH_TYPE_FLOAT, in.dims);
      std::memcpy(t->storage.get(), in.values.data(), in.values.size() * 4);
      if (in.elem == F16) t = runtime::convert_tensor(*t, TFH_TYPE_FLOAT16);
    }
    feeds.emplace_back(in.name, t.get());
    held.push_back(std::move(t));
  }
  std::vector<Floats> result;
  for (const auto& t : s.run(feeds)) {
    auto f = t->type == TFH_TYPE_FLOAT ? runtime::copy_tensor(*t) : runtime::convert_tensor(*t, TFH_TYPE_FLOAT);
    const float* p = static_cast<const float*>(f->data);
    result.emplace_back(p, p + f->num_elements);
  }
  return result;
}

// A device buffer holding floats as float or float16.
class Dev {
 public:
  Dev(const Floats& v, int elem) : n_(v.size()), elem_(elem) {
    const size_t bytes = n_ * (elem == F16 ? 2 : 4);
    check(cudaMalloc(&p_, std::max<size_t>(bytes, 1)), "cudaMalloc");
    if (elem == F16) {
      std::vector<uint16_t> h(n_);
      for (size_t i = 0; i < n_; ++i) h[i] = to_float16(v[i]).bits;
      check(cudaMemcpy(p_, h.data(), bytes, cudaMemcpyHostToDevice), "upload");
    } else {
      check(cudaMemcpy(p_, v.data(), bytes, cudaMemcpyHostToDevice), "upload");
    }
  }
  Dev(size_t n, int elem) : Dev(Floats(n, 0.f), elem) {}
  ~Dev() { cudaFree(p_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  void* get() const { return p_; }
  Floats read() const {
    check(cudaDeviceSynchronize(), "synchronize");
    Floats out(n_);
    if (elem_ == F16) {
      std::vector<uint16_t> h(n_);
      check(cudaMemcpy(h.data(), p_, n_ * 2, cudaMemcpyDeviceToHost), "download");
      for (size_t i = 0; i < n_; ++i) out[i] = to_float(Float16{h[i]});
    } else {
      check(cudaMemcpy(out.data(), p_, n_ * 4, cudaMemcpyDeviceToHost), "download");
    }
    return out;
  }

 private:
  void* p_ = nullptr;
  size_t n_;
  int elem_;
};

// A key mask (0/1 values) as device int32.
class DevMask {
 public:
  explicit DevMask(const Floats& mask) {
    std::vector<int32_t> v(mask.begin(), mask.end());
    check(cudaMalloc(&p_, std::max<size_t>(v.size(), 1) * 4), "cudaMalloc");
    check(cudaMemcpy(p_, v.data(), v.size() * 4, cudaMemcpyHostToDevice), "upload");
  }
  ~DevMask() { cudaFree(p_); }
  DevMask(const DevMask&) = delete;
  DevMask& operator=(const DevMask&) = delete;
  const int32_t* get() const { return static_cast<const int32_t*>(p_); }

 private:
  void* p_ = nullptr;
};

float max_diff(const Floats& a, const Floats& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    if (!(d <= m)) m = d;  // NaN counts as a failure
  }
  return m;
}

TfhDataType type_of(int elem) { return elem == F16 ? TFH_TYPE_FLOAT16 : TFH_TYPE_FLOAT; }
float tol(int elem) { return elem == F16 ? 2e-2f : 1e-4f; }
std::string name_of(int elem) { return elem == F16 ? "float16" : "float32"; }

// num_heads, and unidirectional when causal: the attributes of the CPU attention node.
std::function<void(onnx::NodeProto*)> attention_attrs(int64_t heads, bool causal) {
  return [heads, causal](onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name("num_heads");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(heads);
    if (causal) {
      a = n->add_attribute();
      a->set_name("unidirectional");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(1);
    }
  };
}

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA GPU here (" << describe_devices() << ")";
  }
};

// Rows x width cases: BERT-base rows, an odd width, one row, a width past two blocks.
const std::vector<std::pair<int64_t, int64_t>> kRowShapes = {{256, 768}, {3, 33}, {1, 1}, {5, 1000}};

TEST_F(CudaKernels, SkipLayerNormWithBiasAndSumAgainstCpu) {
  for (int elem : {F32, F16})
    for (auto [rows, cols] : kRowShapes) {
      SCOPED_TRACE(name_of(elem) + " " + std::to_string(rows) + "x" + std::to_string(cols));
      std::mt19937 rng(static_cast<unsigned>(rows + cols));
      const Floats x = stored(random_floats(rows * cols, rng), elem),
                   skip = stored(random_floats(rows * cols, rng), elem),
                   gamma = stored(random_floats(cols, rng), elem),
                   beta = stored(random_floats(cols, rng), elem),
                   bias = stored(random_floats(cols, rng), elem);
      const auto want = cpu_node(
          "SkipLayerNormalization", "com.microsoft", 17,
          {{"x", {1, rows, cols}, x, elem}, {"skip", {1, rows, cols}, skip, elem},
           {"gamma", {cols}, gamma, elem}, {"beta", {cols}, beta, elem},
           {"bias", {cols}, bias, elem}},
          {"y", "", "", "sum"}, [](onnx::NodeProto* n) {
            auto* a = n->add_attribute();
            a->set_name("epsilon");
            a->set_type(onnx::AttributeProto::FLOAT);
            a->set_f(1e-5f);
          });
      Dev dx(x, elem), ds(skip, elem), dg(gamma, elem), db(beta, elem), dbias(bias, elem),
          dy(x.size(), elem), dsum(x.size(), elem);
      layer_norm(type_of(elem), dx.get(), ds.get(), dbias.get(), dg.get(), db.get(), 1e-5f,
                 dy.get(), dsum.get(), rows, cols, nullptr);
      EXPECT_LT(max_diff(dy.read(), want[0]), tol(elem));
      EXPECT_LT(max_diff(dsum.read(), want[1]), tol(elem));
    }
}

TEST_F(CudaKernels, GeluFamilyAgainstCpu) {
  for (int elem : {F32, F16})
    for (auto [rows, cols] : kRowShapes)
      for (const char* op : {"Gelu", "FastGelu", "BiasGelu"}) {
        SCOPED_TRACE(std::string(op) + " " + name_of(elem) + " " + std::to_string(rows) + "x" +
                     std::to_string(cols));
        std::mt19937 rng(static_cast<unsigned>(rows * 7 + cols));
        const Floats x = stored(random_floats(rows * cols, rng, -4.f, 4.f), elem),
                     bias = stored(random_floats(cols, rng), elem);
        const bool with_bias = std::string(op) != "Gelu";
        std::vector<In> ins = {{"x", {rows, cols}, x, elem}};
        if (with_bias) ins.push_back({"bias", {cols}, bias, elem});
        const auto want = cpu_node(op, "com.microsoft", 17, ins, {"y"});
        Dev dx(x, elem), db(bias, elem), dy(x.size(), elem);
        gelu(type_of(elem), std::string(op) == "FastGelu" ? GeluKind::Tanh : GeluKind::Erf,
             dx.get(), with_bias ? db.get() : nullptr, dy.get(), rows, cols, nullptr);
        EXPECT_LT(max_diff(dy.read(), want[0]), elem == F16 ? 3e-2f : 1e-4f);
      }
}

TEST_F(CudaKernels, SoftmaxAndCastAgainstCpu) {
  for (int elem : {F32, F16})
    for (auto [rows, cols] : kRowShapes) {
      SCOPED_TRACE(name_of(elem) + " " + std::to_string(rows) + "x" + std::to_string(cols));
      std::mt19937 rng(static_cast<unsigned>(rows * 3 + cols));
      const Floats x = stored(random_floats(rows * cols, rng, -8.f, 8.f), elem);
      const auto want = cpu_node("Softmax", "", 13, {{"x", {rows, cols}, x, elem}}, {"y"});
      Dev dx(x, elem), dy(x.size(), elem);
      softmax(type_of(elem), dx.get(), dy.get(), rows, cols, nullptr);
      EXPECT_LT(max_diff(dy.read(), want[0]), elem == F16 ? 2e-3f : 1e-6f);
    }
  std::mt19937 rng(3);
  const Floats x = random_floats(1001, rng, -70000.f, 70000.f);  // past float16's range too
  const auto want = cpu_node("Cast", "", 13, {{"x", {1001}, x, F32}}, {"y"}, [](onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name("to");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(F16);
  });
  Dev dx(x, F32), dy(x.size(), F16), back(x.size(), F32);
  cast(TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16, dx.get(), dy.get(), 1001, nullptr);
  cast(TFH_TYPE_FLOAT16, TFH_TYPE_FLOAT, dy.get(), back.get(), 1001, nullptr);
  const Floats got = dy.read(), round_trip = back.read();
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i], want[0][i]) << x[i];  // the same rounding, inf beyond 65504 included
    EXPECT_EQ(round_trip[i], got[i]);
  }
}

TEST_F(CudaKernels, LtGemmWithBiasAndTransposedWeightsAgainstCpu) {
  LtGemm gemm;
  void* ws = nullptr;
  check(cudaMalloc(&ws, LtGemm::kWorkspaceBytes), "workspace");
  for (int elem : {F32, F16})
    for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{128, 768, 3072}, {3, 17, 5},
                           {1, 768, 768}, {7, 64, 2304}}) {
      SCOPED_TRACE(name_of(elem) + " " + std::to_string(m) + "x" + std::to_string(k) + "x" +
                   std::to_string(n));
      std::mt19937 rng(static_cast<unsigned>(m + k + n));
      const Floats a = stored(random_floats(m * k, rng), elem),
                   w = stored(random_floats(k * n, rng, -0.1f, 0.1f), elem),
                   bias = stored(random_floats(n, rng), elem);
      // CPU: Gemm with C = bias; transB = 1 with W transposed on the host.
      Floats wt(w.size());
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < n; ++j) wt[j * k + i] = w[i * n + j];
      const auto want = cpu_node("Gemm", "", 13,
                                 {{"a", {m, k}, a, elem}, {"w", {k, n}, w, elem},
                                  {"bias", {n}, bias, elem}},
                                 {"y"});
      Dev da(a, elem), dw(w, elem), dwt(wt, elem), db(bias, elem), dy(m * n, elem),
          dy2(m * n, elem);
      gemm.run(type_of(elem), m, n, k, da.get(), dw.get(), false, dy.get(), Epilogue::Bias,
               db.get(), ws, LtGemm::kWorkspaceBytes, nullptr);
      gemm.run(type_of(elem), m, n, k, da.get(), dwt.get(), true, dy2.get(), Epilogue::Bias,
               db.get(), ws, LtGemm::kWorkspaceBytes, nullptr);
      const float t = elem == F16 ? 5e-2f : 1e-3f;
      EXPECT_LT(max_diff(dy.read(), want[0]), t);
      EXPECT_LT(max_diff(dy2.read(), want[0]), t);
    }
  EXPECT_EQ(gemm.cached_plans(), 16u);  // one immutable plan per shape, type, layout and bias
  cudaFree(ws);
}

// The fused attention kernels against the CPU MultiHeadAttention with key/value already split
// into heads ([B, N, T, D]) and a raw key padding mask.
TEST_F(CudaKernels, AttentionAndDecodeAgainstCpu) {
  struct Case {
    int64_t B, S, T, N, D;
    bool causal;
  };
  for (int elem : {F32, F16})
    for (const Case& c : {Case{2, 128, 128, 12, 64, false}, Case{1, 7, 7, 2, 32, true},
                          Case{3, 1, 129, 4, 64, false}, Case{2, 65, 65, 1, 128, true},
                          Case{1, 1, 1, 1, 64, false}, Case{2, 8, 8, 4, 16, true},
                          Case{1, 5, 5, 3, 48, false}, Case{1, 1, 300, 2, 80, true},
                          Case{2, 1, 64, 2, 64, true}}) {  // (a shared buffer of 67: an empty chunk)
      SCOPED_TRACE(name_of(elem) + " B" + std::to_string(c.B) + " S" + std::to_string(c.S) +
                   " T" + std::to_string(c.T) + " N" + std::to_string(c.N) + " D" +
                   std::to_string(c.D) + (c.causal ? " causal" : ""));
      std::mt19937 rng(static_cast<unsigned>(c.S * 31 + c.T));
      const Floats q = stored(random_floats(c.B * c.S * c.N * c.D, rng), elem),
                   k = stored(random_floats(c.B * c.N * c.T * c.D, rng), elem),
                   v = stored(random_floats(c.B * c.N * c.T * c.D, rng), elem);
      Floats mask(static_cast<size_t>(c.B * c.T), 1.f);
      for (int64_t b = 1; b < c.B; ++b)  // right padding on later rows, at least one key kept
        for (int64_t t = std::max<int64_t>(1, c.T - 3 * b); t < c.T; ++t) mask[b * c.T + t] = 0;
      const auto want = cpu_node(
          "MultiHeadAttention", "com.microsoft", 17,
          {{"q", {c.B, c.S, c.N * c.D}, q, elem}, {"k", {c.B, c.N, c.T, c.D}, k, elem},
           {"v", {c.B, c.N, c.T, c.D}, v, elem}, {"", {}, {}, F32},
           {"mask", {c.B, c.T}, mask, I32}},
          {"y"}, attention_attrs(c.N, c.causal));
      DevMask dmask(mask);
      Dev dq(q, elem), dk(k, elem), dv(v, elem), dy(q.size(), elem);
      AttentionArgs a;
      a.type = type_of(elem);
      a.q = dq.get();
      a.q_token_stride = c.N * c.D;
      a.k = dk.get();
      a.v = dv.get();
      a.out = dy.get();
      a.mask = dmask.get();
      a.mask_kind = MaskKind::Raw2D;
      a.batch = c.B, a.heads = c.N, a.seq = c.S, a.total = c.T, a.head_size = c.D;
      a.causal = c.causal;
      // Every kernel on `args`: both prefill ones (Auto picks by size) and, with one new token,
      // both decode ones (one block per head; split keys, flash-decoding), each with its output
      // and workspace poisoned first.
      const Floats split_ws(static_cast<size_t>(decode_split_workspace(c.B, c.N, c.T + 3, c.D)), 0.f);
      Dev ws(split_ws, F32);
      using Algo = AttentionArgs::Algo;
      auto every_kernel = [&](AttentionArgs args, Dev& y, const std::string& layout) {
        args.out = y.get();
        args.workspace = static_cast<float*>(ws.get());
        for (Algo algo : {Algo::Tiled, Algo::PerQueryWarp, Algo::Auto, Algo::SplitKeys}) {
          const bool decode = algo == Algo::Auto || algo == Algo::SplitKeys;
          if (decode && c.S != 1) continue;
          SCOPED_TRACE(layout + (algo == Algo::Tiled          ? "tiled"
                                 : algo == Algo::PerQueryWarp ? "warp per query"
                                 : algo == Algo::Auto         ? "decode"
                                                              : "decode, split keys"));
          args.algo = algo;
          check(cudaMemset(ws.get(), 0xff, split_ws.size() * 4), "poison");
          check(cudaMemset(y.get(), 0xff, q.size() * (elem == F16 ? 2 : 4)), "poison");
          if (decode)
            decode_attention(args, nullptr);
          else
            attention(args, nullptr);
          EXPECT_LT(max_diff(y.read(), want[0]), elem == F16 ? 2e-2f : 1e-4f);
        }
      };
      every_kernel(a, dy, "");
      // The same keys and values in a buffer shared by past and present (M = T + 3 rows per
      // head, junk after T) with the past length T - S read on the device: the same output from
      // every kernel.
      const int64_t M = c.T + 3;
      Floats kb(static_cast<size_t>(c.B * c.N * M * c.D), 9.f), vb(kb.size(), -9.f);
      for (int64_t h = 0; h < c.B * c.N; ++h)
        for (int64_t e = 0; e < c.T * c.D; ++e) {
          kb[h * M * c.D + e] = k[h * c.T * c.D + e];
          vb[h * M * c.D + e] = v[h * c.T * c.D + e];
        }
      Dev dkb(kb, elem), dvb(vb, elem), dy3(q.size(), elem);
      DevMask past_len(Floats{static_cast<float>(c.T - c.S)});
      AttentionArgs sh = a;
      sh.k = dkb.get(), sh.v = dvb.get();
      sh.total = sh.cache_rows = M;
      sh.past_len = past_len.get();
      sh.mask_width = c.T;
      every_kernel(sh, dy3, "shared buffer, ");
    }
}

// com.microsoft.Attention end to end on the device (QKV GEMM + bias, present = past ++ new, fused
// or decode attention) against the CPU kernel: BERT-like (mask, no past), GPT-2-like prompt
// (causal, no past) and decode steps (causal, one token over a past), awkward sizes included;
// every mask format (raw [B, T], end positions [B], ends and starts [2B], raw [B, S, T]) and an
// additive attention bias.
TEST_F(CudaKernels, AttentionOpWithPastAndMaskAgainstCpu) {
  struct Case {
    int64_t B, S, P, N, D;
    bool causal, masked;
    MaskKind format = MaskKind::Raw2D;
    bool bias = false;
  };
  LtGemm gemm;
  void* ws = nullptr;
  check(cudaMalloc(&ws, LtGemm::kWorkspaceBytes), "workspace");
  for (int elem : {F32, F16})
    for (const Case& c : {Case{2, 128, 0, 12, 64, false, true}, Case{1, 9, 0, 2, 32, true, false},
                          Case{2, 1, 128, 12, 64, true, true}, Case{3, 1, 5, 4, 32, true, false},
                          Case{1, 3, 4, 2, 64, true, true}, Case{2, 8, 4, 4, 16, true, true},
                          Case{2, 16, 0, 4, 32, false, true, MaskKind::Ends},
                          Case{3, 16, 0, 4, 32, false, true, MaskKind::EndsStarts},
                          // left padding + causal: query 0 of rows 1, 2 sees only masked keys
                          Case{3, 8, 0, 2, 32, true, true, MaskKind::EndsStarts},
                          Case{2, 8, 0, 2, 64, false, true, MaskKind::Raw3D},
                          Case{2, 1, 20, 4, 64, true, true, MaskKind::Ends},
                          Case{2, 8, 0, 4, 32, false, false, MaskKind::Raw2D, true},
                          Case{1, 1, 6, 2, 32, true, true, MaskKind::Raw2D, true}}) {
      const int64_t H = c.N * c.D, T = c.P + c.S;
      SCOPED_TRACE(name_of(elem) + " B" + std::to_string(c.B) + " S" + std::to_string(c.S) +
                   " P" + std::to_string(c.P) + " N" + std::to_string(c.N) + " D" +
                   std::to_string(c.D));
      std::mt19937 rng(static_cast<unsigned>(c.S * 7 + c.P * 3 + c.N));
      const Floats x = stored(random_floats(c.B * c.S * H, rng), elem),
                   w = stored(random_floats(H * 3 * H, rng, -0.1f, 0.1f), elem),
                   bias = stored(random_floats(3 * H, rng, -0.1f, 0.1f), elem),
                   past = stored(random_floats(2 * c.B * c.N * c.P * c.D, rng), elem);
      Floats mask;
      Shape mask_dims;
      switch (c.format) {
        case MaskKind::Ends:  // row b keeps its first T - 2b keys
          mask_dims = {c.B};
          for (int64_t b = 0; b < c.B; ++b) mask.push_back(static_cast<float>(T - 2 * b));
          break;
        case MaskKind::EndsStarts:  // and drops its first b keys
          mask_dims = {2 * c.B};
          for (int64_t b = 0; b < c.B; ++b) mask.push_back(static_cast<float>(T - b));
          for (int64_t b = 0; b < c.B; ++b) mask.push_back(static_cast<float>(b));
          break;
        case MaskKind::Raw3D:  // query s of row b does not see key (s + b) % T
          mask_dims = {c.B, c.S, T};
          mask.assign(static_cast<size_t>(c.B * c.S * T), 1.f);
          for (int64_t b = 0; b < c.B; ++b)
            for (int64_t s = 0; s < c.S; ++s) mask[(b * c.S + s) * T + (s + b) % T] = 0;
          break;
        default:
          mask_dims = {c.B, T};
          mask.assign(static_cast<size_t>(c.B * T), 1.f);
          for (int64_t b = 1; b < c.B; ++b)
            for (int64_t t = T - 2 * b; t < T; ++t) mask[b * T + t] = 0;
      }
      const Floats attn_bias = stored(random_floats(c.B * c.N * c.S * T, rng, -2.f, 2.f), elem);
      std::vector<In> ins = {{"x", {c.B, c.S, H}, x, elem}, {"w", {H, 3 * H}, w, elem},
                             {"bias", {3 * H}, bias, elem},
                             {c.masked ? "mask" : "", mask_dims, mask, I32}};
      ins.push_back({c.P > 0 ? "past" : "", {2, c.B, c.N, c.P, c.D}, past, elem});
      if (c.bias) ins.push_back({"attn_bias", {c.B, c.N, c.S, T}, attn_bias, elem});
      const auto want = cpu_node("Attention", "com.microsoft", 17, ins, {"y", "present"},
                                 attention_attrs(c.N, c.causal));
      DevMask dmask(mask);
      Dev dattn_bias(attn_bias, elem);
      Dev dx(x, elem), dw(w, elem), db(bias, elem), dpast(past, elem),
          dpresent(2 * c.B * c.N * T * c.D, elem), dy(x.size(), elem),
          dqkv(c.B * c.S * 3 * H, elem);
      AttentionOpArgs a;
      a.type = type_of(elem);
      a.x = dx.get(), a.weights = dw.get(), a.bias = db.get();
      a.mask = c.masked ? dmask.get() : nullptr;
      a.mask_kind = c.format;
      if (c.bias) {
        a.attention_bias = dattn_bias.get();
        a.bias_head_stride = c.S * T;
        a.bias_batch_stride = c.N * c.S * T;
      }
      a.past = c.P > 0 ? dpast.get() : nullptr;
      a.present = dpresent.get(), a.out = dy.get(), a.qkv_scratch = dqkv.get();
      a.batch = c.B, a.seq = c.S, a.past_len = c.P, a.hidden = H, a.heads = c.N, a.head_size = c.D;
      a.unidirectional = c.causal;
      attention_op(gemm, a, ws, LtGemm::kWorkspaceBytes, nullptr);
      const float t = elem == F16 ? 3e-2f : 1e-3f;
      EXPECT_LT(max_diff(dy.read(), want[0]), t);
      EXPECT_LT(max_diff(dpresent.read(), want[1]), t);
    }
  cudaFree(ws);
}

TEST_F(CudaKernels, BadArgumentsAreClearErrors) {
  AttentionArgs a;
  try {
    attention(a, nullptr);
    FAIL() << "no error";
  } catch (const CudaError& e) {
    EXPECT_NE(std::string(e.what()).find("attention: null tensor"), std::string::npos) << e.what();
  }
  try {
    softmax(TFH_TYPE_DOUBLE, nullptr, nullptr, 1, 1, nullptr);
    FAIL() << "no error";
  } catch (const CudaError& e) {
    EXPECT_NE(std::string(e.what()).find("only float and float16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tfh::kernels::cuda

namespace tfh::kernels::cuda {
namespace {

// Whole models on a CUDA session (CUDA kernels where they exist and accept the node, the CPU for
// the rest, with the copies between) against the CPU session: fused BERT and GPT-2 with past in
// float32 and float16, and both unfused.
class CudaSessions : public ::testing::TestWithParam<std::tuple<const char*, const char*, bool>> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA GPU here (" << describe_devices() << ")";
  }
};

TEST_P(CudaSessions, FusedModelMatchesTheCpu) {
  const auto [model, type, fp16] = GetParam();
  TempDir tmp;
  const std::string out = tmp / "fused.onnx";
  std::vector<std::string> args = {TFH_TFHOST_EXE, "optimize", "--input",
                                    std::string(TFH_SOURCE_DIR "/models/") + model + "/model.onnx",
                                    "--output", out, "--model_type", type};
  if (fp16) args.push_back("--float16");
  const auto r = test::run_command(args, {});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto m = ir::Model::load(out);
  m->infer_shapes();
  const runtime::KernelRegistry kernels;
  runtime::SessionOptions cpu_opts, gpu_opts;
  gpu_opts.device = TFH_DEVICE_CUDA;
  runtime::Session cpu(static_cast<const ir::Model&>(*m), kernels, cpu_opts),
      gpu(static_cast<const ir::Model&>(*m), kernels, gpu_opts);
  size_t on_gpu = 0;
  for (const auto& [node, name] : gpu.kernel_names()) on_gpu += name.find("tfhost.cuda.") == 0;
  EXPECT_GT(on_gpu, 4u) << "the fused ops should run on the GPU";
  const plugin::Registry registry;
  runtime::InputRequest req;
  req.batch = 2;
  req.sequence = 8;
  req.past = std::string(model).find("gpt2") != std::string::npos ? 4 : 0;
  const auto inputs = runtime::make_inputs(registry, runtime::pick_generator(registry, "", "core"), *m, req);
  const auto want = cpu.run(runtime::feeds_of(inputs));
  for (int rep = 0; rep < 2; ++rep) {  // twice: pooled buffers and cached constants reused
    const auto got = gpu.run(runtime::feeds_of(inputs));
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const runtime::Difference d = runtime::compare_tensors(*got[i], *want[i], 0, fp16 ? 3e-2 : 1e-3);
      EXPECT_TRUE(d.ok()) << "output " << i << ": max abs diff " << d.max_abs;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, CudaSessions,
    ::testing::Values(std::make_tuple("bert_tiny_opset14", "bert", false),
                      std::make_tuple("bert_tiny_opset14", "bert", true),
                      std::make_tuple("gpt2past_tiny_opset14", "gpt2", false),
                      std::make_tuple("gpt2past_tiny_opset14", "gpt2", true),
                      // Unfused (core cleanup only): what CUDA kernels refuse runs on the CPU.
                      std::make_tuple("bert_tiny_opset14", "core", false),
                      std::make_tuple("gpt2past_tiny_opset14", "core", false)));

}  // namespace
}  // namespace tfh::kernels::cuda
