// gpt2.gemm_reshape: the Conv1D layers of Hugging Face's GPT-2 (torch.addmm over a flattened
// input) back as a dense layer over the unflattened input:
//
//   Reshape(Gemm(Reshape(x, [-1, K]), W[K, N], b[N]), [d0, .., N])  =>  Add(MatMul(x, W), b)
//
// so that SkipLayerNormalization, FastGelu(x, bias) and Attention see MatMul + bias as in BERT.
// The first Reshape must flatten x to [-1, K] (K = x's last dim); the second must restore x's
// leading dims (Concat of Shape(x) entries 0..r-2 and N, or the same dims as constants).
#include "fusions/fusions.h"

namespace gpt2 {
namespace {

// One element of a Reshape target built by Concat: the constant, or Shape(x)[i] (through
// Unsqueeze / Gather / Cast), as (is_shape_of_x, value).
std::optional<std::pair<bool, int64_t>> target_entry(const tfh::ValueView& v,
                                                     const tfh::ValueView& x) {
  if (const tfh::TensorView c = v.constant()) {
    if (c.size() != 1) return std::nullopt;
    return std::make_pair(false, static_cast<int64_t>(*c.at(0)));
  }
  tfh::NodeView n = v.producer();
  while (n && (n.is("Unsqueeze") || n.is("Cast") || n.is("Squeeze"))) n = n.input(0).producer();
  if (!n || !(n.is("Gather") || n.is("Slice"))) return std::nullopt;
  const tfh::TensorView at = n.input(1).constant();
  const tfh::NodeView shape = n.input(0).producer();
  if (!at || at.size() != 1 || !shape || !shape.is("Shape") || shape.input(0).name() != x.name())
    return std::nullopt;
  return std::make_pair(true, static_cast<int64_t>(*at.at(0)));  // may be negative: from the end
}

// The entries of a Reshape target: a constant's values, or a Concat's entries.
std::optional<std::vector<std::pair<bool, int64_t>>> target(const tfh::ValueView& shape,
                                                            const tfh::ValueView& x) {
  std::vector<std::pair<bool, int64_t>> out;
  if (const tfh::TensorView c = shape.constant()) {
    for (size_t i = 0; i < c.size(); ++i) out.emplace_back(false, static_cast<int64_t>(*c.at(i)));
    return out;
  }
  const tfh::NodeView cat = shape.producer();
  if (!cat || !cat.is("Concat")) return std::nullopt;
  for (const tfh::ValueView& in : cat.inputs()) {
    const auto e = in ? target_entry(in, x) : std::nullopt;
    if (!e) return std::nullopt;
    out.push_back(*e);
  }
  return out;
}

// [-1, K] with K = x's last dim (Shape(x)[-1], or the constant K: a model whose x had another
// last dim could not restore x's leading dims afterwards, which `restores` checks).
bool flattens(const tfh::NodeView& reshape, const tfh::ValueView& x, int64_t k) {
  const int64_t r = x.rank();
  if (r >= 0 && (r < 2 || (x.dim(r - 1).known() && x.dim(r - 1).value != k))) return false;
  const auto t = target(reshape.input(1), x);
  if (!t || t->size() != 2 || (*t)[0] != std::make_pair(false, int64_t{-1})) return false;
  const auto [from_shape, v] = (*t)[1];
  return from_shape ? v == -1 || (r > 0 && v == r - 1) : v == k;
}

// [x's dims 0..r-2, N]: each Shape(x)[i] or a constant equal to x's known dim i.
bool restores(const tfh::NodeView& reshape, const tfh::ValueView& x, int64_t n) {
  const auto t = target(reshape.input(1), x);
  if (!t || t->size() < 2) return false;
  const int64_t r = static_cast<int64_t>(t->size());
  if (x.rank() >= 0 && x.rank() != r) return false;
  if ((*t)[r - 1] != std::make_pair(false, n)) return false;
  for (int64_t i = 0; i + 1 < r; ++i) {
    const auto [from_shape, v] = (*t)[i];
    if (from_shape ? v != i && v != i - r : !(x.rank() == r && x.dim(i).known() && x.dim(i).value == v))
      return false;
  }
  return true;
}

}  // namespace

size_t fuse_gemm_reshape(tfh::GraphView g) {
  using namespace tfh;
  const auto flat = Op("Reshape", {Any("x"), Any()}).as("flat");
  const auto gemm = Op("Gemm", {flat, Const().as("w"), Const().as("b")}).as("gemm");
  const auto pattern = Op("Reshape", {gemm, Any()}).where([](const Match& m) {
    const NodeView gm = m.node("gemm");
    const TensorView w = m.constant("w"), b = m.constant("b");
    if (gm.attr_float("alpha", 1.f) != 1.f || gm.attr_float("beta", 1.f) != 1.f ||
        gm.attr_int("transA", 0) != 0 || gm.attr_int("transB", 0) != 0)
      return false;
    if (w.rank() != 2 || b.rank() != 1 || b.dims()[0] != w.dims()[1]) return false;
    return flattens(m.node("flat"), m["x"], w.dims()[0]) &&
           restores(m.root(), m["x"], w.dims()[1]);
  });
  Rewriter rw(g);
  rw.add(pattern, [](const Match& m, Edit& e) {
    const std::string product = e.new_name(std::string(m.root().name()) + "_matmul");
    e.add_node("", "MatMul", {m["x"], m["w"]}, {product});
    e.add_node("", "Add", {ValueRef(product), m["b"]}, {e.root_output(0)});
    return true;
  });
  return rw.run();
}

}  // namespace gpt2
