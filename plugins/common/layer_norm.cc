// layer_norm (bert.layer_norm, gpt2.layer_norm): the LayerNorm that exporters below opset 17 spell out, as one
// LayerNormalization(x, gamma, beta, axis = -1, epsilon).
//
//   mean = ReduceMean(x, axes=[-1])          d = Sub(x, mean)
//   var  = ReduceMean(Pow(d, 2), axes=[-1])  y = Add(Mul(Div(d, Sqrt(Add(var, eps))), gamma), beta)
//
// From opset 18 ReduceMean takes its axes as an input; both forms match. Mixed-precision exports
// (float16 x, statistics in float32) put a Cast to float after the Sub and a Cast back to x's type
// after the Div; those match too, and the fused op (stash_type float) computes the same way.
// The op produced is the ONNX LayerNormalization (ONNX Runtime also runs it at opsets below 17,
// as its own fusion does).
#include "common_fusions.h"

namespace plugin_common {
namespace {

// The reduction is over the last axis only (so that LayerNormalization's axis = -1 applies).
bool last_axis(const tfh::NodeView& reduce, const tfh::ValueView& x) {
  std::vector<int64_t> axes;
  if (reduce.num_inputs() > 1 && reduce.input(1)) {
    tfh::TensorView t = reduce.input(1).constant();
    if (!t || t.size() != 1) return false;
    axes.push_back(static_cast<int64_t>(t.at(0).value_or(0)));
  } else {
    axes = reduce.attr_ints("axes", {});
  }
  if (axes.size() != 1) return false;
  const int64_t rank = x.rank();
  return axes[0] == -1 || (rank > 0 && axes[0] == rank - 1);
}

}  // namespace

size_t fuse_layer_norm(tfh::GraphView g) {
  using namespace tfh;
  const auto x = Any("x");
  const auto mean =
      OneOf(Op("ReduceMean", {x}).as("mean"), Op("ReduceMean", {x, Const()}).as("mean"));
  const auto sub = Op("Sub", {x, mean}).as("d");
  const auto d = OneOf(Op("Cast", {sub}).as("cast_d"), sub);
  const auto pow2 = Op("Pow", {d, Const(2.0)});
  const auto var =
      OneOf(Op("ReduceMean", {pow2}).as("var"), Op("ReduceMean", {pow2, Const()}).as("var"));
  const auto stddev = Op("Sqrt", {Op("Add", {var, Const().as("eps")}).commutative()});
  const auto div = Op("Div", {d, stddev});
  const auto norm = OneOf(Op("Cast", {div}).as("cast_n"), div);
  const auto scaled = Op("Mul", {norm, Const().as("gamma")}).commutative();
  const auto ln = Op("Add", {scaled, Const().as("beta")}).commutative().where([](const Match& m) {
    // Casts: statistics in float, the result back in x's type (which gamma and beta share).
    const TfhDataType xt = m.constant("gamma").dtype();
    if (m.has("cast_d") && m.node("cast_d").attr_int("to", 0) != TFH_TYPE_FLOAT) return false;
    if (m.has("cast_n") && m.node("cast_n").attr_int("to", 0) != xt) return false;
    if (m.has("cast_d") && !m.has("cast_n") && xt != TFH_TYPE_FLOAT) return false;
    if (m.constant("beta").dtype() != xt || (m["x"].elem_type() && m["x"].elem_type() != xt))
      return false;
    return last_axis(m.node("mean"), m["x"]) && last_axis(m.node("var"), m["x"]) &&
           m.constant("eps").size() == 1;
  });
  return rewrite(g, ln, [](const Match& m, Edit& e) {
    const double eps = m.constant("eps").at(0).value_or(1e-12);
    e.add_node("", "LayerNormalization", {m["x"], m["gamma"], m["beta"]}, {e.root_output(0)},
               {Attr("axis", int64_t{-1}), Attr("epsilon", eps)});
    return true;
  });
}

}  // namespace plugin_common
