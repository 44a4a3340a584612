// example_simplify: a third-party tfhost plugin, built out of tree against the installed SDK.
//
// example.fold_neutral_ops
//   Add(x, 0) | Add(0, x) | Sub(x, 0) | Mul(x, 1) | Mul(1, x) | Div(x, 1)  =>  Identity(x)
// The Identity keeps the node's output name, which may be a graph output; core.remove_identity,
// last in this plugin's preset, removes it wherever that is safe.
//
// example.gelu
//   Div(x, 1.4142) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)  =>  com.microsoft.Gelu(x)
// The form torch.onnx.export gives nn.functional.gelu; the result runs in ONNX Runtime as is.
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

size_t gelu(tfh::GraphView g) {
  const auto x = tfh::Any("x");
  const auto erf = tfh::Op("Erf", {tfh::Op("Div", {x, tfh::Const(1.4142135).tol(1e-4)})});
  const auto cdf = tfh::Op("Add", {erf, tfh::Const(1.0)}).commutative();
  const auto gelu = tfh::Op("Mul", {tfh::Op("Mul", {x, cdf}).commutative(), tfh::Const(0.5)})
                        .commutative();
  return tfh::rewrite(g, gelu, tfh::ReplaceWith("com.microsoft", "Gelu", {"x"}));
}

constexpr TfhFusionDesc kFoldNeutralOps = tfh::fusion(
    "example.fold_neutral_ops", "Add(x,0) | Sub(x,0) | Mul(x,1) | Div(x,1) => Identity(x)",
    "0.1.0", "", "Identity", tfh::wrap_pass<fold_neutral_ops>);
constexpr TfhFusionDesc kGelu = tfh::fusion(
    "example.gelu", "Div(x,1.4142) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5) => Gelu(x)", "0.1.0",
    "com.microsoft", "Gelu", tfh::wrap_pass<gelu>);
const TfhFusionDesc* const kFusions[] = {&kFoldNeutralOps, &kGelu};

const char* const kPreset[] = {"example.fold_neutral_ops", "example.gelu",
                               "core.remove_identity"};
constexpr TfhModelTypeDesc kExample = tfh::model_type(
    "example", "neutral element-wise ops folded away, erf Gelu fused", kPreset, nullptr);
const TfhModelTypeDesc* const kModelTypes[] = {&kExample};

constexpr TfhPluginInfo kInfo = tfh::PluginInfo("example_simplify", "0.1.0", "MIT",
                                                "folds neutral element-wise ops, fuses Gelu")
                                    .fusions(kFusions)
                                    .model_types(kModelTypes);

}  // namespace

TFH_PLUGIN(kInfo)
