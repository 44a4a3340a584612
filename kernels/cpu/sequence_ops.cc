// Sequence values: SplitToSequence, SequenceAt, SequenceLength, SequenceConstruct, SequenceEmpty,
// SequenceInsert, SequenceErase, ConcatFromSequence.
#include <numeric>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"

namespace tfh::kernels::cpu {
namespace {

int64_t seq_len(KernelContext& ctx, size_t i) {
  int64_t n = ctx.sequence_length(i);
  if (n < 0) sdk::fail("input " + std::to_string(i) + " is not a sequence");
  return n;
}

void append_copy(KernelContext& ctx, size_t out, const TensorView& t) {
  OutputTensor o = ctx.append(out, t.dtype(), dims_of(t));
  if (t.nbytes()) std::memcpy(o.raw(), t.raw(), t.nbytes());
}

// A position in [-n, n) (or [-n, n] when `allow_end`), negatives counted from the end.
int64_t position(const TensorView& p, int64_t n, bool allow_end) {
  int64_t k = read_ints(p).at(0);
  if (k < 0) k += n;
  if (k < 0 || k > n || (!allow_end && k == n))
    sdk::fail("position " + std::to_string(read_ints(p).at(0)) + " is out of range for a "
              "sequence of " + std::to_string(n));
  return k;
}

struct SplitToSequence {
  int64_t axis;
  bool keepdims;
  explicit SplitToSequence(NodeView n)
      : axis(n.attr_int("axis", 0)), keepdims(n.attr_int("keepdims", 1) != 0) {}
  void compute(KernelContext& ctx) {
    TensorView x = ctx.required(0);
    Dims d = dims_of(x);
    const int64_t r = static_cast<int64_t>(d.size()), a = norm_axis(axis, r);
    std::vector<int64_t> sizes;
    bool squeeze = false;
    if (TensorView sp = ctx.input(1)) {
      std::vector<int64_t> v = read_ints(sp);
      if (sp.rank() == 0) {  // a scalar: chunks of that size, the last one shorter
        if (v.at(0) <= 0) sdk::fail("split size must be positive");
        for (int64_t s = 0; s < d[a]; s += v[0]) sizes.push_back(std::min(v[0], d[a] - s));
      } else {
        sizes = v;
      }
    } else {
      sizes.assign(d[a], 1);
      squeeze = !keepdims;
    }
    for (int64_t v : sizes)
      if (v < 0) sdk::fail("split sizes must not be negative");
    if (std::accumulate(sizes.begin(), sizes.end(), int64_t(0)) != d[a])
      sdk::fail("split sizes do not add up to dimension " + std::to_string(d[a]));
    const size_t es = elem_size(x.dtype());
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= d[i];
    for (int64_t i = a + 1; i < r; ++i) inner *= d[i];
    ctx.begin_sequence(0);
    const char* src = static_cast<const char*>(x.raw());
    int64_t start = 0;
    for (int64_t len : sizes) {
      Dims od = d;
      od[a] = len;
      if (squeeze) od.erase(od.begin() + a);
      OutputTensor o = ctx.append(0, x.dtype(), od);
      char* dst = static_cast<char*>(o.raw());
      const int64_t chunk = len * inner * es;
      for (int64_t k = 0; k < outer; ++k)
        std::memcpy(dst + k * chunk, src + (k * d[a] + start) * inner * es, chunk);
      start += len;
    }
  }
};

struct SequenceAt {
  explicit SequenceAt(NodeView) {}
  void compute(KernelContext& ctx) {
    const int64_t n = seq_len(ctx, 0);
    TensorView t = ctx.sequence_at(0, position(ctx.required(1), n, false));
    OutputTensor y = ctx.output(0, t.dtype(), dims_of(t));
    if (t.nbytes()) std::memcpy(y.raw(), t.raw(), t.nbytes());
  }
};

struct SequenceLength {
  explicit SequenceLength(NodeView) {}
  void compute(KernelContext& ctx) {
    *ctx.output(0, TFH_TYPE_INT64, Dims{}).data<int64_t>() = seq_len(ctx, 0);
  }
};

struct SequenceConstruct {
  explicit SequenceConstruct(NodeView) {}
  void compute(KernelContext& ctx) {
    ctx.begin_sequence(0);
    for (size_t i = 0; i < ctx.num_inputs(); ++i) append_copy(ctx, 0, ctx.required(i));
  }
};

struct SequenceEmpty {
  explicit SequenceEmpty(NodeView) {}
  void compute(KernelContext& ctx) { ctx.begin_sequence(0); }
};

struct SequenceInsert {
  explicit SequenceInsert(NodeView) {}
  void compute(KernelContext& ctx) {
    const int64_t n = seq_len(ctx, 0);
    const int64_t at = ctx.input(2) ? position(ctx.input(2), n, true) : n;
    ctx.begin_sequence(0);
    for (int64_t k = 0; k <= n; ++k) {
      if (k == at) append_copy(ctx, 0, ctx.required(1));
      if (k < n) append_copy(ctx, 0, ctx.sequence_at(0, k));
    }
  }
};

struct SequenceErase {
  explicit SequenceErase(NodeView) {}
  void compute(KernelContext& ctx) {
    const int64_t n = seq_len(ctx, 0);
    const int64_t at = ctx.input(1) ? position(ctx.input(1), n, false) : n - 1;
    ctx.begin_sequence(0);
    for (int64_t k = 0; k < n; ++k)
      if (k != at) append_copy(ctx, 0, ctx.sequence_at(0, k));
  }
};

struct ConcatFromSequence {
  int64_t axis;
  bool new_axis;
  explicit ConcatFromSequence(NodeView n)
      : axis(n.attr_int("axis")), new_axis(n.attr_int("new_axis", 0) != 0) {}
  void compute(KernelContext& ctx) {
    const int64_t n = seq_len(ctx, 0);
    if (n == 0) sdk::fail("the sequence is empty");
    TensorView first = ctx.sequence_at(0, 0);
    Dims d = dims_of(first);
    const int64_t r = static_cast<int64_t>(d.size()) + (new_axis ? 1 : 0);
    const int64_t a = norm_axis(axis, r);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= d[i];
    for (int64_t i = a + (new_axis ? 0 : 1); i < static_cast<int64_t>(d.size()); ++i) inner *= d[i];
    Dims out = d;
    int64_t total = 0;
    std::vector<int64_t> lens;
    for (int64_t k = 0; k < n; ++k) {
      TensorView t = ctx.sequence_at(0, k);
      Dims dk = dims_of(t);
      if (t.dtype() != first.dtype() || dk.size() != d.size())
        sdk::fail("sequence tensors differ in element type or rank");
      for (size_t i = 0; i < d.size(); ++i)
        if (dk[i] != d[i] && (new_axis || static_cast<int64_t>(i) != a))
          sdk::fail("sequence tensors " + dims_str(d) + " and " + dims_str(dk) +
                    " differ outside the concatenation axis");
      lens.push_back(new_axis ? 1 : dk[a]);
      total += lens.back();
    }
    if (new_axis) out.insert(out.begin() + a, total);
    else out[a] = total;
    OutputTensor y = ctx.output(0, first.dtype(), out);
    const size_t es = elem_size(first.dtype());
    char* dst = static_cast<char*>(y.raw());
    int64_t col = 0;
    for (int64_t k = 0; k < n; ++k) {
      TensorView t = ctx.sequence_at(0, k);
      const char* src = static_cast<const char*>(t.raw());
      const int64_t chunk = lens[k] * inner * es;
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(dst + (o * total * inner) * es + col, src + o * chunk, chunk);
      col += chunk;
    }
  }
};

}  // namespace

void add_sequence_kernels(std::vector<const TfhKernelDesc*>& out) {
  TFH_CPU_KERNEL(SplitToSequence, "SplitToSequence")
  TFH_CPU_KERNEL(SequenceAt, "SequenceAt")
  TFH_CPU_KERNEL(SequenceLength, "SequenceLength")
  TFH_CPU_KERNEL(SequenceConstruct, "SequenceConstruct")
  TFH_CPU_KERNEL(SequenceEmpty, "SequenceEmpty")
  TFH_CPU_KERNEL(SequenceInsert, "SequenceInsert")
  TFH_CPU_KERNEL(SequenceErase, "SequenceErase")
  TFH_CPU_KERNEL(ConcatFromSequence, "ConcatFromSequence")
}

}  // namespace tfh::kernels::cpu
