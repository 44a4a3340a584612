// example_simplify: a third-party tfhost plugin, built out of tree against the installed SDK.
//
// example.fold_neutral_ops
//   Add(x, 0) | Add(0, x) | Sub(x, 0) | Mul(x, 1) | Mul(1, x) | Div(x, 1)  =>  Identity(x)
// The Identity keeps the node's output name, which may be a graph output; core.remove_identity,
// next in this plugin's preset, removes it wherever that is safe.
#include <tfhost/plugin.hpp>

namespace {

// The constant must not broadcast x to a larger shape: one element, and no more dims than x.
bool keeps_shape(const tfh::Match& m) {
  const tfh::TensorView c = m.constant("neutral");
  const int64_t rank = m["x"].rank();  // -1: unknown
  return c.size() == 1 &&
         (c.rank() == 0 || (rank >= 0 && c.rank() <= static_cast<size_t>(rank)));
}

size_t fold_neutral_ops(tfh::GraphView g) {
  const auto x = tfh::Any("x");
  const auto zero = tfh::Const(0).as("neutral");
  const auto one = tfh::Const(1).as("neutral");
  const auto neutral = tfh::OneOf(tfh::Op("Add", {x, zero}).commutative(),
                                  tfh::Op("Sub", {x, zero}),
                                  tfh::Op("Mul", {x, one}).commutative(),
                                  tfh::Op("Div", {x, one}))
                           .where(keeps_shape);
  return tfh::rewrite(g, neutral, tfh::ReplaceWith("", "Identity", {"x"}));
}

constexpr TfhFusionDesc kFoldNeutralOps = tfh::fusion(
    "example.fold_neutral_ops", "Add(x,0) | Sub(x,0) | Mul(x,1) | Div(x,1) => Identity(x)",
    "0.1.0", "", "Identity", tfh::wrap_pass<fold_neutral_ops>);
const TfhFusionDesc* const kFusions[] = {&kFoldNeutralOps};

const char* const kPreset[] = {"example.fold_neutral_ops", "core.remove_identity"};
constexpr TfhModelTypeDesc kExample = tfh::model_type(
    "example", "neutral element-wise ops folded away", kPreset, nullptr);
const TfhModelTypeDesc* const kModelTypes[] = {&kExample};

constexpr TfhPluginInfo kInfo =
    tfh::PluginInfo("example_simplify", "0.1.0", "MIT", "folds neutral element-wise ops")
        .fusions(kFusions)
        .model_types(kModelTypes);

}  // namespace

TFH_PLUGIN(kInfo)
