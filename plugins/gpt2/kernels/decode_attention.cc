// gpt2.cpu.DecodeAttention: com.microsoft.Attention for the step that dominates generation — one
// new token over a long past, batch 1 or 2 — registered above tfhost's shared Attention kernel.
// Every other case (a prompt, larger batches, no past, an attention bias, a mask other than the
// raw 2-D one, pruned Q/K/V sizes) goes to the shared kernel through KernelContext::run_next().
//
// The step is bound by reading the Q/K/V weights (3H x H floats per layer for 1..8 rows): the
// kernel reads them in place, in one sequential stream per thread (each thread a range of rows,
// partial sums added after), so it needs no second copy of the weights (the shared kernel keeps
// a packed one); then per (row, head) one pass over the past keys and values, writing
// present = past + the new key/value as it goes. With past_present_share_buffer (one buffer of
// M rows for past and present, gpt2.shared_kv_cache) present is the past's buffer (handed over
// by the runtime, or a copy) and only the new row is written, at past_sequence_length; the mask
// may then be wider than P + 1 (its first P + 1 entries count).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <tfhost/kernel.hpp>

#include "fusions/fusions.h"

namespace gpt2 {
namespace {

struct DecodeAttention {
  int64_t heads = 0, in = 0, width = 0;  // width = 3 x hidden
  float filter = -10000.f, scale = 0.f;
  bool covers = false;     // the node is of the form this kernel runs; else always hand on
  bool shared = false;     // past_present_share_buffer
  const float* weights = nullptr;  // [in, width], the model's initializer, read in place
  std::vector<float> bias;

  explicit DecodeAttention(tfh::NodeView n) {
    heads = n.attr_int("num_heads", 0);
    filter = n.attr_float("mask_filter_value", -10000.f);
    scale = n.attr_float("scale", 0.f);
    shared = n.attr_int("past_present_share_buffer", 0) != 0;
    if (heads <= 0 || n.has_attr("qkv_hidden_sizes") || n.attr_int("unidirectional", 0) != 1)
      return;
    const tfh::TensorView w = n.input(1).constant();
    const tfh::TensorView b = n.num_inputs() > 2 && n.input(2) ? n.input(2).constant() : tfh::TensorView();
    if (!w || !b || w.dtype() != TFH_TYPE_FLOAT || b.dtype() != TFH_TYPE_FLOAT || w.rank() != 2)
      return;
    in = w.dims()[0];
    width = w.dims()[1];
    if (width % 3 || (width / 3) % heads || static_cast<int64_t>(b.size()) != width) return;
    weights = w.data<float>().data();
    const auto bd = b.data<float>();
    bias.assign(bd.begin(), bd.end());
    covers = true;
  }

  void compute(tfh::KernelContext& ctx) {
    const tfh::TensorView x = ctx.required(0);
    const tfh::TensorView mask = ctx.input(3), past = ctx.input(4), attn_bias = ctx.input(5);
    const int64_t hidden = width / 3, d = heads ? hidden / heads : 0;
    const bool decode = covers && x.dtype() == TFH_TYPE_FLOAT && x.rank() == 3 &&
                        x.dims()[1] == 1 && x.dims()[2] == in && past && !attn_bias &&
                        past.dtype() == TFH_TYPE_FLOAT && past.rank() == 5 &&
                        ctx.num_outputs() > 1 && ctx.output_used(1);
    if (!decode) return ctx.run_next();
    const int64_t B = x.dims()[0];
    // One or two rows: the weights read once dominate. From three rows on, the shared kernel's
    // packed GEMM reuses each weight across rows better (batch 8: 44-49 ms here, 33-38 there).
    if (B > 2) return ctx.run_next();
    if (past.dims()[0] != 2 || past.dims()[1] != B || past.dims()[2] != heads ||
        past.dims()[4] != d)
      return ctx.run_next();
    // P past rows of `rows` per head (a shared buffer: M, with P given by input 6).
    const int64_t rows = past.dims()[3];
    int64_t P = rows;
    if (shared) {
      const tfh::TensorView length = ctx.input(6);
      if (!length || length.size() != 1 || length.dtype() != TFH_TYPE_INT32)
        return ctx.run_next();  // (the shared kernel says what is wrong)
      P = length.data<int32_t>()[0];
      if (P < 0 || P + 1 > rows) return ctx.run_next();
    }
    const int64_t T = P + 1;
    const int64_t W = mask && mask.rank() == 2 ? mask.dims()[1] : 0;  // mask row length
    if (mask && !(mask.dtype() == TFH_TYPE_INT32 && mask.rank() == 2 && mask.dims()[0] == B &&
                  (W == T || (shared && W > T && W <= rows))))
      return ctx.run_next();

    // Q, K, V of the new token: x [B, in] times W [in, width], plus the bias. Each thread takes
    // a contiguous range of W's rows (one sequential stream through the weights, which is what
    // bounds this step) into its own [B, width] partial sums; the partial sums are added after.
    const float* xd = x.data<float>().data();
    const int threads = std::max(1, std::min<int>(ctx.num_threads(), static_cast<int>(in / 64 + 1)));
    float* partial = ctx.scratch<float>(static_cast<size_t>(threads * B * width));
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t k0 = in * t / nt, k1 = in * (t + 1) / nt;
      float* acc = partial + static_cast<int64_t>(t) * B * width;
      for (int64_t k = k0; k < k1; ++k) {
        const float* wr = weights + k * width;
        for (int64_t b = 0; b < B; ++b) {
          const float xk = xd[b * in + k];
          float* ab = acc + b * width;
#pragma omp simd
          for (int64_t c = 0; c < width; ++c) ab[c] += xk * wr[c];
        }
      }
    }
    float* qkv = ctx.scratch<float>(static_cast<size_t>(B * width));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < width; ++c) {
        float v = bias[c];
        for (int t = 0; t < threads; ++t) v += partial[(static_cast<int64_t>(t) * B + b) * width + c];
        qkv[b * width + c] = v;
      }

    tfh::OutputTensor out = ctx.output(0, TFH_TYPE_FLOAT, {B, 1, hidden});
    // Present: the shared buffer (the past's bytes, handed over or copied), else P + 1 rows.
    const int64_t prow = shared ? rows : T;  // rows per head in present
    tfh::OutputTensor present = shared ? ctx.output_from_input(1, 4, {2, B, heads, rows, d})
                                       : ctx.output(1, TFH_TYPE_FLOAT, {2, B, heads, T, d});
    float* od = out.data<float>();
    float* pd = present.data<float>();
    const float* pastd = past.data<float>().data();
    const int32_t* md = mask ? mask.data<int32_t>().data() : nullptr;
    const float sc = scale != 0.f ? scale : 1.f / std::sqrt(static_cast<float>(d));
    float* scores = ctx.scratch<float>(static_cast<size_t>(threads * T));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < B * heads; ++i) {
      const int64_t b = i / heads, n = i % heads;
      const float* q = qkv + b * width + n * d;
      const float* k_new = qkv + b * width + hidden + n * d;
      const float* v_new = qkv + b * width + 2 * hidden + n * d;
      float* pk = pd + i * prow * d;                // present key [b, n]
      float* pv = pd + (B * heads + i) * prow * d;  // present value [b, n]
      if (!shared) {  // (a shared buffer holds the past already)
        std::memcpy(pk, pastd + i * P * d, sizeof(float) * static_cast<size_t>(P * d));
        std::memcpy(pv, pastd + (B * heads + i) * P * d, sizeof(float) * static_cast<size_t>(P * d));
      }
      std::memcpy(pk + P * d, k_new, sizeof(float) * static_cast<size_t>(d));
      std::memcpy(pv + P * d, v_new, sizeof(float) * static_cast<size_t>(d));
      float* s = scores + omp_get_thread_num() * T;
      float mx = -INFINITY;
      for (int64_t j = 0; j < T; ++j) {
        const float* kj = pk + j * d;
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int64_t c = 0; c < d; ++c) acc += q[c] * kj[c];
        s[j] = sc * acc + (md && md[b * W + j] == 0 ? filter : 0.f);
        mx = std::max(mx, s[j]);
      }
      float sum = 0.f;
      for (int64_t j = 0; j < T; ++j) sum += (s[j] = std::exp(s[j] - mx));
      float* o = od + b * hidden + n * d;
      std::fill_n(o, d, 0.f);
      for (int64_t j = 0; j < T; ++j) {
        const float w = s[j] / sum;
        const float* vj = pv + j * d;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) o[c] += w * vj[c];
      }
    }
  }
};

}  // namespace

const TfhKernelDesc kDecodeAttention =
    TFH_KERNEL_DESC(DecodeAttention, "gpt2.cpu.DecodeAttention", "com.microsoft", "Attention", 1,
                    0, TFH_DEVICE_CPU, "T=float", 10);

}  // namespace gpt2
