// Shared helpers of the CPU kernels: shapes, broadcasting, float16 conversion, type dispatch.
// Kernels see only the SDK (tfhost/kernel.hpp); nothing here includes host code.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "tfhost/kernel.hpp"

namespace tfh::kernels::cpu {

using Dims = std::vector<int64_t>;

inline Dims dims_of(const TensorView& t) {
  auto d = t.dims();
  return Dims(d.begin(), d.end());
}
inline int64_t numel(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}
inline std::string dims_str(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// A negative axis counts from the end; throws when outside [-rank, rank).
inline int64_t norm_axis(int64_t axis, int64_t rank, const char* what = "axis") {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    sdk::fail(std::string(what) + " " + std::to_string(axis) + " is out of range for rank " +
              std::to_string(rank));
  return a;
}

// Numpy-style broadcast of two shapes; throws naming both on a mismatch.
inline Dims broadcast_shape(const Dims& a, const Dims& b) {
  size_t r = std::max(a.size(), b.size());
  Dims out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      sdk::fail("shapes " + dims_str(a) + " and " + dims_str(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Element strides of `in` seen through the broadcast shape `out` (0 on broadcast axes).
inline Dims broadcast_strides(const Dims& in, const Dims& out) {
  Dims st(out.size(), 0);
  int64_t s = 1;
  for (size_t k = 0; k < in.size(); ++k) {
    size_t i = in.size() - 1 - k, o = out.size() - 1 - k;
    st[o] = in[i] == 1 ? 0 : s;
    s *= in[i];
  }
  return st;
}
inline Dims contiguous_strides(const Dims& d) {
  Dims st(d.size(), 1);
  for (size_t i = d.size(); i-- > 1;) st[i - 1] = st[i] * d[i];
  return st;
}

// ---- float16 / bfloat16 -----------------------------------------------------------------------
// Both 16-bit float types are storage only: kernels compute in float and round on the way out.
template <typename T>
inline constexpr bool is_half_v = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;
inline bool is_half(TfhDataType t) { return t == TFH_TYPE_FLOAT16 || t == TFH_TYPE_BFLOAT16; }
// float, float16 or bfloat16: what the float kernels take.
inline bool is_float_like(TfhDataType t) { return t == TFH_TYPE_FLOAT || is_half(t); }

inline uint16_t float_to_half(float f) { return to_float16(f).bits; }
inline float half_to_float(uint16_t h) { return to_float(Float16{h}); }

// float16 <-> float over arrays: eight at a time with F16C (part of x86-64-v3, which the
// kernels are built for; rounding to nearest even, like to_float16), scalar otherwise.
inline void widen(const Float16* src, float* dst, int64_t n) {
  int64_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#endif
  for (; i < n; ++i) dst[i] = half_to_float(src[i].bits);
}
inline void widen(const BFloat16* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = to_float(src[i]);
}

// Writes float results into a float16 / bfloat16 output.
inline void narrow(const float* src, Float16* dst, int64_t n) {
  int64_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
  for (; i < n; ++i) dst[i].bits = float_to_half(src[i]);
}
inline void narrow(const float* src, BFloat16* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = to_bfloat16(src[i]);
}
// Same, by the output's type: nothing to do for float (the kernel wrote the output itself).
inline void narrow_into(const float* src, OutputTensor& y, int64_t n) {
  if (y.dtype() == TFH_TYPE_FLOAT16) narrow(src, y.data<Float16>(), n);
  else if (y.dtype() == TFH_TYPE_BFLOAT16) narrow(src, y.data<BFloat16>(), n);
}

// Loads element i of a float-like tensor (float, float16, bfloat16, double) as float.
template <typename T>
inline float load_f(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, Float16>)
    return half_to_float(p[i].bits);
  else if constexpr (std::is_same_v<T, BFloat16>)
    return to_float(p[i]);
  else
    return static_cast<float>(p[i]);
}
template <typename T>
inline void store_f(T* p, int64_t i, float v) {
  if constexpr (std::is_same_v<T, Float16>)
    p[i].bits = float_to_half(v);
  else if constexpr (std::is_same_v<T, BFloat16>)
    p[i] = to_bfloat16(v);
  else
    p[i] = static_cast<T>(v);
}
template <typename T>
inline T from_f(float v) {
  T r;
  store_f(&r, 0, v);
  return r;
}

// float16/bfloat16 data as a float buffer (in scratch memory).
inline const float* as_float(KernelContext& ctx, const TensorView& t) {
  if (t.dtype() == TFH_TYPE_FLOAT) return t.data<float>().data();
  float* f = ctx.scratch<float>(t.size());
  if (t.dtype() == TFH_TYPE_FLOAT16) {
    widen(t.data<Float16>().data(), f, static_cast<int64_t>(t.size()));
  } else if (t.dtype() == TFH_TYPE_BFLOAT16) {
    widen(t.data<BFloat16>().data(), f, static_cast<int64_t>(t.size()));
  } else {
    sdk::fail(std::string("expected float, float16 or bfloat16, got ") + data_type_name(t.dtype()));
  }
  return f;
}

[[noreturn]] inline void unsupported_type(TfhDataType t, const char* what = "input") {
  sdk::fail(std::string("unsupported ") + what + " element type " + data_type_name(t));
}

// Calls f(T{}) with T the C++ type of `t` among float, float16, bfloat16, double, int32, int64, bool(uint8)
// (and int8/uint8/int16/uint16/uint32/uint64).
template <typename F>
void dispatch_all(TfhDataType t, F&& f) {
  switch (t) {
    case TFH_TYPE_FLOAT: return f(float());
    case TFH_TYPE_FLOAT16: return f(Float16());
    case TFH_TYPE_BFLOAT16: return f(BFloat16());
    case TFH_TYPE_DOUBLE: return f(double());
    case TFH_TYPE_INT32: return f(int32_t());
    case TFH_TYPE_INT64: return f(int64_t());
    case TFH_TYPE_BOOL: return f(bool());
    case TFH_TYPE_INT8: return f(int8_t());
    case TFH_TYPE_UINT8: return f(uint8_t());
    case TFH_TYPE_INT16: return f(int16_t());
    case TFH_TYPE_UINT16: return f(uint16_t());
    case TFH_TYPE_UINT32: return f(uint32_t());
    case TFH_TYPE_UINT64: return f(uint64_t());
    default: unsupported_type(t);
  }
}

// Reads a 1-D (or scalar) int32/int64 tensor as int64 values (shapes, axes, indices).
inline std::vector<int64_t> read_ints(const TensorView& t) {
  std::vector<int64_t> v;
  if (!t) return v;
  if (t.dtype() == TFH_TYPE_INT64) {
    auto d = t.data<int64_t>();
    v.assign(d.begin(), d.end());
  } else if (t.dtype() == TFH_TYPE_INT32) {
    auto d = t.data<int32_t>();
    v.assign(d.begin(), d.end());
  } else {
    sdk::fail(std::string("expected an int32/int64 tensor, got ") + data_type_name(t.dtype()));
  }
  return v;
}

// Bytes per element of a dense type.
inline size_t elem_size(TfhDataType t) {
  switch (t) {
    case TFH_TYPE_BOOL: case TFH_TYPE_INT8: case TFH_TYPE_UINT8: return 1;
    case TFH_TYPE_FLOAT16: case TFH_TYPE_BFLOAT16: case TFH_TYPE_INT16: case TFH_TYPE_UINT16:
      return 2;
    case TFH_TYPE_FLOAT: case TFH_TYPE_INT32: case TFH_TYPE_UINT32: return 4;
    case TFH_TYPE_DOUBLE: case TFH_TYPE_INT64: case TFH_TYPE_UINT64: return 8;
    default: unsupported_type(t);
  }
}

// Copies rows of an N-d tensor through a permutation/offset walk: out[i] = in[offset(i)],
// where offset(i) = sum(coord_k(i) * in_strides[k]) over the output shape `out_dims`.
// Elements are `esize` bytes. Parallel over the outermost rows.
// A list of memcpy jobs run together: split into pieces of about 64 KB that threads share when the
// total is large (Concat, Split: bandwidth-bound copies of past key/value caches).
class CopyList {
 public:
  void add(void* dst, const void* src, size_t bytes) {
    if (bytes) jobs_.push_back({static_cast<char*>(dst), static_cast<const char*>(src), bytes});
  }
  void run() const;

 private:
  struct Job {
    char* dst;
    const char* src;
    size_t bytes;
  };
  std::vector<Job> jobs_;
};

void strided_copy(const void* in, void* out, const Dims& out_dims, const Dims& in_strides,
                  int64_t in_offset, size_t esize);

// ---- matrix products (math.cc, oneDNN) ----------------------------------------------------------

// Row-major C[M,N] = alpha * op(A) op(B) + beta * C, through oneDNN's sgemm.
void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// C[M,N] = A[M,K] @ W for a constant row-major W[K,N], reordered once into oneDNN's blocked layout
// (one primitive kept per M). Thread-safe; run() is serialised.
class PackedGemm {
 public:
  virtual ~PackedGemm() = default;
  virtual void run(const float* a, int64_t m, float* c) = 0;
};
// A constant 2-D float, float16 or bfloat16 weight [k, n], packed as float (16-bit weights are
// widened once here instead of on every run); null for anything else, or when the float copy
// would pass `max_float_bytes`.
// A constant float16/bfloat16 weight [K, N], kept in 16 bits and transposed ([N, K]): a product
// with a few rows (decoding) streams it once, in order, reading half of float32's bytes (the
// step is bound by reading weights); more rows use a float copy packed on first use. It
// replaces the original (the kernel says the input was consumed).
class HalfWeights {
 public:
  static std::unique_ptr<HalfWeights> from(const TensorView& w);  // null: not 2-D fp16/bf16
  TfhDataType dtype() const { return type_; }
  // y[m, N] = a[m, K] @ W (float y, m rows).
  void run(KernelContext& ctx, const float* a, int64_t m, float* y) const;

 private:
  HalfWeights() = default;
  std::vector<uint16_t> wt_;
  TfhDataType type_ = TFH_TYPE_FLOAT16;
  int64_t k_ = 0, n_ = 0;
  mutable std::once_flag pack_once_;
  mutable std::unique_ptr<PackedGemm> packed_;  // float, for products with many rows
};
std::unique_ptr<PackedGemm> pack_constant_weights(const TensorView& w,
                                                  size_t max_float_bytes = SIZE_MAX);

}  // namespace tfh::kernels::cpu
