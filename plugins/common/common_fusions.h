// Fusions and helpers shared by the family plugins (bert, gpt2, ...): built against the SDK
// alone into a static library that each plugin links and registers under its own names
// (bert.layer_norm, gpt2.layer_norm), so no plugin depends on another being loaded.
#pragma once

#include <map>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include <tfhost/params.hpp>
#include <tfhost/plugin.hpp>

namespace plugin_common {

// `v` as int32 (what ONNX Runtime's contrib ops take for ids and masks): itself, or a new Cast
// named after it.
inline tfh::ValueRef as_int32(tfh::Edit& e, const tfh::ValueView& v) {
  if (v.elem_type() == TFH_TYPE_INT32) return v;
  const std::string out = e.new_name(std::string(v.name()) + "_int32");
  e.add_node("", "Cast", {v}, {out}, {tfh::Attr("to", int64_t{TFH_TYPE_INT32})});
  return out;
}

// Each fused op casts its mask/ids input to int32 itself (and, with --use_mask_index, sums it):
// after a fusion run, identical Casts and ReduceSums of the same value become one.
inline size_t merge_duplicate_mask_ops(tfh::GraphView g) {
  size_t merged = 0;
  for (bool again = true; again;) {
    again = false;
    std::map<std::string, tfh::NodeView> first;
    for (const tfh::NodeView& n : g.nodes()) {
      if (!(n.is("Cast") || n.is("ReduceSum")) || n.num_outputs() != 1 || !n.input(0)) continue;
      std::string key = std::string(n.op_type()) + "|" + std::to_string(n.attr_int("to", -1)) +
                        "|" + std::to_string(n.attr_int("keepdims", 1)) + "|";
      for (int64_t a : n.attr_ints("axes", {})) key += std::to_string(a) + ",";
      for (const tfh::ValueView& in : n.inputs()) {
        const tfh::TensorView c = in ? in.constant() : tfh::TensorView();
        if (c && c.size() <= 8) {  // a small constant (ReduceSum's axes): by value
          key += "|=";
          for (size_t i = 0; i < c.size(); ++i) key += std::to_string(c.at(i).value_or(0)) + ",";
        } else {
          key += "|" + std::string(in ? in.name() : "");
        }
      }
      auto [it, fresh] = first.emplace(key, n);
      if (fresh || n.output(0).is_graph_output()) continue;
      g.replace_all_uses(n.output(0), it->second.output(0));
      g.remove_node(n);
      ++merged;
      again = true;
    }
  }
  return merged;
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
// Gelu(x) => FastGelu(x), BiasGelu(x, bias) => FastGelu(x, bias) (--enable_gelu_approximation).
size_t approximate_gelu(tfh::GraphView g);
// FastGelu(MatMul(a, W 2-D)[, bias]) => GemmFastGelu(a, W[, bias]) (--enable_gemm_fast_gelu).
size_t fuse_gemm_fast_gelu(tfh::GraphView g);
// What <family>.gemm_fast_gelu says in `tfhost plugins show` (bert and gpt2 register it).
inline constexpr const char kGemmFastGeluHelp[] =
    "FastGelu(MatMul(x, W)[, bias]) => com.microsoft.GemmFastGelu(x, W[, bias]) (one GEMM with a "
    "GELU epilogue on CUDA; ONNX Runtime's CPU build has no kernel for it; "
    "--enable_gemm_fast_gelu, not in the preset)";
// Word (+ segment) + position embedding Gathers -> LayerNormalization => EmbedLayerNormalization
// (the sum as embedding_sum when read elsewhere).
size_t fuse_embed_layer_norm(tfh::GraphView g);
// Add(Add(x, bias), skip) or Add(x, skip) -> LayerNormalization => SkipLayerNormalization.
size_t fuse_skip_layer_norm(tfh::GraphView g, const tfh::ParamsView& p);
// ---- attention parts (attention_parts.cc) ----
// Transpose `t` has exactly this perm.
bool has_perm(const tfh::NodeView& t, std::vector<int64_t> perm);
// An additive attention mask's raw 2-D graph input and its filter value.
struct MaskSource {
  tfh::ValueView raw;
  double filter = 0;
};
// The graph input `inverted` = Sub(1, Cast?(Expand?(Unsqueeze(Unsqueeze(Reshape?(mask)))))) is made of.
tfh::ValueView inverted_mask_source(const tfh::ValueView& inverted);
// Mul(inverted, filter) or Where(Cast(inverted, bool), filter, inverted): its raw mask and filter.
std::optional<MaskSource> mask_source(const tfh::ValueView& mask);
// torch 2.x's scaled_dot_product_attention factor sqrt(1/sqrt(head size)) (from Shape(q)), or a
// constant's value.
std::optional<double> sdpa_factor(const tfh::ValueView& s, int64_t head_size);
// Heads and head size from a Reshape's [.., .., N, d] target (constant or Concat).
std::optional<std::pair<int64_t, int64_t>> heads(const tfh::NodeView& reshape);

// ---- dummy-input helpers (input_helpers.cc) ----
std::string lower(std::string_view s);
// Rows of the constant table a Gather (or an EmbedLayerNormalization id slot) indexes with `v`,
// looking through Cast/Reshape/Unsqueeze/Squeeze/Expand/Flatten; 0 when `v` indexes none.
int64_t table_rows(const tfh::ValueView& v, int depth = 0);
// A tensor of `type` holding `values` (ints, floats, float16/bfloat16, bool); `who` names the
// generator in the error for any other type.
tfh::Tensor filled_tensor(TfhDataType type, const std::vector<int64_t>& dims,
                          const std::vector<double>& values, const std::string& who,
                          const std::string& name);

// What "fully optimized" means for a family (report.cc).
struct ReportRule {
  std::string family;                       // names the passes in messages: "bert" -> bert.attention
  std::vector<std::string> attention_ops;   // the fused attention ops, one per layer
  bool embed_required = false;              // exactly one EmbedLayerNormalization
  std::vector<std::string> leftover;        // of ReduceMean, Erf, Tanh: ops that must be gone
};
// Logs the fused-op statistics and whether the model is fully optimized; changes nothing.
size_t report(tfh::GraphView g, const ReportRule& rule);

// SkipLayerNormalization's parameters (optimize's flag of the same name reaches it).
inline constexpr TfhParamDesc kSkipLayerNormParams[] = {
    tfh::param("disable_bias_skip_layer_norm", TFH_PARAM_BOOL, "false",
               "leave the dense layer's bias Add out of the op (optimize's flag of that name)"),
};

}  // namespace plugin_common
