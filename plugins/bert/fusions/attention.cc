// bert.attention: the self-attention block of BERT-style exports (BERT, RoBERTa, ALBERT, and
// DistilBERT's form with q scaled first and a Where mask) as one
// com.microsoft.Attention(x, W_qkv, b_qkv, mask), Q/K/V weights merged into one [H, 3H] matrix:
//
//   q = Transpose(Reshape(Add(MatMul(x, Wq), bq)), 0213)     k: ... Transpose 0231 (K^T)
//   v = Transpose(Reshape(Add(MatMul(x, Wv), bv)), 0213)
//   y = Reshape(Transpose(MatMul(Softmax(Add(Div(MatMul(q, k), sqrt d), mask)), v), 0213))
//
// torch 2.x's scaled_dot_product_attention form (q and K^T each times sqrt(scale), the scale
// computed from Shape(q) or folded to a constant) fuses too.
//
// The additive mask must be (1 - Cast(Unsqueeze(Unsqueeze(attention_mask)))) * filter, or the
// sdpa form Where(Cast(inverted, bool), filter, inverted) with an Expand to [B, 1, S, S]: it becomes
// the raw 2-D mask input (int32), with the filter as mask_filter_value, so padding of any shape
// keeps its exact meaning. Heads come from the Reshape's constant [.., .., N, d] target (or the
// scale); a scale other than 1/sqrt(d) is kept as the `scale` attribute. Pruned heads (Q/K/V
// narrower than the input) fuse as they are; a V width other than Q's adds qkv_hidden_sizes.
#include <cmath>

#include "fusions/fusions.h"

namespace bert {
using plugin_common::has_perm;
using plugin_common::heads;
using plugin_common::mask_source;
using plugin_common::MaskSource;
using plugin_common::sdpa_factor;

namespace {

// DistilBERT's form: Where(Cast?(Expand?(Reshape?(Equal(attention_mask, 0)))), filter, scores)
// replaces masked scores by the filter; Attention adds it, which for a filter as large as the
// float minimum gives the same softmax.
std::optional<MaskSource> where_mask_source(const tfh::ValueView& cond, const tfh::TensorView& fill) {
  if (!fill || fill.size() != 1) return std::nullopt;
  tfh::NodeView n = cond.producer();
  while (n && (n.is("Cast") || n.is("Expand") || n.is("Reshape") || n.is("Unsqueeze")))
    n = n.input(0).producer();
  if (!n || !n.is("Equal")) return std::nullopt;
  for (int side = 0; side < 2; ++side) {
    const tfh::TensorView zero = n.input(1 - side).constant();
    const tfh::ValueView raw = n.input(side);
    if (zero && zero.uniform_value() == 0.0 && raw.is_graph_input())
      return MaskSource{raw, *fill.at(0)};
  }
  return std::nullopt;
}

}  // namespace

size_t fuse_attention(tfh::GraphView g, const tfh::ParamsView& p) {
  using namespace tfh;
  const bool mask_index = p.get_bool("use_mask_index");
  const bool no_mask = p.get_bool("no_attention_mask");
  const int64_t want_heads = p.get_int("num_heads"), want_hidden = p.get_int("hidden_size");
  const bool opset13 = g.opset("") >= 13;
  const auto x = Any("x");
  auto proj = [&](const char* w, const char* b) {
    // The projection also feeds the Shape nodes that compute the Reshape target: it may escape
    // the match (those become dead once the Reshape is gone, and dead-node removal runs after).
    return Op("Add", {Op("MatMul", {x, Const().as(w)}), Const().as(b)}).commutative().may_escape();
  };
  const auto q = Op("Transpose", {Op("Reshape", {proj("wq", "bq"), Any()}).as("reshape_q")})
                     .as("tq");
  const auto k = Op("Transpose", {Op("Reshape", {proj("wk", "bk"), Any()})}).as("tk");
  const auto v = Op("Transpose", {Op("Reshape", {proj("wv", "bv"), Any()})}).as("tv");
  // BERT/RoBERTa/ALBERT: (q k^T) / sqrt(d) + additive mask.
  const auto scores = Op("MatMul", {q, k});
  const auto scaled = OneOf(Op("Div", {scores, Const().as("div")}),
                            Op("Mul", {scores, Const().as("mul")}).commutative());
  const auto added = Op("Add", {scaled, Any("mask")}).commutative();
  // torch 2.x's scaled_dot_product_attention: q and K^T each scaled by sqrt(scale) before the
  // MatMul; the scale is computed from Shape(q), so q's Transpose also feeds nodes outside.
  const auto q_sdpa = Op("Transpose", {Op("Reshape", {proj("wq", "bq"), Any()}).as("reshape_q")})
                          .as("tq")
                          .may_escape();
  const auto sdpa_scores = Op("MatMul", {Op("Mul", {q_sdpa, Any("sq")}).commutative(),
                                         Op("Mul", {k, Any("sk")}).commutative()});
  const auto sdpa_added = Op("Add", {sdpa_scores, Any("mask")}).commutative();
  // DistilBERT: (q / sqrt(d)) k^T, masked scores replaced through Where.
  const auto q_scaled = OneOf(Op("Div", {q, Const().as("div")}),
                              Op("Mul", {q, Const().as("mul")}).commutative());
  // (the scores also feed the Shape that sizes the mask's Expand: they may escape the match)
  const auto replaced = Op(
      "Where", {Any("cond"), Const().as("fill"), Op("MatMul", {q_scaled, k}).may_escape()});
  auto block = [&](const Pattern& masked) {
    const auto probs = Op("Softmax", {masked}).as("softmax");
    // The context Transpose also feeds Shape nodes of the output Reshape's target (dead after).
    const auto ctx = Op("Transpose", {Op("MatMul", {probs, v})}).as("tctx").may_escape();
    return Op("Reshape", {ctx, Any()});
  };
  auto mask_of = [](const Match& m) -> std::optional<MaskSource> {
    return m.has("mask") ? mask_source(m["mask"])
                         : where_mask_source(m["cond"], m.constant("fill"));
  };
  // Heads: the user's --num_heads when given, else read from the graph.
  auto heads_of = [want_heads](const Match& m) -> std::optional<std::pair<int64_t, int64_t>> {
    const int64_t h = m.constant("wq").dims()[1];
    if (want_heads > 0) {
      if (h % want_heads) return std::nullopt;
      return std::make_pair(want_heads, h / want_heads);
    }
    return heads(m.node("reshape_q"));
  };
  auto ok = [mask_of, heads_of, want_hidden](const Match& m) {
    const TensorView wq = m.constant("wq"), wk = m.constant("wk"), wv = m.constant("wv");
    for (const TensorView& w : {wq, wk, wv})
      if (!w || w.rank() != 2 || w.dtype() != TFH_TYPE_FLOAT || w.dims()[0] != wq.dims()[0])
        return false;
    if (wk.dims()[1] != wq.dims()[1]) return false;  // Q and K share the head size
    const char* const biases[] = {"bq", "bk", "bv"};
    const TensorView ws[] = {wq, wk, wv};
    for (int i = 0; i < 3; ++i) {
      const TensorView t = m.constant(biases[i]);
      if (!t || t.rank() != 1 || static_cast<int64_t>(t.size()) != ws[i].dims()[1]) return false;
    }
    for (const char* c : {"div", "mul"})
      if (m.has(c) && (!m.constant(c) || m.constant(c).size() != 1)) return false;
    if (m.has("sq")) {
      const auto nd = heads_of(m);
      if (!nd || !sdpa_factor(m["sq"], nd->second) || !sdpa_factor(m["sk"], nd->second))
        return false;
    }
    if (want_hidden > 0 && wq.dims()[1] != want_hidden) return false;
    const int64_t axis = m.node("softmax").attr_int("axis", -1);
    const auto nd = heads_of(m);
    return has_perm(m.node("tq"), {0, 2, 1, 3}) && has_perm(m.node("tk"), {0, 2, 3, 1}) &&
           has_perm(m.node("tv"), {0, 2, 1, 3}) && has_perm(m.node("tctx"), {0, 2, 1, 3}) &&
           (axis == -1 || axis == 3) && mask_of(m) && nd && nd->first * nd->second == wq.dims()[1] &&
           wv.dims()[1] % nd->first == 0;
  };
  auto action = [mask_of, heads_of, mask_index, no_mask, opset13](const Match& m, Edit& e) {
    // One [in, hq + hk + hv] weight: hq = hk; hv differs when V's heads are wider or narrower
    // (then qkv_hidden_sizes says so, as ONNX Runtime requires).
    const TensorView wq = m.constant("wq"), wk = m.constant("wk"), wv = m.constant("wv");
    const TensorView ws[] = {wq, wk, wv};
    const int64_t in = wq.dims()[0];
    const int64_t widths[] = {wq.dims()[1], wk.dims()[1], wv.dims()[1]};
    const int64_t total = widths[0] + widths[1] + widths[2];
    std::vector<float> w(static_cast<size_t>(in * total)), b(static_cast<size_t>(total));
    const char* bs[] = {"bq", "bk", "bv"};
    for (int64_t part = 0, at = 0; part < 3; at += widths[part], ++part) {
      for (int64_t r = 0; r < in; ++r) {
        const float* src = ws[part].data<float>().data() + r * widths[part];
        std::copy(src, src + widths[part], w.begin() + r * total + at);
      }
      const auto bias = m.constant(bs[part]).data<float>();
      std::copy(bias.begin(), bias.end(), b.begin() + at);
    }
    const auto [n_heads, head_size] = *heads_of(m);
    const MaskSource mask = *mask_of(m);
    double scale = 1.0 / std::sqrt(static_cast<double>(head_size));
    if (m.has("div")) scale = 1.0 / m.constant("div").at(0).value_or(1.0);
    if (m.has("mul")) scale = m.constant("mul").at(0).value_or(scale);
    if (m.has("sq")) scale = *sdpa_factor(m["sq"], head_size) * *sdpa_factor(m["sk"], head_size);
    std::vector<Attr> attrs{Attr("num_heads", n_heads), Attr("mask_filter_value", mask.filter)};
    if (std::fabs(scale * std::sqrt(static_cast<double>(head_size)) - 1.0) > 1e-6)
      attrs.emplace_back("scale", scale);
    if (widths[2] != widths[0])
      attrs.push_back(Attr::ints("qkv_hidden_sizes", {widths[0], widths[1], widths[2]}));
    const std::string wname =
        e.add_initializer("attention_qkv_weight", Tensor::from<float>({in, total}, w));
    const std::string bname =
        e.add_initializer("attention_qkv_bias", Tensor::from<float>({total}, b));
    // The mask input: the raw 2-D mask (default, exact for any padding), a 1-D mask index of
    // per-row lengths (--use_mask_index: right padding only), or none (--no_attention_mask).
    ValueRef mask_in;
    if (!no_mask) {
      mask_in = as_int32(e, mask.raw);
      if (mask_index) {
        const std::string lengths = e.new_name("mask_index");
        if (opset13) {
          const std::string axes = e.add_initializer("mask_index_axes",
                                                     Tensor::from<int64_t>({1}, {1}));
          e.add_node("", "ReduceSum", {mask_in, axes}, {lengths}, {Attr("keepdims", int64_t{0})});
        } else {
          e.add_node("", "ReduceSum", {mask_in}, {lengths},
                     {Attr::ints("axes", {1}), Attr("keepdims", int64_t{0})});
        }
        mask_in = lengths;
      }
    }
    std::vector<ValueRef> ins{m["x"], wname, bname};
    if (!no_mask) ins.push_back(mask_in);
    e.add_node("com.microsoft", "Attention", ins, {e.root_output(0)}, attrs);
    return true;
  };
  Rewriter rw(g);
  rw.add(block(added).where(ok), action);
  rw.add(block(replaced).where(ok), action);
  rw.add(block(sdpa_added).where(ok), action);
  const size_t n = rw.run();
  merge_duplicate_mask_ops(g);
  return n;
}

}  // namespace bert
