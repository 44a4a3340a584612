// bert.gelu: the exact (erf) GELU as exported by torch.onnx, in either multiplication order,
// as com.microsoft.Gelu(x):
//   Mul(Mul(x, Add(Erf(Div(x, 1.4142)), 1)), 0.5)      (transformers' gelu)
//   Mul(Mul(x, 0.5), Add(Erf(Div(x, 1.4142)), 1))      (x * 0.5 first)
#include "fusions/fusions.h"

namespace bert {

size_t fuse_gelu(tfh::GraphView g) {
  using namespace tfh;
  const auto x = Any("x");
  const auto erf = Op("Erf", {OneOf(Op("Div", {x, Const(1.4142135623730951).tol(1e-4)}),
                                    Op("Mul", {x, Const(0.7071067811865476).tol(1e-4)})
                                        .commutative())});
  const auto cdf = Op("Add", {erf, Const(1.0)}).commutative();
  const auto form_a = Op("Mul", {Op("Mul", {x, cdf}).commutative(), Const(0.5)}).commutative();
  const auto form_b = Op("Mul", {Op("Mul", {x, Const(0.5)}).commutative(), cdf}).commutative();
  Rewriter rw(g);
  rw.add(form_a, ReplaceWith("com.microsoft", "Gelu", {"x"}));
  rw.add(form_b, ReplaceWith("com.microsoft", "Gelu", {"x"}));
  return rw.run();
}

}  // namespace bert
