// The general tensor kernels of cuda_kernels.h that fused graphs keep around the fused ops:
// Cast between the numeric types, broadcasting binary arithmetic, unary activations, Gather.
#include <cuda_fp16.h>

#include <string>
#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace tfh::kernels::cuda {
namespace {

// ---- Cast ---------------------------------------------------------------------------------------
// Values pass through double when an integer is involved (int64 ids stay exact), through float
// otherwise. Float to integer truncates toward zero (C's conversion, as ONNX's reference does);
// anything to bool is "!= 0".
template <typename T> __device__ __forceinline__ double to_d(T v) { return static_cast<double>(v); }
template <> __device__ __forceinline__ double to_d<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ double to_d<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <typename T> __device__ __forceinline__ T from_d(double v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ __half from_d<__half>(double v) {
  return __float2half_rn(static_cast<float>(v));
}
template <> __device__ __forceinline__ __nv_bfloat16 from_d<__nv_bfloat16>(double v) {
  return __float2bfloat16_rn(static_cast<float>(v));
}
template <> __device__ __forceinline__ bool from_d<bool>(double v) { return v != 0.0; }

template <typename T>
constexpr bool kHalfType = std::is_same<T, __half>::value || std::is_same<T, __nv_bfloat16>::value;

template <typename From, typename To>
__global__ void cast_kernel(const From* x, To* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (std::is_integral<To>::value && !std::is_same<To, bool>::value) {
      // Narrow integers wrap as on the CPU (C's conversion through int64), not saturate.
      if constexpr (std::is_integral<From>::value) y[i] = static_cast<To>(x[i]);
      else y[i] = static_cast<To>(static_cast<int64_t>(to_d(x[i])));
    } else if constexpr (std::is_integral<From>::value && std::is_same<To, float>::value) {
      y[i] = static_cast<float>(x[i]);  // one rounding, as on the CPU
    } else if constexpr ((std::is_same<From, float>::value && kHalfType<To>) ||
                         (kHalfType<From> && std::is_same<To, float>::value)) {
      st(y, i, ld(x, i));  // float <-> float16/bfloat16: one rounding, no double detour
    } else {
      y[i] = from_d<To>(to_d(x[i]));
    }
  }
}

// Calls f(T()) for the storage type of t; false when cast does not cover it.
template <typename F>
bool by_cast_type(TfhDataType t, F&& f) {
  switch (t) {
    case TFH_TYPE_FLOAT: f(float()); return true;
    case TFH_TYPE_FLOAT16: f(__half()); return true;
    case TFH_TYPE_BFLOAT16: f(__nv_bfloat16()); return true;
    case TFH_TYPE_DOUBLE: f(double()); return true;
    case TFH_TYPE_INT32: f(int32_t()); return true;
    case TFH_TYPE_INT64: f(int64_t()); return true;
    case TFH_TYPE_UINT8: f(uint8_t()); return true;
    case TFH_TYPE_INT8: f(int8_t()); return true;
    case TFH_TYPE_BOOL: f(bool()); return true;
    default: return false;
  }
}

// ---- element-wise arithmetic --------------------------------------------------------------------
__device__ __forceinline__ float apply(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Pow: return b == 2.f ? a * a : b == 0.5f ? sqrtf(a) : powf(a, b);
    default: return a / b;
  }
}

// Integers: exact, in their own type, wrapping as the CPU's kernels do; Div truncates toward
// zero (C's division), the lowest value over -1 wraps to itself, and a zero divisor (which the
// caller rules out: Div runs here with a constant divisor without zeros) gives 0.
template <typename I>
__device__ __forceinline__ I apply_int(BinaryOp op, I a, I b) {
  using U = typename std::make_unsigned<I>::type;
  switch (op) {
    case BinaryOp::Add: return static_cast<I>(static_cast<U>(a) + static_cast<U>(b));
    case BinaryOp::Sub: return static_cast<I>(static_cast<U>(a) - static_cast<U>(b));
    case BinaryOp::Mul: return static_cast<I>(static_cast<U>(a) * static_cast<U>(b));
    default:
      return b == 0 ? I(0) : b == -1 ? static_cast<I>(U(0) - static_cast<U>(a)) : static_cast<I>(a / b);
  }
}
// y[i] = a[ia] op b[ib]: floating types computed in float, integers in their own type.
template <typename T>
__device__ __forceinline__ void combine(BinaryOp op, const T* a, int64_t ia, const T* b,
                                        int64_t ib, T* y, int64_t i) {
  if constexpr (std::is_integral<T>::value) y[i] = apply_int(op, a[ia], b[ib]);
  else st(y, i, apply(op, ld(a, ia), ld(b, ib)));
}

template <typename T>
__global__ void binary_same_kernel(BinaryOp op, const T* a, const T* b, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    combine(op, a, i, b, i, y, i);
}

// Output index -> each input's index through the padded dims and per-input strides (0 where the
// input broadcasts).
__device__ __forceinline__ void broadcast_index(const Broadcast& bc, int64_t i, int64_t& ia,
                                                int64_t& ib) {
  int64_t rest = i;
  ia = ib = 0;
  for (int d = bc.rank - 1; d >= 0; --d) {
    const int64_t c = rest % bc.dims[d];
    rest /= bc.dims[d];
    ia += c * bc.a_strides[d];
    ib += c * bc.b_strides[d];
  }
}

template <typename T>
__global__ void binary_broadcast_kernel(BinaryOp op, const T* a, const T* b, T* y, int64_t n,
                                        Broadcast bc) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t ia, ib;
    broadcast_index(bc, i, ia, ib);
    combine(op, a, ia, b, ib, y, i);
  }
}

// ---- comparisons, Not, CumSum -------------------------------------------------------------------
template <typename T> __device__ __forceinline__ T cmp_value(T v) { return v; }
__device__ __forceinline__ float cmp_value(__half v) { return __half2float(v); }
__device__ __forceinline__ float cmp_value(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__global__ void compare_kernel(CompareOp op, const T* a, const T* b, bool* y, int64_t n,
                               Broadcast bc) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t ia, ib;
    broadcast_index(bc, i, ia, ib);
    const auto x = cmp_value(a[ia]), z = cmp_value(b[ib]);
    switch (op) {
      case CompareOp::Equal: y[i] = x == z; break;
      case CompareOp::Less: y[i] = x < z; break;
      case CompareOp::Greater: y[i] = x > z; break;
      case CompareOp::LessOrEqual: y[i] = x <= z; break;
      default: y[i] = x >= z;
    }
  }
}

__global__ void not_kernel(const bool* x, bool* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = !x[i];
}

// One thread per line of `len` elements (stride `inner`), summed in order: floating types in
// float, integers in their own type.
template <typename T>
__global__ void cumsum_kernel(const T* x, T* y, int64_t outer, int64_t len, int64_t inner,
                              bool exclusive, bool reverse) {
  using Acc = typename std::conditional<std::is_integral<T>::value, T, float>::type;
  for (int64_t line = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; line < outer * inner;
       line += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (line / inner) * len * inner + line % inner;
    Acc acc = 0;
    for (int64_t j = 0; j < len; ++j) {
      const int64_t at = base + (reverse ? len - 1 - j : j) * inner;
      Acc v;
      if constexpr (std::is_integral<T>::value) v = x[at];
      else v = ld(x, at);
      if (!exclusive) acc += v;
      if constexpr (std::is_integral<T>::value) y[at] = acc;
      else st(y, at, acc);
      if (exclusive) acc += v;
    }
  }
}

// Calls f(T()) for float, float16, bfloat16, int32 and int64 (and bool when WithBool; f is then
// not even instantiated for bool otherwise); false for the other types.
template <bool WithBool, typename F>
bool by_numeric_type(TfhDataType t, F&& f) {
  switch (t) {
    case TFH_TYPE_FLOAT: f(float()); return true;
    case TFH_TYPE_FLOAT16: f(__half()); return true;
    case TFH_TYPE_BFLOAT16: f(__nv_bfloat16()); return true;
    case TFH_TYPE_INT32: f(int32_t()); return true;
    case TFH_TYPE_INT64: f(int64_t()); return true;
    case TFH_TYPE_BOOL:
      if constexpr (WithBool) {
        f(bool());
        return true;
      }
      return false;
    default: return false;
  }
}

__device__ __forceinline__ float apply(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::Tanh: return tanhf(x);
    case UnaryOp::Relu: return x > 0.f ? x : 0.f;
    case UnaryOp::Sigmoid: return 1.f / (1.f + __expf(-x));
    case UnaryOp::Erf: return erff(x);
    case UnaryOp::Sqrt: return sqrtf(x);
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return logf(x);
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return fabsf(x);
    default: return 1.f / x;
  }
}

template <typename T>
__global__ void unary_kernel(UnaryOp op, const T* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, apply(op, ld(x, i)));
}

// Calls f(T()) with T float, __half or __nv_bfloat16.
template <typename F>
void by_float_type(TfhDataType t, const char* what, F&& f) {
  if (t == TFH_TYPE_FLOAT) f(float());
  else if (t == TFH_TYPE_FLOAT16) f(__half());
  else if (t == TFH_TYPE_BFLOAT16) f(__nv_bfloat16());
  else
    throw CudaError(std::string(what) + ": only float, float16 and bfloat16 tensors run on CUDA");
}

// ---- Gather -------------------------------------------------------------------------------------
// y[o, j, r] = x[o, idx[j], r]: one element of `Word` (1, 2, 4 or 8 bytes) per thread.
template <typename Word, typename Index>
__global__ void gather_kernel(const Word* x, const Index* idx, Word* y, int64_t outer,
                              int64_t axis_dim, int64_t n_idx, int64_t inner) {
  const int64_t n = outer * n_idx * inner;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i % inner, j = (i / inner) % n_idx, o = i / (inner * n_idx);
    int64_t k = static_cast<int64_t>(idx[j]);
    if (k < 0) k += axis_dim;
    y[i] = k >= 0 && k < axis_dim ? x[(o * axis_dim + k) * inner + r] : Word(0);
  }
}

template <typename Word>
void gather_words(const void* x, TfhDataType idx_type, const void* idx, void* y, int64_t outer,
                  int64_t axis_dim, int64_t n_idx, int64_t inner, cudaStream_t s) {
  const int64_t n = outer * n_idx * inner;
  if (idx_type == TFH_TYPE_INT64)
    TFH_LAUNCH(blocks_for(n), kThreads, 0, s, gather_kernel<Word, int64_t>)(
        static_cast<const Word*>(x), static_cast<const int64_t*>(idx), static_cast<Word*>(y),
        outer, axis_dim, n_idx, inner);
  else
    TFH_LAUNCH(blocks_for(n), kThreads, 0, s, gather_kernel<Word, int32_t>)(
        static_cast<const Word*>(x), static_cast<const int32_t*>(idx), static_cast<Word*>(y),
        outer, axis_dim, n_idx, inner);
}

template <typename Word>
__global__ void strided_copy_kernel(const Word* x, Word* y, StridedCopy c, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, src = c.src_offset, dst = c.dst_offset;
    for (int d = c.rank - 1; d >= 0; --d) {
      const int64_t k = rest % c.dims[d];
      rest /= c.dims[d];
      src += k * c.src_strides[d];
      dst += k * c.dst_strides[d];
    }
    y[dst] = x[src];
  }
}

template <typename Word>
__global__ void where_kernel(const bool* c, const Word* x, const Word* y, Word* out,
                             WhereBroadcast bc, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, ic = 0, ix = 0, iy = 0;
    for (int d = bc.rank - 1; d >= 0; --d) {
      const int64_t k = rest % bc.dims[d];
      rest /= bc.dims[d];
      ic += k * bc.c_strides[d];
      ix += k * bc.x_strides[d];
      iy += k * bc.y_strides[d];
    }
    out[i] = c[ic] ? x[ix] : y[iy];
  }
}

template <typename Word>
void launch_where(const bool* c, const void* x, const void* y, void* out, const WhereBroadcast& bc,
                  int64_t n, cudaStream_t s) {
  TFH_LAUNCH(blocks_for(n), kThreads, 0, s, where_kernel<Word>)(c, static_cast<const Word*>(x),
                                                        static_cast<const Word*>(y),
                                                        static_cast<Word*>(out), bc, n);
}

// One block per row; a block-wide sum through warp shuffles and one shared slot per warp.
template <typename T, typename Acc>
__global__ void reduce_rows_kernel(const T* x, T* y, int64_t cols, bool mean) {
  TFH_SHARED(Acc, part, [32]);
  const T* row = x + blockIdx.x * cols;
  Acc acc = 0;
  constexpr bool kIntegral = std::is_integral<T>::value;  // exact: no detour through double
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    if constexpr (kIntegral) acc += static_cast<Acc>(row[c]);
    else acc += static_cast<Acc>(to_d(row[c]));
  }
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    Acc total = 0;
    for (int w = 0; w < (blockDim.x + 31) / 32; ++w) total += part[w];
    if (mean && cols > 0) total = total / static_cast<Acc>(cols);
    if constexpr (kIntegral) y[blockIdx.x] = static_cast<T>(total);
    else y[blockIdx.x] = from_d<T>(static_cast<double>(total));
  }
}

template <typename T, typename Acc>
void launch_reduce(const void* x, void* y, int64_t rows, int64_t cols, bool mean, cudaStream_t s) {
  TFH_LAUNCH(static_cast<unsigned>(rows), kThreads, 0, s, reduce_rows_kernel<T, Acc>)(
      static_cast<const T*>(x), static_cast<T*>(y), cols, mean);
}

// ---- ArgMax / ArgMin ----------------------------------------------------------------------------

// A candidate of an arg-max/min: the value (float data compared in float; integers as they are)
// and its index, -1 for none yet. `better` says whether a beats b: a larger (smaller) value, and
// on a tie the smaller index, or the larger one with select_last_index. A NaN is the extreme (as
// NumPy's argmax/argmin, ONNX's reference): it beats any number and ties with another NaN.
template <typename K>
struct ArgCandidate {
  K v;
  int64_t i;
};

template <typename K>
__device__ __forceinline__ bool better(const ArgCandidate<K>& a, const ArgCandidate<K>& b,
                                       bool max, bool last) {
  if (a.i < 0) return false;
  if (b.i < 0) return true;
  const bool a_nan = a.v != a.v, b_nan = b.v != b.v;
  if (a_nan != b_nan) return a_nan;
  if (a_nan || a.v == b.v) return last ? a.i > b.i : a.i < b.i;
  return max ? a.v > b.v : a.v < b.v;
}

template <typename T>
__device__ __forceinline__ float arg_key(T v) { return ld(&v, 0); }
__device__ __forceinline__ int64_t arg_key(int32_t v) { return v; }
__device__ __forceinline__ int64_t arg_key(int64_t v) { return v; }

// One block per output: x viewed as [outer, n, inner], output (o, r) the index along n of the
// extreme of x[o, :, r]. Each thread scans a stride of n, then the warps and the block merge.
template <typename T, typename K>
__global__ void arg_extreme_kernel(const T* x, int64_t* y, int64_t n, int64_t inner, bool max,
                                   bool last) {
  TFH_SHARED(K, part_v, [32]);
  TFH_SHARED(int64_t, part_i, [32]);
  const int64_t o = blockIdx.x / inner, r = blockIdx.x % inner;
  const T* base = x + o * n * inner + r;
  ArgCandidate<K> best{K(0), -1};
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const ArgCandidate<K> c{arg_key(base[j * inner]), j};
    if (better(c, best, max, last)) best = c;
  }
  for (int off = 16; off > 0; off >>= 1) {
    const ArgCandidate<K> other{__shfl_xor_sync(0xffffffffu, best.v, off),
                                __shfl_xor_sync(0xffffffffu, best.i, off)};
    if (better(other, best, max, last)) best = other;
  }
  if ((threadIdx.x & 31) == 0) {
    part_v[threadIdx.x >> 5] = best.v;
    part_i[threadIdx.x >> 5] = best.i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>((blockDim.x + 31) / 32); ++w) {
      const ArgCandidate<K> c{part_v[w], part_i[w]};
      if (better(c, best, max, last)) best = c;
    }
    y[blockIdx.x] = best.i;
  }
}

template <typename T, typename K>
void launch_arg_extreme(const void* x, int64_t* y, int64_t outer, int64_t n, int64_t inner,
                        bool max, bool last, cudaStream_t s) {
  TFH_LAUNCH(static_cast<unsigned>(outer * inner), kThreads, 0, s, arg_extreme_kernel<T, K>)(
      static_cast<const T*>(x), y, n, inner, max, last);
}

}  // namespace

bool reduce_supported(TfhDataType t) {
  return t == TFH_TYPE_FLOAT || t == TFH_TYPE_FLOAT16 || t == TFH_TYPE_BFLOAT16 ||
         t == TFH_TYPE_INT32 || t == TFH_TYPE_INT64;
}

void reduce_rows(TfhDataType t, bool mean, const void* x, void* y, int64_t rows, int64_t cols,
                 cudaStream_t s) {
  if (!reduce_supported(t)) throw CudaError("reduce: type " + std::to_string(t) + " is not supported on CUDA");
  if (rows == 0) return;
  if (rows > 0x7fffffff) throw CudaError("reduce: too many rows for one launch");
  switch (t) {
    case TFH_TYPE_FLOAT: launch_reduce<float, float>(x, y, rows, cols, mean, s); break;
    case TFH_TYPE_FLOAT16: launch_reduce<__half, float>(x, y, rows, cols, mean, s); break;
    case TFH_TYPE_BFLOAT16: launch_reduce<__nv_bfloat16, float>(x, y, rows, cols, mean, s); break;
    case TFH_TYPE_INT32: launch_reduce<int32_t, long long>(x, y, rows, cols, mean, s); break;
    default: launch_reduce<int64_t, long long>(x, y, rows, cols, mean, s); break;
  }
  launched("reduce");
}

bool arg_extreme_supported(TfhDataType t) { return reduce_supported(t); }

void arg_extreme(TfhDataType t, bool max, bool select_last, const void* x, int64_t* y,
                 int64_t outer, int64_t n, int64_t inner, cudaStream_t s) {
  if (!arg_extreme_supported(t))
    throw CudaError("arg_extreme: type " + std::to_string(t) + " is not supported on CUDA");
  if (n <= 0) throw CudaError("arg_extreme: the reduced axis is empty");
  if (outer * inner == 0) return;
  if (outer * inner > 0x7fffffff) throw CudaError("arg_extreme: too many outputs for one launch");
  by_numeric_type<false>(t, [&](auto v) {  // float types compared in float, integers as int64
    using T = decltype(v);
    using K = std::conditional_t<std::is_integral<T>::value, int64_t, float>;
    launch_arg_extreme<T, K>(x, y, outer, n, inner, max, select_last, s);
  });
  launched("arg_extreme");
}

void where(size_t elem_bytes, const bool* cond, const void* x, const void* y_else, void* out,
           const WhereBroadcast& bc, cudaStream_t s) {
  if (bc.rank < 0 || bc.rank > WhereBroadcast::kMaxRank) throw CudaError("where: rank over 6");
  int64_t n = 1;
  for (int d = 0; d < bc.rank; ++d) n *= bc.dims[d];
  if (n == 0) return;
  switch (elem_bytes) {
    case 1: launch_where<uint8_t>(cond, x, y_else, out, bc, n, s); break;
    case 2: launch_where<uint16_t>(cond, x, y_else, out, bc, n, s); break;
    case 4: launch_where<uint32_t>(cond, x, y_else, out, bc, n, s); break;
    case 8: launch_where<uint64_t>(cond, x, y_else, out, bc, n, s); break;
    default: throw CudaError("where: elements of " + std::to_string(elem_bytes) + " bytes");
  }
  launched("where");
}

void strided_copy(size_t elem_bytes, const void* x, void* y, const StridedCopy& c, cudaStream_t s) {
  if (c.rank < 0 || c.rank > StridedCopy::kMaxRank) throw CudaError("strided_copy: rank over 8");
  int64_t n = 1;
  for (int d = 0; d < c.rank; ++d) n *= c.dims[d];
  if (n == 0) return;
  switch (elem_bytes) {
    case 1: TFH_LAUNCH(blocks_for(n), kThreads, 0, s, strided_copy_kernel<uint8_t>)(static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), c, n); break;
    case 2: TFH_LAUNCH(blocks_for(n), kThreads, 0, s, strided_copy_kernel<uint16_t>)(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), c, n); break;
    case 4: TFH_LAUNCH(blocks_for(n), kThreads, 0, s, strided_copy_kernel<uint32_t>)(static_cast<const uint32_t*>(x), static_cast<uint32_t*>(y), c, n); break;
    case 8: TFH_LAUNCH(blocks_for(n), kThreads, 0, s, strided_copy_kernel<uint64_t>)(static_cast<const uint64_t*>(x), static_cast<uint64_t*>(y), c, n); break;
    default: throw CudaError("strided_copy: elements of " + std::to_string(elem_bytes) + " bytes");
  }
  launched("strided_copy");
}

bool cast_supported(TfhDataType from, TfhDataType to) {
  auto any = [](auto) {};
  return by_cast_type(from, any) && by_cast_type(to, any);
}

void cast(TfhDataType from, TfhDataType to, const void* x, void* y, int64_t n, cudaStream_t s) {
  if (!cast_supported(from, to))
    throw CudaError("cast: from type " + std::to_string(from) + " to " + std::to_string(to) +
                    " is not supported on CUDA");
  if (n == 0) return;
  by_cast_type(from, [&](auto f) {
    by_cast_type(to, [&](auto t) {
      using F = decltype(f);
      using T = decltype(t);
      TFH_LAUNCH(blocks_for(n), kThreads, 0, s, cast_kernel<F, T>)(static_cast<const F*>(x),
                                                           static_cast<T*>(y), n);
    });
  });
  launched("cast");
}

void binary(TfhDataType t, BinaryOp op, const void* a, const void* b, void* y,
            const Broadcast& bc, cudaStream_t s) {
  if (bc.rank < 0 || bc.rank > Broadcast::kMaxRank) throw CudaError("binary: rank over 6");
  int64_t n = 1;
  for (int d = 0; d < bc.rank; ++d) n *= bc.dims[d];
  if (n == 0) return;
  // Both inputs dense over the whole output: the plain loop.
  bool same = true;
  int64_t expect = 1;
  for (int d = bc.rank - 1; d >= 0; --d) {
    same = same && (bc.dims[d] == 1 || (bc.a_strides[d] == expect && bc.b_strides[d] == expect));
    expect *= bc.dims[d];
  }
  if (op == BinaryOp::Pow && t != TFH_TYPE_FLOAT && t != TFH_TYPE_FLOAT16 && t != TFH_TYPE_BFLOAT16)
    throw CudaError("binary: Pow on type " + std::to_string(static_cast<int>(t)) +
                    " (float, float16 and bfloat16 only)");
  const bool known = by_numeric_type<false>(t, [&](auto v) {
    using T = decltype(v);
    if (same)
      TFH_LAUNCH(blocks_for(n), kThreads, 0, s, binary_same_kernel<T>)(
          op, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(y), n);
    else
      TFH_LAUNCH(blocks_for(n), kThreads, 0, s, binary_broadcast_kernel<T>)(
          op, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(y), n, bc);
  });
  if (!known) throw CudaError("binary: tensors of type " + std::to_string(static_cast<int>(t)));
  launched("binary");
}

void compare(TfhDataType t, CompareOp op, const void* a, const void* b, bool* y,
             const Broadcast& bc, cudaStream_t s) {
  if (bc.rank < 0 || bc.rank > Broadcast::kMaxRank) throw CudaError("compare: rank over 6");
  int64_t n = 1;
  for (int d = 0; d < bc.rank; ++d) n *= bc.dims[d];
  if (n == 0) return;
  if (t == TFH_TYPE_BOOL && op != CompareOp::Equal)
    throw CudaError("compare: only Equal takes bool tensors");
  const bool known = by_numeric_type<true>(t, [&](auto v) {
    using T = decltype(v);
    TFH_LAUNCH(blocks_for(n), kThreads, 0, s, compare_kernel<T>)(
        op, static_cast<const T*>(a), static_cast<const T*>(b), y, n, bc);
  });
  if (!known) throw CudaError("compare: tensors of type " + std::to_string(static_cast<int>(t)));
  launched("compare");
}

void logical_not(const bool* x, bool* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  TFH_LAUNCH(blocks_for(n), kThreads, 0, s, not_kernel)(x, y, n);
  launched("logical_not");
}

void cumsum(TfhDataType t, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
            bool exclusive, bool reverse, cudaStream_t s) {
  if (outer * len * inner == 0) return;
  const bool known = by_numeric_type<false>(t, [&](auto v) {
    using T = decltype(v);
    TFH_LAUNCH(blocks_for(outer * inner), kThreads, 0, s, cumsum_kernel<T>)(
        static_cast<const T*>(x), static_cast<T*>(y), outer, len, inner, exclusive, reverse);
  });
  if (!known) throw CudaError("cumsum: tensors of type " + std::to_string(static_cast<int>(t)));
  launched("cumsum");
}

void unary(TfhDataType t, UnaryOp op, const void* x, void* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  by_float_type(t, "unary", [&](auto v) {
    using T = decltype(v);
    TFH_LAUNCH(blocks_for(n), kThreads, 0, s, unary_kernel<T>)(op, static_cast<const T*>(x),
                                                       static_cast<T*>(y), n);
  });
  launched("unary");
}

void gather(size_t elem_bytes, const void* x, TfhDataType idx_type, const void* idx, void* y,
            int64_t outer, int64_t axis_dim, int64_t n_idx, int64_t inner, cudaStream_t s) {
  if (idx_type != TFH_TYPE_INT32 && idx_type != TFH_TYPE_INT64)
    throw CudaError("gather: indices must be int32 or int64");
  if (outer * n_idx * inner == 0) return;
  switch (elem_bytes) {
    case 1: gather_words<uint8_t>(x, idx_type, idx, y, outer, axis_dim, n_idx, inner, s); break;
    case 2: gather_words<uint16_t>(x, idx_type, idx, y, outer, axis_dim, n_idx, inner, s); break;
    case 4: gather_words<uint32_t>(x, idx_type, idx, y, outer, axis_dim, n_idx, inner, s); break;
    case 8: gather_words<uint64_t>(x, idx_type, idx, y, outer, axis_dim, n_idx, inner, s); break;
    default: throw CudaError("gather: elements of " + std::to_string(elem_bytes) + " bytes");
  }
  launched("gather");
}

// ---- L2 prefetch (the runtime's weights asked for ahead of the steps that read them) ------------
// A thread per kL2PrefetchChunk bytes of the ranges: on sm_90 one bulk prefetch (the copy engine
// of the SM fetches the whole chunk into L2, nothing comes back to the thread), before that a
// prefetch per 128-byte line. The threads wait for nothing: the kernel ends as soon as its
// requests are issued.
namespace {
__global__ void prefetch_l2_kernel(L2Ranges r) {
  uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // over all ranges
  for (int k = 0; k < r.count; ++k) {
    const uint64_t chunks = (r.bytes[k] + kL2PrefetchChunk - 1) / kL2PrefetchChunk;
    if (i >= chunks) {
      i -= chunks;
      continue;
    }
    const char* p = static_cast<const char*>(r.data[k]) + i * kL2PrefetchChunk;
    const uint64_t n = min(uint64_t(kL2PrefetchChunk), r.bytes[k] - i * kL2PrefetchChunk);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // (16-byte multiples from a 16-byte aligned start: the ranges start 256-byte aligned)
    const uint32_t bulk = static_cast<uint32_t>(n & ~uint64_t(15));
    if (bulk) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bulk) : "memory");
#elif defined(__CUDA_ARCH__)
    for (uint64_t b = 0; b < n; b += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(p + b));
#else
    (void)p, (void)n;  // (the emulator: nothing to fetch)
#endif
    return;
  }
}
}  // namespace

void prefetch_l2(const L2Ranges& r, cudaStream_t s) {
  if (r.count < 0 || r.count > kMaxL2Ranges)
    throw CudaError("prefetch_l2: " + std::to_string(r.count) + " ranges (at most " +
                    std::to_string(kMaxL2Ranges) + ")");
  uint64_t chunks = 0;
  for (int k = 0; k < r.count; ++k) {
    if (r.bytes[k] && reinterpret_cast<uintptr_t>(r.data[k]) % 16 != 0)
      throw CudaError("prefetch_l2: a range not 16-byte aligned");
    chunks += (r.bytes[k] + kL2PrefetchChunk - 1) / kL2PrefetchChunk;
  }
  if (!chunks) return;
  // One warp a block: the requests spread over as many SMs as there are warps (each SM's bulk
  // copies are its own; a layer's 14 MB of GPT-2 weights are 28 blocks).
  constexpr unsigned kThreadsPerBlock = 32;
  TFH_LAUNCH(static_cast<unsigned>((chunks + kThreadsPerBlock - 1) / kThreadsPerBlock), kThreadsPerBlock,
             0, s, prefetch_l2_kernel)(r);
  launched("prefetch_l2");
}

}  // namespace tfh::kernels::cuda
