// ONNX Runtime's com.microsoft contrib ops that the transformer fusions produce, on the CPU:
// Gelu, FastGelu, BiasGelu, SkipLayerNormalization, SkipSimplifiedLayerNormalization,
// SimplifiedLayerNormalization, EmbedLayerNormalization, Attention and MultiHeadAttention.
// Inputs, outputs, attributes and defaults follow ONNX Runtime's ContribOperators.md; where the
// text leaves a choice (how masks become additive biases, what mask_index counts) ONNX Runtime's
// CPU kernels decide. float16 and bfloat16 tensors are computed in float32.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/vmath.h"

namespace tfh::kernels::cpu {
namespace {

constexpr int64_t kSerialBelow = 16384;  // element counts below which a loop stays serial

void check_float(const TensorView& t, const char* what) {
  if (!is_float_like(t.dtype())) unsupported_type(t.dtype(), what);
}

// Where a kernel writes output `y` in float: the output itself, or scratch narrowed by finish().
float* out_buffer(KernelContext& ctx, OutputTensor& y) {
  if (y.dtype() == TFH_TYPE_FLOAT) return y.data<float>();
  return ctx.scratch<float>(std::max<size_t>(y.size(), 1));
}
void finish(OutputTensor& y, const float* buf) {
  narrow_into(buf, y, static_cast<int64_t>(y.size()));
}

// Runs f(i) for i in [0, n): in parallel when `work` (elements touched) is large enough.
template <typename F>
void parallel_rows(int64_t n, int64_t work, F&& f) {
  if (work < kSerialBelow || n < 2) {
    for (int64_t i = 0; i < n; ++i) f(i);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) f(i);
  }
}

// Reductions with eight partial accumulators, a shape GCC vectorises without -ffast-math.
inline float row_sum(const float* x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[i + k];
  float s = 0;
  for (; i < n; ++i) s += x[i];
  for (int k = 0; k < 8; ++k) s += acc[k];
  return s;
}
// sum((x - c)^2)
inline float row_sq_dev(const float* x, int64_t n, float c) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      const float d = x[i + k] - c;
      acc[k] += d * d;
    }
  float s = 0;
  for (; i < n; ++i) s += (x[i] - c) * (x[i] - c);
  for (int k = 0; k < 8; ++k) s += acc[k];
  return s;
}
inline float row_max(const float* x, int64_t n) {
  float acc[8];
  for (int k = 0; k < 8; ++k) acc[k] = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
  float m = -std::numeric_limits<float>::infinity();
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int k = 0; k < 8; ++k) m = acc[k] > m ? acc[k] : m;
  return m;
}
// In-place softmax of one row.
inline void softmax_row(float* p, int64_t n) {
  if (n == 0) return;
  const float mx = row_max(p, n);
  for (int64_t i = 0; i < n; ++i) p[i] = fast_exp(p[i] - mx);
  const float inv = 1.f / row_sum(p, n);
  for (int64_t i = 0; i < n; ++i) p[i] *= inv;
}

// ---- Gelu, FastGelu, BiasGelu ------------------------------------------------------------------

enum class GeluForm { Erf, Tanh };
enum class BiasInput { None, Optional, Required };

// y = gelu(x + bias), bias (when given) a 1-D tensor the size of x's last dimension.
//   erf:  0.5 v (1 + erf(v / sqrt(2)))
//   tanh: 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3)))   (FastGelu)
template <GeluForm G, BiasInput BI>
struct GeluKernel {
  explicit GeluKernel(NodeView) {}
  static void apply(const float* x, const float* b, float* y, int64_t n) {
    if (G == GeluForm::Erf) {
      if (b) {
        for (int64_t i = 0; i < n; ++i) {
          const float v = x[i] + b[i];
          y[i] = 0.5f * v * (1.f + fast_erf(v * 0.70710678118654752f));
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const float v = x[i];
          y[i] = 0.5f * v * (1.f + fast_erf(v * 0.70710678118654752f));
        }
      }
    } else {
      fast_gelu_row(x, b, y, n);
    }
  }
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    TensorView bias = BI == BiasInput::None ? TensorView() : ctx.input(1);
    if (BI == BiasInput::Required && !bias) sdk::fail("the bias input is missing");
    check_float(x, "X");
    Dims d = dims_of(x);
    const int64_t n = numel(d);
    OutputTensor y = ctx.output(0, x.dtype(), d);
    if (n == 0) return;
    const float* px = as_float(ctx, x);
    float* py = out_buffer(ctx, y);
    if (bias) {
      check_float(bias, "bias");
      const int64_t h = d.empty() ? 1 : d.back();
      if (static_cast<int64_t>(bias.size()) != h || bias.rank() > 1)
        sdk::fail("bias " + dims_str(dims_of(bias)) + " must be 1-D with the " + std::to_string(h) +
                  " elements of X's last dimension " + dims_str(d));
      const float* pb = as_float(ctx, bias);
      parallel_rows(n / h, n, [&](int64_t r) { apply(px + r * h, pb, py + r * h, h); });
    } else {
      constexpr int64_t kBlock = 4096;
      parallel_rows((n + kBlock - 1) / kBlock, n, [&](int64_t blk) {
        const int64_t lo = blk * kBlock, len = std::min(kBlock, n - lo);
        apply(px + lo, nullptr, py + lo, len);
      });
    }
    finish(y, py);
  }
};

// ---- layer normalizations ----------------------------------------------------------------------

// Normalises row `s` (length h) into y:
//   plain:      (s - mean) / sqrt(var + eps) * gamma + beta
//   simplified: s / sqrt(mean(s^2) + eps) * gamma            (RMS norm)
// Returns {mean, inv_std}.
template <bool kSimplified>
inline std::pair<float, float> normalize_row(const float* s, float* y, int64_t h, float eps,
                                             const float* gamma, const float* beta) {
  const float mean = row_sum(s, h) / static_cast<float>(h);
  if (kSimplified) {
    const float inv = 1.f / std::sqrt(row_sq_dev(s, h, 0.f) / static_cast<float>(h) + eps);
    for (int64_t c = 0; c < h; ++c) y[c] = s[c] * inv * gamma[c];
    return {mean, inv};
  }
  const float inv = 1.f / std::sqrt(row_sq_dev(s, h, mean) / static_cast<float>(h) + eps);
  if (beta) {
    for (int64_t c = 0; c < h; ++c) y[c] = (s[c] - mean) * inv * gamma[c] + beta[c];
  } else {
    for (int64_t c = 0; c < h; ++c) y[c] = (s[c] - mean) * inv * gamma[c];
  }
  return {mean, inv};
}

const float* vector_input(KernelContext& ctx, const TensorView& t, int64_t h, const char* what) {
  if (!t) return nullptr;
  check_float(t, what);
  if (static_cast<int64_t>(t.size()) != h)
    sdk::fail(std::string(what) + " " + dims_str(dims_of(t)) + " must have " + std::to_string(h) +
              " elements (the hidden size)");
  return as_float(ctx, t);
}

// SkipLayerNormalization (input, skip, gamma, beta?, bias?) and SkipSimplifiedLayerNormalization
// (input, skip, gamma, bias?): s = input + skip + bias, normalised over the last axis.
// Outputs: output, mean?, inv_std_var? (float, the input's shape with the last axis 1),
// input_skip_bias_sum? (s). skip is the input's shape, or [1, S, H] / [S, H] for a 3-D input.
template <bool kSimplified>
struct SkipLayerNorm {
  float eps;
  explicit SkipLayerNorm(NodeView n) : eps(n.attr_float("epsilon", 1e-12f)) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0), skip = ctx.required(1), gamma = ctx.required(2);
    TensorView beta = kSimplified ? TensorView() : ctx.input(3);
    TensorView bias = ctx.input(kSimplified ? 3 : 4);
    check_float(x, "input");
    check_float(skip, "skip");
    Dims d = dims_of(x);
    if (d.size() != 2 && d.size() != 3) sdk::fail("input " + dims_str(d) + " must be 2-D or 3-D");
    const int64_t h = d.back(), n = numel(d), rows = h ? n / h : 0;
    Dims ds = dims_of(skip);
    int64_t skip_rows = rows;
    if (ds != d) {
      const bool seq_broadcast =
          d.size() == 3 && !ds.empty() && ds.back() == h &&
          ((ds.size() == 2 && ds[0] == d[1]) || (ds.size() == 3 && ds[0] == 1 && ds[1] == d[1]));
      if (!seq_broadcast)
        sdk::fail("skip " + dims_str(ds) + " must be the input's shape " + dims_str(d) +
                  ", [1, S, H] or [S, H]");
      skip_rows = d[1];
    }
    const float* pg = vector_input(ctx, gamma, h, "gamma");
    const float* pbeta = vector_input(ctx, beta, h, "beta");
    const float* pbias = vector_input(ctx, bias, h, "bias");

    OutputTensor y = ctx.output(0, x.dtype(), d);
    Dims stat = d;
    stat.back() = 1;
    float* mean_out = nullptr;
    float* inv_out = nullptr;
    if (ctx.num_outputs() > 1 && ctx.output_used(1))
      mean_out = ctx.output(1, TFH_TYPE_FLOAT, stat).data<float>();
    if (ctx.num_outputs() > 2 && ctx.output_used(2))
      inv_out = ctx.output(2, TFH_TYPE_FLOAT, stat).data<float>();
    OutputTensor sum_t(nullptr);
    float* psum = nullptr;
    if (ctx.num_outputs() > 3 && ctx.output_used(3)) {
      sum_t = ctx.output(3, x.dtype(), d);
      psum = out_buffer(ctx, sum_t);
    }
    if (n == 0) return;
    const float* px = as_float(ctx, x);
    const float* pskip = as_float(ctx, skip);
    float* py = out_buffer(ctx, y);
    parallel_rows(rows, n, [&](int64_t r) {
      const float* xr = px + r * h;
      const float* sr = pskip + (r % skip_rows) * h;
      float* yr = py + r * h;
      // The sum goes where it is asked for (or into y), then y is normalised from it.
      float* s = psum ? psum + r * h : yr;
      if (pbias) {
        for (int64_t c = 0; c < h; ++c) s[c] = xr[c] + sr[c] + pbias[c];
      } else {
        for (int64_t c = 0; c < h; ++c) s[c] = xr[c] + sr[c];
      }
      auto [mean, inv] = normalize_row<kSimplified>(s, yr, h, eps, pg, pbeta);
      if (mean_out) mean_out[r] = mean;
      if (inv_out) inv_out[r] = inv;
    });
    finish(y, py);
    if (psum) finish(sum_t, psum);
  }
};

// SimplifiedLayerNormalization (X, scale; axis = -1, epsilon = 1e-5): RMS norm over the axes from
// `axis` on. Outputs Y and inv_std_var? (float, X's shape with the normalised axes 1).
struct SimplifiedLayerNorm {
  int64_t axis;
  float eps;
  explicit SimplifiedLayerNorm(NodeView n)
      : axis(n.attr_int("axis", -1)), eps(n.attr_float("epsilon", 1e-5f)) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0), scale = ctx.required(1);
    check_float(x, "X");
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size()), a = norm_axis(axis, r);
    int64_t cols = 1;
    for (int64_t i = a; i < r; ++i) cols *= d[i];
    const int64_t n = numel(d), rows = cols ? n / cols : 0;
    const float* ps = vector_input(ctx, scale, cols, "scale");
    OutputTensor y = ctx.output(0, x.dtype(), d);
    Dims stat = d;
    for (int64_t i = a; i < r; ++i) stat[i] = 1;
    float* inv_out = nullptr;
    if (ctx.num_outputs() > 1 && ctx.output_used(1))
      inv_out = ctx.output(1, TFH_TYPE_FLOAT, stat).data<float>();
    if (n == 0) return;
    const float* px = as_float(ctx, x);
    float* py = out_buffer(ctx, y);
    parallel_rows(rows, n, [&](int64_t rw) {
      auto mi = normalize_row<true>(px + rw * cols, py + rw * cols, cols, eps, ps, nullptr);
      if (inv_out) inv_out[rw] = mi.second;
    });
    finish(y, py);
  }
};

// EmbedLayerNormalization: LayerNorm(word[input_ids] + position[position_ids or s] +
// segment[segment_ids or 0]) over the hidden axis. Outputs: output, mask_index? (int32 [B]: the
// count of mask entries equal to 1, zeros without a mask, as ONNX Runtime's kernels do),
// embedding_sum? (the sum before normalisation).
struct EmbedLayerNorm {
  float eps;
  explicit EmbedLayerNorm(NodeView n) : eps(n.attr_float("epsilon", 1e-12f)) {}
  void compute(KernelContext& ctx) {
    TensorView ids = ctx.required(0), seg = ctx.input(1), wemb = ctx.required(2),
               pemb = ctx.required(3), semb = ctx.input(4), gamma = ctx.required(5),
               beta = ctx.input(6), mask = ctx.input(7), pos = ctx.input(8);
    Dims di = dims_of(ids);
    if (di.size() != 2) sdk::fail("input_ids " + dims_str(di) + " must be 2-D [batch, sequence]");
    const int64_t B = di[0], S = di[1];
    check_float(wemb, "word_embedding");
    check_float(pemb, "position_embedding");
    Dims dw = dims_of(wemb), dp = dims_of(pemb);
    if (dw.size() != 2 || dp.size() != 2 || dp[1] != dw[1])
      sdk::fail("word_embedding " + dims_str(dw) + " and position_embedding " + dims_str(dp) +
                " must be 2-D with the same hidden size");
    const int64_t H = dw[1];
    if (seg && dims_of(seg) != di)
      sdk::fail("segment_ids " + dims_str(dims_of(seg)) + " must be input_ids' shape " +
                dims_str(di));
    if (seg && !semb) sdk::fail("segment_ids are given without segment_embedding");
    if (mask && dims_of(mask) != di)
      sdk::fail("mask " + dims_str(dims_of(mask)) + " must be input_ids' shape " + dims_str(di));
    Dims dse;
    if (semb) {
      check_float(semb, "segment_embedding");
      dse = dims_of(semb);
      if (dse.size() != 2 || dse[1] != H)
        sdk::fail("segment_embedding " + dims_str(dse) + " must be 2-D with hidden size " +
                  std::to_string(H));
    }
    bool pos_broadcast = false;
    if (pos) {
      Dims dpi = dims_of(pos);
      pos_broadcast = dpi.size() == 2 && dpi[0] == 1 && dpi[1] == S && B != 1;
      if (dpi != di && !pos_broadcast)
        sdk::fail("position_ids " + dims_str(dpi) + " must be [batch, sequence] or [1, sequence]");
    }
    const float* pg = vector_input(ctx, gamma, H, "gamma");
    const float* pbeta = vector_input(ctx, beta, H, "beta");

    // Row indices, checked here (the parallel loop cannot throw).
    const int64_t rows = B * S;
    std::vector<int64_t> word = read_ints(ids), segv = read_ints(seg), posv = read_ints(pos);
    std::vector<int64_t> prow(rows), srow(rows, 0);
    for (int64_t i = 0; i < rows; ++i) {
      if (word[i] < 0 || word[i] >= dw[0])
        sdk::fail("input_ids value " + std::to_string(word[i]) + " is outside [0, " +
                  std::to_string(dw[0]) + ")");
      prow[i] = pos ? posv[pos_broadcast ? i % S : i] : i % S;
      if (prow[i] < 0 || prow[i] >= dp[0])
        sdk::fail("position " + std::to_string(prow[i]) + " is outside the position_embedding's " +
                  std::to_string(dp[0]) + " rows");
      if (seg) srow[i] = segv[i];
      if (semb && (srow[i] < 0 || srow[i] >= dse[0]))
        sdk::fail("segment_ids value " + std::to_string(srow[i]) + " is outside [0, " +
                  std::to_string(dse[0]) + ")");
    }

    const TfhDataType type = wemb.dtype();
    OutputTensor y = ctx.output(0, type, Dims{B, S, H});
    if (ctx.num_outputs() > 1 && ctx.output_used(1)) {
      int32_t* mi = ctx.output(1, TFH_TYPE_INT32, Dims{B}).data<int32_t>();
      std::vector<int64_t> mv = read_ints(mask);
      for (int64_t b = 0; b < B; ++b) {
        int32_t c = 0;
        if (mask)
          for (int64_t s = 0; s < S; ++s) c += mv[b * S + s] == 1 ? 1 : 0;
        mi[b] = c;
      }
    }
    OutputTensor sum_t(nullptr);
    float* psum = nullptr;
    if (ctx.num_outputs() > 2 && ctx.output_used(2)) {
      sum_t = ctx.output(2, type, Dims{B, S, H});
      psum = out_buffer(ctx, sum_t);
    }
    if (rows == 0 || H == 0) return;
    // Row r of a table as floats: in place for float, widened into `tmp` for float16/bfloat16
    // (only the rows the ids pick: a vocabulary-sized table is never widened whole).
    auto row_of = [H](const TensorView& t, int64_t r, float* tmp) -> const float* {
      if (t.dtype() == TFH_TYPE_FLOAT) return t.data<float>().data() + r * H;
      if (t.dtype() == TFH_TYPE_FLOAT16)
        widen(t.data<Float16>().data() + r * H, tmp, H);
      else
        widen(t.data<BFloat16>().data() + r * H, tmp, H);
      return tmp;
    };
    if (pemb.dtype() != type || (semb && semb.dtype() != type))
      sdk::fail("word, position and segment embeddings must have one element type");
    const bool half = type != TFH_TYPE_FLOAT;
    float* py = out_buffer(ctx, y);
    parallel_rows(rows, rows * H, [&](int64_t i) {
      std::vector<float> tmp(half ? 3 * H : 0);
      const float* w = row_of(wemb, word[i], tmp.data());
      const float* p = row_of(pemb, prow[i], tmp.data() + (half ? H : 0));
      float* yr = py + i * H;
      float* s = psum ? psum + i * H : yr;
      if (semb) {
        const float* g = row_of(semb, srow[i], tmp.data() + (half ? 2 * H : 0));
        for (int64_t c = 0; c < H; ++c) s[c] = w[c] + p[c] + g[c];
      } else {
        for (int64_t c = 0; c < H; ++c) s[c] = w[c] + p[c];
      }
      normalize_row<false>(s, yr, H, eps, pg, pbeta);
    });
    finish(y, py);
    if (psum) finish(sum_t, psum);
  }
};

// ---- attention ---------------------------------------------------------------------------------

// A [batch, sequence, heads, head_size] view of Q, K or V: element (b, s, n, d) is
// base[b * bs + s * ss + n * hs + d] (head_size elements are contiguous).
struct HeadView {
  const float* base = nullptr;
  int64_t bs = 0, ss = 0, hs = 0;
  const float* at(int64_t b, int64_t s, int64_t n) const { return base + b * bs + s * ss + n * hs; }
};

// An additive bias for the scores from a mask: element (b, s, j) is base[b * bs + s * ss + j].
struct MaskBias {
  const float* base = nullptr;
  int64_t bs = 0, ss = 0;
};

// ONNX Runtime's masks as additive biases over [batch, query, key (total)]: `filter` where a key
// is masked, 0 where it is kept.
//   [B]       keys at or after the end position are masked (right padding)
//   [2B]      ends, then starts: keys before the start are masked too (left padding)
//   [B, T]    raw mask, 0 masks, anything > 0 keeps
//   [B, S, T] raw mask per query position
// `max_width` > 0 (a key/value buffer of that many rows shared by past and present): a 2-D or
// 3-D mask may be any width W from S to max_width ([B, W], [B, S, W]), as the CUDA kernel takes
// it (the number of keys is known only on the device there): of each row the first T entries
// count, and keys at or after W are masked.
MaskBias build_mask(KernelContext& ctx, const TensorView& m, int64_t B, int64_t S, int64_t T,
                    float filter, const char* what, int64_t max_width = 0) {
  MaskBias mb;
  if (!m) return mb;
  Dims md = dims_of(m);
  std::vector<int64_t> v = read_ints(m);
  const int64_t W = md.empty() ? 0 : md.back();
  if (max_width && (md.size() == 2 || (md.size() == 3 && md[1] == S)) && md[0] == B && W >= S &&
      W <= max_width) {
    const int64_t rows = md.size() == 3 ? B * S : B;
    float* kb = ctx.scratch<float>(std::max<int64_t>(rows * T, 1));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < T; ++j) kb[r * T + j] = j < W && v[r * W + j] > 0 ? 0.f : filter;
    return md.size() == 3 ? MaskBias{kb, S * T, T} : MaskBias{kb, T, 0};
  }
  if (md.size() == 1 && (md[0] == B || md[0] == 2 * B)) {
    float* kb = ctx.scratch<float>(std::max<int64_t>(B * T, 1));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t end = std::clamp<int64_t>(v[b], 0, T);
      const int64_t start = md[0] == 2 * B ? std::clamp<int64_t>(v[B + b], 0, T) : 0;
      for (int64_t j = 0; j < T; ++j) kb[b * T + j] = (j >= end || j < start) ? filter : 0.f;
    }
    mb = {kb, T, 0};
  } else if (md.size() == 2 && md[0] == B && md[1] == T) {
    float* kb = ctx.scratch<float>(std::max<int64_t>(B * T, 1));
    for (int64_t i = 0; i < B * T; ++i) kb[i] = v[i] > 0 ? 0.f : filter;
    mb = {kb, T, 0};
  } else if (md.size() == 3 && md[0] == B && md[1] == S && md[2] == T) {
    float* kb = ctx.scratch<float>(std::max<int64_t>(B * S * T, 1));
    for (int64_t i = 0; i < B * S * T; ++i) kb[i] = v[i] > 0 ? 0.f : filter;
    mb = {kb, S * T, T};
  } else {
    sdk::fail(std::string(what) + " " + dims_str(md) + " is not supported: expected [" +
              std::to_string(B) + "] (end positions), [" + std::to_string(2 * B) +
              "] (ends and starts), [" + std::to_string(B) + "," + std::to_string(T) + "] or [" +
              std::to_string(B) + "," + std::to_string(S) + "," + std::to_string(T) +
              "] (0 masks)");
  }
  return mb;
}

struct AttentionBias {
  const float* base = nullptr;
  int64_t bs = 0, ns = 0;  // strides of batch and head (0 where broadcast); rows are [S, T]
};

AttentionBias read_attention_bias(KernelContext& ctx, const TensorView& t, int64_t B, int64_t N,
                                  int64_t S, int64_t T) {
  AttentionBias ab;
  if (!t) return ab;
  check_float(t, "attention_bias");
  Dims d = dims_of(t);
  if (d.size() != 4 || (d[0] != B && d[0] != 1) || (d[1] != N && d[1] != 1) || d[2] != S ||
      d[3] != T)
    sdk::fail("attention_bias " + dims_str(d) + " must be [" + std::to_string(B) + " or 1, " +
              std::to_string(N) + " or 1, " + std::to_string(S) + ", " + std::to_string(T) + "]");
  ab.base = as_float(ctx, t);
  ab.ns = d[1] == 1 ? 0 : S * T;
  ab.bs = d[0] == 1 ? 0 : d[1] * S * T;
  return ab;
}

// Scaled dot-product attention over B x N heads:
//   K_all = concat(past_k, K + bias_k), V_all likewise (T = P + L keys), assembled into k_all
//   [B,N,T,D] / v_all [B,N,T,Dv] when those are given (a past, a bias or a present needs them),
//   read in place otherwise;
//   scores = scale Q K_all^T + mask + attention_bias, plus `filter` on the keys after P + s when
//   causal (added to any mask, as ONNX Runtime does);
//   out[b, s, n*Dv ...] = softmax(scores) V_all.
struct AttentionProblem {
  int64_t B = 0, N = 0, S = 0, L = 0, P = 0, D = 0, Dv = 0;
  HeadView q, k, v;
  const float* bias_k = nullptr;  // [N*D] added to new keys, or null
  const float* bias_v = nullptr;  // [N*Dv]
  const float* past_k = nullptr;  // [B,N,P,D]
  const float* past_v = nullptr;  // [B,N,P,Dv]
  float* k_all = nullptr;  // null: no past or bias, K is read in place (no present asked for)
  float* v_all = nullptr;
  // A key/value buffer of `cache_rows` rows per head, shared by past and present
  // (past_present_share_buffer): past_k/past_v and k_all/v_all are then [B,N,cache_rows,D], the
  // past is rows [0, P), the new keys/values are written at rows [P, P+L), and rows past P+L are
  // left alone. 0: past has P rows per head and k_all/v_all have T.
  int64_t cache_rows = 0;
  float scale = 1.f, filter = -10000.f;
  bool causal = false;
  MaskBias mask;
  AttentionBias ab;
  float* out = nullptr;  // [B, S, N*Dv]
};

void run_attention(KernelContext& ctx, const AttentionProblem& p) {
  const int64_t B = p.B, N = p.N, S = p.S, L = p.L, P = p.P, D = p.D, Dv = p.Dv, T = P + L;
  const int64_t heads = B * N;
  const bool parallel = heads >= 2;
  const int threads = parallel ? std::max(1, omp_get_max_threads()) : 1;
  float* scores = ctx.scratch<float>(std::max<int64_t>(threads * S * T, 1));
  auto one = [&](int64_t i) {
    const int64_t b = i / N, n = i % N;
    // K and V of this head: assembled into k_all/v_all, or read in place when those are null.
    const int64_t all_rows = p.cache_rows ? p.cache_rows : T;
    const int64_t past_rows = p.cache_rows ? p.cache_rows : P;
    const float* kd = p.k_all ? p.k_all + i * all_rows * D : p.k.at(b, 0, n);
    const float* vd = p.v_all ? p.v_all + i * all_rows * Dv : p.v.at(b, 0, n);
    const int64_t ldk = p.k_all ? D : p.k.ss, ldv = p.v_all ? Dv : p.v.ss;
    if (p.k_all) {
      float* dst = p.k_all + i * all_rows * D;
      const float* kept = P ? p.past_k + i * past_rows * D : nullptr;
      if (kept && kept != dst) std::memcpy(dst, kept, sizeof(float) * P * D);
      for (int64_t l = 0; l < L; ++l) {
        const float* src = p.k.at(b, l, n);
        float* row = dst + (P + l) * D;
        if (p.bias_k) {
          const float* bk = p.bias_k + n * D;
          for (int64_t c = 0; c < D; ++c) row[c] = src[c] + bk[c];
        } else {
          std::memcpy(row, src, sizeof(float) * D);
        }
      }
    }
    if (p.v_all) {
      float* dst = p.v_all + i * all_rows * Dv;
      const float* kept = P ? p.past_v + i * past_rows * Dv : nullptr;
      if (kept && kept != dst) std::memcpy(dst, kept, sizeof(float) * P * Dv);
      for (int64_t l = 0; l < L; ++l) {
        const float* src = p.v.at(b, l, n);
        float* row = dst + (P + l) * Dv;
        if (p.bias_v) {
          const float* bv = p.bias_v + n * Dv;
          for (int64_t c = 0; c < Dv; ++c) row[c] = src[c] + bv[c];
        } else {
          std::memcpy(row, src, sizeof(float) * Dv);
        }
      }
    }
    if (S == 0) return;
    float* sc = scores + (parallel ? omp_get_thread_num() : 0) * S * T;
    if (T == 0) {
      for (int64_t s = 0; s < S; ++s) std::fill_n(p.out + (b * S + s) * N * Dv + n * Dv, Dv, 0.f);
      return;
    }
    // Decoding (a few new tokens over a past): direct dot products; a oneDNN sgemm call costs
    // more than the work itself at these sizes (2 calls per head and layer per token).
    const bool small = S <= 4;
    if (small) {
      for (int64_t s = 0; s < S; ++s) {
        const float* qs = p.q.at(b, s, n);
        float* row = sc + s * T;
        for (int64_t j = 0; j < T; ++j) {
          const float* kj = kd + j * ldk;
          float acc = 0.f;
#pragma omp simd reduction(+ : acc)
          for (int64_t c = 0; c < D; ++c) acc += qs[c] * kj[c];
          row[j] = p.scale * acc;
        }
      }
    } else {
      sgemm(false, true, S, T, D, p.scale, p.q.at(b, 0, n), p.q.ss, kd, ldk, 0.f, sc, T);
    }
    for (int64_t s = 0; s < S; ++s) {
      float* row = sc + s * T;
      if (p.mask.base) {
        const float* mr = p.mask.base + b * p.mask.bs + s * p.mask.ss;
        for (int64_t j = 0; j < T; ++j) row[j] += mr[j];
      }
      if (p.ab.base) {
        const float* ar = p.ab.base + b * p.ab.bs + n * p.ab.ns + s * T;
        for (int64_t j = 0; j < T; ++j) row[j] += ar[j];
      }
      if (p.causal)
        for (int64_t j = std::max<int64_t>(P + s + 1, 0); j < T; ++j) row[j] += p.filter;
      softmax_row(row, T);
    }
    if (small) {
      for (int64_t s = 0; s < S; ++s) {
        float* o = p.out + (b * S + s) * N * Dv + n * Dv;
        std::fill_n(o, Dv, 0.f);
        const float* row = sc + s * T;
        for (int64_t j = 0; j < T; ++j) {
          const float w = row[j];
          const float* vj = vd + j * ldv;
#pragma omp simd
          for (int64_t c = 0; c < Dv; ++c) o[c] += w * vj[c];
        }
      }
    } else {
      sgemm(false, false, S, Dv, T, 1.f, sc, T, vd, ldv, 0.f, p.out + b * S * N * Dv + n * Dv,
            N * Dv);
    }
  };
  if (parallel) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < heads; ++i) one(i);
  } else {
    for (int64_t i = 0; i < heads; ++i) one(i);
  }
}

// n float16/bfloat16 elements of `t` from element `at`, widened into `dst`; and back.
void rows_to_float(const OutputTensor& t, int64_t at, float* dst, int64_t n) {
  if (t.dtype() == TFH_TYPE_FLOAT16)
    widen(t.data<Float16>() + at, dst, n);
  else
    widen(t.data<BFloat16>() + at, dst, n);
}
void rows_from_float(const float* src, OutputTensor& t, int64_t at, int64_t n) {
  if (t.dtype() == TFH_TYPE_FLOAT16)
    narrow(src, t.data<Float16>() + at, n);
  else
    narrow(src, t.data<BFloat16>() + at, n);
}

// past_sequence_length (Attention's input 6) of a buffer of M rows shared by past and present:
// one int32/int64 value P with P + S <= M.
int64_t shared_past_length(const TensorView& t, int64_t S, int64_t M) {
  if (!t || t.size() != 1)
    sdk::fail("past_present_share_buffer needs past_sequence_length (input 6), one value");
  const int64_t P = read_ints(t)[0];
  if (P < 0 || P + S > M)
    sdk::fail("past_sequence_length " + std::to_string(P) + " + sequence " + std::to_string(S) +
              " does not fit the shared past/present buffer of " + std::to_string(M) + " rows");
  return P;
}

float default_scale(float attr, int64_t head_size) {
  return attr != 0.f ? attr : 1.f / std::sqrt(static_cast<float>(head_size));
}

// Attention: input [B,S,H_in] @ weights [H_in, Dq+Dk+Dv] + bias, split into Q, K, V of num_heads
// heads; optional mask_index, past [2,B,N,P,D] (present [2,B,N,P+S,D]) and attention_bias.
// With past_present_share_buffer, past and present are one buffer [2,B,N,M,D] of M rows per
// head: input 6 (past_sequence_length) says how many rows are the past, the new keys/values go
// to rows [P, P+S), and present (same shape as past) takes the past's buffer over when the
// runtime can hand it (see output_from_input), else a copy. A 2-D mask may then be [B, P+S]
// (ONNX Runtime's form) or [B, W] up to [B, M] (fixed-width, so every decoding step has the
// same shapes; the first P+S entries count).
struct Attention {
  int64_t num_heads;
  bool unidirectional, share_buffer;
  std::vector<int64_t> qkv_sizes;
  float filter, scale_attr;
  std::unique_ptr<PackedGemm> packed;  // constant float weights, packed once
  std::unique_ptr<HalfWeights> half_w;  // constant float16/bfloat16 weights, kept 16-bit
  explicit Attention(NodeView n)
      : num_heads(n.attr_int("num_heads")),
        unidirectional(n.attr_int("unidirectional", 0) != 0),
        share_buffer(n.attr_int("past_present_share_buffer", 0) != 0),
        qkv_sizes(n.attr_ints("qkv_hidden_sizes", {})),
        filter(n.attr_float("mask_filter_value", -10000.f)),
        scale_attr(n.attr_float("scale", 0.f)) {
    if (num_heads <= 0) sdk::fail("num_heads must be positive");
    if (n.attr_int("do_rotary", 0) != 0) sdk::fail("do_rotary is not supported on the CPU");
    if (!qkv_sizes.empty() && qkv_sizes.size() != 3)
      sdk::fail("qkv_hidden_sizes must have 3 values");
    TensorView w = n.num_inputs() > 1 ? n.input(1).constant() : TensorView();
    half_w = HalfWeights::from(w);
    if (!half_w) packed = pack_constant_weights(w);
    if (packed || half_w) constant_input_consumed(n, 1);  // compute reads only its dims now
  }
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0), w = ctx.required(1), bias = ctx.input(2), mask = ctx.input(3),
               past = ctx.input(4), abias = ctx.input(5);
    check_float(x, "input");
    check_float(w, "weights");
    Dims dx = dims_of(x), dw = dims_of(w);
    if (dx.size() != 3)
      sdk::fail("input " + dims_str(dx) + " must be 3-D [batch, sequence, hidden]");
    if (dw.size() != 2 || dw[0] != dx[2])
      sdk::fail("weights " + dims_str(dw) + " must be [" + std::to_string(dx[2]) +
                ", Q+K+V hidden]");
    const int64_t B = dx[0], S = dx[1], Hin = dx[2], W = dw[1], N = num_heads;
    int64_t Dq = W / 3, Dk = W / 3, Dv = W / 3;
    if (!qkv_sizes.empty()) {
      Dq = qkv_sizes[0], Dk = qkv_sizes[1], Dv = qkv_sizes[2];
    } else if (W % 3) {
      sdk::fail("weights' second dimension " + std::to_string(W) + " is not divisible by 3");
    }
    if (Dq + Dk + Dv != W)
      sdk::fail("qkv_hidden_sizes add up to " + std::to_string(Dq + Dk + Dv) +
                ", the weights have " + std::to_string(W) + " columns");
    if (Dq != Dk) sdk::fail("Q and K hidden sizes differ");
    if (Dq % N || Dv % N)
      sdk::fail("hidden sizes " + std::to_string(Dq) + "/" + std::to_string(Dv) +
                " are not divisible by num_heads " + std::to_string(N));
    const int64_t D = Dq / N, Dvh = Dv / N;
    int64_t P = 0, M = 0;  // M: rows per head of a buffer shared by past and present, else 0
    Dims dp;
    if (past) {
      check_float(past, "past");
      dp = dims_of(past);
      if (dp.size() != 5 || dp[0] != 2 || dp[1] != B || dp[2] != N || dp[4] != D)
        sdk::fail("past " + dims_str(dp) + " must be [2, " + std::to_string(B) + ", " +
                  std::to_string(N) + ", past_sequence, " + std::to_string(D) + "]");
      if (D != Dvh) sdk::fail("past needs equal Q, K and V hidden sizes");
      P = dp[3];
      if (share_buffer) {
        M = dp[3];
        P = shared_past_length(ctx.input(6), S, M);
      }
    }
    const int64_t T = P + S;
    const bool want_present = ctx.num_outputs() > 1 && ctx.output_used(1);
    if (want_present && D != Dvh) sdk::fail("present needs equal K and V hidden sizes");

    OutputTensor y = ctx.output(0, x.dtype(), Dims{B, S, Dv});
    OutputTensor present(nullptr);
    float* kv = nullptr;  // K then V of every head, [2, B, N, T (or M), D]
    const bool has_present = M ? ctx.num_outputs() > 1 : want_present;
    if (M) {
      // The shared buffer: present starts as the past (its own buffer, or a copy of it). In
      // float16/bfloat16 the kernel works on a float copy of the rows it reads (the past's) and
      // narrows back only the rows it writes (the new ones).
      const int64_t n = B * N * M * D;
      if (has_present) {
        present = ctx.output_from_input(1, 4, dp);
        kv = out_buffer(ctx, present);
        if (present.dtype() != TFH_TYPE_FLOAT)
          for (int64_t h = 0; h < 2 * B * N; ++h)
            rows_to_float(present, h * M * D, kv + h * M * D, P * D);
      } else {
        kv = ctx.scratch<float>(static_cast<size_t>(2 * n));
        std::memcpy(kv, as_float(ctx, past), sizeof(float) * 2 * n);
      }
    } else if (want_present) {
      present = ctx.output(1, x.dtype(), Dims{2, B, N, T, D});
      kv = out_buffer(ctx, present);
    } else if (past) {
      kv = ctx.scratch<float>(std::max<int64_t>(B * N * T * (D + Dvh), 1));
    }
    // Present, narrowed from kv: a shared buffer's new rows only, else all of it.
    auto finish_present = [&] {
      if (!has_present) return;
      if (!M) return finish(present, kv);
      if (present.dtype() == TFH_TYPE_FLOAT) return;  // written in place
      for (int64_t h = 0; h < 2 * B * N; ++h)
        rows_from_float(kv + (h * M + P) * D, present, (h * M + P) * D, S * D);
    };
    if (B * S * Dv == 0 && B * N * T * D == 0) {
      finish_present();
      return;
    }

    // qkv[B*S, W] = x @ weights + bias
    float* qkv = ctx.scratch<float>(std::max<int64_t>(B * S * W, 1));
    if (B * S > 0) {
      if (half_w)
        half_w->run(ctx, as_float(ctx, x), B * S, qkv);
      else if (packed)
        packed->run(as_float(ctx, x), B * S, qkv);
      else
        sgemm(false, false, B * S, W, Hin, 1.f, as_float(ctx, x), Hin, as_float(ctx, w), W, 0.f,
              qkv, W);
    }
    if (bias) {
      const float* pb = vector_input(ctx, bias, W, "bias");
      parallel_rows(B * S, B * S * W, [&](int64_t r) {
        float* row = qkv + r * W;
        for (int64_t c = 0; c < W; ++c) row[c] += pb[c];
      });
    }

    AttentionProblem p;
    p.B = B, p.N = N, p.S = S, p.L = S, p.P = P, p.D = D, p.Dv = Dvh;
    p.q = {qkv, S * W, W, D};
    p.k = {qkv + Dq, S * W, W, D};
    p.v = {qkv + Dq + Dk, S * W, W, Dvh};
    if (M) {  // the past is already in place
      p.cache_rows = M;
      p.past_k = kv;
      p.past_v = kv + B * N * M * D;
    } else if (past) {
      const float* pp = as_float(ctx, past);
      p.past_k = pp;
      p.past_v = pp + B * N * P * D;
    }
    if (kv) {
      p.k_all = kv;
      p.v_all = kv + B * N * (M ? M : T) * D;
    }
    p.scale = default_scale(scale_attr, D);
    p.filter = filter;
    p.causal = unidirectional;
    p.mask = build_mask(ctx, mask, B, S, T, filter, "mask_index", M);
    p.ab = read_attention_bias(ctx, abias, B, N, S, T);
    float* py = out_buffer(ctx, y);
    p.out = py;
    run_attention(ctx, p);
    finish(y, py);
    finish_present();
  }
};

// MultiHeadAttention: query [B,S,Dq]; key [B,L,Dk] and value [B,L,Dv], or query packed QKV
// [B,S,N,3,D] (no key/value), or key packed KV [B,L,N,2,D] (no value), or key/value already
// split into heads [B,N,L,D] (cross attention; bias then applies to Q only). Optional bias
// [Dq+Dk+Dv], key_padding_mask, attention_bias, past_key/past_value [B,N,P,D]; outputs output
// [B,S,Dv], present_key/present_value [B,N,P+L,D].
struct MultiHeadAttention {
  int64_t num_heads;
  bool unidirectional;
  float filter, scale_attr;
  explicit MultiHeadAttention(NodeView n)
      : num_heads(n.attr_int("num_heads")),
        unidirectional(n.attr_int("unidirectional", 0) != 0),
        filter(n.attr_float("mask_filter_value", -10000.f)),
        scale_attr(n.attr_float("scale", 0.f)) {
    if (num_heads <= 0) sdk::fail("num_heads must be positive");
  }
  void compute(KernelContext& ctx) {
    TensorView q = ctx.required(0), key = ctx.input(1), value = ctx.input(2), bias = ctx.input(3),
               kpm = ctx.input(4), abias = ctx.input(5), past_k = ctx.input(6),
               past_v = ctx.input(7);
    if (ctx.input(8) || ctx.input(9))
      sdk::fail(
          "past_sequence_length and cache_indirection (shared KV buffers) are not supported "
          "on the CPU");
    if (ctx.num_outputs() > 3 && ctx.output_used(3)) sdk::fail("the qk output is not supported");
    check_float(q, "query");
    const int64_t N = num_heads;
    Dims dq = dims_of(q);
    int64_t B = 0, S = 0, L = 0, D = 0, Dvh = 0;
    AttentionProblem p;
    bool kv_heads = false;  // key/value given as [B,N,L,D]
    const float* pq = as_float(ctx, q);
    if (dq.size() == 5) {  // packed QKV
      if (key || value) sdk::fail("packed QKV query takes no key or value");
      if (dq[2] != N || dq[3] != 3)
        sdk::fail("packed QKV " + dims_str(dq) + " must be [B, S, " + std::to_string(N) +
                  ", 3, D]");
      B = dq[0], S = dq[1], L = S, D = dq[4], Dvh = D;
      const int64_t ss = N * 3 * D;
      p.q = {pq, S * ss, ss, 3 * D};
      p.k = {pq + D, S * ss, ss, 3 * D};
      p.v = {pq + 2 * D, S * ss, ss, 3 * D};
    } else if (dq.size() == 3) {
      B = dq[0], S = dq[1];
      if (dq[2] % N)
        sdk::fail("query hidden size " + std::to_string(dq[2]) + " is not divisible by num_heads");
      D = dq[2] / N;
      p.q = {pq, S * dq[2], dq[2], D};
      if (!key) sdk::fail("key is missing");
      check_float(key, "key");
      Dims dk = dims_of(key);
      const float* pk = as_float(ctx, key);
      if (dk.size() == 5) {  // packed KV
        if (value) sdk::fail("packed KV key takes no value");
        if (dk[0] != B || dk[2] != N || dk[3] != 2 || dk[4] != D)
          sdk::fail("packed KV " + dims_str(dk) + " must be [" + std::to_string(B) + ", L, " +
                    std::to_string(N) + ", 2, " + std::to_string(D) + "]");
        L = dk[1], Dvh = D;
        const int64_t ss = N * 2 * D;
        p.k = {pk, L * ss, ss, 2 * D};
        p.v = {pk + D, L * ss, ss, 2 * D};
      } else {
        if (!value) sdk::fail("value is missing");
        check_float(value, "value");
        Dims dv = dims_of(value);
        const float* pv = as_float(ctx, value);
        if (dk.size() == 3 && dv.size() == 3) {
          if (dk[0] != B || dk[2] != dq[2] || dv[0] != B || dv[1] != dk[1] || dv[2] % N)
            sdk::fail("key " + dims_str(dk) + " / value " + dims_str(dv) + " do not fit query " +
                      dims_str(dq));
          L = dk[1], Dvh = dv[2] / N;
          p.k = {pk, L * dk[2], dk[2], D};
          p.v = {pv, L * dv[2], dv[2], Dvh};
        } else if (dk.size() == 4 && dv.size() == 4) {
          if (dk[0] != B || dk[1] != N || dk[3] != D || dv[0] != B || dv[1] != N || dv[2] != dk[2])
            sdk::fail("key " + dims_str(dk) + " / value " + dims_str(dv) + " must be [" +
                      std::to_string(B) + ", " + std::to_string(N) + ", L, head_size]");
          L = dk[2], Dvh = dv[3];
          p.k = {pk, N * L * D, D, L * D};
          p.v = {pv, N * L * Dvh, Dvh, L * Dvh};
          kv_heads = true;
        } else {
          sdk::fail("key " + dims_str(dk) + " / value " + dims_str(dv) + ": unsupported ranks");
        }
      }
    } else {
      sdk::fail("query " + dims_str(dq) + " must be 3-D, or 5-D packed QKV");
    }
    const int64_t Dq = N * D, Dv = N * Dvh;
    if (static_cast<bool>(past_k) != static_cast<bool>(past_v))
      sdk::fail("past_key and past_value come together");
    int64_t P = 0;
    if (past_k) {
      if (kv_heads) sdk::fail("past_key/past_value with key/value already split into heads");
      check_float(past_k, "past_key");
      check_float(past_v, "past_value");
      Dims dpk = dims_of(past_k), dpv = dims_of(past_v);
      if (dpk.size() != 4 || dpk[0] != B || dpk[1] != N || dpk[3] != D || dpv.size() != 4 ||
          dpv[0] != B || dpv[1] != N || dpv[2] != dpk[2] || dpv[3] != Dvh)
        sdk::fail("past_key " + dims_str(dpk) + " / past_value " + dims_str(dpv) + " must be [" +
                  std::to_string(B) + ", " + std::to_string(N) + ", P, head_size]");
      P = dpk[2];
      p.past_k = as_float(ctx, past_k);
      p.past_v = as_float(ctx, past_v);
    }
    const int64_t T = P + L;
    if (bias) {
      const float* pb = vector_input(ctx, bias, Dq + Dq + Dv, "bias");
      // Q plus its bias, copied to [B, S, Dq].
      float* qb = ctx.scratch<float>(std::max<int64_t>(B * S * Dq, 1));
      const HeadView qv = p.q;
      parallel_rows(B * S, B * S * Dq, [&](int64_t r) {
        const int64_t b = r / S, s = r % S;
        for (int64_t n = 0; n < N; ++n) {
          const float* src = qv.at(b, s, n);
          float* dst = qb + r * Dq + n * D;
          for (int64_t c = 0; c < D; ++c) dst[c] = src[c] + pb[n * D + c];
        }
      });
      p.q = {qb, S * Dq, Dq, D};
      if (!kv_heads) {
        p.bias_k = pb + Dq;
        p.bias_v = pb + 2 * Dq;
      }
    }
    OutputTensor y = ctx.output(0, q.dtype(), Dims{B, S, Dv});
    const bool want_k = ctx.num_outputs() > 1 && ctx.output_used(1);
    const bool want_v = ctx.num_outputs() > 2 && ctx.output_used(2);
    OutputTensor pk_t(nullptr), pv_t(nullptr);
    if (want_k) {
      pk_t = ctx.output(1, q.dtype(), Dims{B, N, T, D});
      p.k_all = out_buffer(ctx, pk_t);
    } else if (P || p.bias_k) {
      p.k_all = ctx.scratch<float>(std::max<int64_t>(B * N * T * D, 1));
    }
    if (want_v) {
      pv_t = ctx.output(2, q.dtype(), Dims{B, N, T, Dvh});
      p.v_all = out_buffer(ctx, pv_t);
    } else if (P || p.bias_v) {
      p.v_all = ctx.scratch<float>(std::max<int64_t>(B * N * T * Dvh, 1));
    }
    if (kpm && kpm.rank() == 1 && static_cast<int64_t>(kpm.size()) == 3 * B + 2)
      sdk::fail("key_padding_mask of 3 * batch + 2 values is not supported on the CPU");
    p.B = B, p.N = N, p.S = S, p.L = L, p.P = P, p.D = D, p.Dv = Dvh;
    p.scale = default_scale(scale_attr, D);
    p.filter = filter;
    p.causal = unidirectional;
    p.mask = build_mask(ctx, kpm, B, S, T, filter, "key_padding_mask");
    p.ab = read_attention_bias(ctx, abias, B, N, S, T);
    float* py = out_buffer(ctx, y);
    p.out = py;
    run_attention(ctx, p);
    finish(y, py);
    if (want_k) finish(pk_t, p.k_all);
    if (want_v) finish(pv_t, p.v_all);
  }
};

}  // namespace

void add_contrib_kernels(std::vector<const TfhKernelDesc*>& out) {
  using Gelu = GeluKernel<GeluForm::Erf, BiasInput::None>;
  using BiasGelu = GeluKernel<GeluForm::Erf, BiasInput::Required>;
  using FastGelu = GeluKernel<GeluForm::Tanh, BiasInput::Optional>;
  TFH_CPU_KERNEL_DOMAIN(Gelu, "com.microsoft", "Gelu")
  TFH_CPU_KERNEL_DOMAIN(BiasGelu, "com.microsoft", "BiasGelu")
  TFH_CPU_KERNEL_DOMAIN(FastGelu, "com.microsoft", "FastGelu")
  TFH_CPU_KERNEL_DOMAIN(SkipLayerNorm<false>, "com.microsoft", "SkipLayerNormalization")
  TFH_CPU_KERNEL_DOMAIN(SkipLayerNorm<true>, "com.microsoft", "SkipSimplifiedLayerNormalization")
  TFH_CPU_KERNEL_DOMAIN(SimplifiedLayerNorm, "com.microsoft", "SimplifiedLayerNormalization")
  TFH_CPU_KERNEL_DOMAIN(EmbedLayerNorm, "com.microsoft", "EmbedLayerNormalization")
  TFH_CPU_KERNEL_DOMAIN(Attention, "com.microsoft", "Attention")
  TFH_CPU_KERNEL_DOMAIN(MultiHeadAttention, "com.microsoft", "MultiHeadAttention")
  // ONNX Runtime registers SimplifiedLayerNormalization in the ONNX domain (ONNX itself has no
  // such op), and its fusions emit it there.
  static const TfhKernelDesc simplified_onnx =
      TFH_KERNEL_DESC(SimplifiedLayerNorm, "tfhost.cpu.SimplifiedLayerNormalization.onnx", "",
                      "SimplifiedLayerNormalization", 1, 0, TFH_DEVICE_CPU, "", 0);
  out.push_back(&simplified_onnx);
}

}  // namespace tfh::kernels::cpu
