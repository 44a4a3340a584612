// Compute-heavy ONNX ops: MatMul and Gemm through oneDNN's sgemm, Softmax, LayerNormalization and
// the reductions. float16 inputs are widened to float32 and the result narrowed back.
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>

#include "kernels/common/axis_split.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/vmath.h"

namespace tfh::kernels::cpu {

// Row-major C[M,N] = alpha * op(A) op(B) + beta * C (declared in common.h).
void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
    return;
  }
  dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                                beta, c, ldc);
  if (st != dnnl_success) sdk::fail("oneDNN sgemm failed (status " + std::to_string(st) + ")");
}

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// x @ W with W a constant [K, N] float matrix: W is reordered once, when the kernel is created,
// into oneDNN's blocked layout for its brgemm kernels, and one primitive per row count M is kept (M = batch x sequence, which changes only when the input shape does). Measured on
// GPT-2 decoding (M = 1): faster than sgemm on the plain weights, at the cost of a second copy of
// the weights in memory (docs/PERFORMANCE.md).
class PackedWeights : public PackedGemm {
 public:
  // w: [k, n] row-major, or [n, k] when `transposed` (Gemm's transB); bias: n values or NULL;
  // gelu_tanh: FastGelu applied to (product + bias) as oneDNN's post-op (GemmFastGelu), while
  // the tile is still in registers.
  PackedWeights(const float* w, int64_t k, int64_t n, bool transposed = false,
                const float* bias = nullptr, bool gelu_tanh = false)
      : k_(k), n_(n), transposed_(transposed) {
    if (bias) bias_.assign(bias, bias + n);
    if (gelu_tanh) {
      dnnl::post_ops po;
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f);
      attr_.set_post_ops(po);
    }
    // Packed now, so the caller may give the original back: oneDNN's blocked layout for these
    // kernels does not depend on the row count (checked for M = 1..1024 on AVX-512/AVX2), so a
    // typical M chooses it and every later M reuses it.
    using md = dnnl::memory::desc;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const int64_t m = 128;
    md ad({m, k_}, dt::f32, tag::ab), cd({m, n_}, dt::f32, tag::ab);
    md wd({k_, n_}, dt::f32, tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, wd, cd), attr_, cpu_engine());
    dnnl::stream st(cpu_engine());
    dnnl::memory plain(md({k_, n_}, dt::f32, transposed_ ? tag::ba : tag::ab), cpu_engine(),
                       const_cast<float*>(w));
    packed_ = dnnl::memory(pd.weights_desc(), cpu_engine());
    dnnl::reorder(plain, packed_).execute(st, plain, packed_);
    st.wait();
  }
  void run(const float* a, int64_t m, float* c) override {
    std::lock_guard<std::mutex> lock(mu_);
    using md = dnnl::memory::desc;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    auto it = prims_.find(m);
    if (it == prims_.end()) {
      md ad({m, k_}, dt::f32, tag::ab), cd({m, n_}, dt::f32, tag::ab);
      md wd = packed_.get_desc();
      auto desc = bias_.empty() ? dnnl::matmul::desc(ad, wd, cd)
                                : dnnl::matmul::desc(ad, wd, md({1, n_}, dt::f32, tag::ab), cd);
      dnnl::matmul::primitive_desc pd(desc, attr_, cpu_engine());
      it = prims_.emplace(m, dnnl::matmul(pd)).first;
    }
    dnnl::stream s(cpu_engine());
    dnnl::memory am({{m, k_}, dt::f32, tag::ab}, cpu_engine(), const_cast<float*>(a));
    dnnl::memory cm({{m, n_}, dt::f32, tag::ab}, cpu_engine(), c);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, packed_}, {DNNL_ARG_DST, cm}};
    if (!bias_.empty())
      args.emplace(DNNL_ARG_BIAS,
                   dnnl::memory({{1, n_}, dt::f32, tag::ab}, cpu_engine(), bias_.data()));
    it->second.execute(s, args);
    s.wait();
  }

 private:
  int64_t k_, n_;
  bool transposed_;
  std::vector<float> bias_;
  dnnl::primitive_attr attr_;  // the GELU post-op, or none
  dnnl::memory packed_;
  std::unordered_map<int64_t, dnnl::matmul> prims_;
  std::mutex mu_;
};

// Weights above this size are not packed: packing holds the original and the packed copy at once
// (the peak memory of planning), and for such matrices (LM heads, 150+ MB) the product is bound
// by reading the weights, where sgemm on the plain layout measured as fast (GPT-2 decoding).
constexpr size_t kMaxPackedBytes = size_t(64) << 20;

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#define TFH_HALF_SIMD 1
// 8 consecutive 16-bit floats as floats (F16C / an integer shift for bfloat16).
template <typename H>
inline __m256 load8(const H* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (std::is_same_v<H, Float16>)
    return _mm256_cvtph_ps(h);
  else
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// y[M, N] = a[M, K] @ W for M <= 4 rows, W stored transposed (wt: [N, K], 16-bit): four output
// columns at a time, each a dot product over a contiguous stretch of wt, so the whole matrix is
// streamed once, in order, at half the bytes of float32: what a decoding step is bound by.
#endif

template <int M, typename H>
void dot_columns(const float* a, const H* wt, int64_t K, int64_t N, float* y) {
#ifdef TFH_HALF_SIMD
  const int64_t groups = (N + 3) / 4, k8 = K / 8 * 8;
#pragma omp parallel for schedule(static) if (K * N > 65536)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t n0 = g * 4, cols = std::min<int64_t>(4, N - n0);
    const H* w0 = wt + n0 * K;
    if (cols == 4) {
      __m256 acc[M][4];
      for (int m = 0; m < M; ++m)
        for (int c = 0; c < 4; ++c) acc[m][c] = _mm256_setzero_ps();
      for (int64_t kk = 0; kk < k8; kk += 8) {
        __m256 w[4];
        for (int c = 0; c < 4; ++c) w[c] = load8(w0 + c * K + kk);
        for (int m = 0; m < M; ++m) {
          const __m256 av = _mm256_loadu_ps(a + m * K + kk);
          for (int c = 0; c < 4; ++c) acc[m][c] = _mm256_fmadd_ps(av, w[c], acc[m][c]);
        }
      }
      for (int m = 0; m < M; ++m)
        for (int c = 0; c < 4; ++c) {
          float v = hsum(acc[m][c]);
          for (int64_t kk = k8; kk < K; ++kk) v += a[m * K + kk] * load_f(w0 + c * K, kk);
          y[m * N + n0 + c] = v;
        }
    } else {  // the last, partial group
      for (int64_t c = 0; c < cols; ++c)
        for (int m = 0; m < M; ++m) {
          float v = 0;
          for (int64_t kk = 0; kk < K; ++kk) v += a[m * K + kk] * load_f(w0 + c * K, kk);
          y[m * N + n0 + c] = v;
        }
    }
  }
#else  // a CPU target without AVX2/F16C/FMA (TFH_CPU_ARCH=x86-64-v2): the same sums, scalar
#pragma omp parallel for schedule(static) if (K * N > 65536)
  for (int64_t n = 0; n < N; ++n)
    for (int m = 0; m < M; ++m) {
      float v = 0;
      for (int64_t kk = 0; kk < K; ++kk) v += a[m * K + kk] * load_f(wt + n * K, kk);
      y[m * N + n] = v;
    }
#endif
}

template <typename H>
void dot_columns(const float* a, int64_t m, const H* wt, int64_t K, int64_t N, float* y) {
  switch (m) {
    case 1: return dot_columns<1>(a, wt, K, N, y);
    case 2: return dot_columns<2>(a, wt, K, N, y);
    case 3: return dot_columns<3>(a, wt, K, N, y);
    default: return dot_columns<4>(a, wt, K, N, y);
  }
}

}  // namespace

std::unique_ptr<HalfWeights> HalfWeights::from(const TensorView& w) {
  if (!w || !is_half(w.dtype()) || w.rank() != 2 || w.size() == 0) return nullptr;
  auto h = std::unique_ptr<HalfWeights>(new HalfWeights());
  h->type_ = w.dtype();
  h->k_ = w.dims()[0];
  h->n_ = w.dims()[1];
  h->wt_.resize(w.size());
  const uint16_t* src = static_cast<const uint16_t*>(w.raw());
  constexpr int64_t kTile = 64;  // transposed in tiles, so both sides stay in cache
  for (int64_t k0 = 0; k0 < h->k_; k0 += kTile)
    for (int64_t n0 = 0; n0 < h->n_; n0 += kTile)
      for (int64_t k = k0; k < std::min(h->k_, k0 + kTile); ++k)
        for (int64_t n = n0; n < std::min(h->n_, n0 + kTile); ++n)
          h->wt_[n * h->k_ + k] = src[k * h->n_ + n];
  return h;
}

void HalfWeights::run(KernelContext& ctx, const float* a, int64_t m, float* y) const {
  if (m <= 0) return;
  if (m <= 4) {
    if (type_ == TFH_TYPE_FLOAT16)
      dot_columns(a, m, reinterpret_cast<const Float16*>(wt_.data()), k_, n_, y);
    else
      dot_columns(a, m, reinterpret_cast<const BFloat16*>(wt_.data()), k_, n_, y);
    return;
  }
  // More rows (prefill, encoders): packed as float on first use, like a float weight, and kept
  // next to the 16-bit copy (a model that only ever decodes never pays for it). Beyond the
  // packing limit, a float copy of W^T in scratch per call and one GEMM.
  if (4 * wt_.size() <= kMaxPackedBytes) {
    std::call_once(pack_once_, [this] {
      std::vector<float> wide(wt_.size());
      if (type_ == TFH_TYPE_FLOAT16)
        widen(reinterpret_cast<const Float16*>(wt_.data()), wide.data(), static_cast<int64_t>(wide.size()));
      else
        widen(reinterpret_cast<const BFloat16*>(wt_.data()), wide.data(), static_cast<int64_t>(wide.size()));
      packed_ = std::make_unique<PackedWeights>(wide.data(), k_, n_, /*transposed=*/true);
    });
    packed_->run(a, m, y);
    return;
  }
  if (m <= 32) {  // a big matrix (an LM head) and a few rows: 4 rows per pass over it
    for (int64_t r = 0; r < m; r += 4) {
      const int64_t rows = std::min<int64_t>(4, m - r);
      if (type_ == TFH_TYPE_FLOAT16)
        dot_columns(a + r * k_, rows, reinterpret_cast<const Float16*>(wt_.data()), k_, n_, y + r * n_);
      else
        dot_columns(a + r * k_, rows, reinterpret_cast<const BFloat16*>(wt_.data()), k_, n_, y + r * n_);
    }
    return;
  }
  float* wf = ctx.scratch<float>(wt_.size());
  if (type_ == TFH_TYPE_FLOAT16)
    widen(reinterpret_cast<const Float16*>(wt_.data()), wf, static_cast<int64_t>(wt_.size()));
  else
    widen(reinterpret_cast<const BFloat16*>(wt_.data()), wf, static_cast<int64_t>(wt_.size()));
  sgemm(false, true, m, n_, k_, 1.f, a, k_, wf, k_, 0.f, y, n_);
}

namespace {

// MatMul, and com.microsoft.GemmFastGelu (X, W [K, N], bias [N]?): FastGelu(X @ W + bias), the
// activation applied to the float product before it is narrowed (one rounding, as on CUDA).
struct MatMul {
  std::unique_ptr<PackedGemm> packed;  // B is a constant 2-D float/float16/bfloat16 matrix
  // B when it is a constant 2-D float16/bfloat16 matrix: kept 16-bit (transposed), never
  // widened for good (see HalfWeights).
  std::unique_ptr<HalfWeights> half_b;
  bool fast_gelu = false;  // GemmFastGelu
  bool packed_gelu = false;  // `packed` adds the bias and applies FastGelu itself
  explicit MatMul(NodeView n, bool gemm_fast_gelu = false) : fast_gelu(gemm_fast_gelu) {
    TensorView b = n.input(1).constant();
    half_b = HalfWeights::from(b);
    if (!half_b && fast_gelu && b && b.dtype() == TFH_TYPE_FLOAT && b.rank() == 2 &&
        b.size() > 0 && b.nbytes() <= kMaxPackedBytes) {
      // GemmFastGelu with float W and a constant float bias (or none): one oneDNN matmul with
      // the bias and the GELU post-op.
      const ValueView bv = n.num_inputs() > 2 ? n.input(2) : ValueView();
      const TensorView c = bv ? bv.constant() : TensorView();
      const bool bias_ok = !bv || (c && c.dtype() == TFH_TYPE_FLOAT && c.rank() == 1 &&
                                   static_cast<int64_t>(c.size()) == b.dims()[1]);
      if (bias_ok) {
        packed = std::make_unique<PackedWeights>(b.data<float>().data(), b.dims()[0], b.dims()[1],
                                                 false, c ? c.data<float>().data() : nullptr,
                                                 /*gelu_tanh=*/true);
        packed_gelu = true;
      }
    }
    if (!half_b && !packed) packed = pack_constant_weights(b, kMaxPackedBytes);
    if (packed || half_b) constant_input_consumed(n, 1);
  }
  // The product's rows [rows, n] in float, before narrowing: GemmFastGelu's activation.
  void epilogue(float* pc, int64_t rows, int64_t n, const float* bias) const {
    if (!fast_gelu) return;
#pragma omp parallel for schedule(static) if (rows * n > 65536)
    for (int64_t r = 0; r < rows; ++r) fast_gelu_row(pc + r * n, bias, pc + r * n, n);
  }
  void compute(KernelContext& ctx) {
    TensorView a = ctx.required(0), b = ctx.required(1);
    if (a.dtype() != b.dtype()) sdk::fail("A and B differ in element type");
    const TfhDataType type = a.dtype();
    if (!is_float_like(type)) unsupported_type(type);
    Dims da = dims_of(a), db = dims_of(b);
    if (da.empty() || db.empty()) sdk::fail("MatMul of a scalar");
    const float* bias = nullptr;  // GemmFastGelu's, as float
    if (fast_gelu) {
      if (db.size() != 2) sdk::fail("W " + dims_str(db) + " must be a 2-D [K, N] matrix");
      if (TensorView c = ctx.input(2)) {
        if (c.dtype() != type) sdk::fail("bias and X differ in element type");
        if (c.rank() != 1 || static_cast<int64_t>(c.size()) != db[1])
          sdk::fail("bias " + dims_str(dims_of(c)) + " must be 1-D with W's " +
                    std::to_string(db[1]) + " columns");
        bias = as_float(ctx, c);
      }
    }
    const bool a_vec = da.size() == 1, b_vec = db.size() == 1;
    if (a_vec) da.insert(da.begin(), 1);
    if (b_vec) db.push_back(1);
    const int64_t m = da[da.size() - 2], k = da.back(), n = db.back();
    if (db[db.size() - 2] != k)
      sdk::fail("shapes " + dims_str(dims_of(a)) + " and " + dims_str(dims_of(b)) +
                " cannot be multiplied");
    Dims ba(da.begin(), da.end() - 2), bb(db.begin(), db.end() - 2);
    Dims batch = broadcast_shape(ba, bb);
    Dims out = batch;
    if (!a_vec) out.push_back(m);
    if (!b_vec) out.push_back(n);
    OutputTensor y = ctx.output(0, type, out);
    const int64_t nb = numel(batch);
    if (numel(out) == 0) return;

    if (half_b && bb.empty()) {
      float* pc = type == TFH_TYPE_FLOAT ? y.data<float>() : ctx.scratch<float>(nb * m * n);
      half_b->run(ctx, as_float(ctx, a), nb * m, pc);
      epilogue(pc, nb * m, n, bias);
      narrow_into(pc, y, numel(out));
      return;
    }
    if (packed && bb.empty()) {
      if (type == TFH_TYPE_FLOAT) {
        packed->run(a.data<float>().data(), nb * m, y.data<float>());
        if (!packed_gelu) epilogue(y.data<float>(), nb * m, n, bias);
      } else {  // float16/bfloat16: widened A, float product, rounded into Y
        float* pc = ctx.scratch<float>(nb * m * n);
        packed->run(as_float(ctx, a), nb * m, pc);
        if (!packed_gelu) epilogue(pc, nb * m, n, bias);
        narrow_into(pc, y, numel(out));
      }
      return;
    }
    const float* pa = as_float(ctx, a);
    const float* pb = as_float(ctx, b);
    float* pc = type == TFH_TYPE_FLOAT ? y.data<float>() : ctx.scratch<float>(nb * m * n);

    if (numel(bb) == 1 && (numel(ba) == nb)) {
      // B is one matrix: fold A's batch into its rows, one GEMM.
      sgemm(false, false, nb * m, n, k, 1.f, pa, k, pb, n, 0.f, pc, n);
    } else {
      Dims sa = broadcast_strides(ba, batch), sb = broadcast_strides(bb, batch);
      auto one = [&](int64_t i) {
        int64_t oa = 0, ob = 0, rem = i;
        for (size_t d = batch.size(); d-- > 0;) {
          int64_t c = rem % batch[d];
          rem /= batch[d];
          oa += c * sa[d];
          ob += c * sb[d];
        }
        sgemm(false, false, m, n, k, 1.f, pa + oa * m * k, k, pb + ob * k * n, n, 0.f,
              pc + i * m * n, n);
      };
      if (nb >= 2 && nb >= omp_get_max_threads()) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nb; ++i) one(i);
      } else {
        for (int64_t i = 0; i < nb; ++i) one(i);
      }
    }
    epilogue(pc, numel(out) / n, n, bias);
    narrow_into(pc, y, numel(out));
  }
};

struct GemmFastGelu : MatMul {
  explicit GemmFastGelu(NodeView n) : MatMul(n, /*gemm_fast_gelu=*/true) {}
};

struct Gemm {
  float alpha, beta;
  bool ta, tb;
  // A constant float B (and a constant C of N values, or none) with alpha = 1 and no transA:
  // packed once, C folded in as oneDNN's bias (scaled by beta).
  std::unique_ptr<PackedWeights> packed;
  explicit Gemm(NodeView n)
      : alpha(n.attr_float("alpha", 1.f)), beta(n.attr_float("beta", 1.f)),
        ta(n.attr_int("transA", 0) != 0), tb(n.attr_int("transB", 0) != 0) {
    TensorView b = n.input(1).constant();
    if (!b || b.dtype() != TFH_TYPE_FLOAT || b.rank() != 2 || b.size() == 0 || ta || alpha != 1.f ||
        b.nbytes() > kMaxPackedBytes)
      return;
    const int64_t k = tb ? b.dims()[1] : b.dims()[0], cols = tb ? b.dims()[0] : b.dims()[1];
    std::vector<float> bias;
    if (n.num_inputs() > 2 && n.input(2) && beta != 0.f) {
      TensorView c = n.input(2).constant();
      if (!c || c.dtype() != TFH_TYPE_FLOAT || static_cast<int64_t>(c.size()) != cols ||
          (c.rank() == 2 && c.dims()[0] != 1) || c.rank() > 2)
        return;  // a C that varies per row, or is not constant: the general path
      for (float v : c.data<float>()) bias.push_back(beta * v);
    }
    packed = std::make_unique<PackedWeights>(b.data<float>().data(), k, cols, tb,
                                             bias.empty() ? nullptr : bias.data());
    constant_input_consumed(n, 1);
    if (!bias.empty()) constant_input_consumed(n, 2);
  }
  void compute(KernelContext& ctx) {
    TensorView a = ctx.required(0), b = ctx.required(1), c = ctx.input(2);
    const TfhDataType type = a.dtype();
    if (!is_float_like(type)) unsupported_type(type);
    Dims da = dims_of(a), db = dims_of(b);
    if (da.size() != 2 || db.size() != 2) sdk::fail("Gemm takes 2-D A and B");
    const int64_t m = ta ? da[1] : da[0], k = ta ? da[0] : da[1];
    const int64_t n = tb ? db[0] : db[1], kb = tb ? db[1] : db[0];
    if (k != kb) sdk::fail("shapes " + dims_str(da) + " and " + dims_str(db) + " do not agree");
    OutputTensor y = ctx.output(0, type, Dims{m, n});
    if (packed && type == TFH_TYPE_FLOAT) {
      packed->run(a.data<float>().data(), m, y.data<float>());
      return;
    }
    float* pc = type == TFH_TYPE_FLOAT ? y.data<float>() : ctx.scratch<float>(m * n);
    float bias_scale = 0.f;
    if (c && beta != 0.f) {
      Dims dc = dims_of(c), full{m, n};
      if (broadcast_shape(dc, full) != full) sdk::fail("C " + dims_str(dc) + " does not broadcast to the output");
      const float* pcin = as_float(ctx, c);
      Dims st = broadcast_strides(dc, full);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) pc[i * n + j] = pcin[i * st[0] + j * st[1]];
      bias_scale = beta;
    }
    sgemm(ta, tb, m, n, k, alpha, as_float(ctx, a), da[1], as_float(ctx, b), db[1], bias_scale, pc,
          n);
    narrow_into(pc, y, m * n);
  }
};

// Softmax / LogSoftmax over the rows of a [rows, cols] view.
void softmax_rows(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  auto row = [&](int64_t r) {
    const float* px = x + r * cols;
    float* py = y + r * cols;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, px[c]);
    float sum = 0.f;
    if (log) {
      for (int64_t c = 0; c < cols; ++c) sum += std::exp(px[c] - mx);
      const float lse = std::log(sum);
      for (int64_t c = 0; c < cols; ++c) py[c] = px[c] - mx - lse;
    } else {
      for (int64_t c = 0; c < cols; ++c) py[c] = fast_exp(px[c] - mx);
      for (int64_t c = 0; c < cols; ++c) sum += py[c];
      const float inv = 1.f / sum;
      for (int64_t c = 0; c < cols; ++c) py[c] *= inv;
    }
  };
  if (rows * cols < 16384) {
    for (int64_t r = 0; r < rows; ++r) row(r);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) row(r);
  }
}

// Softmax at opset < 13 coerces the input to 2-D at `axis` (default 1); from 13 it normalises one
// axis (default -1).
template <bool kLog, bool kCoerce>
struct Softmax {
  int64_t axis;
  explicit Softmax(NodeView n) : axis(n.attr_int("axis", kCoerce ? 1 : -1)) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    const TfhDataType type = x.dtype();
    if (!is_float_like(type)) unsupported_type(type);
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size());
    OutputTensor y = ctx.output(0, type, d);
    if (x.size() == 0) return;
    const int64_t a = norm_axis(axis, r);
    const float* px = as_float(ctx, x);
    const int64_t n = numel(d);
    float* py = type == TFH_TYPE_FLOAT ? y.data<float>() : ctx.scratch<float>(n);
    int64_t inner = 1;
    for (int64_t i = a + 1; i < r; ++i) inner *= d[i];
    if (kCoerce) {
      softmax_rows(px, py, n / (d[a] * inner), d[a] * inner, kLog);
    } else if (inner == 1) {
      softmax_rows(px, py, n / d[a], d[a], kLog);
    } else {  // axis not last: move it last, normalise, move it back
      const int64_t outer = n / (d[a] * inner), dim = d[a];
      float* t = ctx.scratch<float>(n);
      float* u = ctx.scratch<float>(n);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t k = 0; k < dim; ++k)
          for (int64_t i = 0; i < inner; ++i) t[(o * inner + i) * dim + k] = px[(o * dim + k) * inner + i];
      softmax_rows(t, u, outer * inner, dim, kLog);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t k = 0; k < dim; ++k)
          for (int64_t i = 0; i < inner; ++i) py[(o * dim + k) * inner + i] = u[(o * inner + i) * dim + k];
    }
    narrow_into(py, y, n);
  }
};

// y = (x - mean) / sqrt(var + eps) * scale + bias over the axes from `axis` on.
struct LayerNorm {
  int64_t axis;
  float eps;
  explicit LayerNorm(NodeView n) : axis(n.attr_int("axis", -1)), eps(n.attr_float("epsilon", 1e-5f)) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0), scale = ctx.required(1), bias = ctx.input(2);
    const TfhDataType type = x.dtype();
    if (!is_float_like(type)) unsupported_type(type);
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size()), a = norm_axis(axis, r);
    int64_t cols = 1;
    for (int64_t i = a; i < r; ++i) cols *= d[i];
    const int64_t n = numel(d), rows = cols ? n / cols : 0;
    if (static_cast<int64_t>(scale.size()) != cols || (bias && static_cast<int64_t>(bias.size()) != cols))
      sdk::fail("scale/bias must have the normalised shape (" + std::to_string(cols) + " elements)");
    OutputTensor y = ctx.output(0, type, d);
    Dims stat_dims = d;
    for (int64_t i = a; i < r; ++i) stat_dims[i] = 1;
    float* mean_out = nullptr;
    float* inv_out = nullptr;
    if (ctx.num_outputs() > 1 && ctx.output_used(1))
      mean_out = ctx.output(1, TFH_TYPE_FLOAT, stat_dims).data<float>();
    if (ctx.num_outputs() > 2 && ctx.output_used(2))
      inv_out = ctx.output(2, TFH_TYPE_FLOAT, stat_dims).data<float>();
    const float* px = as_float(ctx, x);
    const float* ps = as_float(ctx, scale);
    const float* pb = bias ? as_float(ctx, bias) : nullptr;
    float* py = type == TFH_TYPE_FLOAT ? y.data<float>() : ctx.scratch<float>(n);
    auto row = [&](int64_t rw) {
      const float* xr = px + rw * cols;
      float* yr = py + rw * cols;
      float sum = 0.f;
      for (int64_t c = 0; c < cols; ++c) sum += xr[c];
      const float mean = sum / cols;
      float var = 0.f;
      for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean);
      const float inv = 1.f / std::sqrt(var / cols + eps);
      for (int64_t c = 0; c < cols; ++c)
        yr[c] = (xr[c] - mean) * inv * ps[c] + (pb ? pb[c] : 0.f);
      if (mean_out) mean_out[rw] = mean;
      if (inv_out) inv_out[rw] = inv;
    };
    if (n < 16384) {
      for (int64_t rw = 0; rw < rows; ++rw) row(rw);
    } else {
#pragma omp parallel for schedule(static)
      for (int64_t rw = 0; rw < rows; ++rw) row(rw);
    }
    narrow_into(py, y, n);
  }
};

enum class Red { Sum, Mean, Max, Min, Prod, SumSquare, L2 };

template <Red R>
struct Reduce {
  std::vector<int64_t> attr_axes;
  bool keepdims, noop_empty;
  explicit Reduce(NodeView n)
      : attr_axes(n.attr_ints("axes", {})), keepdims(n.attr_int("keepdims", 1) != 0),
        noop_empty(n.attr_int("noop_with_empty_axes", 0) != 0) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size());
    std::vector<int64_t> axes = ctx.input(1) ? read_ints(ctx.input(1)) : attr_axes;
    std::vector<bool> red(r, false);
    if (axes.empty()) {
      if (noop_empty) {
        OutputTensor y = ctx.output(0, x.dtype(), d);
        std::memcpy(y.raw(), x.raw(), x.nbytes());
        return;
      }
      red.assign(r, true);
    }
    for (int64_t a : axes) red[norm_axis(a, r)] = true;
    Dims out, kept;
    for (int64_t i = 0; i < r; ++i) {
      if (!red[i]) out.push_back(d[i]);
      if (keepdims) kept.push_back(red[i] ? 1 : d[i]);
    }
    OutputTensor y = ctx.output(0, x.dtype(), keepdims ? kept : out);
    // Walk the input as [outer kept index] x [reduced index] with strides.
    Dims st = contiguous_strides(d);
    Dims kdims, kst, rdims, rst;
    for (int64_t i = 0; i < r; ++i) {
      if (red[i]) {
        rdims.push_back(d[i]);
        rst.push_back(st[i]);
      } else {
        kdims.push_back(d[i]);
        kst.push_back(st[i]);
      }
    }
    const int64_t n_out = numel(kdims), n_red = numel(rdims);
    bool tail = true;  // the reduced axes are the last ones: rows of n_red contiguous elements
    for (int64_t i = 0; i < r; ++i)
      if (red[i] && i < r - static_cast<int64_t>(rdims.size())) tail = false;
    if (tail && x.dtype() == TFH_TYPE_FLOAT &&
        (R == Red::Sum || R == Red::Mean || R == Red::Max || R == Red::Min)) {
      const float* px = static_cast<const float*>(x.raw());
      float* py = static_cast<float*>(y.raw());
      auto row = [&](int64_t o) {
        const float* p = px + o * n_red;
        float acc = R == Red::Max ? -INFINITY : R == Red::Min ? INFINITY : 0.f;
        if (R == Red::Max) {
          for (int64_t j = 0; j < n_red; ++j) acc = std::max(acc, p[j]);
        } else if (R == Red::Min) {
          for (int64_t j = 0; j < n_red; ++j) acc = std::min(acc, p[j]);
        } else {
          for (int64_t j = 0; j < n_red; ++j) acc += p[j];
        }
        py[o] = R == Red::Mean ? (n_red ? acc / n_red : 0.f) : acc;
      };
      if (n_out * n_red < 16384) {
        for (int64_t o = 0; o < n_out; ++o) row(o);
      } else {
#pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < n_out; ++o) row(o);
      }
      return;
    }
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool>) {
        unsupported_type(x.dtype());
      } else {
        using C = std::conditional_t<std::is_integral_v<T>, T, double>;
        const T* px = static_cast<const T*>(x.raw());
        T* py = static_cast<T*>(y.raw());
        auto load = [&](int64_t off) -> C {
          if constexpr (is_half_v<T>) return load_f(px, off);
          else return static_cast<C>(px[off]);
        };
        auto one = [&](int64_t o) {
          int64_t base = 0, rem = o;
          for (size_t k = kdims.size(); k-- > 0;) {
            base += (rem % kdims[k]) * kst[k];
            rem /= kdims[k];
          }
          C acc = R == Red::Max ? std::numeric_limits<C>::lowest()
                  : R == Red::Min ? std::numeric_limits<C>::max()
                  : R == Red::Prod ? C(1) : C(0);
          for (int64_t j = 0; j < n_red; ++j) {
            int64_t off = base, rj = j;
            for (size_t k = rdims.size(); k-- > 0;) {
              off += (rj % rdims[k]) * rst[k];
              rj /= rdims[k];
            }
            C v = load(off);
            switch (R) {
              case Red::Max: acc = std::max(acc, v); break;
              case Red::Min: acc = std::min(acc, v); break;
              case Red::Prod: acc *= v; break;
              case Red::SumSquare: case Red::L2: acc += v * v; break;
              default: acc += v;
            }
          }
          if (R == Red::Mean) acc = n_red ? acc / static_cast<C>(n_red) : C(0);
          if (R == Red::L2) acc = static_cast<C>(std::sqrt(static_cast<double>(acc)));
          if constexpr (is_half_v<T>) store_f(py, o, static_cast<float>(acc));
          else py[o] = static_cast<T>(acc);
        };
        if (n_out * n_red < 16384) {
          for (int64_t o = 0; o < n_out; ++o) one(o);
        } else {
#pragma omp parallel for schedule(static)
          for (int64_t o = 0; o < n_out; ++o) one(o);
        }
      }
    });
  }
};

// ArgMax / ArgMin along one axis (keepdims, select_last_index), int64 indices. float16/bfloat16
// are compared as float (exactly), float and double and integers as themselves; ties go to the
// first index (the last with select_last_index); a NaN is the extreme, as in ONNX's reference
// (NumPy's argmax/argmin: the first NaN's index). The CUDA kernel does the same.
template <bool Max>
struct ArgExtreme : ArgExtremeAttrs {
  explicit ArgExtreme(NodeView n) : ArgExtremeAttrs(n) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    const Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size());
    const int64_t ax = norm_axis(axis, r);
    if (d[ax] == 0) sdk::fail("the axis " + std::to_string(axis) + " is empty");
    const AxisSplit split = split_at_axis(d, ax, keepdims);
    const int64_t inner = split.inner, n = split.n, lines = split.outer * split.inner;
    OutputTensor y = ctx.output(0, TFH_TYPE_INT64, split.reduced);
    int64_t* py = y.data<int64_t>();
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool>) {
        unsupported_type(x.dtype());
      } else {
        using K = std::conditional_t<std::is_integral_v<T> || std::is_same_v<T, double>, T, float>;
        const T* px = static_cast<const T*>(x.raw());
        auto line = [&](int64_t o) {
          const int64_t outer_i = o / inner, inner_i = o % inner;
          const T* p = px + outer_i * n * inner + inner_i;
          int64_t best = -1;
          K best_v{};
          for (int64_t j = 0; j < n; ++j) {
            K v;
            if constexpr (std::is_integral_v<T> || std::is_same_v<T, double>) v = p[j * inner];
            else v = load_f(p, j * inner);
            const bool nan = v != v, best_nan = best >= 0 && best_v != best_v;
            const bool wins = best < 0 || (nan && !best_nan) ||
                              (!best_nan && !nan && (Max ? v > best_v : v < best_v)) ||
                              (select_last && (nan ? best_nan : !best_nan && v == best_v));
            if (wins) best = j, best_v = v;
          }
          py[o] = best;
        };
        if (lines == 1 || lines * n < 16384) {
          for (int64_t o = 0; o < lines; ++o) line(o);
        } else {
#pragma omp parallel for schedule(static)
          for (int64_t o = 0; o < lines; ++o) line(o);
        }
      }
    });
  }
};

// Einsum by direct summation over every index combination (explicit "->" or implicit output,
// "..." broadcasting). Correct for any equation; the transformer exports that use it contract
// small tensors.
struct Einsum {
  std::string equation;
  explicit Einsum(NodeView n) : equation(n.attr_string("equation")) {
    equation.erase(std::remove(equation.begin(), equation.end(), ' '), equation.end());
  }
  void compute(KernelContext& ctx) {
    std::vector<TensorView> ins;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) ins.push_back(ctx.required(i));
    if (ins.empty()) sdk::fail("no inputs");
    std::string lhs = equation, rhs;
    const size_t arrow = equation.find("->");
    const bool explicit_out = arrow != std::string::npos;
    if (explicit_out) {
      lhs = equation.substr(0, arrow);
      rhs = equation.substr(arrow + 2);
    }
    std::vector<std::string> terms;
    for (size_t start = 0;;) {
      size_t comma = lhs.find(',', start);
      terms.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (terms.size() != ins.size())
      sdk::fail("equation '" + equation + "' has " + std::to_string(terms.size()) +
                " operands, the node has " + std::to_string(ins.size()) + " inputs");
    // "..." becomes upper-case letters from 'A' (equations use lower-case), right-aligned.
    size_t ell_rank = 0;
    for (size_t i = 0; i < terms.size(); ++i) {
      size_t pos = terms[i].find("...");
      if (pos == std::string::npos) continue;
      if (ins[i].rank() + 3 < terms[i].size())
        sdk::fail("operand " + std::to_string(i) + " has rank " + std::to_string(ins[i].rank()) +
                  ", fewer than the subscripts '" + terms[i] + "' name");
      ell_rank = std::max(ell_rank, ins[i].rank() - (terms[i].size() - 3));
    }
    auto expand = [&](const std::string& t, size_t rank) {
      size_t pos = t.find("...");
      if (pos == std::string::npos) return t;
      const size_t n = rank - (t.size() - 3);
      std::string e;
      for (size_t k = 0; k < n; ++k) e += static_cast<char>('A' + (ell_rank - n + k));
      return t.substr(0, pos) + e + t.substr(pos + 3);
    };
    std::map<char, int64_t> size;
    std::map<char, int> count;
    for (size_t i = 0; i < terms.size(); ++i) {
      terms[i] = expand(terms[i], ins[i].rank());
      if (terms[i].size() != ins[i].rank())
        sdk::fail("operand " + std::to_string(i) + " has rank " + std::to_string(ins[i].rank()) +
                  ", its subscripts '" + terms[i] + "' say " + std::to_string(terms[i].size()));
      Dims d = dims_of(ins[i]);
      for (size_t k = 0; k < terms[i].size(); ++k) {
        char c = terms[i][k];
        ++count[c];
        auto it = size.find(c);
        if (it == size.end() || it->second == 1) size[c] = d[k];
        else if (d[k] != 1 && d[k] != it->second)
          sdk::fail(std::string("subscript '") + c + "' has sizes " + std::to_string(it->second) +
                    " and " + std::to_string(d[k]));
      }
    }
    std::string out;
    if (explicit_out) {
      std::string ell;
      for (size_t k = 0; k < ell_rank; ++k) ell += static_cast<char>('A' + k);
      size_t pos = rhs.find("...");
      out = pos == std::string::npos ? rhs : rhs.substr(0, pos) + ell + rhs.substr(pos + 3);
    } else {  // implicit: ellipsis dims, then letters seen once, alphabetically
      for (size_t k = 0; k < ell_rank; ++k) out += static_cast<char>('A' + k);
      for (auto& [c, n] : count)
        if (n == 1 && c >= 'a') out += c;
    }
    std::string all = out;
    for (auto& [c, n] : size)
      if (out.find(c) == std::string::npos) all += c;
    Dims odims;
    for (char c : out) odims.push_back(size.at(c));
    const TfhDataType type = ins[0].dtype();
    OutputTensor y = ctx.output(0, type, odims);
    const int64_t n_out = numel(odims);
    int64_t n_red = 1;
    for (size_t k = out.size(); k < all.size(); ++k) n_red *= size.at(all[k]);
    // Stride of each letter of `all` in each operand (0 where absent or broadcast).
    std::vector<Dims> strides(ins.size(), Dims(all.size(), 0));
    for (size_t i = 0; i < ins.size(); ++i) {
      Dims d = dims_of(ins[i]), st = contiguous_strides(d);
      for (size_t k = 0; k < terms[i].size(); ++k)
        if (d[k] != 1) strides[i][all.find(terms[i][k])] += st[k];
    }
    Dims adims;
    for (char c : all) adims.push_back(size.at(c));
    std::vector<double> acc(n_out, 0.0);
    std::vector<int64_t> idx(all.size());
    for (int64_t o = 0; o < n_out; ++o) {
      int64_t rem = o;
      for (size_t k = out.size(); k-- > 0;) {
        idx[k] = rem % adims[k];
        rem /= adims[k];
      }
      double sum = 0;
      for (int64_t r = 0; r < n_red; ++r) {
        int64_t rr = r;
        for (size_t k = all.size(); k-- > out.size();) {
          idx[k] = rr % adims[k];
          rr /= adims[k];
        }
        double prod = 1;
        for (size_t i = 0; i < ins.size(); ++i) {
          int64_t off = 0;
          for (size_t k = 0; k < all.size(); ++k) off += idx[k] * strides[i][k];
          prod *= ins[i].at(static_cast<size_t>(off)).value_or(0);
        }
        sum += prod;
      }
      acc[o] = sum;
    }
    dispatch_all(type, [&](auto tag) {
      using T = decltype(tag);
      T* p = static_cast<T*>(y.raw());
      for (int64_t i = 0; i < n_out; ++i) {
        if constexpr (is_half_v<T>)
          store_f(p, i, static_cast<float>(acc[i]));
        else
          p[i] = static_cast<T>(acc[i]);
      }
    });
  }
};

}  // namespace

std::unique_ptr<PackedGemm> pack_constant_weights(const TensorView& w, size_t max_float_bytes) {
  if (!w || !is_float_like(w.dtype()) || w.rank() != 2 || w.size() == 0 ||
      4 * w.size() > max_float_bytes)
    return nullptr;
  if (w.dtype() == TFH_TYPE_FLOAT)
    return std::make_unique<PackedWeights>(w.data<float>().data(), w.dims()[0], w.dims()[1]);
  std::vector<float> wide(w.size());
  if (w.dtype() == TFH_TYPE_FLOAT16)
    widen(w.data<Float16>().data(), wide.data(), static_cast<int64_t>(wide.size()));
  else
    widen(w.data<BFloat16>().data(), wide.data(), static_cast<int64_t>(wide.size()));
  return std::make_unique<PackedWeights>(wide.data(), w.dims()[0], w.dims()[1]);
}

void add_math_kernels(std::vector<const TfhKernelDesc*>& out) {
  TFH_CPU_KERNEL(MatMul, "MatMul")
  TFH_CPU_KERNEL_DOMAIN(GemmFastGelu, "com.microsoft", "GemmFastGelu")
  TFH_CPU_KERNEL(Gemm, "Gemm")
  TFH_CPU_KERNEL(Einsum, "Einsum")
  TFH_CPU_KERNEL(LayerNorm, "LayerNormalization")
  TFH_CPU_KERNEL(Reduce<Red::Sum>, "ReduceSum")
  TFH_CPU_KERNEL(Reduce<Red::Mean>, "ReduceMean")
  TFH_CPU_KERNEL(Reduce<Red::Max>, "ReduceMax")
  TFH_CPU_KERNEL(Reduce<Red::Min>, "ReduceMin")
  TFH_CPU_KERNEL(Reduce<Red::Prod>, "ReduceProd")
  TFH_CPU_KERNEL(Reduce<Red::SumSquare>, "ReduceSumSquare")
  TFH_CPU_KERNEL(Reduce<Red::L2>, "ReduceL2")
  TFH_CPU_KERNEL(ArgExtreme<true>, "ArgMax")
  TFH_CPU_KERNEL(ArgExtreme<false>, "ArgMin")
  // The opset-13 change of meaning (one axis instead of a 2-D coercion) is two kernels.
  using SoftmaxCoerced = Softmax<false, true>;
  using SoftmaxAxis = Softmax<false, false>;
  using LogSoftmaxCoerced = Softmax<true, true>;
  using LogSoftmaxAxis = Softmax<true, false>;
  static const TfhKernelDesc softmax_old = TFH_KERNEL_DESC(
      SoftmaxCoerced, "tfhost.cpu.Softmax-1", "", "Softmax", 1, 12, TFH_DEVICE_CPU, "", 0);
  static const TfhKernelDesc softmax = TFH_KERNEL_DESC(
      SoftmaxAxis, "tfhost.cpu.Softmax", "", "Softmax", 13, 0, TFH_DEVICE_CPU, "", 0);
  static const TfhKernelDesc logsoftmax_old = TFH_KERNEL_DESC(
      LogSoftmaxCoerced, "tfhost.cpu.LogSoftmax-1", "", "LogSoftmax", 1, 12, TFH_DEVICE_CPU, "", 0);
  static const TfhKernelDesc logsoftmax = TFH_KERNEL_DESC(
      LogSoftmaxAxis, "tfhost.cpu.LogSoftmax", "", "LogSoftmax", 13, 0, TFH_DEVICE_CPU, "", 0);
  out.insert(out.end(), {&softmax_old, &softmax, &logsoftmax_old, &logsoftmax});
}

}  // namespace tfh::kernels::cpu
