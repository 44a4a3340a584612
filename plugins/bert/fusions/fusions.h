// The bert plugin's fusions (one file each); each is a TfhFusionDesc apply through wrap_pass.
#pragma once

#include <tfhost/params.hpp>
#include <tfhost/plugin.hpp>

namespace bert {

// `v` as int32 (what ONNX Runtime's contrib ops take for ids and masks): itself, or a new Cast
// named after it.
inline tfh::ValueRef as_int32(tfh::Edit& e, const tfh::ValueView& v) {
  if (v.elem_type() == TFH_TYPE_INT32) return v;
  const std::string out = e.new_name(std::string(v.name()) + "_int32");
  e.add_node("", "Cast", {v}, {out}, {tfh::Attr("to", int64_t{TFH_TYPE_INT32})});
  return out;
}

// `x` is a MatMul output whose constant 2-D weight has `bias`'s size as its last dimension: the
// dense layer's MatMul + bias, recognised without relying on inferred shapes.
inline bool dense_bias(const tfh::ValueView& x, const tfh::TensorView& bias) {
  if (!bias || bias.rank() != 1) return false;
  const tfh::NodeView mm = x.producer();
  if (!mm || !mm.is("MatMul") || mm.num_inputs() < 2) return false;
  const tfh::TensorView w = mm.input(1).constant();
  return w && w.rank() == 2 && w.dims()[1] == static_cast<int64_t>(bias.size());
}

// ReduceMean/Sub/Pow/ReduceMean/Add(eps)/Sqrt/Div/Mul(gamma)/Add(beta) => LayerNormalization.
size_t fuse_layer_norm(tfh::GraphView g);
// Div(x, sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5) (and the Mul(0.5) first form) => Gelu.
size_t fuse_gelu(tfh::GraphView g);
// The tanh approximation (gelu_new) => com.microsoft.FastGelu.
size_t fuse_fast_gelu(tfh::GraphView g);
// Gelu/FastGelu of x + a 1-D constant bias => BiasGelu(x, bias) / FastGelu(x, bias).
size_t fuse_bias_gelu(tfh::GraphView g);
// Add(Add(x, bias), skip) or Add(x, skip) -> LayerNormalization => SkipLayerNormalization.
size_t fuse_skip_layer_norm(tfh::GraphView g);
// Word (+ segment) + position embedding Gathers -> LayerNormalization => EmbedLayerNormalization.
size_t fuse_embed_layer_norm(tfh::GraphView g);
// The self-attention block (Q/K/V projections .. context Reshape) => com.microsoft.Attention.
size_t fuse_attention(tfh::GraphView g, const tfh::ParamsView& p);
// Logs the fused-op statistics and whether the model is fully optimized; changes nothing.
size_t report_bert(tfh::GraphView g);

// bert.inputs (inputs.cc): dummy inputs by role (token ids, segment ids, mask, position ids).
void generate_inputs(tfh::GraphView g, const tfh::ParamsView& p, uint64_t seed,
                     tfh::TensorListView out);

}  // namespace bert
