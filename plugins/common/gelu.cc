// gelu (bert.gelu, ...): the exact (erf) GELU as exported by torch.onnx, in either multiplication order,
// as com.microsoft.Gelu(x):
//   Mul(Mul(x, Add(Erf(Div(x, 1.4142)), 1)), 0.5)      (transformers' gelu)
//   Mul(Mul(x, 0.5), Add(Erf(Div(x, 1.4142)), 1))      (x * 0.5 first)
#include "common_fusions.h"

namespace plugin_common {

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

}  // namespace plugin_common

namespace plugin_common {

// fast_gelu (bert.fast_gelu, gpt2.fast_gelu): transformers' gelu_new / gelu_fast, the tanh approximation
//   Mul(Mul(x, 0.5), Add(Tanh(Mul(Add(x, Mul(Pow(x, 3), 0.044715)), sqrt(2/pi))), 1))
// as com.microsoft.FastGelu(x); the cube also as Mul(Mul(x, x), x).
size_t fuse_fast_gelu(tfh::GraphView g) {
  using namespace tfh;
  const auto x = Any("x");
  const auto x3 = OneOf(Op("Pow", {x, Const(3.0)}),
                        Op("Mul", {Op("Mul", {x, x}), x}).commutative());
  const auto cube = Op("Mul", {x3, Const(0.044715).tol(1e-5)}).commutative();
  const auto inner = Op("Mul", {Op("Add", {x, cube}).commutative(),
                                Const(0.7978845608028654).tol(1e-5)})
                         .commutative();
  const auto cdf = Op("Add", {Op("Tanh", {inner}), Const(1.0)}).commutative();
  const auto form_a = Op("Mul", {Op("Mul", {x, Const(0.5)}).commutative(), cdf}).commutative();
  const auto form_b = Op("Mul", {Op("Mul", {x, cdf}).commutative(), Const(0.5)}).commutative();
  Rewriter rw(g);
  rw.add(form_a, ReplaceWith("com.microsoft", "FastGelu", {"x"}));
  rw.add(form_b, ReplaceWith("com.microsoft", "FastGelu", {"x"}));
  return rw.run();
}

// bias_gelu (bert.bias_gelu, gpt2.bias_gelu): Gelu(Add(x, bias)) => BiasGelu(x, bias), FastGelu(Add(x, bias)) =>
// FastGelu(x, bias), where x + bias is a dense layer's MatMul + bias (see dense_bias).
size_t fuse_bias_gelu(tfh::GraphView g) {
  using namespace tfh;
  const auto x = Any("x");
  const auto biased = Op("Add", {x, Const().as("bias")}).commutative();
  auto last_dim_bias = [](const Match& m) { return dense_bias(m["x"], m.constant("bias")); };
  Rewriter rw(g);
  rw.add(Op("Gelu", {biased}).domain("com.microsoft").where(last_dim_bias),
         ReplaceWith("com.microsoft", "BiasGelu", {"x", "bias"}));
  rw.add(Op("FastGelu", {biased}).domain("com.microsoft").where(last_dim_bias),
         ReplaceWith("com.microsoft", "FastGelu", {"x", "bias"}));
  return rw.run();
}

}  // namespace plugin_common

namespace plugin_common {

// gelu_approximation (--enable_gelu_approximation): Gelu(x) => FastGelu(x), BiasGelu(x, bias) =>
// FastGelu(x, bias). The tanh form differs from the erf one by at most 4.7e-4 (absolute, near
// x = -2.7), is cheaper, and is the form that fuses into a GEMM epilogue (gemm_fast_gelu).
size_t approximate_gelu(tfh::GraphView g) {
  using namespace tfh;
  const auto x = Any("x");
  Rewriter rw(g);
  rw.add(Op("Gelu", {x}).domain("com.microsoft"),
         ReplaceWith("com.microsoft", "FastGelu", {"x"}));
  rw.add(Op("BiasGelu", {x, Any("bias")}).domain("com.microsoft"),
         ReplaceWith("com.microsoft", "FastGelu", {"x", "bias"}));
  return rw.run();
}

// gemm_fast_gelu (--enable_gemm_fast_gelu): FastGelu(MatMul(a, W)[, bias]) => GemmFastGelu(a, W
// [, bias]) when W is a 2-D matrix (GemmFastGelu's W is [K, N]) and the product is read by the
// FastGelu alone. tfhost's CUDA kernel is one cuBLASLt GEMM with the GELU(+bias) epilogue, so
// the [tokens, N] product never goes through global memory twice.
size_t fuse_gemm_fast_gelu(tfh::GraphView g) {
  using namespace tfh;
  const auto product = Op("MatMul", {Any("a"), Any("w")});
  auto matrix_w = [](const Match& m) {
    const ValueView w = m["w"], a = m["a"];
    return w.rank() == 2 && a.rank() != 0 && a.rank() != 1;  // unknown rank (-1) for a is fine
  };
  auto vector_bias = [](const Match& m) { return m["bias"].rank() == 1 || m["bias"].rank() == -1; };
  Rewriter rw(g);
  rw.add(Op("FastGelu", {product, Any("bias")}).domain("com.microsoft").where(matrix_w)
             .where(vector_bias),
         ReplaceWith("com.microsoft", "GemmFastGelu", {"a", "w", "bias"}));
  rw.add(Op("FastGelu", {product}).domain("com.microsoft").where(matrix_w),
         ReplaceWith("com.microsoft", "GemmFastGelu", {"a", "w"}));
  return rw.run();
}

}  // namespace plugin_common
