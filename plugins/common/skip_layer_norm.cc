// skip_layer_norm (bert.skip_layer_norm, gpt2.skip_layer_norm): the residual Add after a dense layer feeding a LayerNormalization over
// the last axis, as one com.microsoft.SkipLayerNormalization(input, skip, gamma, beta, bias):
//
//   LayerNormalization(Add(Add(MatMul(h, W), bias), skip), gamma, beta)
//
// The dense output is the op's `input` (full shape) and the other operand its `skip`. Shapes
// are compared when inference knows them (no broadcasting Add is fused); when it does not, the
// dense layer's structure decides. The embeddings' LayerNorm (sums of Gathers) is left to the
// EmbedLayerNormalization fusion. When the sum is read elsewhere too (pre-LayerNorm residual
// streams) it becomes the op's 4th output, input_skip_bias_sum.
#include "common_fusions.h"

namespace plugin_common {
namespace {

// False only when both shapes are known and differ.
bool same_shape(const tfh::ValueView& a, const tfh::ValueView& b) {
  const int64_t r = a.rank();
  if (r <= 0 || b.rank() <= 0) return true;  // not inferred: the structure decides
  if (r != b.rank()) return false;
  for (size_t i = 0; i < static_cast<size_t>(r); ++i) {
    const tfh::Dim da = a.dim(i), db = b.dim(i);
    if (da.known() && db.known() && da.value != db.value) return false;
    if (!da.known() && !db.known() && !da.symbol.empty() && da.symbol == db.symbol) continue;
    if (da.known() != db.known()) return false;
  }
  return true;
}

// The LayerNormalization normalizes the last axis with 1-D gamma/beta of the hidden size.
bool last_axis_norm(const tfh::Match& m) {
  const tfh::NodeView ln = m.root();
  const int64_t axis = ln.attr_int("axis", -1);
  const tfh::ValueView x = m["sum"];
  const int64_t r = x.rank();
  if (!(axis == -1 || (r > 0 && axis == r - 1))) return false;
  const tfh::TensorView gamma = m.constant("gamma");
  if (!gamma || gamma.rank() != 1) return false;
  if (ln.num_inputs() > 2 && ln.input(2)) {
    const tfh::TensorView beta = ln.input(2).constant();
    if (!beta || beta.rank() != 1 || beta.size() != gamma.size()) return false;
  }
  return true;
}

bool replace(const tfh::Match& m, tfh::Edit& e, bool with_bias) {
  const tfh::NodeView ln = m.root();
  std::vector<tfh::ValueRef> ins{m["x"], m["skip"], m["gamma"]};
  ins.push_back(ln.num_inputs() > 2 && ln.input(2) ? tfh::ValueRef(ln.input(2)) : tfh::ValueRef());
  if (with_bias) ins.push_back(m["bias"]);
  // The sum read by other nodes (or a graph output): keep it as output 3.
  const tfh::ValueView sum = m["sum"];
  const bool sum_used = sum.is_graph_output() || sum.num_consumers() > 1;
  std::vector<std::string> outs{e.root_output(0), "", ""};
  if (sum_used) outs.emplace_back(sum.name());
  e.add_node("com.microsoft", "SkipLayerNormalization", ins, outs,
             {tfh::Attr("epsilon", static_cast<double>(ln.attr_float("epsilon", 1e-5f)))});
  return true;
}

}  // namespace

size_t fuse_skip_layer_norm(tfh::GraphView g, const tfh::ParamsView& p) {
  using namespace tfh;
  // optimize's --disable_bias_skip_layer_norm: the dense bias stays a separate Add.
  const bool fold_bias = !p.get_bool("disable_bias_skip_layer_norm");
  const auto x = Any("x"), skip = Any("skip");
  const auto gamma = Const().as("gamma");
  const auto biased = Op("Add", {x, Const().as("bias")}).commutative();
  const auto with_bias = Op("Add", {biased, skip}).commutative().may_escape().as("sum");
  const auto plain = Op("Add", {x, skip}).commutative().may_escape().as("sum");
  auto residual = [](const Match& m) {
    const ValueView skip = m["skip"];
    const NodeView sp = skip.producer();
    return last_axis_norm(m) && same_shape(m["x"], skip) && !skip.constant() &&
           !(sp && sp.is("Gather"));
  };
  // Without a bias to fold, `x` is still a dense layer's output: MatMul, or MatMul + bias.
  auto dense = [](const ValueView& v) {
    const NodeView n = v.producer();
    if (n && n.is("MatMul")) return true;
    if (!n || !n.is("Add")) return false;
    for (int side = 0; side < 2; ++side)
      if (dense_bias(n.input(side), n.input(1 - side).constant())) return true;
    return false;
  };
  auto ln_of = [&](const Pattern& sum) {
    return OneOf(Op("LayerNormalization", {sum, gamma}),
                 Op("LayerNormalization", {sum, gamma, Any()}));
  };
  Rewriter rw(g);
  if (fold_bias)
    rw.add(ln_of(with_bias).where([residual](const Match& m) {
      return residual(m) && dense_bias(m["x"], m.constant("bias"));
    }),
           [](const Match& m, Edit& e) { return replace(m, e, true); });
  rw.add(ln_of(plain).where([residual, dense](const Match& m) {
    return residual(m) && dense(m["x"]);
  }),
         [](const Match& m, Edit& e) { return replace(m, e, false); });
  return rw.run();
}

}  // namespace plugin_common
