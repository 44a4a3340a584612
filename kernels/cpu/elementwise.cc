// Element-wise ONNX ops: binary arithmetic and comparisons with numpy broadcasting, Where, unary
// math, Cast. float16 is computed in float32. Rows of the (coalesced) output run in parallel.
#include <omp.h>

#include <algorithm>
#include <array>
#include <functional>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/vmath.h"

namespace tfh::kernels::cpu {
namespace {

// Up to three inputs broadcast to one output shape, walked as rows of the last (coalesced) axis.
template <size_t N>
struct Walk {
  Dims out;                          // coalesced output shape (rank >= 1)
  std::array<Dims, N> strides;       // per input, per coalesced axis
  int64_t rows = 1, cols = 1;
  std::array<int64_t, N> inner{};    // stride of each input along the last axis (0 or 1)

  Walk(const std::array<Dims, N>& ins, const Dims& full) {
    std::array<Dims, N> st;
    for (size_t k = 0; k < N; ++k) st[k] = broadcast_strides(ins[k], full);
    // Merge axis i into i+1 when every input walks them as one (contiguous or both broadcast).
    Dims o;
    std::array<Dims, N> s;
    for (size_t i = 0; i < full.size(); ++i) {
      if (full[i] == 1) continue;
      bool merge = !o.empty();
      for (size_t k = 0; merge && k < N; ++k)
        merge = s[k].back() == st[k][i] * full[i];
      if (merge) {
        o.back() *= full[i];
        for (size_t k = 0; k < N; ++k) s[k].back() = st[k][i];
      } else {
        o.push_back(full[i]);
        for (size_t k = 0; k < N; ++k) s[k].push_back(st[k][i]);
      }
    }
    if (o.empty()) {
      o.push_back(1);
      for (size_t k = 0; k < N; ++k) s[k].push_back(0);
    }
    out = o;
    strides = s;
    cols = out.back();
    rows = numel(out) / std::max<int64_t>(cols, 1);
    for (size_t k = 0; k < N; ++k) inner[k] = strides[k].back();
  }

  // Offset of row r's first element in input k.
  int64_t offset(size_t k, int64_t r) const {
    int64_t off = 0;
    for (size_t a = out.size() - 1; a-- > 0;) {
      int64_t c = r % out[a];
      r /= out[a];
      off += c * strides[k][a];
    }
    return off;
  }
};

template <typename F>
void parallel_rows(int64_t rows, int64_t cols, F&& f) {
  if (rows * cols < 32768 || rows == 1) {
    for (int64_t r = 0; r < rows; ++r) f(r);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) f(r);
}

// One row of a single long output is split into chunks so it also runs in parallel.
template <typename F>
void parallel_span(int64_t n, F&& f) {
  if (n < 65536) {
    f(0, n);
    return;
  }
  int64_t chunks = std::min<int64_t>(omp_get_max_threads() * 4, n / 16384);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) f(n * c / chunks, n * (c + 1) / chunks);
}

enum class Bin { Add, Sub, Mul, Div, Pow, Mod, FMod, Equal, Greater, Less, GreaterEq, LessEq,
                 And, Or, Xor, Max, Min };

bool is_compare(Bin op) {
  return op == Bin::Equal || op == Bin::Greater || op == Bin::Less || op == Bin::GreaterEq ||
         op == Bin::LessEq;
}

template <typename C>
inline C apply_bin(Bin op, C a, C b) {
  switch (op) {
    case Bin::Add: return a + b;
    case Bin::Sub: return a - b;
    case Bin::Mul: return a * b;
    case Bin::Div:
      if constexpr (std::is_integral_v<C>) {
        if (b == 0) return C(0);  // rejected before the loop (check_divisors)
        if constexpr (std::is_signed_v<C>)
          if (b == C(-1)) return static_cast<C>(C(0) - static_cast<std::make_unsigned_t<C>>(a));
      }
      return a / b;
    case Bin::Pow:
      if constexpr (std::is_floating_point_v<C>) {
        return b == C(2) ? a * a : b == C(0.5) ? std::sqrt(a) : std::pow(a, b);
      } else {
        return static_cast<C>(std::pow(static_cast<double>(a), static_cast<double>(b)));
      }
    case Bin::Mod:  // fmod = 0: the sign follows the divisor (Python's %)
      if constexpr (std::is_integral_v<C>) {
        if (b == 0) return C(0);  // rejected before the loop (check_divisors)
        if constexpr (std::is_signed_v<C>)
          if (b == C(-1)) return C(0);
        C r = a % b;
        return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
      } else {
        C r = std::fmod(a, b);
        return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
      }
    case Bin::FMod:
      if constexpr (std::is_integral_v<C>) {
        if (b == 0) return C(0);  // rejected before the loop (check_divisors)
        if constexpr (std::is_signed_v<C>)
          if (b == C(-1)) return C(0);
        return a % b;
      } else {
        return std::fmod(a, b);
      }
    case Bin::Max: return a > b ? a : b;
    case Bin::Min: return a < b ? a : b;
    default: return C();
  }
}

template <typename C>
inline bool apply_cmp(Bin op, C a, C b) {
  switch (op) {
    case Bin::Equal: return a == b;
    case Bin::Greater: return a > b;
    case Bin::Less: return a < b;
    case Bin::GreaterEq: return a >= b;
    case Bin::LessEq: return a <= b;
    case Bin::And: return a && b;
    case Bin::Or: return a || b;
    case Bin::Xor: return (a != C()) != (b != C());
    default: return false;
  }
}

// The computation type of T: float for float16/bfloat16, T otherwise.
template <typename T>
using CompT = std::conditional_t<is_half_v<T>, float, T>;

template <typename T, typename O, typename F>
void binary_loop(const Walk<2>& w, const T* a, const T* b, O* y, F&& op) {
  const int64_t cols = w.cols, sa = w.inner[0], sb = w.inner[1];
  auto row = [&](int64_t r) {
    const T* pa = a + w.offset(0, r);
    const T* pb = b + w.offset(1, r);
    O* py = y + r * cols;
    if (sa == 1 && sb == 1) {
      for (int64_t c = 0; c < cols; ++c) py[c] = op(pa[c], pb[c]);
    } else if (sa == 1) {
      const T vb = pb[0];
      for (int64_t c = 0; c < cols; ++c) py[c] = op(pa[c], vb);
    } else if (sb == 1) {
      const T va = pa[0];
      for (int64_t c = 0; c < cols; ++c) py[c] = op(va, pb[c]);
    } else {
      const O v = op(pa[0], pb[0]);
      for (int64_t c = 0; c < cols; ++c) py[c] = v;
    }
  };
  if (w.rows == 1) {
    parallel_span(cols, [&](int64_t lo, int64_t hi) {
      const T* pa = a;
      const T* pb = b;
      for (int64_t c = lo; c < hi; ++c) y[c] = op(pa[c * sa], pb[c * sb]);
    });
    return;
  }
  parallel_rows(w.rows, cols, row);
}

void mixed_pow(KernelContext& ctx, const TensorView& a, const TensorView& b);

struct Binary {
  Bin op;
  explicit Binary(Bin o) : op(o) {}
  void compute(KernelContext& ctx) {
    TensorView a = ctx.required(0), b = ctx.required(1);
    if (op == Bin::Pow && a.dtype() != b.dtype()) return mixed_pow(ctx, a, b);
    if (a.dtype() != b.dtype())
      sdk::fail(std::string("inputs have different element types: ") + data_type_name(a.dtype()) +
                " and " + data_type_name(b.dtype()));
    Dims da = dims_of(a), db = dims_of(b), full = broadcast_shape(da, db);
    Walk<2> w({da, db}, full);
    const bool cmp = is_compare(op) || op == Bin::And || op == Bin::Or || op == Bin::Xor;
    OutputTensor y = ctx.output(0, cmp ? TFH_TYPE_BOOL : a.dtype(), full);
    if (numel(full) == 0) return;
    // Errors are raised here, never inside the (possibly parallel) loops below: an exception
    // may not leave an OpenMP region.
    if (op == Bin::Div || op == Bin::Mod || op == Bin::FMod) {
      dispatch_all(b.dtype(), [&](auto tag) {
        using T = decltype(tag);
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          const T* pb = static_cast<const T*>(b.raw());
          for (size_t i = 0; i < b.size(); ++i)
            if (pb[i] == T(0)) sdk::fail("integer division or modulo by zero");
        }
      });
    }
    dispatch_all(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using C = CompT<T>;
      const T* pa = static_cast<const T*>(a.raw());
      const T* pb = static_cast<const T*>(b.raw());
      const Bin o = op;
      if (cmp) {
        bool* py = static_cast<bool*>(y.raw());
        if constexpr (is_half_v<T>) {
          binary_loop(w, pa, pb, py,
                      [o](T x, T z) { return apply_cmp<float>(o, load_f(&x, 0), load_f(&z, 0)); });
        } else {
          binary_loop(w, pa, pb, py, [o](T x, T z) { return apply_cmp<T>(o, x, z); });
        }
      } else if constexpr (std::is_same_v<T, bool>) {
        sdk::fail("arithmetic on bool tensors");
      } else if constexpr (is_half_v<T>) {
        binary_loop(w, pa, pb, static_cast<T*>(y.raw()), [o](T x, T z) {
          return from_f<T>(apply_bin<C>(o, load_f(&x, 0), load_f(&z, 0)));
        });
      } else {
        T* py = static_cast<T*>(y.raw());
        // The common float cases get loops the compiler vectorises.
        // Pow by a constant 2 or 0.5 (variance in decomposed LayerNorm, GELU approximations).
        if constexpr (std::is_floating_point_v<T>) {
          if (o == Bin::Pow && b.size() == 1) {
            const T e = pb[0];
            if (e == T(2)) return binary_loop(w, pa, pb, py, [](T x, T) { return x * x; });
            if (e == T(3)) return binary_loop(w, pa, pb, py, [](T x, T) { return x * x * x; });
            if (e == T(0.5)) return binary_loop(w, pa, pb, py, [](T x, T) { return std::sqrt(x); });
          }
        }
        switch (o) {
          case Bin::Add: return binary_loop(w, pa, pb, py, [](T x, T z) { return x + z; });
          case Bin::Sub: return binary_loop(w, pa, pb, py, [](T x, T z) { return x - z; });
          case Bin::Mul: return binary_loop(w, pa, pb, py, [](T x, T z) { return x * z; });
          case Bin::Div:
            if constexpr (std::is_floating_point_v<T>)
              return binary_loop(w, pa, pb, py, [](T x, T z) { return x / z; });
            [[fallthrough]];
          default:
            return binary_loop(w, pa, pb, py, [o](T x, T z) { return apply_bin<C>(o, x, z); });
        }
      }
    });
  }
};

// Pow(T base, T1 exponent) with different types: computed in double, written as T.
void mixed_pow(KernelContext& ctx, const TensorView& a, const TensorView& b) {
  Dims da = dims_of(a), db = dims_of(b), full = broadcast_shape(da, db);
  Dims sa = broadcast_strides(da, full), sb = broadcast_strides(db, full);
  OutputTensor y = ctx.output(0, a.dtype(), full);
  const int64_t n = numel(full);
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, oa = 0, ob = 0;
    for (size_t k = full.size(); k-- > 0;) {
      int64_t c = rem % full[k];
      rem /= full[k];
      oa += c * sa[k];
      ob += c * sb[k];
    }
    out[i] = std::pow(a.at(oa).value_or(0), b.at(ob).value_or(0));
  }
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(y.raw());
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (is_half_v<T>)
        store_f(p, i, static_cast<float>(out[i]));
      else
        p[i] = static_cast<T>(out[i]);
    }
  });
}

template <Bin B>
struct BinaryOp : Binary {
  explicit BinaryOp(NodeView) : Binary(B) {}
};

struct Mod : Binary {
  explicit Mod(NodeView n) : Binary(n.attr_int("fmod", 0) ? Bin::FMod : Bin::Mod) {}
};

// Where(cond, x, y) with three-way broadcasting.
struct Where {
  explicit Where(NodeView) {}
  void compute(KernelContext& ctx) {
    TensorView c = ctx.required(0), x = ctx.required(1), y = ctx.required(2);
    if (c.dtype() != TFH_TYPE_BOOL) sdk::fail("condition must be bool");
    if (x.dtype() != y.dtype()) sdk::fail("X and Y have different element types");
    Dims dc = dims_of(c), dx = dims_of(x), dy = dims_of(y);
    Dims full = broadcast_shape(broadcast_shape(dc, dx), dy);
    Walk<3> w({dc, dx, dy}, full);
    OutputTensor out = ctx.output(0, x.dtype(), full);
    if (numel(full) == 0) return;
    const size_t es = elem_size(x.dtype());
    const bool* pc = static_cast<const bool*>(c.raw());
    auto run = [&](auto tag) {
      using T = decltype(tag);
      const T* px = static_cast<const T*>(x.raw());
      const T* py = static_cast<const T*>(y.raw());
      T* po = static_cast<T*>(out.raw());
      parallel_rows(w.rows, w.cols, [&](int64_t r) {
        const bool* rc = pc + w.offset(0, r);
        const T* rx = px + w.offset(1, r);
        const T* ry = py + w.offset(2, r);
        T* ro = po + r * w.cols;
        for (int64_t k = 0; k < w.cols; ++k)
          ro[k] = rc[k * w.inner[0]] ? rx[k * w.inner[1]] : ry[k * w.inner[2]];
      });
    };
    switch (es) {
      case 1: return run(uint8_t());
      case 2: return run(uint16_t());
      case 4: return run(uint32_t());
      default: return run(uint64_t());
    }
  }
};

// ---- unary --------------------------------------------------------------------------------------

enum class Un { Erf, Sqrt, Tanh, Neg, Exp, Log, Abs, Relu, Sigmoid, Reciprocal, Floor, Ceil, Sin,
                Cos, Not, Identity };

template <typename C>
inline C apply_un(Un op, C x) {
  if constexpr (std::is_floating_point_v<C>) {
    switch (op) {
      case Un::Erf:
        if constexpr (std::is_same_v<C, float>) return fast_erf(x);
        return std::erf(x);
      case Un::Sqrt: return std::sqrt(x);
      case Un::Tanh:
        if constexpr (std::is_same_v<C, float>) return fast_tanh(x);
        return std::tanh(x);
      case Un::Exp:
        if constexpr (std::is_same_v<C, float>) return std::exp(x);  // exact: no hot path uses it
        return std::exp(x);
      case Un::Log: return std::log(x);
      case Un::Sigmoid:
        if constexpr (std::is_same_v<C, float>) return 1.0f / (1.0f + fast_exp(-x));
        return C(1) / (C(1) + std::exp(-x));
      case Un::Reciprocal: return C(1) / x;
      case Un::Floor: return std::floor(x);
      case Un::Ceil: return std::ceil(x);
      case Un::Sin: return std::sin(x);
      case Un::Cos: return std::cos(x);
      default: break;
    }
  }
  switch (op) {
    case Un::Neg: return -x;
    case Un::Abs: return x < 0 ? -x : x;
    case Un::Relu: return x > 0 ? x : C(0);
    case Un::Identity: return x;
    default: sdk::fail("operator not defined for integer types");
  }
}

template <Un U>
struct Unary {
  explicit Unary(NodeView) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    if constexpr (U == Un::Not) {
      if (x.dtype() != TFH_TYPE_BOOL) sdk::fail("Not takes bool");
      OutputTensor y = ctx.output(0, TFH_TYPE_BOOL, d);
      const bool* px = static_cast<const bool*>(x.raw());
      bool* py = static_cast<bool*>(y.raw());
      for (size_t i = 0; i < x.size(); ++i) py[i] = !px[i];
      return;
    }
    OutputTensor y = ctx.output(0, x.dtype(), d);
    const int64_t n = static_cast<int64_t>(x.size());
    if (n == 0) return;
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      constexpr bool float_only = U != Un::Neg && U != Un::Abs && U != Un::Relu &&
                                  U != Un::Identity;
      if constexpr (std::is_same_v<T, bool> || std::is_unsigned_v<T> ||
                    (float_only && std::is_integral_v<T>)) {
        unsupported_type(x.dtype());  // before the parallel loop, not inside it
      } else {
        const T* px = static_cast<const T*>(x.raw());
        T* py = static_cast<T*>(y.raw());
        parallel_span(n, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) {
            if constexpr (is_half_v<T>)
              store_f(py, i, apply_un<float>(U, load_f(px, i)));
            else
              py[i] = apply_un<T>(U, px[i]);
          }
        });
      }
    });
  }
};

// ---- Cast ---------------------------------------------------------------------------------------

struct Cast {
  TfhDataType to;
  bool like;  // CastLike: the type of input 1
  explicit Cast(NodeView n)
      : to(n.is("CastLike") ? TFH_TYPE_UNDEFINED : static_cast<TfhDataType>(n.attr_int("to"))),
        like(n.is("CastLike")) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    if (like) to = ctx.required(1).dtype();
    OutputTensor y = ctx.output(0, to, dims_of(x));
    const int64_t n = static_cast<int64_t>(x.size());
    if (n == 0) return;
    if (x.dtype() == to) {
      std::memcpy(y.raw(), x.raw(), n * elem_size(to));
      return;
    }
    // float <-> float16/bfloat16 (past/present at a keep_io_types boundary, every decoding step):
    // the vector conversions, split over the threads.
    if ((x.dtype() == TFH_TYPE_FLOAT && is_half(to)) || (is_half(x.dtype()) && to == TFH_TYPE_FLOAT)) {
      parallel_span(n, [&](int64_t lo, int64_t hi) {
        if (to == TFH_TYPE_FLOAT16)
          narrow(x.data<float>().data() + lo, y.data<Float16>() + lo, hi - lo);
        else if (to == TFH_TYPE_BFLOAT16)
          narrow(x.data<float>().data() + lo, y.data<BFloat16>() + lo, hi - lo);
        else if (x.dtype() == TFH_TYPE_FLOAT16)
          widen(x.data<Float16>().data() + lo, y.data<float>() + lo, hi - lo);
        else
          widen(x.data<BFloat16>().data() + lo, y.data<float>() + lo, hi - lo);
      });
      return;
    }
    dispatch_all(x.dtype(), [&](auto in_tag) {
      using I = decltype(in_tag);
      dispatch_all(to, [&](auto out_tag) {
        using O = decltype(out_tag);
        const I* px = static_cast<const I*>(x.raw());
        O* py = static_cast<O*>(y.raw());
        parallel_span(n, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) {
            if constexpr (is_half_v<I> || is_half_v<O>) {
              float v;
              if constexpr (is_half_v<I>)
                v = load_f(px, i);
              else
                v = static_cast<float>(px[i]);
              if constexpr (is_half_v<O>)
                store_f(py, i, v);
              else if constexpr (std::is_same_v<O, bool>)
                py[i] = v != 0.f;
              else
                py[i] = static_cast<O>(v);
            } else if constexpr (std::is_same_v<O, bool>) {
              py[i] = px[i] != I(0);
            } else {
              py[i] = static_cast<O>(px[i]);
            }
          }
        });
      });
    });
  }
};

}  // namespace

void add_elementwise_kernels(std::vector<const TfhKernelDesc*>& out) {
  TFH_CPU_KERNEL(BinaryOp<Bin::Add>, "Add")
  TFH_CPU_KERNEL(BinaryOp<Bin::Sub>, "Sub")
  TFH_CPU_KERNEL(BinaryOp<Bin::Mul>, "Mul")
  TFH_CPU_KERNEL(BinaryOp<Bin::Div>, "Div")
  TFH_CPU_KERNEL(BinaryOp<Bin::Pow>, "Pow")
  TFH_CPU_KERNEL(Mod, "Mod")
  TFH_CPU_KERNEL(BinaryOp<Bin::Equal>, "Equal")
  TFH_CPU_KERNEL(BinaryOp<Bin::Greater>, "Greater")
  TFH_CPU_KERNEL(BinaryOp<Bin::Less>, "Less")
  TFH_CPU_KERNEL(BinaryOp<Bin::GreaterEq>, "GreaterOrEqual")
  TFH_CPU_KERNEL(BinaryOp<Bin::LessEq>, "LessOrEqual")
  TFH_CPU_KERNEL(BinaryOp<Bin::And>, "And")
  TFH_CPU_KERNEL(BinaryOp<Bin::Or>, "Or")
  TFH_CPU_KERNEL(BinaryOp<Bin::Xor>, "Xor")
  TFH_CPU_KERNEL(Where, "Where")
  TFH_CPU_KERNEL(Unary<Un::Erf>, "Erf")
  TFH_CPU_KERNEL(Unary<Un::Sqrt>, "Sqrt")
  TFH_CPU_KERNEL(Unary<Un::Tanh>, "Tanh")
  TFH_CPU_KERNEL(Unary<Un::Neg>, "Neg")
  TFH_CPU_KERNEL(Unary<Un::Exp>, "Exp")
  TFH_CPU_KERNEL(Unary<Un::Log>, "Log")
  TFH_CPU_KERNEL(Unary<Un::Abs>, "Abs")
  TFH_CPU_KERNEL(Unary<Un::Relu>, "Relu")
  TFH_CPU_KERNEL(Unary<Un::Sigmoid>, "Sigmoid")
  TFH_CPU_KERNEL(Unary<Un::Reciprocal>, "Reciprocal")
  TFH_CPU_KERNEL(Unary<Un::Floor>, "Floor")
  TFH_CPU_KERNEL(Unary<Un::Ceil>, "Ceil")
  TFH_CPU_KERNEL(Unary<Un::Sin>, "Sin")
  TFH_CPU_KERNEL(Unary<Un::Cos>, "Cos")
  TFH_CPU_KERNEL(Unary<Un::Not>, "Not")
  TFH_CPU_KERNEL(Cast, "Cast")
  TFH_CPU_KERNEL(Cast, "CastLike")
}

}  // namespace tfh::kernels::cpu
