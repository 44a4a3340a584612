// tfhost's CUDA kernels as kernel descriptors (device TFH_DEVICE_CUDA): what the runtime runs
// for the ops of fused transformer graphs when a session's device is CUDA. Inputs and outputs
// are device memory (the runtime uploads host values first); shapes and attributes are read on
// the host; each launch goes on the session's stream. A case a kernel does not cover is an error
// naming the op and the case, never a silent fallback.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/common/axis_split.h"
#include "kernels/common/slice_bounds.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "tfhost/kernel.hpp"

namespace tfh::kernels::cuda {
namespace {

cudaStream_t st(void* s) { return static_cast<cudaStream_t>(s); }

// One cuBLASLt handle and plan cache for the process (plans are immutable; run is thread-safe).
// Never destroyed: at exit the CUDA runtime may be torn down before static destructors run, and
// destroying a cuBLAS(Lt) handle then can crash or hang; the process's end frees it anyway.
LtGemm& lt() {
  static LtGemm* g = new LtGemm;
  return *g;
}

std::vector<int64_t> dims_of(const TensorView& t) {
  auto d = t.dims();
  return std::vector<int64_t>(d.begin(), d.end());
}

std::string shape_text(const TensorView& t) {
  std::string r = "[";
  for (size_t i = 0; i < t.rank(); ++i) r += (i ? ", " : "") + std::to_string(t.dims()[i]);
  return r + "]";
}

// Element strides of a dense tensor.
std::vector<int64_t> strides_of(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t d = dims.size(); d-- > 1;) s[d - 1] = s[d] * dims[d];
  return s;
}
// Bytes per element of the fixed-size types strided copies move (0 for the others).
// `c` writes a dense tensor of dims `out` (its dims and destination strides).
void dense_destination(StridedCopy& c, const std::vector<int64_t>& out) {
  const std::vector<int64_t> ys = strides_of(out);
  c.rank = static_cast<int>(out.size());
  for (size_t d = 0; d < out.size(); ++d) {
    c.dims[d] = out[d];
    c.dst_strides[d] = ys[d];
  }
}

size_t elem_bytes(TfhDataType t) {
  switch (t) {
    case TFH_TYPE_UINT8: case TFH_TYPE_INT8: case TFH_TYPE_BOOL: return 1;
    case TFH_TYPE_UINT16: case TFH_TYPE_INT16: case TFH_TYPE_FLOAT16: case TFH_TYPE_BFLOAT16: return 2;
    case TFH_TYPE_FLOAT: case TFH_TYPE_INT32: case TFH_TYPE_UINT32: return 4;
    case TFH_TYPE_INT64: case TFH_TYPE_UINT64: case TFH_TYPE_DOUBLE: return 8;
    default: return 0;
  }
}
bool fixed_size_or_unknown(const ValueView& v) {
  const TfhDataType t = v ? v.elem_type() : TFH_TYPE_UNDEFINED;
  return t == TFH_TYPE_UNDEFINED || elem_bytes(t) != 0;
}

void need_float(const TensorView& t, const char* op, const char* what) {
  if (t.dtype() != TFH_TYPE_FLOAT && t.dtype() != TFH_TYPE_FLOAT16 &&
      t.dtype() != TFH_TYPE_BFLOAT16)
    sdk::fail(std::string(op) + " on CUDA: " + what + " is " + data_type_name(t.dtype()) +
              "; only float, float16 and bfloat16 run there");
}
void same_type(const TensorView& a, const TensorView& b, const char* op) {
  if (a.dtype() != b.dtype()) sdk::fail(std::string(op) + " on CUDA: inputs differ in type");
}
// Plan-time checks on the inferred shapes: a kernel refuses (throws from its constructor) a node
// it could not run, and the runtime gives that node to the CPU. Unknown shapes pass.
[[noreturn]] void refuse(const std::string& why) { sdk::fail(why); }
bool same_dim(const Dim& a, const Dim& b) {
  return a.known() ? a.value == b.value : (!b.known() && !a.symbol.empty() && a.symbol == b.symbol);
}
// Provably the same shape (same rank, every dim equal or the same symbol), or unknown.
bool same_shape_or_unknown(const ValueView& a, const ValueView& b) {
  if (!a || !b || a.rank() < 0 || b.rank() < 0) return true;
  if (a.rank() != b.rank()) return false;
  const auto sa = a.shape(), sb = b.shape();
  for (size_t i = 0; i < sa.size(); ++i)
    if (!same_dim(sa[i], sb[i])) return false;
  return true;
}
// A vector over the last axis (rank 1, or every dim but the last known to be 1), or unknown.
bool vector_or_unknown(const ValueView& v) {
  if (!v || v.rank() < 0) return true;
  const auto s = v.shape();
  for (size_t i = 0; i + 1 < s.size(); ++i)
    if (!(s[i].known() && s[i].value == 1)) return false;
  return true;
}
bool float_or_unknown(const ValueView& v) {
  const TfhDataType t = v ? v.elem_type() : TFH_TYPE_UNDEFINED;
  return t == TFH_TYPE_UNDEFINED || t == TFH_TYPE_FLOAT || t == TFH_TYPE_FLOAT16 ||
         t == TFH_TYPE_BFLOAT16;
}

void unused(KernelContext& ctx, size_t i, const char* op, const char* what) {
  if (ctx.num_outputs() > i && ctx.output_used(i))
    sdk::fail(std::string(op) + " on CUDA: output '" + what + "' is not supported");
}

// MatMul of A [..., M, K] and B [..., K, N], batch dims broadcast as NumPy does. A 2-D B (or one
// whose batch dims are all 1) folds A's leading dims into rows: one GEMM. Equal batch dims: one
// strided-batched cuBLASLt call. Other broadcasts: a GEMM per output matrix. 1-D operands run on
// the CPU.
struct MatMul {
  explicit MatMul(NodeView n) {
    if (!float_or_unknown(n.input(0))) refuse("MatMul on CUDA: not float/float16/bfloat16");
    for (size_t i = 0; i < 2; ++i)
      if (n.num_inputs() > i && n.input(i) && n.input(i).rank() >= 0 && n.input(i).rank() < 2)
        refuse("MatMul on CUDA: a 1-D operand");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView a = ctx.required(0), b = ctx.required(1);
    need_float(a, "MatMul", "A");
    same_type(a, b, "MatMul");
    if (a.rank() < 2 || b.rank() < 2)
      sdk::fail("MatMul on CUDA: A " + shape_text(a) + " and B " + shape_text(b) +
                ": 1-D operands are not supported");
    const size_t ra = a.rank(), rb = b.rank(), r = std::max(ra, rb);
    const int64_t m = a.dims()[ra - 2], k = a.dims()[ra - 1], n = b.dims()[rb - 1];
    if (b.dims()[rb - 2] != k)
      sdk::fail("MatMul on CUDA: A " + shape_text(a) + " and B " + shape_text(b) +
                ": A's last dimension is not B's rows");
    // Batch dims right-aligned: each operand's matrix stride per output batch dim (0 where it
    // broadcasts).
    const size_t nb = r - 2;
    std::vector<int64_t> out(r), a_stride(nb, 0), b_stride(nb, 0);
    bool b_ones = true;
    int64_t sa = m * k, sb = k * n, batch = 1;
    for (size_t i = nb; i-- > 0;) {
      const size_t back = nb - 1 - i;  // 0 for the innermost batch dim
      const int64_t da = back < ra - 2 ? a.dims()[ra - 3 - back] : 1;
      const int64_t db = back < rb - 2 ? b.dims()[rb - 3 - back] : 1;
      if (da != db && da != 1 && db != 1)
        sdk::fail("MatMul on CUDA: A " + shape_text(a) + " and B " + shape_text(b) +
                  ": batch dims do not broadcast");
      out[i] = da == 1 ? db : da;
      a_stride[i] = da == 1 ? 0 : sa;
      b_stride[i] = db == 1 ? 0 : sb;
      b_ones = b_ones && db == 1;
      sa *= da;
      sb *= db;
      batch *= out[i];
    }
    out[r - 2] = m, out[r - 1] = n;
    OutputTensor y = ctx.output(0, a.dtype(), out);
    const size_t elem = elem_bytes(a.dtype());
    if (batch == 0 || m == 0 || n == 0) return;
    if (k == 0) {  // an empty sum: zeros
      fill_zero(y.raw(), static_cast<size_t>(batch * m * n) * elem, s);
      return;
    }
    void* ws = ctx.scratch<char>(LtGemm::kWorkspaceBytes);
    if (b_ones) {  // one B for every matrix of A (then A has every batch dim): A's rows stacked
      lt().run(a.dtype(), batch * m, n, k, a.raw(), b.raw(), false, y.raw(), Epilogue::None,
               nullptr, ws, LtGemm::kWorkspaceBytes, st(s));
      return;
    }
    bool same = true;  // no broadcast (a 1 on both sides is none): one strided-batched call
    for (size_t i = 0; i < nb; ++i)
      same = same && (out[i] == 1 || (a_stride[i] != 0 && b_stride[i] != 0));
    if (same) {
      lt().run(a.dtype(), m, n, k, a.raw(), b.raw(), false, y.raw(), Epilogue::None, nullptr, ws,
               LtGemm::kWorkspaceBytes, st(s), batch);
      return;
    }
    // A broadcast (a 1 against a larger dim, on either side): a GEMM per output matrix.
    const char* pa = static_cast<const char*>(a.raw());
    const char* pb = static_cast<const char*>(b.raw());
    char* py = static_cast<char*>(y.raw());
    for (int64_t q = 0; q < batch; ++q) {
      int64_t rest = q, oa = 0, ob = 0;
      for (size_t i = nb; i-- > 0;) {
        const int64_t c = rest % out[i];
        rest /= out[i];
        oa += c * a_stride[i];
        ob += c * b_stride[i];
      }
      lt().run(a.dtype(), m, n, k, pa + static_cast<size_t>(oa) * elem,
               pb + static_cast<size_t>(ob) * elem, false, py + static_cast<size_t>(q * m * n) * elem,
               Epilogue::None, nullptr, ws, LtGemm::kWorkspaceBytes, st(s));
    }
  }
};

// com.microsoft.GemmFastGelu (X [..., K], W [K, N], bias [N]?): one cuBLASLt GEMM whose GELU
// (+bias) epilogue applies FastGelu's tanh form to the fp32 accumulator. A bias that is not a
// constant (plans hold its pointer) is added by the gelu kernel after a plain GEMM instead.
struct GemmFastGelu {
  bool constant_bias = true;
  explicit GemmFastGelu(NodeView n) {
    if (n.num_inputs() > 1 && n.input(1) && n.input(1).rank() >= 0 && n.input(1).rank() != 2)
      refuse("GemmFastGelu on CUDA: W is not a 2-D matrix");
    if (!float_or_unknown(n.input(0))) refuse("GemmFastGelu on CUDA: not float/float16/bfloat16");
    if (n.num_inputs() > 2 && n.input(2)) {
      if (n.input(2).rank() >= 0 && n.input(2).rank() != 1)
        refuse("GemmFastGelu on CUDA: the bias is not a vector");
      constant_bias = static_cast<bool>(n.input(2).constant());
    }
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView a = ctx.required(0), w = ctx.required(1), bias = ctx.input(2);
    need_float(a, "GemmFastGelu", "X");
    same_type(a, w, "GemmFastGelu");
    if (w.rank() != 2 || a.rank() < 1) sdk::fail("GemmFastGelu on CUDA: W must be a 2-D [K, N] matrix");
    const int64_t k = w.dims()[0], n = w.dims()[1];
    std::vector<int64_t> out = dims_of(a);
    if (out.back() != k) sdk::fail("GemmFastGelu on CUDA: X's last dimension is not W's first");
    if (bias) {
      same_type(a, bias, "GemmFastGelu");
      if (bias.rank() != 1 || static_cast<int64_t>(bias.size()) != n)
        sdk::fail("GemmFastGelu on CUDA: bias must be 1-D with W's " + std::to_string(n) +
                  " columns");
    }
    out.back() = n;
    int64_t rows = 1;  // A's rows, also when K is 0
    for (size_t i = 0; i + 1 < a.rank(); ++i) rows *= a.dims()[i];
    OutputTensor y = ctx.output(0, a.dtype(), out);
    if (rows == 0 || n == 0) return;
    const void* b = bias ? bias.raw() : nullptr;
    if (k == 0) {  // an empty sum: gelu(0 + bias)
      fill_zero(y.raw(), static_cast<size_t>(rows * n) * (elem_bytes(a.dtype())), s);
      gelu(a.dtype(), GeluKind::Tanh, y.raw(), b, y.raw(), rows, n, st(s));
      return;
    }
    void* ws = ctx.scratch<char>(LtGemm::kWorkspaceBytes);
    if (b && !constant_bias) {
      lt().run(a.dtype(), rows, n, k, a.raw(), w.raw(), false, y.raw(), Epilogue::None, nullptr, ws,
               LtGemm::kWorkspaceBytes, st(s));
      gelu(a.dtype(), GeluKind::Tanh, y.raw(), b, y.raw(), rows, n, st(s));
      return;
    }
    lt().run(a.dtype(), rows, n, k, a.raw(), w.raw(), false, y.raw(),
             b ? Epilogue::BiasGelu : Epilogue::Gelu, b, ws, LtGemm::kWorkspaceBytes, st(s));
  }
};

// Add/Sub/Mul/Div with NumPy broadcasting (rank up to 6), float, float16 and bfloat16.
bool numeric_or_unknown(const ValueView& v) {
  const TfhDataType t = v ? v.elem_type() : TFH_TYPE_UNDEFINED;
  return float_or_unknown(v) || t == TFH_TYPE_INT32 || t == TFH_TYPE_INT64;
}

// NumPy broadcasting of a and b: the output dims, and each input's strides at the output's rank
// (0 where it broadcasts).
Broadcast broadcast_of(const TensorView& a, const TensorView& b, std::vector<int64_t>& out,
                       const char* op) {
  const size_t rank = std::max(a.rank(), b.rank());
  if (rank > Broadcast::kMaxRank) sdk::fail(std::string(op) + " on CUDA: rank over 6");
  Broadcast bc;
  bc.rank = static_cast<int>(rank);
  out.assign(rank, 0);
  // Right-aligned dims; each input's stride is 0 where it has 1 (or nothing) and the output more.
  int64_t sa = 1, sb = 1;
  for (size_t i = 0; i < rank; ++i) {
    const size_t d = rank - 1 - i;
    const int64_t da = i < a.rank() ? a.dims()[a.rank() - 1 - i] : 1;
    const int64_t db = i < b.rank() ? b.dims()[b.rank() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1)
      sdk::fail(std::string(op) + " on CUDA: shapes " + shape_text(a) + " and " + shape_text(b) +
                " do not broadcast");
    out[d] = da == 1 ? db : da;
    bc.dims[d] = out[d];
    bc.a_strides[d] = da == 1 ? 0 : sa;
    bc.b_strides[d] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
  }
  return bc;
}

void refuse_over_rank_6(NodeView n, const char* op) {
  for (size_t i = 0; i < 2; ++i)
    if (n.num_inputs() > i && n.input(i) && n.input(i).rank() > Broadcast::kMaxRank)
      refuse(std::string(op) + " on CUDA: rank over 6");
}

// Add, Sub, Mul, Div on float, float16, bfloat16, int32 or int64; Pow on the float types. An
// integer Div runs here only with a constant divisor without zeros (the CPU's kernel reports a
// division by zero, which a GPU kernel could only report after the fact).
template <BinaryOp Op>
struct Binary {
  bool divisor_checked = false;  // Div: input 1 is a constant with no zero
  explicit Binary(NodeView n) {
    if (Op == BinaryOp::Pow ? !float_or_unknown(n.input(0)) : !numeric_or_unknown(n.input(0)))
      refuse("element-wise on CUDA: element type");
    const TfhDataType ta = n.input(0) ? n.input(0).elem_type() : TFH_TYPE_UNDEFINED,
                      tb = n.input(1) ? n.input(1).elem_type() : TFH_TYPE_UNDEFINED;
    if (ta != TFH_TYPE_UNDEFINED && tb != TFH_TYPE_UNDEFINED && ta != tb)
      refuse("element-wise on CUDA: inputs of two types");  // (Pow's exponent may differ)
    refuse_over_rank_6(n, "element-wise");
    if (Op == BinaryOp::Div) {
      const TensorView d = n.num_inputs() > 1 && n.input(1) ? n.input(1).constant() : TensorView();
      if (d && (d.dtype() == TFH_TYPE_INT32 || d.dtype() == TFH_TYPE_INT64)) {
        divisor_checked = true;
        for (size_t i = 0; i < d.size(); ++i)
          divisor_checked = divisor_checked && d.at(i).value_or(0) != 0;
      }
      if ((ta == TFH_TYPE_INT32 || ta == TFH_TYPE_INT64) && !divisor_checked)
        refuse("Div on CUDA: an integer divisor that is not a constant without zeros");
    }
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView a = ctx.required(0), b = ctx.required(1);
    if (Op == BinaryOp::Pow) need_float(a, "Pow", "A");
    if (Op == BinaryOp::Div && (a.dtype() == TFH_TYPE_INT32 || a.dtype() == TFH_TYPE_INT64) &&
        !divisor_checked)
      sdk::fail("Div on CUDA: an integer divisor that is not a constant without zeros");
    same_type(a, b, "element-wise op");
    std::vector<int64_t> out;
    const Broadcast bc = broadcast_of(a, b, out, "element-wise");
    OutputTensor y = ctx.output(0, a.dtype(), out);
    binary(a.dtype(), Op, a.raw(), b.raw(), y.raw(), bc, st(s));
  }
};

// Equal, Less, Greater, LessOrEqual, GreaterOrEqual: a bool tensor, broadcasting as Binary.
template <CompareOp Op>
struct Compare {
  explicit Compare(NodeView n) {
    const TfhDataType t = n.input(0) ? n.input(0).elem_type() : TFH_TYPE_UNDEFINED;
    if (!numeric_or_unknown(n.input(0)) && !(Op == CompareOp::Equal && t == TFH_TYPE_BOOL))
      refuse("comparison on CUDA: element type");
    refuse_over_rank_6(n, "comparison");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView a = ctx.required(0), b = ctx.required(1);
    same_type(a, b, "comparison");
    std::vector<int64_t> out;
    const Broadcast bc = broadcast_of(a, b, out, "comparison");
    OutputTensor y = ctx.output(0, TFH_TYPE_BOOL, out);
    compare(a.dtype(), Op, a.raw(), b.raw(), static_cast<bool*>(y.raw()), bc, st(s));
  }
};

struct Not {
  explicit Not(NodeView) {}
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    if (x.dtype() != TFH_TYPE_BOOL) sdk::fail("Not on CUDA: the input is not bool");
    OutputTensor y = ctx.output(0, TFH_TYPE_BOOL, dims_of(x));
    logical_not(static_cast<const bool*>(x.raw()), static_cast<bool*>(y.raw()),
                static_cast<int64_t>(x.size()), st(s));
  }
};


template <UnaryOp Op>
struct Unary {
  explicit Unary(NodeView) {}
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    need_float(x, "element-wise op", "X");
    OutputTensor y = ctx.output(0, x.dtype(), dims_of(x));
    unary(x.dtype(), Op, x.raw(), y.raw(), static_cast<int64_t>(x.size()), st(s));
  }
};

// Gather on any axis, elements of 1/2/4/8 bytes, int32/int64 indices (read on the device).
struct Gather {
  int64_t axis;
  explicit Gather(NodeView n) : axis(n.attr_int("axis", 0)) {
    const ValueView i = n.input(1);
    if (i && i.elem_type() != TFH_TYPE_UNDEFINED && i.elem_type() != TFH_TYPE_INT32 &&
        i.elem_type() != TFH_TYPE_INT64)
      refuse("Gather on CUDA: indices are not int32/int64");
    if (!fixed_size_or_unknown(n.input(0))) refuse("Gather on CUDA: element type");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0), idx = ctx.required(1);
    const int64_t r = static_cast<int64_t>(x.rank());
    const int64_t ax = axis < 0 ? axis + r : axis;
    if (ax < 0 || ax >= r) sdk::fail("Gather on CUDA: axis " + std::to_string(axis) + " is out of range");
    std::vector<int64_t> out;
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < ax; ++d) {
      out.push_back(x.dims()[d]);
      outer *= x.dims()[d];
    }
    for (int64_t d : idx.dims()) out.push_back(d);
    for (int64_t d = ax + 1; d < r; ++d) {
      out.push_back(x.dims()[d]);
      inner *= x.dims()[d];
    }
    OutputTensor y = ctx.output(0, x.dtype(), out);
    gather(elem_bytes(x.dtype()), x.raw(), idx.dtype(), idx.raw(), y.raw(), outer, x.dims()[ax],
           static_cast<int64_t>(idx.size()), inner, st(s));
  }
};

// Transpose (perm, default reversed), any element of 1/2/4/8 bytes, rank up to 8.
struct Transpose {
  std::vector<int64_t> perm;
  explicit Transpose(NodeView n) : perm(n.attr_ints("perm", {})) {
    if (!fixed_size_or_unknown(n.input(0))) refuse("Transpose on CUDA: element type");
    if (n.input(0) && n.input(0).rank() > StridedCopy::kMaxRank) refuse("Transpose on CUDA: rank over 8");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    const std::vector<int64_t> xd = dims_of(x);
    const size_t r = xd.size();
    if (r > static_cast<size_t>(StridedCopy::kMaxRank)) sdk::fail("Transpose on CUDA: rank over 8");
    std::vector<int64_t> p = perm;
    if (p.empty())
      for (size_t d = 0; d < r; ++d) p.push_back(static_cast<int64_t>(r - 1 - d));
    if (p.size() != r) sdk::fail("Transpose on CUDA: perm has " + std::to_string(p.size()) + " entries for rank " + std::to_string(r));
    std::vector<bool> seen(r, false);
    const std::vector<int64_t> xs = strides_of(xd);
    std::vector<int64_t> out(r);
    StridedCopy c;
    c.rank = static_cast<int>(r);
    for (size_t d = 0; d < r; ++d) {
      const int64_t a = p[d] < 0 ? p[d] + static_cast<int64_t>(r) : p[d];
      if (a < 0 || a >= static_cast<int64_t>(r) || seen[a]) sdk::fail("Transpose on CUDA: perm is not a permutation");
      seen[a] = true;
      out[d] = xd[a];
      c.src_strides[d] = xs[a];
    }
    dense_destination(c, out);
    OutputTensor y = ctx.output(0, x.dtype(), out);
    strided_copy(elem_bytes(x.dtype()), x.raw(), y.raw(), c, st(s));
  }
};

// An integer input that is a constant of the model (an initializer or a Constant node), read on
// the host when the kernel is made: a CUDA kernel cannot read device memory on the host without
// waiting for the GPU. Refuses the node otherwise (the CPU runs it). Kernels that declare the
// input a host input (TfhKernelDesc::host_inputs) read a non-constant one at run time instead.
std::vector<int64_t> constant_ints(NodeView n, size_t i, const char* op, const char* what) {
  const ValueView v = n.num_inputs() > i ? n.input(i) : ValueView();
  const TensorView t = v ? v.constant() : TensorView();
  if (!t) refuse(std::string(op) + " on CUDA: " + what + " is not a constant");
  std::vector<int64_t> out;
  if (t.dtype() == TFH_TYPE_INT64)
    for (int64_t x : t.data<int64_t>()) out.push_back(x);
  else if (t.dtype() == TFH_TYPE_INT32)
    for (int32_t x : t.data<int32_t>()) out.push_back(x);
  else
    refuse(std::string(op) + " on CUDA: " + what + " is not int32/int64");
  return out;
}

// Integers of a host input (TfhKernelDesc::host_inputs), read at run time: int32 or int64.
std::vector<int64_t> host_ints(const TensorView& t, const char* op, const char* what) {
  std::vector<int64_t> out;
  if (t.dtype() == TFH_TYPE_INT64)
    for (int64_t x : t.data<int64_t>()) out.push_back(x);
  else if (t.dtype() == TFH_TYPE_INT32)
    for (int32_t x : t.data<int32_t>()) out.push_back(x);
  else
    sdk::fail(std::string(op) + " on CUDA: " + what + " is not int32/int64");
  return out;
}
// Whether input i is a constant of the model (its integers can be read when the kernel is made).
bool constant_input(NodeView n, size_t i) {
  return n.num_inputs() > i && n.input(i) && n.input(i).constant();
}

// CumSum; the axis (a host input) read when the kernel is made if it is a constant.
struct CumSum {
  std::vector<int64_t> axis;  // empty: read at run time
  bool exclusive, reverse;
  explicit CumSum(NodeView n)
      : exclusive(n.attr_int("exclusive", 0) != 0), reverse(n.attr_int("reverse", 0) != 0) {
    if (!numeric_or_unknown(n.input(0))) refuse("CumSum on CUDA: element type");
    if (constant_input(n, 1)) axis = constant_ints(n, 1, "CumSum", "axis");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    const std::vector<int64_t> a = axis.empty() ? host_ints(ctx.required(1), "CumSum", "axis") : axis;
    if (a.size() != 1) sdk::fail("CumSum on CUDA: axis is not one value");
    const int64_t axis = a[0];
    const std::vector<int64_t> d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size()), ax = axis < 0 ? axis + r : axis;
    if (ax < 0 || ax >= r) sdk::fail("CumSum on CUDA: axis " + std::to_string(axis) + " is out of range");
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < ax; ++i) outer *= d[i];
    for (int64_t i = ax + 1; i < r; ++i) inner *= d[i];
    OutputTensor y = ctx.output(0, x.dtype(), d);
    cumsum(x.dtype(), x.raw(), y.raw(), outer, d[ax], inner, exclusive, reverse, st(s));
  }
};

// Slice; starts/ends/axes/steps (host inputs from opset 10, attributes before) read when the
// kernel is made if they are constants, else at each run.
struct Slice {
  struct Params {
    std::vector<int64_t> starts, ends, axes, steps;
  };
  Params fixed;
  bool at_run_time = false;
  // (Made: the node is refused, and runs on the CPU. At run time: the run fails, naming it.)
  static void check(const Params& p) {
    if (p.starts.size() != p.ends.size() || (!p.axes.empty() && p.axes.size() != p.starts.size()) ||
        (!p.steps.empty() && p.steps.size() != p.starts.size()))
      sdk::fail("Slice on CUDA: starts, ends, axes and steps differ in length");
    for (int64_t step : p.steps)
      if (step == 0) sdk::fail("Slice on CUDA: a step of 0");
  }
  explicit Slice(NodeView n) {
    if (!fixed_size_or_unknown(n.input(0))) refuse("Slice on CUDA: element type");
    if (n.input(0) && n.input(0).rank() > StridedCopy::kMaxRank) refuse("Slice on CUDA: rank over 8");
    if (n.num_inputs() >= 3) {
      for (size_t i = 1; i < n.num_inputs() && i <= 4; ++i)
        if (n.input(i) && !constant_input(n, i)) at_run_time = true;
      if (at_run_time) return;
      fixed.starts = constant_ints(n, 1, "Slice", "starts");
      fixed.ends = constant_ints(n, 2, "Slice", "ends");
      if (n.num_inputs() > 3 && n.input(3)) fixed.axes = constant_ints(n, 3, "Slice", "axes");
      if (n.num_inputs() > 4 && n.input(4)) fixed.steps = constant_ints(n, 4, "Slice", "steps");
    } else {  // opset 1-9
      fixed.starts = n.attr_ints("starts", {});
      fixed.ends = n.attr_ints("ends", {});
      fixed.axes = n.attr_ints("axes", {});
    }
    check(fixed);
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    Params read;
    if (at_run_time) {
      read.starts = host_ints(ctx.required(1), "Slice", "starts");
      read.ends = host_ints(ctx.required(2), "Slice", "ends");
      if (ctx.num_inputs() > 3 && ctx.input(3)) read.axes = host_ints(ctx.input(3), "Slice", "axes");
      if (ctx.num_inputs() > 4 && ctx.input(4)) read.steps = host_ints(ctx.input(4), "Slice", "steps");
      check(read);
    }
    const Params& p = at_run_time ? read : fixed;
    const std::vector<int64_t>&starts = p.starts, &ends = p.ends, &axes = p.axes, &steps = p.steps;
    const std::vector<int64_t> xd = dims_of(x), xs = strides_of(xd);
    const int64_t r = static_cast<int64_t>(xd.size());
    if (r > StridedCopy::kMaxRank) sdk::fail("Slice on CUDA: rank over 8");
    StridedCopy c;
    c.rank = static_cast<int>(r);
    std::vector<int64_t> out = xd;
    for (int64_t d = 0; d < r; ++d) c.src_strides[d] = xs[d];
    std::vector<bool> seen(static_cast<size_t>(r), false);
    for (size_t k = 0; k < starts.size(); ++k) {
      int64_t a = axes.empty() ? static_cast<int64_t>(k) : axes[k];
      if (a < 0) a += r;
      if (a < 0 || a >= r || seen[a]) sdk::fail("Slice on CUDA: bad or repeated axis");
      seen[a] = true;
      const int64_t step = steps.empty() ? 1 : steps[k];
      const SliceBounds b = slice_bounds(xd[a], starts[k], ends[k], step);
      out[a] = b.count;
      if (b.count > 0) c.src_offset += b.start * xs[a];
      c.src_strides[a] = xs[a] * step;
    }
    dense_destination(c, out);
    OutputTensor y = ctx.output(0, x.dtype(), out);
    strided_copy(elem_bytes(x.dtype()), x.raw(), y.raw(), c, st(s));
  }
};

// Expand (NumPy broadcasting both ways); the shape (a host input) read when the kernel is made
// if it is a constant, else at each run (an unfused export's shape arithmetic).
struct Expand {
  std::vector<int64_t> fixed;
  bool at_run_time;
  explicit Expand(NodeView n) : at_run_time(!constant_input(n, 1)) {
    if (!fixed_size_or_unknown(n.input(0))) refuse("Expand on CUDA: element type");
    if (!at_run_time) fixed = constant_ints(n, 1, "Expand", "shape");
    if (fixed.size() > static_cast<size_t>(StridedCopy::kMaxRank) ||
        (n.input(0) && n.input(0).rank() > StridedCopy::kMaxRank))
      refuse("Expand on CUDA: rank over 8");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    const std::vector<int64_t> shape =
        at_run_time ? host_ints(ctx.required(1), "Expand", "shape") : fixed;
    const std::vector<int64_t> xd = dims_of(x), xs = strides_of(xd);
    const size_t r = std::max(xd.size(), shape.size());
    if (r > static_cast<size_t>(StridedCopy::kMaxRank)) sdk::fail("Expand on CUDA: rank over 8");
    std::vector<int64_t> out(r);
    StridedCopy c;
    c.rank = static_cast<int>(r);
    for (size_t i = 0; i < r; ++i) {  // right-aligned
      const size_t d = r - 1 - i;
      const int64_t a = i < xd.size() ? xd[xd.size() - 1 - i] : 1;
      const int64_t b = i < shape.size() ? shape[shape.size() - 1 - i] : 1;
      if (a != b && a != 1 && b != 1)
        sdk::fail("Expand on CUDA: " + shape_text(x) + " does not broadcast to the shape");
      out[d] = a == 1 ? b : a;
      c.src_strides[d] = a == 1 ? 0 : xs[xd.size() - 1 - i];
    }
    dense_destination(c, out);
    OutputTensor y = ctx.output(0, x.dtype(), out);
    strided_copy(elem_bytes(x.dtype()), x.raw(), y.raw(), c, st(s));
  }
};

// Split along an axis, each output a strided copy of its slab: sizes from the `split` attribute
// (before opset 13) or a constant input (from 13), equal parts otherwise (the last one shorter
// when they do not divide, as opset 18's num_outputs).
struct Split {
  int64_t axis;
  std::vector<int64_t> sizes;  // empty: equal parts (or, with at_run_time, the host input's)
  bool at_run_time = false;
  explicit Split(NodeView n) : axis(n.attr_int("axis", 0)) {
    if (!fixed_size_or_unknown(n.input(0)) ||
        (n.input(0) && n.input(0).rank() > StridedCopy::kMaxRank))
      refuse("Split on CUDA: element type or rank over 8");
    if (n.num_inputs() > 1 && n.input(1)) {
      at_run_time = !constant_input(n, 1);
      if (!at_run_time) sizes = constant_ints(n, 1, "Split", "split");
    } else {
      sizes = n.attr_ints("split", {});
    }
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    const std::vector<int64_t> xd = dims_of(x), xs = strides_of(xd);
    const int64_t r = static_cast<int64_t>(xd.size());
    const int64_t ax = axis < 0 ? axis + r : axis;
    if (ax < 0 || ax >= r) sdk::fail("Split on CUDA: axis " + std::to_string(axis) + " is out of range");
    const int64_t n_out = static_cast<int64_t>(ctx.num_outputs());
    std::vector<int64_t> parts = at_run_time ? host_ints(ctx.required(1), "Split", "split") : sizes;
    if (parts.empty()) {
      const int64_t each = (xd[ax] + n_out - 1) / n_out;
      for (int64_t i = 0; i < n_out; ++i)
        parts.push_back(std::max<int64_t>(0, std::min(each, xd[ax] - i * each)));
    }
    int64_t total = 0;
    for (int64_t p : parts) {
      if (p < 0) sdk::fail("Split on CUDA: a negative split size");
      total += p;
    }
    if (static_cast<int64_t>(parts.size()) != n_out || total != xd[ax])
      sdk::fail("Split on CUDA: split sizes do not add up to dimension " + std::to_string(xd[ax]));
    int64_t start = 0;
    for (int64_t i = 0; i < n_out; ++i) {
      std::vector<int64_t> out = xd;
      out[ax] = parts[i];
      StridedCopy c;
      c.rank = static_cast<int>(r);
      for (int64_t d = 0; d < r; ++d) c.src_strides[d] = xs[d];
      c.src_offset = start * xs[ax];
      start += parts[i];
      dense_destination(c, out);
      if (!ctx.output_used(static_cast<size_t>(i))) continue;
      OutputTensor y = ctx.output(static_cast<size_t>(i), x.dtype(), out);
      strided_copy(elem_bytes(x.dtype()), x.raw(), y.raw(), c, st(s));
    }
  }
};

// Concat along an axis: each input copied into its slab of the output.
struct Concat {
  int64_t axis;
  explicit Concat(NodeView n) : axis(n.attr_int("axis", 0)) {
    for (size_t i = 0; i < n.num_inputs(); ++i)
      if (!fixed_size_or_unknown(n.input(i)) ||
          (n.input(i) && n.input(i).rank() > StridedCopy::kMaxRank))
        refuse("Concat on CUDA: element type or rank over 8");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView first = ctx.required(0);
    const int64_t r = static_cast<int64_t>(first.rank());
    const int64_t ax = axis < 0 ? axis + r : axis;
    if (ax < 0 || ax >= r) sdk::fail("Concat on CUDA: axis " + std::to_string(axis) + " is out of range");
    if (r > StridedCopy::kMaxRank) sdk::fail("Concat on CUDA: rank over 8");
    std::vector<int64_t> out = dims_of(first);
    out[ax] = 0;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      TensorView t = ctx.required(i);
      const std::vector<int64_t> d = dims_of(t);
      if (t.dtype() != first.dtype() || static_cast<int64_t>(d.size()) != r)
        sdk::fail("Concat on CUDA: inputs differ in type or rank");
      for (int64_t k = 0; k < r; ++k)
        if (k != ax && d[k] != out[k]) sdk::fail("Concat on CUDA: input " + std::to_string(i) + " is " + shape_text(t));
      out[ax] += d[ax];
    }
    OutputTensor y = ctx.output(0, first.dtype(), out);
    const std::vector<int64_t> ys = strides_of(out);
    int64_t at = 0;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      TensorView t = ctx.required(i);
      const std::vector<int64_t> d = dims_of(t), ts = strides_of(d);
      StridedCopy c;
      c.rank = static_cast<int>(r);
      for (int64_t k = 0; k < r; ++k) {
        c.dims[k] = d[k];
        c.src_strides[k] = ts[k];
        c.dst_strides[k] = ys[k];
      }
      c.dst_offset = at * ys[ax];
      strided_copy(elem_bytes(first.dtype()), t.raw(), y.raw(), c, st(s));
      at += d[ax];
    }
  }
};

// ReduceSum / ReduceMean over trailing axes (axes from the attribute, or a constant input from
// ReduceSum-13 and ReduceMean-18), keepdims either way. Other axes go to the CPU at plan time.
template <bool Mean>
struct ReduceTrailing {
  std::vector<int64_t> axes;
  bool keepdims, noop_empty;
  explicit ReduceTrailing(NodeView n)
      : keepdims(n.attr_int("keepdims", 1) != 0),
        noop_empty(n.attr_int("noop_with_empty_axes", 0) != 0) {
    const TfhDataType t = n.input(0) ? n.input(0).elem_type() : TFH_TYPE_UNDEFINED;
    if (t != TFH_TYPE_UNDEFINED && !reduce_supported(t)) refuse("Reduce on CUDA: element type");
    if (n.num_inputs() > 1 && n.input(1)) axes = constant_ints(n, 1, "Reduce", "axes");
    else axes = n.attr_ints("axes", {});
    if (axes.empty() && noop_empty) refuse("Reduce on CUDA: noop_with_empty_axes");
    const int64_t r = n.input(0) ? n.input(0).rank() : -1;
    if (r >= 0 && first_reduced(axes, r) < 0) refuse("Reduce on CUDA: axes other than the trailing ones");
  }
  // The first of the reduced axes when `axes` (empty: all) are the last ones of rank r, else -1.
  static int64_t first_reduced(const std::vector<int64_t>& axes, int64_t r) {
    std::vector<bool> reduced(static_cast<size_t>(r), axes.empty());
    for (int64_t a : axes) {
      const int64_t d = a < 0 ? a + r : a;
      if (d < 0 || d >= r) return -1;
      reduced[d] = true;
    }
    int64_t first = r;
    while (first > 0 && reduced[first - 1]) --first;
    for (int64_t d = 0; d < first; ++d)
      if (reduced[d]) return -1;
    return first;
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    const std::vector<int64_t> xd = dims_of(x);
    const int64_t r = static_cast<int64_t>(xd.size());
    const int64_t first = first_reduced(axes, r);
    if (first < 0) sdk::fail("Reduce on CUDA: axes out of range, or not the trailing ones");
    int64_t rows = 1, cols = 1;
    std::vector<int64_t> out;
    for (int64_t d = 0; d < r; ++d) {
      if (d < first) {
        rows *= xd[d];
        out.push_back(xd[d]);
      } else {
        cols *= xd[d];
        if (keepdims) out.push_back(1);
      }
    }
    OutputTensor y = ctx.output(0, x.dtype(), out);
    reduce_rows(x.dtype(), Mean, x.raw(), y.raw(), rows, cols, st(s));
  }
};

// ArgMax / ArgMin along one axis (keepdims, select_last_index), int64 indices; float, float16,
// bfloat16, int32 and int64 data. Greedy decoding picks its tokens with it on the GPU.
template <bool Max>
struct ArgExtreme : ArgExtremeAttrs {
  explicit ArgExtreme(NodeView n) : ArgExtremeAttrs(n) {
    const TfhDataType t = n.input(0) ? n.input(0).elem_type() : TFH_TYPE_UNDEFINED;
    if (t != TFH_TYPE_UNDEFINED && !arg_extreme_supported(t))
      refuse(Max ? "ArgMax on CUDA: element type" : "ArgMin on CUDA: element type");
  }
  void compute(KernelContext& ctx, void* s) {
    const char* op = Max ? "ArgMax" : "ArgMin";
    TensorView x = ctx.required(0);
    const std::vector<int64_t> xd = dims_of(x);
    const int64_t r = static_cast<int64_t>(xd.size());
    const int64_t ax = axis < 0 ? axis + r : axis;
    if (ax < 0 || ax >= r)
      sdk::fail(std::string(op) + " on CUDA: axis " + std::to_string(axis) + " is out of range");
    if (xd[ax] == 0) sdk::fail(std::string(op) + " on CUDA: the axis is empty");
    const AxisSplit split = split_at_axis(xd, ax, keepdims);
    OutputTensor y = ctx.output(0, TFH_TYPE_INT64, split.reduced);
    arg_extreme(x.dtype(), Max, select_last, x.raw(), static_cast<int64_t*>(y.raw()), split.outer,
                split.n, split.inner, st(s));
  }
};

// Where(cond, x, y) with NumPy broadcasting of the three, rank up to 6.
struct Where {
  explicit Where(NodeView n) {
    if (!fixed_size_or_unknown(n.input(1))) refuse("Where on CUDA: element type");
    for (size_t i = 0; i < 3; ++i)
      if (n.input(i) && n.input(i).rank() > WhereBroadcast::kMaxRank) refuse("Where on CUDA: rank over 6");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView c = ctx.required(0), x = ctx.required(1), y = ctx.required(2);
    if (c.dtype() != TFH_TYPE_BOOL) sdk::fail("Where on CUDA: the condition is not bool");
    same_type(x, y, "Where");
    const TensorView* in[3] = {&c, &x, &y};
    size_t r = 0;
    for (const TensorView* t : in) r = std::max(r, t->rank());
    if (r > static_cast<size_t>(WhereBroadcast::kMaxRank)) sdk::fail("Where on CUDA: rank over 6");
    WhereBroadcast bc;
    bc.rank = static_cast<int>(r);
    int64_t* strides[3] = {bc.c_strides, bc.x_strides, bc.y_strides};
    std::vector<int64_t> out(r, 1);
    for (size_t i = 0; i < r; ++i) {  // right-aligned: the output dim, then each input's stride
      const size_t d = r - 1 - i;
      for (const TensorView* t : in) {
        const int64_t v = i < t->rank() ? t->dims()[t->rank() - 1 - i] : 1;
        if (v != 1 && out[d] != 1 && v != out[d])
          sdk::fail("Where on CUDA: shapes " + shape_text(c) + ", " + shape_text(x) + ", " +
                    shape_text(y) + " do not broadcast");
        if (v != 1) out[d] = v;
      }
      bc.dims[d] = out[d];
    }
    for (int k = 0; k < 3; ++k) {
      const TensorView& t = *in[k];
      int64_t stride = 1;
      for (size_t i = 0; i < r; ++i) {
        const size_t d = r - 1 - i;
        const int64_t v = i < t.rank() ? t.dims()[t.rank() - 1 - i] : 1;
        strides[k][d] = v == 1 ? 0 : stride;
        stride *= v;
      }
    }
    OutputTensor o = ctx.output(0, x.dtype(), out);
    where(elem_bytes(x.dtype()), static_cast<const bool*>(c.raw()), x.raw(), y.raw(), o.raw(), bc,
          st(s));
  }
};

// Gemm as fused graphs keep it (a classifier or pooler layer): alpha = beta = 1, A not
// transposed, C absent or a bias vector of N; the rest goes to the CPU.
struct Gemm {
  bool trans_b;
  explicit Gemm(NodeView n) : trans_b(n.attr_int("transB", 0) != 0) {
    if (n.attr_int("transA", 0) != 0) refuse("Gemm on CUDA: transA");
    if (n.attr_float("alpha", 1.f) != 1.f || n.attr_float("beta", 1.f) != 1.f)
      refuse("Gemm on CUDA: alpha/beta other than 1");
    if (!float_or_unknown(n.input(0))) refuse("Gemm on CUDA: not float/float16/bfloat16");
    if (n.num_inputs() > 2 && n.input(2) && !vector_or_unknown(n.input(2)))
      refuse("Gemm on CUDA: C is not a bias vector");
    // C must hold N values (a broadcast scalar goes to the CPU), and K must not be 0.
    const ValueView b = n.num_inputs() > 1 ? n.input(1) : ValueView();
    if (b && b.rank() == 2) {
      const auto bs = b.shape();
      const Dim nd = bs[trans_b ? 0 : 1], kd = bs[trans_b ? 1 : 0];
      if (kd.known() && kd.value == 0) refuse("Gemm on CUDA: K is 0");
      if (n.num_inputs() > 2 && n.input(2) && n.input(2).rank() >= 0 && nd.known()) {
        int64_t count = 1;
        bool known = true;
        for (const Dim& d : n.input(2).shape()) {
          known = known && d.known();
          if (d.known()) count *= d.value;
        }
        if (known && count != nd.value) refuse("Gemm on CUDA: C does not hold N values");
      }
    }
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView a = ctx.required(0), b = ctx.required(1), c = ctx.input(2);
    need_float(a, "Gemm", "A");
    same_type(a, b, "Gemm");
    if (a.rank() != 2 || b.rank() != 2) sdk::fail("Gemm on CUDA: A and B must be 2-D");
    const int64_t m = a.dims()[0], k = a.dims()[1];
    const int64_t n = trans_b ? b.dims()[0] : b.dims()[1];
    if ((trans_b ? b.dims()[1] : b.dims()[0]) != k) sdk::fail("Gemm on CUDA: A and B do not chain");
    if (c) {
      same_type(a, c, "Gemm");
      if (static_cast<int64_t>(c.size()) != n || (c.rank() == 2 && c.dims()[0] != 1))
        sdk::fail("Gemm on CUDA: C must be a vector of N values");
    }
    OutputTensor y = ctx.output(0, a.dtype(), std::vector<int64_t>{m, n});
    if (m == 0 || n == 0) return;
    if (k == 0) sdk::fail("Gemm on CUDA: K is 0");
    lt().run(a.dtype(), m, n, k, a.raw(), b.raw(), trans_b, y.raw(),
             c ? Epilogue::Bias : Epilogue::None, c ? c.raw() : nullptr,
             ctx.scratch<char>(LtGemm::kWorkspaceBytes), LtGemm::kWorkspaceBytes, st(s));
  }
};

struct SkipLayerNorm {
  float eps;
  explicit SkipLayerNorm(NodeView n) : eps(n.attr_float("epsilon", 1e-12f)) {
    if (!same_shape_or_unknown(n.input(0), n.input(1)))
      refuse("SkipLayerNormalization on CUDA: skip is broadcast");
    for (size_t k = 1; k < 3; ++k)
      if (n.num_outputs() > k && n.output(k) && !n.output(k).consumers().empty())
        refuse("SkipLayerNormalization on CUDA: mean/inv_std_var outputs are read");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0), skip = ctx.required(1), gamma = ctx.required(2),
               beta = ctx.input(3), bias = ctx.input(4);
    need_float(x, "SkipLayerNormalization", "input");
    if (dims_of(x) != dims_of(skip))
      sdk::fail("SkipLayerNormalization on CUDA: skip must have the input's shape");
    unused(ctx, 1, "SkipLayerNormalization", "mean");
    unused(ctx, 2, "SkipLayerNormalization", "inv_std_var");
    const int64_t cols = x.dims()[x.rank() - 1], rows = cols ? static_cast<int64_t>(x.size()) / cols : 0;
    OutputTensor y = ctx.output(0, x.dtype(), dims_of(x));
    void* sum = nullptr;
    if (ctx.num_outputs() > 3 && ctx.output_used(3)) sum = ctx.output(3, x.dtype(), dims_of(x)).raw();
    layer_norm(x.dtype(), x.raw(), skip.raw(), bias ? bias.raw() : nullptr, gamma.raw(),
               beta ? beta.raw() : nullptr, eps, y.raw(), sum, rows, cols, st(s));
  }
};

struct LayerNorm {
  float eps;
  int64_t axis;
  explicit LayerNorm(NodeView n) : eps(n.attr_float("epsilon", 1e-5f)), axis(n.attr_int("axis", -1)) {
    const int64_t r = n.input(0) ? n.input(0).rank() : -1;
    if (axis != -1 && (r < 0 || axis != r - 1)) refuse("LayerNormalization on CUDA: not the last axis");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0), scale = ctx.required(1), bias = ctx.input(2);
    need_float(x, "LayerNormalization", "X");
    if (axis != -1 && axis != static_cast<int64_t>(x.rank()) - 1)
      sdk::fail("LayerNormalization on CUDA: only the last axis");
    unused(ctx, 1, "LayerNormalization", "Mean");
    unused(ctx, 2, "LayerNormalization", "InvStdDev");
    const int64_t cols = x.dims()[x.rank() - 1], rows = cols ? static_cast<int64_t>(x.size()) / cols : 0;
    OutputTensor y = ctx.output(0, x.dtype(), dims_of(x));
    layer_norm(x.dtype(), x.raw(), nullptr, nullptr, scale.raw(), bias ? bias.raw() : nullptr, eps,
               y.raw(), nullptr, rows, cols, st(s));
  }
};

template <GeluKind Kind, bool NeedsBias>
struct GeluOp {
  explicit GeluOp(NodeView) {}
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0), bias = NeedsBias ? ctx.required(1) : ctx.input(1);
    need_float(x, "Gelu", "X");
    const int64_t cols = x.rank() ? x.dims()[x.rank() - 1] : 1;
    if (bias && static_cast<int64_t>(bias.size()) != cols)
      sdk::fail("Gelu on CUDA: the bias must have the last dimension's size");
    OutputTensor y = ctx.output(0, x.dtype(), dims_of(x));
    gelu(x.dtype(), Kind, x.raw(), bias ? bias.raw() : nullptr, y.raw(),
         cols ? static_cast<int64_t>(x.size()) / cols : 0, cols, st(s));
  }
};

struct Softmax {
  int64_t axis;
  explicit Softmax(NodeView n) : axis(n.attr_int("axis", -1)) {
    const int64_t r = n.input(0) ? n.input(0).rank() : -1;
    if (axis != -1 && (r < 0 || axis != r - 1)) refuse("Softmax on CUDA: not the last axis");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    need_float(x, "Softmax", "input");
    if (axis != -1 && axis != static_cast<int64_t>(x.rank()) - 1)
      sdk::fail("Softmax on CUDA: only the last axis");
    const int64_t cols = x.rank() ? x.dims()[x.rank() - 1] : 1;
    OutputTensor y = ctx.output(0, x.dtype(), dims_of(x));
    softmax(x.dtype(), x.raw(), y.raw(), cols ? static_cast<int64_t>(x.size()) / cols : 0, cols, st(s));
  }
};

// Softmax before opset 13: the input flattened to 2-D at `axis` (default 1), softmax over rows.
struct SoftmaxFlattened {
  int64_t axis;
  explicit SoftmaxFlattened(NodeView n) : axis(n.attr_int("axis", 1)) {
    const int64_t r = n.input(0) ? n.input(0).rank() : -1;
    if (r >= 0 && (axis < -r || axis >= r)) refuse("Softmax on CUDA: axis out of range");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    need_float(x, "Softmax", "input");
    const int64_t r = static_cast<int64_t>(x.rank());
    const int64_t ax = axis < 0 ? axis + r : axis;
    if (ax < 0 || ax >= r) sdk::fail("Softmax on CUDA: axis " + std::to_string(axis) + " is out of range");
    int64_t rows = 1;
    for (int64_t d = 0; d < ax; ++d) rows *= x.dims()[d];
    const int64_t cols = rows ? static_cast<int64_t>(x.size()) / rows : 0;
    OutputTensor y = ctx.output(0, x.dtype(), dims_of(x));
    softmax(x.dtype(), x.raw(), y.raw(), cols ? rows : 0, cols, st(s));
  }
};

struct Cast {
  TfhDataType to;
  explicit Cast(NodeView n) : to(static_cast<TfhDataType>(n.attr_int("to"))) {
    const TfhDataType from = n.input(0) ? n.input(0).elem_type() : TFH_TYPE_UNDEFINED;
    if (!cast_supported(to, to) || (from != TFH_TYPE_UNDEFINED && !cast_supported(from, to)))
      refuse("Cast on CUDA: " + std::string(data_type_name(from)) + " to " + data_type_name(to));
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0);
    OutputTensor y = ctx.output(0, to, dims_of(x));
    if (x.dtype() == to) {
      copy_on_device(y.raw(), x.raw(), x.nbytes(), s);
      return;
    }
    cast(x.dtype(), to, x.raw(), y.raw(), static_cast<int64_t>(x.size()), st(s));
  }
};

// TFH_CUDA_DECODE_ATTENTION=split: one-token steps use the split-keys decode kernel (to compare
// it with the default, one block per head, on whole models; the kernel benchmark times both).
bool split_decode() {
  static const bool split = env_choice("TFH_CUDA_DECODE_ATTENTION", "split",
                                       "one-token attention steps use the split-keys decode "
                                       "kernel");
  return split;
}

// What Attention and MultiHeadAttention share about masks and attention biases.
// Plan time: only int32 masks of 1 to 3 dimensions and a 4-D attention_bias run here (the
// runtime otherwise places the node on the CPU).
void refuse_unsupported_mask(const std::string& op, const ValueView& mask, const ValueView& bias) {
  if (mask && ((mask.rank() >= 0 && (mask.rank() < 1 || mask.rank() > 3)) ||
               (mask.elem_type() != TFH_TYPE_UNDEFINED && mask.elem_type() != TFH_TYPE_INT32)))
    refuse(op + " on CUDA: only int32 masks of 1 to 3 dimensions");
  if (bias && bias.rank() >= 0 && bias.rank() != 4) refuse(op + " on CUDA: attention_bias is not 4-D");
}

// The mask's format from its shape, as the CPU kernels read it: [B] ends, [2B] ends and starts,
// [B, T] or [B, S, T]. With a shared past/present buffer of M rows (M > 0) the number of keys is
// known only on the device: a 2-D/3-D mask may then be any width from S to M (`*width`; keys past
// it count as masked).
MaskKind mask_kind_of(const std::string& what, const TensorView& mask, int64_t B, int64_t S,
                      int64_t T, int64_t M, int64_t* width) {
  if (mask.dtype() != TFH_TYPE_INT32) sdk::fail(what + " must be int32");
  const auto md = dims_of(mask);
  *width = 0;
  if (md.size() == 1 && md[0] == B) return MaskKind::Ends;
  if (md.size() == 1 && md[0] == 2 * B) return MaskKind::EndsStarts;
  if (M && md.size() == 2 && md[0] == B && md[1] >= S && md[1] <= M)
    return *width = md[1], MaskKind::Raw2D;
  if (M && md.size() == 3 && md[0] == B && md[1] == S && md[2] >= S && md[2] <= M)
    return *width = md[2], MaskKind::Raw3D;
  if (!M && md == std::vector<int64_t>{B, T}) return MaskKind::Raw2D;
  if (!M && md == std::vector<int64_t>{B, S, T}) return MaskKind::Raw3D;
  sdk::fail(what + " " + shape_text(mask) + " is not [B], [2B], [B, T] or [B, S, T] (B " +
            std::to_string(B) + ", S " + std::to_string(S) + ", T " +
            (M ? "up to " + std::to_string(M) : std::to_string(T)) + ")");
}

// attention_bias [B or 1, N or 1, S, T]: its element strides per batch and per head (0 where
// it broadcasts).
struct BiasStrides {
  int64_t batch = 0, head = 0;
};
BiasStrides attention_bias_strides(const std::string& op, const TensorView& bias, const TensorView& like,
                                   int64_t B, int64_t N, int64_t S, int64_t T) {
  same_type(like, bias, op.c_str());
  const auto d = dims_of(bias);
  if (d.size() != 4 || (d[0] != B && d[0] != 1) || (d[1] != N && d[1] != 1) || d[2] != S || d[3] != T)
    sdk::fail(op + " on CUDA: attention_bias " + shape_text(bias) +
              " is not [B or 1, num_heads or 1, S, T]");
  return {d[0] == 1 ? 0 : d[1] * S * T, d[1] == 1 ? 0 : S * T};
}

// com.microsoft.Attention: packed QKV weights, every int32 mask format, past/present,
// unidirectional, an attention bias; past_present_share_buffer with past_sequence_length read on
// the device (present takes the past's buffer over when the runtime can hand it, else a device
// copy; then only the new rows are written). The host cannot check that value: one below 0 counts
// as 0, and new rows past the buffer's end are not written (the keys stop at its end), where the
// CPU kernel fails naming it.
struct Attention {
  int64_t heads;
  bool unidirectional, share_buffer;
  float filter, scale;
  // Attributes this kernel does not implement refuse the node at plan time: the runtime then
  // runs it on the CPU.
  explicit Attention(NodeView n)
      : heads(n.attr_int("num_heads")), unidirectional(n.attr_int("unidirectional", 0) != 0),
        share_buffer(n.attr_int("past_present_share_buffer", 0) != 0),
        filter(n.attr_float("mask_filter_value", -10000.f)), scale(n.attr_float("scale", 0.f)) {
    if (heads <= 0) sdk::fail("Attention on CUDA: num_heads must be positive");
    if (!n.attr_ints("qkv_hidden_sizes", {}).empty())
      sdk::fail("Attention on CUDA: qkv_hidden_sizes is not supported yet");
    if (n.attr_int("do_rotary", 0) != 0) sdk::fail("Attention on CUDA: do_rotary is not supported");
    refuse_unsupported_mask("Attention", n.num_inputs() > 3 ? n.input(3) : ValueView(),
                            n.num_inputs() > 5 ? n.input(5) : ValueView());
    const bool has_past = n.num_inputs() > 4 && n.input(4);
    if (share_buffer && has_past) {
      // The shared buffer's past length is read on the device as int32; its attention bias
      // would be [.., P + S] wide, a shape only the host knows.
      const ValueView psl = n.num_inputs() > 6 ? n.input(6) : ValueView();
      if (psl && psl.elem_type() != TFH_TYPE_UNDEFINED && psl.elem_type() != TFH_TYPE_INT32)
        refuse("Attention on CUDA: past_sequence_length must be int32");
      if (n.num_inputs() > 5 && n.input(5))
        refuse("Attention on CUDA: attention_bias with a shared past/present buffer");
    } else if (n.num_inputs() > 6 && n.input(6)) {
      refuse("Attention on CUDA: past_sequence_length without a shared past/present buffer");
    }
    if (n.num_inputs() > 1 && n.input(1) && n.input(1).rank() >= 0 && n.input(1).rank() != 2)
      refuse("Attention on CUDA: weights are not 2-D");
    if (n.num_inputs() > 1 && n.input(1) && n.input(1).rank() == 2) {
      const Dim w = n.input(1).shape()[1];
      if (w.known() && w.value / 3 / heads > 128) refuse("Attention on CUDA: head size over 128");
    }
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView x = ctx.required(0), w = ctx.required(1), bias = ctx.input(2), mask = ctx.input(3),
               past = ctx.input(4);
    need_float(x, "Attention", "input");
    same_type(x, w, "Attention");

    if (x.rank() != 3 || w.rank() != 2 || w.dims()[0] != x.dims()[2] || w.dims()[1] % 3)
      sdk::fail("Attention on CUDA: input [B, S, H] and weights [H, 3 * H'] expected");
    const int64_t B = x.dims()[0], S = x.dims()[1], H = x.dims()[2], W = w.dims()[1];
    if ((W / 3) % heads) sdk::fail("Attention on CUDA: hidden size not divisible by num_heads");
    const int64_t D = W / 3 / heads;
    if (D > 128) sdk::fail("Attention on CUDA: head size " + std::to_string(D) + " is over 128");
    if (bias) {  // the GEMM epilogue reads W values
      same_type(x, bias, "Attention");
      if (static_cast<int64_t>(bias.size()) != W)
        sdk::fail("Attention on CUDA: bias has " + std::to_string(bias.size()) + " values, not " +
                  std::to_string(W));
    }
    int64_t P = 0, M = 0;  // M: rows of a shared past/present buffer (P is then on the device)
    const int32_t* past_len_dev = nullptr;
    if (past) {
      same_type(x, past, "Attention");
      if (past.rank() != 5 || past.dims()[0] != 2 || past.dims()[1] != B ||
          past.dims()[2] != heads || past.dims()[4] != D)
        sdk::fail("Attention on CUDA: past must be [2, batch, num_heads, past, head size]");
      P = past.dims()[3];
      if (share_buffer) {
        const TensorView psl = ctx.input(6);
        if (!psl || psl.size() != 1 || psl.dtype() != TFH_TYPE_INT32)
          sdk::fail("Attention on CUDA: past_present_share_buffer needs past_sequence_length "
                    "(input 6), one int32 value");
        M = P, P = 0;
        if (M < S)
          sdk::fail("Attention on CUDA: the shared past/present buffer has " + std::to_string(M) +
                    " rows, fewer than the " + std::to_string(S) + " new tokens");
        past_len_dev = static_cast<const int32_t*>(psl.raw());
      }
    }
    const int64_t T = P + S;
    int64_t mask_width = 0;
    const MaskKind kind =
        mask ? mask_kind_of("Attention on CUDA: the mask", mask, B, S, T, M, &mask_width) : MaskKind::None;
    TensorView attn_bias = ctx.input(5);
    if (attn_bias && M) sdk::fail("Attention on CUDA: attention_bias with a shared past/present buffer");
    const size_t elem = elem_bytes(x.dtype());
    OutputTensor y = ctx.output(0, x.dtype(), std::vector<int64_t>{B, S, W / 3});
    void* present = nullptr;
    if (M) {  // the shared buffer: present starts as the past (its own buffer, or a copy)
      const std::vector<int64_t> pdims{2, B, heads, M, D};
      if (ctx.num_outputs() > 1) {
        present = ctx.output_from_input(1, 4, pdims).raw();
      } else {
        present = ctx.scratch<char>(past.nbytes());
        copy_on_device(present, past.raw(), past.nbytes(), s);
      }
    } else {
      const std::vector<int64_t> pdims{2, B, heads, P + S, D};
      // Without a past, and no present wanted (BERT), the attention reads K and V in place.
      if (ctx.num_outputs() > 1 && ctx.output_used(1))
        present = ctx.output(1, x.dtype(), pdims).raw();
      else if (past)
        present = ctx.scratch<char>(static_cast<size_t>(2 * B * heads * (P + S) * D) * elem);
    }
    AttentionOpArgs a;
    a.type = x.dtype();
    a.x = x.raw(), a.weights = w.raw(), a.bias = bias ? bias.raw() : nullptr;
    a.mask = mask ? static_cast<const int32_t*>(mask.raw()) : nullptr;
    a.mask_kind = kind;
    if (attn_bias) {
      const BiasStrides bs = attention_bias_strides("Attention", attn_bias, x, B, heads, S, T);
      a.attention_bias = attn_bias.raw();
      a.bias_batch_stride = bs.batch, a.bias_head_stride = bs.head;
    }
    a.past = past && !M ? past.raw() : nullptr;
    a.present = present, a.out = y.raw();
    a.cache_rows = M, a.past_len_dev = past_len_dev, a.mask_width = mask_width;
    if (S == 1 && split_decode())
      a.decode_workspace = ctx.scratch<float>(
          static_cast<size_t>(decode_split_workspace(B, heads, M ? M : P + S, D)));
    a.qkv_scratch = ctx.scratch<char>(static_cast<size_t>(B * S * W) * elem);
    a.batch = B, a.seq = S, a.past_len = P, a.hidden = H, a.heads = heads, a.head_size = D;
    a.unidirectional = unidirectional, a.scale = scale, a.filter = filter;
    attention_op(lt(), a, ctx.scratch<char>(LtGemm::kWorkspaceBytes), LtGemm::kWorkspaceBytes, st(s));
  }
};

#define TFH_CUDA_KERNEL(K, DOMAIN, OP, TYPES) TFH_CUDA_KERNEL_HOST_INPUTS(K, DOMAIN, OP, TYPES, 0)
// (HOST_INPUTS: bit i, input i is read on the host; see TfhKernelDesc::host_inputs.)
#define TFH_CUDA_KERNEL_HOST_INPUTS(K, DOMAIN, OP, TYPES, HOST_INPUTS)                          \
  {                                                                                            \
    static const TfhKernelDesc d = TFH_KERNEL_DESC_HOST_INPUTS(                                \
        K, "tfhost.cuda." OP, DOMAIN, OP, 1, 0, TFH_DEVICE_CUDA, TYPES, 0, HOST_INPUTS);       \
    out.push_back(&d);                                                                         \
  }

// com.microsoft.MultiHeadAttention with query, key and value [B, S, N * D] / [B, L, N * D] (what
// the gpt2 plugin fuses Hugging Face's GPT-2 export into), an optional bias [3 N D], an int32
// key_padding_mask ([B], [2B], [B, T] or [B, S, T]), attention_bias [B or 1, N or 1, S, T] and
// past_key/past_value [B, N, P, D]: the bias added (a broadcasting Add each), present = past ++
// the new keys/values in heads (two strided copies each), then the fused attention, or the decode
// attention for one new token. Packed QKV/KV, key/value already split into heads, shared
// past/present buffers and the qk output run on the CPU.
struct MultiHeadAttention {
  int64_t heads;
  bool unidirectional;
  float filter, scale;
  explicit MultiHeadAttention(NodeView n)
      : heads(n.attr_int("num_heads")), unidirectional(n.attr_int("unidirectional", 0) != 0),
        filter(n.attr_float("mask_filter_value", -10000.f)), scale(n.attr_float("scale", 0.f)) {
    if (heads <= 0) sdk::fail("MultiHeadAttention on CUDA: num_heads must be positive");
    if (!float_or_unknown(n.input(0)))
      refuse("MultiHeadAttention on CUDA: not float/float16/bfloat16");
    for (size_t i = 0; i < 3; ++i) {
      if (n.num_inputs() <= i || !n.input(i))
        refuse("MultiHeadAttention on CUDA: query, key and value are all needed (packed forms run "
               "on the CPU)");
      if (n.input(i).rank() >= 0 && n.input(i).rank() != 3)
        refuse("MultiHeadAttention on CUDA: query, key and value must be 3-D");
    }
    refuse_unsupported_mask("MultiHeadAttention", n.num_inputs() > 4 ? n.input(4) : ValueView(),
                            n.num_inputs() > 5 ? n.input(5) : ValueView());
    if ((n.num_inputs() > 8 && n.input(8)) || (n.num_inputs() > 9 && n.input(9)))
      refuse("MultiHeadAttention on CUDA: past_sequence_length and cache_indirection run on the CPU");
    // Shapes compute() would refuse, when they are known now: the CPU runs them instead.
    const std::vector<Dim> q = n.input(0).shape(), v = n.input(2).shape();
    if (q.size() == 3 && q[2].known()) {
      if (q[2].value / heads > 128) refuse("MultiHeadAttention on CUDA: head size over 128");
      if (v.size() == 3 && v[2].known() && v[2].value != q[2].value)
        refuse("MultiHeadAttention on CUDA: value's hidden size differs from the query's");
    }
    if (n.num_outputs() > 3 && n.output(3)) refuse("MultiHeadAttention on CUDA: the qk output");
  }
  void compute(KernelContext& ctx, void* s) {
    TensorView q = ctx.required(0), k = ctx.required(1), v = ctx.required(2), bias = ctx.input(3),
               mask = ctx.input(4), attn_bias = ctx.input(5), past_k = ctx.input(6),
               past_v = ctx.input(7);
    need_float(q, "MultiHeadAttention", "query");
    same_type(q, k, "MultiHeadAttention");
    same_type(q, v, "MultiHeadAttention");
    if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3)
      sdk::fail("MultiHeadAttention on CUDA: query, key and value must be 3-D");
    const int64_t B = q.dims()[0], S = q.dims()[1], H = q.dims()[2], L = k.dims()[1];
    if (k.dims()[0] != B || v.dims()[0] != B || k.dims()[2] != H || v.dims()[2] != H ||
        v.dims()[1] != L)
      sdk::fail("MultiHeadAttention on CUDA: key " + shape_text(k) + " and value " +
                shape_text(v) + " must be [batch, L, hidden] as query " + shape_text(q));
    if (H % heads) sdk::fail("MultiHeadAttention on CUDA: hidden size not divisible by num_heads");
    const int64_t N = heads, D = H / heads;
    if (D > 128) sdk::fail("MultiHeadAttention on CUDA: head size " + std::to_string(D) + " is over 128");
    if (static_cast<bool>(past_k) != static_cast<bool>(past_v))
      sdk::fail("MultiHeadAttention on CUDA: past_key and past_value come together");
    int64_t P = 0;
    if (past_k) {
      same_type(q, past_k, "MultiHeadAttention");
      same_type(q, past_v, "MultiHeadAttention");
      const std::vector<int64_t> pk = dims_of(past_k), pv = dims_of(past_v);
      if (pk.size() != 4 || pk[0] != B || pk[1] != N || pk[3] != D || pv != pk)
        sdk::fail("MultiHeadAttention on CUDA: past_key " + shape_text(past_k) + " / past_value " +
                  shape_text(past_v) + " must be [batch, num_heads, past, head size]");
      P = pk[2];
    }
    const int64_t T = P + L;
    const TfhDataType type = q.dtype();
    const size_t elem = elem_bytes(type);
    const void *qp = q.raw(), *kp = k.raw(), *vp = v.raw();
    if (bias) {  // [q bias, k bias, v bias], each added over its rows
      same_type(q, bias, "MultiHeadAttention");
      if (static_cast<int64_t>(bias.size()) != 3 * H)
        sdk::fail("MultiHeadAttention on CUDA: bias has " + std::to_string(bias.size()) +
                  " values, not " + std::to_string(3 * H));
      const char* pb = static_cast<const char*>(bias.raw());
      auto add_bias = [&](const void* x, int64_t rows, int64_t part) -> const void* {
        void* out = ctx.scratch<char>(static_cast<size_t>(rows * H) * elem);
        Broadcast bc;
        bc.rank = 2;
        bc.dims[0] = rows, bc.dims[1] = H;
        bc.a_strides[0] = H, bc.a_strides[1] = 1;
        bc.b_strides[0] = 0, bc.b_strides[1] = 1;
        binary(type, BinaryOp::Add, x, pb + static_cast<size_t>(part * H) * elem, out, bc, st(s));
        return out;
      };
      qp = add_bias(qp, B * S, 0);
      kp = add_bias(kp, B * L, 1);
      vp = add_bias(vp, B * L, 2);
    }
    const std::vector<int64_t> pdims{B, N, T, D};
    const size_t present_bytes = static_cast<size_t>(B * N * T * D) * elem;
    auto present = [&](size_t out) -> void* {
      return ctx.num_outputs() > out && ctx.output_used(out) ? ctx.output(out, type, pdims).raw()
                                                             : ctx.scratch<char>(present_bytes);
    };
    // present[b, n, t, d]: t < P from past[b, n, t, d], else the new x[b, t - P, n * D + d].
    auto fill = [&](void* dst, const void* past, const void* fresh) {
      StridedCopy c;
      c.rank = 4;
      const int64_t dst_strides[4] = {N * T * D, T * D, D, 1};
      for (int d = 0; d < 4; ++d) c.dst_strides[d] = dst_strides[d];
      if (P) {
        const int64_t dims[4] = {B, N, P, D}, src[4] = {N * P * D, P * D, D, 1};
        for (int d = 0; d < 4; ++d) c.dims[d] = dims[d], c.src_strides[d] = src[d];
        strided_copy(elem, past, dst, c, st(s));
      }
      const int64_t dims[4] = {B, N, L, D}, src[4] = {L * H, D, H, 1};
      for (int d = 0; d < 4; ++d) c.dims[d] = dims[d], c.src_strides[d] = src[d];
      c.dst_offset = P * D;
      strided_copy(elem, fresh, dst, c, st(s));
    };
    AttentionArgs a;
    const bool keep_cache = P || (ctx.num_outputs() > 1 && ctx.output_used(1)) ||
                            (ctx.num_outputs() > 2 && ctx.output_used(2));
    const void *ka = kp, *va = vp;
    if (keep_cache) {
      void* pk = present(1);
      void* pv = present(2);
      fill(pk, past_k ? past_k.raw() : nullptr, kp);
      fill(pv, past_v ? past_v.raw() : nullptr, vp);
      ka = pk, va = pv;
    } else {  // no past, no present wanted: the attention reads key and value [B, L, N * D] as they are
      a.kv_token_stride = H, a.kv_head_stride = D, a.kv_batch_stride = L * H;
    }
    if (mask) {
      int64_t width = 0;  // (no shared buffer: always 0)
      a.mask_kind = mask_kind_of("MultiHeadAttention on CUDA: key_padding_mask", mask, B, S, T, 0, &width);
      a.mask = static_cast<const int32_t*>(mask.raw());
    }
    if (attn_bias) {
      const BiasStrides bs = attention_bias_strides("MultiHeadAttention", attn_bias, q, B, N, S, T);
      a.attention_bias = attn_bias.raw();
      a.bias_batch_stride = bs.batch, a.bias_head_stride = bs.head;
    }
    OutputTensor y = ctx.output(0, type, std::vector<int64_t>{B, S, H});
    a.type = type;
    a.q = qp, a.q_token_stride = H;
    a.k = ka, a.v = va, a.out = y.raw();
    a.batch = B, a.heads = N, a.seq = S, a.total = T, a.head_size = D;
    a.causal = unidirectional, a.scale = scale, a.filter = filter;
    if (S == 1) {
      if (split_decode()) {
        a.algo = AttentionArgs::Algo::SplitKeys;
        a.workspace = ctx.scratch<float>(static_cast<size_t>(decode_split_workspace(B, N, T, D)));
      }
      decode_attention(a, st(s));
    } else {
      attention(a, st(s));
    }
  }
};

}  // namespace

void add_cuda_kernels(std::vector<const TfhKernelDesc*>& out) {
  TFH_CUDA_KERNEL(MatMul, "", "MatMul", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Gemm, "", "Gemm", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(GemmFastGelu, "com.microsoft", "GemmFastGelu", "T=float,float16,bfloat16")
  using Add = Binary<BinaryOp::Add>;
  using Sub = Binary<BinaryOp::Sub>;
  using Mul = Binary<BinaryOp::Mul>;
  using Div = Binary<BinaryOp::Div>;
  TFH_CUDA_KERNEL(Add, "", "Add", "T=float,float16,bfloat16,int32,int64")
  TFH_CUDA_KERNEL(Sub, "", "Sub", "T=float,float16,bfloat16,int32,int64")
  TFH_CUDA_KERNEL(Mul, "", "Mul", "T=float,float16,bfloat16,int32,int64")
  TFH_CUDA_KERNEL(Div, "", "Div", "T=float,float16,bfloat16,int32,int64")
  using Equal = Compare<CompareOp::Equal>;
  using Less = Compare<CompareOp::Less>;
  using Greater = Compare<CompareOp::Greater>;
  using LessOrEqual = Compare<CompareOp::LessOrEqual>;
  using GreaterOrEqual = Compare<CompareOp::GreaterOrEqual>;
  TFH_CUDA_KERNEL(Equal, "", "Equal", "T=bool,int32,int64,float,float16,bfloat16")
  TFH_CUDA_KERNEL(Less, "", "Less", "T=int32,int64,float,float16,bfloat16")
  TFH_CUDA_KERNEL(Greater, "", "Greater", "T=int32,int64,float,float16,bfloat16")
  TFH_CUDA_KERNEL(LessOrEqual, "", "LessOrEqual", "T=int32,int64,float,float16,bfloat16")
  TFH_CUDA_KERNEL(GreaterOrEqual, "", "GreaterOrEqual", "T=int32,int64,float,float16,bfloat16")
  TFH_CUDA_KERNEL(Not, "", "Not", "T=bool")
  TFH_CUDA_KERNEL_HOST_INPUTS(CumSum, "", "CumSum", "T=float,float16,bfloat16,int32,int64",
                              0x2)  // axis
  using Pow = Binary<BinaryOp::Pow>;
  TFH_CUDA_KERNEL(Pow, "", "Pow", "T=float,float16,bfloat16;T1=float,float16,bfloat16")
  using Tanh = Unary<UnaryOp::Tanh>;
  using Relu = Unary<UnaryOp::Relu>;
  using Sigmoid = Unary<UnaryOp::Sigmoid>;
  using Erf = Unary<UnaryOp::Erf>;
  using Sqrt = Unary<UnaryOp::Sqrt>;
  TFH_CUDA_KERNEL(Tanh, "", "Tanh", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Relu, "", "Relu", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Sigmoid, "", "Sigmoid", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Erf, "", "Erf", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Sqrt, "", "Sqrt", "T=float,float16,bfloat16")
  using Exp = Unary<UnaryOp::Exp>;
  using Log = Unary<UnaryOp::Log>;
  using Neg = Unary<UnaryOp::Neg>;
  using Abs = Unary<UnaryOp::Abs>;
  using Reciprocal = Unary<UnaryOp::Reciprocal>;
  TFH_CUDA_KERNEL(Exp, "", "Exp", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Log, "", "Log", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Neg, "", "Neg", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Abs, "", "Abs", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Reciprocal, "", "Reciprocal", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Gather, "", "Gather", "")
  TFH_CUDA_KERNEL(Transpose, "", "Transpose", "")
  TFH_CUDA_KERNEL(Concat, "", "Concat", "")
  TFH_CUDA_KERNEL_HOST_INPUTS(Split, "", "Split", "", 0x2)  // split
  TFH_CUDA_KERNEL_HOST_INPUTS(Slice, "", "Slice", "", 0x1e)  // starts, ends, axes, steps
  TFH_CUDA_KERNEL(Where, "", "Where", "")
  using ReduceSum = ReduceTrailing<false>;
  using ReduceMean = ReduceTrailing<true>;
  TFH_CUDA_KERNEL(ReduceSum, "", "ReduceSum", "")
  TFH_CUDA_KERNEL(ReduceMean, "", "ReduceMean", "")
  TFH_CUDA_KERNEL_HOST_INPUTS(Expand, "", "Expand", "", 0x2)  // shape
  using ArgMax = ArgExtreme<true>;
  using ArgMin = ArgExtreme<false>;
  TFH_CUDA_KERNEL(ArgMax, "", "ArgMax", "")
  TFH_CUDA_KERNEL(ArgMin, "", "ArgMin", "")
  TFH_CUDA_KERNEL(LayerNorm, "", "LayerNormalization", "T=float,float16,bfloat16")
  {  // from opset 13: over one axis
    static const TfhKernelDesc d =
        TFH_KERNEL_DESC(Softmax, "tfhost.cuda.Softmax", "", "Softmax", 13, 0, TFH_DEVICE_CUDA,
                        "T=float,float16,bfloat16", 0);
    out.push_back(&d);
  }
  {  // opsets 1-12
    static const TfhKernelDesc d =
        TFH_KERNEL_DESC(SoftmaxFlattened, "tfhost.cuda.SoftmaxFlattened", "", "Softmax", 1, 12,
                        TFH_DEVICE_CUDA, "T=float,float16,bfloat16", 0);
    out.push_back(&d);
  }
  TFH_CUDA_KERNEL(Cast, "", "Cast", "")
  TFH_CUDA_KERNEL(SkipLayerNorm, "com.microsoft", "SkipLayerNormalization",
                  "T=float,float16,bfloat16")
  using Gelu = GeluOp<GeluKind::Erf, false>;
  using FastGelu = GeluOp<GeluKind::Tanh, false>;
  using BiasGelu = GeluOp<GeluKind::Erf, true>;
  TFH_CUDA_KERNEL(Gelu, "com.microsoft", "Gelu", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(FastGelu, "com.microsoft", "FastGelu", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(BiasGelu, "com.microsoft", "BiasGelu", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(Attention, "com.microsoft", "Attention", "T=float,float16,bfloat16")
  TFH_CUDA_KERNEL(MultiHeadAttention, "com.microsoft", "MultiHeadAttention",
                  "T=float,float16,bfloat16")
}

std::string gemm_tuning_text() {
  const LtGemm& g = lt();
  if (!g.tuning_enabled()) return "off (cuBLASLt's heuristic's picks; TFH_CUDA_GEMM_TUNING=on tunes)";
  const std::vector<GemmTuning> tuned = g.tuned();
  size_t choices = 0, changed = 0, timed = 0, skinny = 0;
  double first = 0, chosen = 0;
  for (const GemmTuning& t : tuned) {
    if (t.offered < 2) continue;
    ++choices;
    if (t.chosen != 0) ++changed;
    if (t.chose_skinny()) ++skinny;
    if (t.first_us > 0 && t.chosen_us > 0) first += t.first_us, chosen += t.chosen_us, ++timed;
  }
  char text[320];
  if (choices == 0) {
    std::snprintf(text, sizeof text,
                  "%zu product shape%s, cuBLASLt offered one algorithm for each", tuned.size(),
                  tuned.size() == 1 ? "" : "s");
    return text;
  }
  std::snprintf(text, sizeof text,
                "%zu product shape%s, %zu with several algorithms offered, %zu of them faster "
                "with another than cuBLASLt's first pick, %zu of those with tfhost's few-row "
                "kernel (one product of each of the %zu timed with both: %.1f us -> %.1f us)",
                tuned.size(), tuned.size() == 1 ? "" : "s", choices, changed, skinny, timed,
                first, chosen);
  return text;
}

}  // namespace tfh::kernels::cuda
