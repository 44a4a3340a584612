// gpt2.from_checkpoint: the fused GPT-2 with past state, built straight from a Hugging Face
// checkpoint directory (config.json + model.safetensors, save_pretrained's layout) — no Python,
// no PyTorch, no export. The graph is what `gpt2.*` fusions make of an export, in onnxruntime
// convert_to_onnx's I/O layout:
//
//   inputs  input_ids [B, S], position_ids [B, S], attention_mask [B, P + S] (int64),
//           past_i [2, B, N, P, d] (float)
//   h = Gather(wte, input_ids) + Gather(wpe, position_ids)
//   per layer i:   x = LayerNormalization(h) (layer 0) or the previous SkipLayerNormalization
//                  a, present_i = Attention(x, c_attn, mask, past_i)   (unidirectional)
//                  y, r = SkipLayerNormalization(MatMul(a, c_proj), residual, ln_2, bias)
//                  m = MatMul(FastGelu(MatMul(y, c_fc), bias), mlp.c_proj)
//                  next x, next residual = SkipLayerNormalization(m, r, next ln_1 or ln_f, bias)
//   logits = MatMul(final, wte^T)     (the LM head is tied to wte)
//   outputs logits [B, S, vocab], present_i [2, B, N, P + S, d]
// The masks' filter value is the float32 minimum, as transformers' GPT-2 uses. -p fp16 stores the
// weights and runs the activations, past and present in float16 (logits cast back to float32).
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "convert/safetensors.h"
#include "fusions/fusions.h"

namespace gpt2 {
namespace {

struct Config {
  int64_t layers = 0, heads = 0, hidden = 0, vocab = 0, positions = 0, inner = 0;
  double eps = 1e-5;
  std::string activation = "gelu_new";
};

Config read_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) tfh::sdk::fail(path + ": cannot read (a checkpoint directory holds config.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    tfh::sdk::fail(path + ": not JSON: " + e.what());
  }
  Config c;
  auto need = [&](const char* key) -> int64_t {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
      tfh::sdk::fail(path + ": '" + key + "' must be a positive integer");
    return j[key].get<int64_t>();
  };
  if (j.value("model_type", std::string("gpt2")) != "gpt2")
    tfh::sdk::fail(path + ": model_type '" + j["model_type"].get<std::string>() +
                   "' is not gpt2");
  c.layers = need("n_layer");
  c.heads = need("n_head");
  c.hidden = need("n_embd");
  c.vocab = need("vocab_size");
  c.positions = need("n_positions");
  c.inner = j.contains("n_inner") && j["n_inner"].is_number_integer() ? j["n_inner"].get<int64_t>()
                                                                       : 4 * c.hidden;
  c.eps = j.value("layer_norm_epsilon", 1e-5);
  c.activation = j.value("activation_function", std::string("gelu_new"));
  if (c.hidden % c.heads)
    tfh::sdk::fail(path + ": n_embd " + std::to_string(c.hidden) + " is not a multiple of n_head " +
                   std::to_string(c.heads));
  if (c.activation != "gelu_new" && c.activation != "gelu_fast" &&
      c.activation != "gelu_pytorch_tanh")
    tfh::sdk::fail(path + ": activation_function '" + c.activation +
                   "' is not supported (the tanh forms: gelu_new, gelu_fast, gelu_pytorch_tanh)");
  if (!j.value("scale_attn_weights", true) || j.value("scale_attn_by_inverse_layer_idx", false))
    tfh::sdk::fail(path + ": only scale_attn_weights = true and scale_attn_by_inverse_layer_idx = "
                   "false are supported");
  return c;
}

}  // namespace

size_t build_from_checkpoint(tfh::GraphView g, const tfh::ParamsView& p) {
  using tfh::Attr;
  using tfh::Tensor;
  using tfh::ValueView;
  const std::string dir = p.get_string("checkpoint");
  if (dir.empty()) tfh::sdk::fail("gpt2.from_checkpoint: no checkpoint directory given");
  const std::string precision = p.get_string("precision");
  if (precision != "fp32" && precision != "fp16")
    tfh::sdk::fail("gpt2.from_checkpoint: precision '" + precision + "': fp32 or fp16");
  // fp16: weights, activations and the past/present tensors in float16 (tfhost's kernels keep
  // LayerNorm, softmax and GEMM accumulation in float32); the logits are cast back to float32.
  const bool half = precision == "fp16";
  const TfhDataType act = half ? TFH_TYPE_FLOAT16 : TFH_TYPE_FLOAT;
  const Config c = read_config(dir + "/config.json");
  const SafeTensorsFile st(dir + "/model.safetensors");
  // GPT2LMHeadModel saves "transformer.*", GPT2Model the bare names.
  const std::string pre = st.find("transformer.wte.weight") ? "transformer." : "";
  const int64_t H = c.hidden, d = c.hidden / c.heads;

  g.set_opset("", 17);
  g.set_opset("com.microsoft", 1);
  size_t changed = 0;
  auto as_tensor = [&](const std::vector<int64_t>& shape, const std::vector<float>& f) {
    if (!half) return Tensor::from<float>(shape, f);
    std::vector<tfh::Float16> h(f.size());
    for (size_t i = 0; i < f.size(); ++i) h[i] = tfh::to_float16(f[i]);
    return Tensor::from<tfh::Float16>(shape, h);
  };
  auto weight = [&](const std::string& name, const std::vector<int64_t>& shape) {
    ValueView v = g.add_initializer(name, as_tensor(shape, st.floats(pre + name, shape)));
    ++changed;
    return v;
  };
  auto node = [&](const std::string& op, const std::string& domain,
                  const std::vector<ValueView>& ins, const std::vector<std::string>& outs,
                  const std::string& name, const std::vector<Attr>& attrs = {}) {
    tfh::NodeView n = g.add_node(op, domain, ins, outs, name);
    for (const Attr& a : attrs) a.apply(n);
    ++changed;
    return n;
  };

  const ValueView ids = g.add_input("input_ids", TFH_TYPE_INT64, {-1, -1}, {"batch_size", "seq_len"});
  const ValueView pos =
      g.add_input("position_ids", TFH_TYPE_INT64, {-1, -1}, {"batch_size", "seq_len"});
  const ValueView mask =
      g.add_input("attention_mask", TFH_TYPE_INT64, {-1, -1}, {"batch_size", "total_seq_len"});
  std::vector<ValueView> past;
  for (int64_t i = 0; i < c.layers; ++i)
    past.push_back(g.add_input("past_" + std::to_string(i), act,
                               {2, -1, c.heads, -1, d},
                               {"", "batch_size", "", "past_seq_len", ""}));

  const ValueView wte = weight("wte.weight", {c.vocab, H});
  const ValueView wpe = weight("wpe.weight", {c.positions, H});
  tfh::NodeView tok = node("Gather", "", {wte, ids}, {"wte_out"}, "wte");
  tfh::NodeView posn = node("Gather", "", {wpe, pos}, {"wpe_out"}, "wpe");
  ValueView residual = node("Add", "", {tok.output(0), posn.output(0)}, {"embeddings"}, "embed").output(0);
  ValueView mask32 = node("Cast", "", {mask}, {"attention_mask_int32"}, "mask_int32",
                          {Attr("to", int64_t{TFH_TYPE_INT32})})
                         .output(0);
  const double filter = std::numeric_limits<float>::lowest();
  ValueView x;
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string L = "h." + std::to_string(i) + ".";
    if (i == 0)
      x = node("LayerNormalization", "",
               {residual, weight(L + "ln_1.weight", {H}), weight(L + "ln_1.bias", {H})},
               {L + "ln_1_out"}, L + "ln_1", {Attr("axis", int64_t{-1}), Attr("epsilon", c.eps)})
              .output(0);
    tfh::NodeView att = node(
        "Attention", "com.microsoft",
        {x, weight(L + "attn.c_attn.weight", {H, 3 * H}), weight(L + "attn.c_attn.bias", {3 * H}),
         mask32, past[static_cast<size_t>(i)]},
        {L + "attn_out", "present_" + std::to_string(i)}, L + "attn",
        {Attr("num_heads", c.heads), Attr("unidirectional", int64_t{1}),
         Attr("mask_filter_value", filter)});
    ValueView proj = node("MatMul", "", {att.output(0), weight(L + "attn.c_proj.weight", {H, H})},
                          {L + "attn_proj"}, L + "attn.c_proj")
                         .output(0);
    tfh::NodeView ln2 = node("SkipLayerNormalization", "com.microsoft",
                             {proj, residual, weight(L + "ln_2.weight", {H}),
                              weight(L + "ln_2.bias", {H}), weight(L + "attn.c_proj.bias", {H})},
                             {L + "ln_2_out", "", "", L + "residual_1"}, L + "ln_2",
                             {Attr("epsilon", c.eps)});
    ValueView fc = node("MatMul", "", {ln2.output(0), weight(L + "mlp.c_fc.weight", {H, c.inner})},
                        {L + "fc"}, L + "mlp.c_fc")
                       .output(0);
    ValueView act = node("FastGelu", "com.microsoft", {fc, weight(L + "mlp.c_fc.bias", {c.inner})},
                         {L + "gelu"}, L + "mlp.act")
                        .output(0);
    ValueView out = node("MatMul", "", {act, weight(L + "mlp.c_proj.weight", {c.inner, H})},
                         {L + "mlp_out"}, L + "mlp.c_proj")
                        .output(0);
    const bool last = i + 1 == c.layers;
    const std::string next = last ? "ln_f." : "h." + std::to_string(i + 1) + ".ln_1.";
    tfh::NodeView skip = node(
        "SkipLayerNormalization", "com.microsoft",
        {out, ln2.output(3), weight(next + "weight", {H}), weight(next + "bias", {H}),
         weight(L + "mlp.c_proj.bias", {H})},
        last ? std::vector<std::string>{"final_hidden"}
             : std::vector<std::string>{next + "out", "", "", L + "residual_2"},
        last ? "ln_f" : next.substr(0, next.size() - 1), {Attr("epsilon", c.eps)});
    x = skip.output(0);
    if (!last) residual = skip.output(3);
  }
  // The LM head is tied to wte: its transpose, as a [H, vocab] MatMul weight.
  std::vector<float> head(static_cast<size_t>(H * c.vocab));
  {
    const std::vector<float> e = st.floats(pre + "wte.weight", {c.vocab, H});
    for (int64_t v = 0; v < c.vocab; ++v)
      for (int64_t k = 0; k < H; ++k) head[k * c.vocab + v] = e[v * H + k];
  }
  ValueView lm = g.add_initializer("lm_head.weight", as_tensor({H, c.vocab}, head));
  ValueView logits = node("MatMul", "", {x, lm}, {half ? "logits_fp16" : "logits"}, "lm_head").output(0);
  if (half)
    logits = node("Cast", "", {logits}, {"logits"}, "logits_float32",
                  {Attr("to", int64_t{TFH_TYPE_FLOAT})})
                 .output(0);
  logits.set_type(TFH_TYPE_FLOAT, {tfh::Dim{-1, "batch_size"}, tfh::Dim{-1, "seq_len"},
                                   tfh::Dim{c.vocab, ""}});
  g.add_output(logits);
  for (int64_t i = 0; i < c.layers; ++i) {
    ValueView present = g.find("present_" + std::to_string(i));
    present.set_type(act, {tfh::Dim{2, ""}, tfh::Dim{-1, "batch_size"},
                                      tfh::Dim{c.heads, ""}, tfh::Dim{-1, "total_seq_len"},
                                      tfh::Dim{d, ""}});
    g.add_output(present);
  }
  g.topological_sort();
  return changed;
}

}  // namespace gpt2
