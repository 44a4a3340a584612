// Data-movement ONNX ops: shape manipulation, Concat/Split/Slice/Gather/Transpose/Expand, and
// the small generators (Constant, ConstantOfShape, Range). Every opset form from 11 on: inputs
// that replaced attributes (Squeeze/Unsqueeze/Split axes at 13, ...) are read from either place.
#include <omp.h>

#include <algorithm>
#include <numeric>

#include "kernels/cpu/common.h"
#include "kernels/common/slice_bounds.h"
#include "kernels/cpu/kernels.h"

namespace tfh::kernels::cpu {

void strided_copy(const void* in, void* out, const Dims& out_dims, const Dims& in_strides,
                  int64_t in_offset, size_t es) {
  const int64_t n = numel(out_dims);
  if (n == 0) return;
  const size_t r = out_dims.size();
  if (r == 0) {
    std::memcpy(out, static_cast<const char*>(in) + in_offset * es, es);
    return;
  }
  const int64_t cols = out_dims.back(), inner = in_strides.back(), rows = n / cols;
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  auto row = [&](int64_t rw) {
    int64_t off = in_offset, rem = rw;
    for (size_t a = r - 1; a-- > 0;) {
      off += (rem % out_dims[a]) * in_strides[a];
      rem /= out_dims[a];
    }
    char* d = dst + rw * cols * es;
    if (inner == 1) {
      std::memcpy(d, src + off * es, cols * es);
    } else if (es == 4) {
      const uint32_t* s = reinterpret_cast<const uint32_t*>(src) + off;
      uint32_t* o = reinterpret_cast<uint32_t*>(d);
      for (int64_t c = 0; c < cols; ++c) o[c] = s[c * inner];
    } else {
      for (int64_t c = 0; c < cols; ++c) std::memcpy(d + c * es, src + (off + c * inner) * es, es);
    }
  };
  if (n < 32768 || rows == 1) {
    for (int64_t rw = 0; rw < rows; ++rw) row(rw);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t rw = 0; rw < rows; ++rw) row(rw);
  }
}

void CopyList::run() const {
  size_t total = 0;
  for (const Job& j : jobs_) total += j.bytes;
  if (total < (1u << 18)) {
    for (const Job& j : jobs_) std::memcpy(j.dst, j.src, j.bytes);
    return;
  }
  constexpr size_t kPiece = 1u << 16;
  std::vector<Job> pieces;
  for (const Job& j : jobs_)
    for (size_t off = 0; off < j.bytes; off += kPiece)
      pieces.push_back({j.dst + off, j.src + off, std::min(kPiece, j.bytes - off)});
  const int64_t n = static_cast<int64_t>(pieces.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) std::memcpy(pieces[i].dst, pieces[i].src, pieces[i].bytes);
}

namespace {

// Output 0 = input 0 under a new shape: no copy when the runtime can hand the buffer over.
void copy_all(KernelContext& ctx, const TensorView& x, const Dims& dims) {
  ctx.output_from_input(0, 0, dims);
}

struct Identity {
  explicit Identity(NodeView) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    copy_all(ctx, x, dims_of(x));
  }
};

// Dropout in inference: y = x, optional mask all true.
struct Dropout {
  explicit Dropout(NodeView) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    TensorView training = ctx.input(2);
    if (training && training.size() && training.at(0).value_or(0) != 0)
      sdk::fail("Dropout with training_mode = true is not supported (inference only)");
    copy_all(ctx, x, dims_of(x));
    if (ctx.num_outputs() > 1 && ctx.output_used(1)) {
      OutputTensor m = ctx.output(1, TFH_TYPE_BOOL, dims_of(x));
      std::memset(m.raw(), 1, x.size());
    }
  }
};

struct Shape {
  int64_t start, end;
  bool has_end;
  explicit Shape(NodeView n)
      : start(n.attr_int("start", 0)), end(n.attr_int("end", 0)), has_end(n.has_attr("end")) {}
  void compute(KernelContext& ctx) {
    Dims d = dims_of(ctx.required(0));
    int64_t r = static_cast<int64_t>(d.size());
    auto clamp = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + r : v, 0, r); };
    int64_t s = clamp(start), e = has_end ? clamp(end) : r;
    int64_t len = std::max<int64_t>(e - s, 0);
    OutputTensor y = ctx.output(0, TFH_TYPE_INT64, Dims{len});
    std::copy(d.begin() + s, d.begin() + s + len, y.data<int64_t>());
  }
};

struct Size {
  explicit Size(NodeView) {}
  void compute(KernelContext& ctx) {
    OutputTensor y = ctx.output(0, TFH_TYPE_INT64, Dims{});
    *y.data<int64_t>() = static_cast<int64_t>(ctx.required(0).size());
  }
};

struct Reshape {
  bool allowzero;
  explicit Reshape(NodeView n) : allowzero(n.attr_int("allowzero", 0) != 0) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims in = dims_of(x), shape = read_ints(ctx.required(1));
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && !allowzero) {
        if (i >= in.size()) sdk::fail("shape " + dims_str(shape) + ": 0 at an axis the input lacks");
        shape[i] = in[i];
      }
      if (shape[i] == -1) {
        if (infer >= 0) sdk::fail("shape " + dims_str(shape) + " has two -1");
        infer = static_cast<int64_t>(i);
      } else {
        known *= shape[i];
      }
    }
    int64_t n = numel(in);
    if (infer >= 0) {
      if (known == 0 || n % known) sdk::fail("cannot reshape " + dims_str(in) + " to " + dims_str(shape));
      shape[infer] = n / known;
    }
    if (numel(shape) != n) sdk::fail("cannot reshape " + dims_str(in) + " to " + dims_str(shape));
    copy_all(ctx, x, shape);
  }
};

struct Flatten {
  int64_t axis;
  explicit Flatten(NodeView n) : axis(n.attr_int("axis", 1)) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    int64_t r = static_cast<int64_t>(d.size());
    int64_t a = axis < 0 ? axis + r : axis;
    if (a < 0 || a > r) sdk::fail("axis out of range");
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= d[i];
    for (int64_t i = a; i < r; ++i) inner *= d[i];
    copy_all(ctx, x, Dims{outer, inner});
  }
};

// Axes from input 1 (opset 13+) or the `axes` attribute.
std::vector<int64_t> axes_of(KernelContext& ctx, const std::vector<int64_t>& attr) {
  TensorView t = ctx.input(1);
  return t ? read_ints(t) : attr;
}

struct Squeeze {
  std::vector<int64_t> attr;
  explicit Squeeze(NodeView n) : attr(n.attr_ints("axes", {})) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x), out;
    std::vector<int64_t> axes = axes_of(ctx, attr);
    std::vector<bool> drop(d.size(), false);
    for (int64_t a : axes) {
      int64_t k = norm_axis(a, static_cast<int64_t>(d.size()));
      if (d[k] != 1) sdk::fail("cannot squeeze axis " + std::to_string(a) + " of " + dims_str(d));
      drop[k] = true;
    }
    for (size_t i = 0; i < d.size(); ++i)
      if (axes.empty() ? d[i] != 1 : !drop[i]) out.push_back(d[i]);
    copy_all(ctx, x, out);
  }
};

struct Unsqueeze {
  std::vector<int64_t> attr;
  explicit Unsqueeze(NodeView n) : attr(n.attr_ints("axes", {})) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    std::vector<int64_t> axes = axes_of(ctx, attr);
    int64_t r = static_cast<int64_t>(d.size() + axes.size());
    std::vector<bool> ins(r, false);
    for (int64_t a : axes) {
      const int64_t k = norm_axis(a, r);
      if (ins[k]) sdk::fail("axis " + std::to_string(a) + " appears twice");
      ins[k] = true;
    }
    Dims out;
    size_t k = 0;
    for (int64_t i = 0; i < r; ++i) out.push_back(ins[i] ? 1 : d[k++]);
    copy_all(ctx, x, out);
  }
};

struct Concat {
  int64_t axis;
  explicit Concat(NodeView n) : axis(n.attr_int("axis")) {}
  void compute(KernelContext& ctx) {
    std::vector<TensorView> ins;
    for (size_t i = 0; i < ctx.num_inputs(); ++i)
      if (TensorView t = ctx.input(i)) ins.push_back(t);
    if (ins.empty()) sdk::fail("no inputs");
    Dims out = dims_of(ins[0]);
    const int64_t r = static_cast<int64_t>(out.size());
    const int64_t a = norm_axis(axis, r);
    out[a] = 0;
    for (const TensorView& t : ins) {
      Dims d = dims_of(t);
      if (static_cast<int64_t>(d.size()) != r || t.dtype() != ins[0].dtype())
        sdk::fail("inputs differ in rank or element type");
      for (int64_t i = 0; i < r; ++i)
        if (i != a && d[i] != dims_of(ins[0])[i])
          sdk::fail("input shapes " + dims_str(dims_of(ins[0])) + " and " + dims_str(d) +
                    " differ outside axis " + std::to_string(axis));
      out[a] += d[a];
    }
    OutputTensor y = ctx.output(0, ins[0].dtype(), out);
    const size_t es = elem_size(ins[0].dtype());
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= out[i];
    for (int64_t i = a + 1; i < r; ++i) inner *= out[i];
    char* dst = static_cast<char*>(y.raw());
    const int64_t row = out[a] * inner * es;
    int64_t col = 0;
    CopyList copies;
    for (const TensorView& t : ins) {
      const int64_t chunk = dims_of(t)[a] * inner * es;
      const char* src = static_cast<const char*>(t.raw());
      for (int64_t o = 0; o < outer; ++o) copies.add(dst + o * row + col, src + o * chunk, chunk);
      col += chunk;
    }
    copies.run();
  }
};

struct Split {
  int64_t axis;
  std::vector<int64_t> attr;
  explicit Split(NodeView n) : axis(n.attr_int("axis", 0)), attr(n.attr_ints("split", {})) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size()), a = norm_axis(axis, r);
    std::vector<int64_t> sizes = ctx.input(1) ? read_ints(ctx.input(1)) : attr;
    const int64_t n_out = static_cast<int64_t>(ctx.num_outputs());
    if (sizes.empty()) {
      int64_t each = (d[a] + n_out - 1) / n_out;
      for (int64_t i = 0; i < n_out; ++i)
        sizes.push_back(std::max<int64_t>(0, std::min(each, d[a] - i * each)));
    }
    if (static_cast<int64_t>(sizes.size()) != n_out ||
        std::accumulate(sizes.begin(), sizes.end(), int64_t(0)) != d[a])
      sdk::fail("split sizes do not add up to dimension " + std::to_string(d[a]));
    const size_t es = elem_size(x.dtype());
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= d[i];
    for (int64_t i = a + 1; i < r; ++i) inner *= d[i];
    const char* src = static_cast<const char*>(x.raw());
    int64_t start = 0;
    CopyList copies;
    for (int64_t k = 0; k < n_out; ++k) {
      Dims od = d;
      od[a] = sizes[k];
      if (ctx.output_used(k)) {
        OutputTensor y = ctx.output(k, x.dtype(), od);
        char* dst = static_cast<char*>(y.raw());
        const int64_t chunk = sizes[k] * inner * es;
        for (int64_t o = 0; o < outer; ++o)
          copies.add(dst + o * chunk, src + (o * d[a] + start) * inner * es, chunk);
      }
      start += sizes[k];
    }
    copies.run();
  }
};

struct Slice {
  std::vector<int64_t> a_starts, a_ends, a_axes;  // opset < 10 attributes
  explicit Slice(NodeView n)
      : a_starts(n.attr_ints("starts", {})), a_ends(n.attr_ints("ends", {})),
        a_axes(n.attr_ints("axes", {})) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size());
    std::vector<int64_t> starts = ctx.input(1) ? read_ints(ctx.input(1)) : a_starts;
    std::vector<int64_t> ends = ctx.input(2) ? read_ints(ctx.input(2)) : a_ends;
    std::vector<int64_t> axes = ctx.input(3) ? read_ints(ctx.input(3)) : a_axes;
    std::vector<int64_t> steps = ctx.input(4) ? read_ints(ctx.input(4)) : std::vector<int64_t>{};
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (starts.size() != ends.size() || axes.size() != starts.size() ||
        (!steps.empty() && steps.size() != starts.size()))
      sdk::fail("starts, ends, axes and steps differ in length");
    Dims out = d, st = contiguous_strides(d), in_strides = st;
    int64_t offset = 0;
    std::vector<bool> seen(r, false);
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t ax = norm_axis(axes[i], r);
      if (seen[ax]) sdk::fail("axis " + std::to_string(axes[i]) + " appears twice");
      seen[ax] = true;
      int64_t step = steps.empty() ? 1 : steps[i];
      if (step == 0) sdk::fail("slice step 0");
      const SliceBounds b = slice_bounds(d[ax], starts[i], ends[i], step);
      out[ax] = b.count;
      offset += b.start * st[ax];
      in_strides[ax] = st[ax] * step;
    }
    OutputTensor y = ctx.output(0, x.dtype(), out);
    strided_copy(x.raw(), y.raw(), out, in_strides, numel(out) ? offset : 0, elem_size(x.dtype()));
  }
};

struct Gather {
  int64_t axis;
  explicit Gather(NodeView n) : axis(n.attr_int("axis", 0)) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0), idx_t = ctx.required(1);
    Dims d = dims_of(x), id = dims_of(idx_t);
    const int64_t r = static_cast<int64_t>(d.size()), a = norm_axis(axis, r);
    std::vector<int64_t> idx = read_ints(idx_t);
    Dims out(d.begin(), d.begin() + a);
    out.insert(out.end(), id.begin(), id.end());
    out.insert(out.end(), d.begin() + a + 1, d.end());
    OutputTensor y = ctx.output(0, x.dtype(), out);
    const size_t es = elem_size(x.dtype());
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= d[i];
    for (int64_t i = a + 1; i < r; ++i) inner *= d[i];
    const int64_t n_idx = static_cast<int64_t>(idx.size()), dim = d[a];
    for (int64_t& v : idx) {
      if (v < -dim || v >= dim)
        sdk::fail("index " + std::to_string(v) + " is out of range for dimension " +
                  std::to_string(dim));
      if (v < 0) v += dim;
    }
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(y.raw());
    const int64_t chunk = inner * es;
    const int64_t total = outer * n_idx;
    auto one = [&](int64_t k) {
      int64_t o = k / n_idx, i = k % n_idx;
      std::memcpy(dst + k * chunk, src + (o * dim + idx[i]) * chunk, chunk);
    };
    if (total * chunk < (1 << 16)) {
      for (int64_t k = 0; k < total; ++k) one(k);
    } else {
#pragma omp parallel for schedule(static)
      for (int64_t k = 0; k < total; ++k) one(k);
    }
  }
};

struct Transpose {
  std::vector<int64_t> perm;
  explicit Transpose(NodeView n) : perm(n.attr_ints("perm", {})) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    const size_t r = d.size();
    std::vector<int64_t> p = perm;
    if (p.empty())
      for (size_t i = 0; i < r; ++i) p.push_back(static_cast<int64_t>(r - 1 - i));
    if (p.size() != r) sdk::fail("perm has " + std::to_string(p.size()) + " entries for rank " + std::to_string(r));
    Dims st = contiguous_strides(d), out(r), in_strides(r);
    std::vector<bool> seen(r, false);
    for (size_t i = 0; i < r; ++i) {
      int64_t k = norm_axis(p[i], static_cast<int64_t>(r), "perm entry");
      if (seen[k]) sdk::fail("perm entry " + std::to_string(p[i]) + " appears twice");
      seen[k] = true;
      out[i] = d[k];
      in_strides[i] = st[k];
    }
    OutputTensor y = ctx.output(0, x.dtype(), out);
    strided_copy(x.raw(), y.raw(), out, in_strides, 0, elem_size(x.dtype()));
  }
};

struct Expand {
  explicit Expand(NodeView) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x), out = broadcast_shape(d, read_ints(ctx.required(1)));
    OutputTensor y = ctx.output(0, x.dtype(), out);
    strided_copy(x.raw(), y.raw(), out, broadcast_strides(d, out), 0, elem_size(x.dtype()));
  }
};

// Holds a copy of the node's constant (the `value` tensor or value_float(s)/value_int(s)).
struct ConstantKernel {
  TfhDataType type;
  Dims dims;
  std::vector<unsigned char> bytes;
  explicit ConstantKernel(NodeView n) {
    TensorView t = n.output(0).constant();
    if (!t) sdk::fail("Constant has no readable value (sparse or string values are not supported)");
    type = t.dtype();
    dims = dims_of(t);
    const unsigned char* p = static_cast<const unsigned char*>(t.raw());
    if (!p && t.size()) sdk::fail("Constant value is not readable");
    bytes.assign(p, p + t.nbytes());
  }
  void compute(KernelContext& ctx) {
    OutputTensor y = ctx.output(0, type, dims);
    if (!bytes.empty()) std::memcpy(y.raw(), bytes.data(), bytes.size());
  }
};

struct ConstantOfShape {
  TfhDataType type = TFH_TYPE_FLOAT;
  std::vector<unsigned char> value = std::vector<unsigned char>(4, 0);
  explicit ConstantOfShape(NodeView n) {
    if (n.has_attr("value")) {
      TensorView t = n.attr_tensor("value");
      type = t.dtype();
      const unsigned char* p = static_cast<const unsigned char*>(t.raw());
      if (!p || t.size() != 1) sdk::fail("value must hold one element");
      value.assign(p, p + t.nbytes());
    }
  }
  void compute(KernelContext& ctx) {
    Dims shape = read_ints(ctx.required(0));
    OutputTensor y = ctx.output(0, type, shape);
    const size_t es = value.size();
    char* dst = static_cast<char*>(y.raw());
    for (int64_t i = 0; i < numel(shape); ++i) std::memcpy(dst + i * es, value.data(), es);
  }
};

struct Range {
  explicit Range(NodeView) {}
  void compute(KernelContext& ctx) {
    TensorView s = ctx.required(0), l = ctx.required(1), dl = ctx.required(2);
    dispatch_all(s.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool> || is_half_v<T>) {
        unsupported_type(s.dtype());
      } else {
        T start = s.data<T>()[0], limit = l.data<T>()[0], delta = dl.data<T>()[0];
        if (delta == T(0)) sdk::fail("delta is 0");
        double n = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) /
                             static_cast<double>(delta));
        int64_t count = std::max<int64_t>(0, static_cast<int64_t>(n));
        OutputTensor y = ctx.output(0, s.dtype(), Dims{count});
        T* p = y.data<T>();
        for (int64_t i = 0; i < count; ++i) p[i] = static_cast<T>(start + static_cast<T>(i) * delta);
      }
    });
  }
};

struct CumSum {
  bool exclusive, reverse;
  explicit CumSum(NodeView n)
      : exclusive(n.attr_int("exclusive", 0) != 0), reverse(n.attr_int("reverse", 0) != 0) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size());
    const int64_t a = norm_axis(read_ints(ctx.required(1)).at(0), r);
    OutputTensor y = ctx.output(0, x.dtype(), d);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= d[i];
    for (int64_t i = a + 1; i < r; ++i) inner *= d[i];
    const int64_t dim = d[a];
    dispatch_all(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool>) {
        unsupported_type(x.dtype());
      } else {
        using C = std::conditional_t<is_half_v<T>, float, T>;
        const T* px = static_cast<const T*>(x.raw());
        T* py = static_cast<T*>(y.raw());
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i) {
            C acc = C(0);
            for (int64_t k = 0; k < dim; ++k) {
              int64_t kk = reverse ? dim - 1 - k : k;
              int64_t off = (o * dim + kk) * inner + i;
              C v;
              if constexpr (is_half_v<T>)
                v = load_f(px, off);
              else
                v = px[off];
              const C result = exclusive ? acc : C(acc + v);
              acc += v;
              if constexpr (is_half_v<T>)
                store_f(py, off, result);
              else
                py[off] = result;
            }
          }
      }
    });
  }
};

struct Trilu {
  bool upper;
  explicit Trilu(NodeView n) : upper(n.attr_int("upper", 1) != 0) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    if (d.size() < 2) sdk::fail("Trilu needs rank >= 2");
    int64_t k = ctx.input(1) ? read_ints(ctx.input(1)).at(0) : 0;
    OutputTensor y = ctx.output(0, x.dtype(), d);
    const size_t es = elem_size(x.dtype());
    const int64_t rows = d[d.size() - 2], cols = d.back(), mats = numel(d) / std::max<int64_t>(rows * cols, 1);
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(y.raw());
    std::memset(dst, 0, x.nbytes());
    for (int64_t m = 0; m < mats; ++m)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          bool keep = upper ? j - i >= k : j - i <= k;
          if (keep) {
            int64_t off = (m * rows + i) * cols + j;
            std::memcpy(dst + off * es, src + off * es, es);
          }
        }
  }
};

struct NonZero {
  explicit NonZero(NodeView) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x), st = contiguous_strides(d);
    std::vector<int64_t> hits;
    const size_t es = elem_size(x.dtype());
    const unsigned char* p = static_cast<const unsigned char*>(x.raw());
    static const unsigned char zero[8] = {0};
    for (int64_t i = 0; i < static_cast<int64_t>(x.size()); ++i) {
      bool nz = std::memcmp(p + i * es, zero, es) != 0;
      if (nz && (is_float_like(x.dtype()) || x.dtype() == TFH_TYPE_DOUBLE))
        nz = x.at(static_cast<size_t>(i)).value_or(1) != 0;  // -0.0
      if (nz) hits.push_back(i);
    }
    const int64_t r = static_cast<int64_t>(d.size()), n = static_cast<int64_t>(hits.size());
    OutputTensor y = ctx.output(0, TFH_TYPE_INT64, Dims{std::max<int64_t>(r, 1), n});
    int64_t* py = y.data<int64_t>();
    for (int64_t j = 0; j < n; ++j) {
      int64_t rem = hits[j];
      if (r == 0) py[j] = 0;
      for (int64_t a = 0; a < r; ++a) {
        py[a * n + j] = rem / st[a];
        rem %= st[a];
      }
    }
  }
};

struct ScatterND {
  std::string reduction;
  explicit ScatterND(NodeView n) : reduction(n.attr_string("reduction", "none")) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0), ind = ctx.required(1), upd = ctx.required(2);
    if (reduction != "none" && reduction != "add" && reduction != "mul" && reduction != "max" &&
        reduction != "min")
      sdk::fail("unknown reduction '" + reduction + "'");
    Dims d = dims_of(x), id = dims_of(ind);
    // updates must be indices.shape[:-1] + data.shape[indices.shape[-1]:]
    if (id.empty() || id.back() < 1 || id.back() > static_cast<int64_t>(d.size()))
      sdk::fail("indices " + dims_str(id) + " do not index data " + dims_str(d));
    Dims want(id.begin(), id.end() - 1);
    want.insert(want.end(), d.begin() + id.back(), d.end());
    if (dims_of(upd) != want || upd.dtype() != x.dtype())
      sdk::fail("updates " + dims_str(dims_of(upd)) + " must be " + dims_str(want) +
                " of the data's element type");
    OutputTensor y = ctx.output(0, x.dtype(), d);
    std::memcpy(y.raw(), x.raw(), x.nbytes());
    const int64_t k = id.back(), n = numel(id) / std::max<int64_t>(k, 1);
    Dims st = contiguous_strides(d);
    int64_t slice = 1;
    for (size_t i = k; i < d.size(); ++i) slice *= d[i];
    const size_t es = elem_size(x.dtype());
    std::vector<int64_t> idx = read_ints(ind);
    for (int64_t i = 0; i < n; ++i) {
      int64_t off = 0;
      for (int64_t j = 0; j < k; ++j) {
        int64_t v = idx[i * k + j];
        if (v < 0) v += d[j];
        if (v < 0 || v >= d[j]) sdk::fail("index out of range");
        off += v * st[j];
      }
      if (reduction == "none") {
        std::memcpy(static_cast<char*>(y.raw()) + off * es,
                    static_cast<const char*>(upd.raw()) + i * slice * es, slice * es);
        continue;
      }
      dispatch_all(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        if constexpr (std::is_same_v<T, bool>) {
          unsupported_type(x.dtype());
        } else {
          T* py = static_cast<T*>(y.raw()) + off;
          const T* pu = static_cast<const T*>(upd.raw()) + i * slice;
          for (int64_t j = 0; j < slice; ++j) {
            float a = load_f(py, j), b = load_f(pu, j);
            float r = reduction == "add" ? a + b : reduction == "mul" ? a * b
                      : reduction == "max" ? std::max(a, b) : std::min(a, b);
            if constexpr (is_half_v<T> || std::is_floating_point_v<T>) {
              store_f(py, j, r);
            } else {  // integers: exact arithmetic
              T x0 = py[j], u = pu[j];
              py[j] = reduction == "add" ? T(x0 + u) : reduction == "mul" ? T(x0 * u)
                      : reduction == "max" ? std::max(x0, u) : std::min(x0, u);
            }
          }
        }
      });
    }
  }
};

struct Pad {
  std::string mode;
  std::vector<int64_t> attr_pads;
  explicit Pad(NodeView n)
      : mode(n.attr_string("mode", "constant")), attr_pads(n.attr_ints("pads", {})) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    if (mode != "constant") sdk::fail("Pad mode '" + mode + "' is not supported");
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size());
    std::vector<int64_t> pads = ctx.input(1) ? read_ints(ctx.input(1)) : attr_pads;
    std::vector<int64_t> axes;
    if (TensorView ax = ctx.input(3)) {
      for (int64_t a : read_ints(ax)) axes.push_back(norm_axis(a, r));
    } else {
      for (int64_t a = 0; a < r; ++a) axes.push_back(a);
    }
    if (pads.size() != 2 * axes.size()) sdk::fail("pads has the wrong length");
    std::vector<int64_t> begin(r, 0), end(r, 0);
    for (size_t i = 0; i < axes.size(); ++i) {
      begin[axes[i]] = pads[i];
      end[axes[i]] = pads[i + axes.size()];
    }
    Dims out(r);
    for (int64_t a = 0; a < r; ++a) out[a] = d[a] + begin[a] + end[a];
    OutputTensor y = ctx.output(0, x.dtype(), out);
    const size_t es = elem_size(x.dtype());
    std::vector<unsigned char> fill(es, 0);
    if (TensorView v = ctx.input(2); v && v.size())
      std::memcpy(fill.data(), v.raw(), es);
    char* dst = static_cast<char*>(y.raw());
    const char* src = static_cast<const char*>(x.raw());
    Dims ost = contiguous_strides(out), ist = contiguous_strides(d);
    for (int64_t i = 0; i < numel(out); ++i) {
      int64_t rem = i, off = 0;
      bool inside = true;
      for (int64_t a = 0; a < r; ++a) {
        int64_t c = rem / ost[a] - begin[a];
        rem %= ost[a];
        if (c < 0 || c >= d[a]) {
          inside = false;
          break;
        }
        off += c * ist[a];
      }
      std::memcpy(dst + i * es, inside ? src + off * es : reinterpret_cast<const char*>(fill.data()), es);
    }
  }
};

}  // namespace

void add_tensor_kernels(std::vector<const TfhKernelDesc*>& out) {
  TFH_CPU_KERNEL(Identity, "Identity")
  TFH_CPU_KERNEL(Dropout, "Dropout")
  TFH_CPU_KERNEL(Shape, "Shape")
  TFH_CPU_KERNEL(Size, "Size")
  TFH_CPU_KERNEL(Reshape, "Reshape")
  TFH_CPU_KERNEL(Flatten, "Flatten")
  TFH_CPU_KERNEL(Squeeze, "Squeeze")
  TFH_CPU_KERNEL(Unsqueeze, "Unsqueeze")
  TFH_CPU_KERNEL(Concat, "Concat")
  TFH_CPU_KERNEL(Split, "Split")
  TFH_CPU_KERNEL(Slice, "Slice")
  TFH_CPU_KERNEL(Gather, "Gather")
  TFH_CPU_KERNEL(Transpose, "Transpose")
  TFH_CPU_KERNEL(Expand, "Expand")
  TFH_CPU_KERNEL(ConstantKernel, "Constant")
  TFH_CPU_KERNEL(ConstantOfShape, "ConstantOfShape")
  TFH_CPU_KERNEL(Range, "Range")
  TFH_CPU_KERNEL(CumSum, "CumSum")
  TFH_CPU_KERNEL(Trilu, "Trilu")
  TFH_CPU_KERNEL(NonZero, "NonZero")
  TFH_CPU_KERNEL(ScatterND, "ScatterND")
  TFH_CPU_KERNEL(Pad, "Pad")
}

}  // namespace tfh::kernels::cpu
