// report (bert.report, gpt2.report): after the fusions, say what was fused and whether the
// model is fully optimized by its family's rule.
//
// Fully optimized means: one EmbedLayerNormalization (where the family requires it); one fused
// attention op (Attention or MultiHeadAttention) per layer; one Gelu-family op (Gelu, BiasGelu,
// FastGelu, GemmFastGelu) per layer; at least two LayerNormalization + SkipLayerNormalization per
// layer; none of the family's leftover ops (ReduceMean, Softmax, Erf, ...) left. A layer is a
// fused attention op or a Softmax still there (every self-attention block has exactly one). What
// falls short is reported as a warning naming the fusion that did not match and the nodes it
// left, never silently.
#include <algorithm>
#include <map>
#include <sstream>

#include "common_fusions.h"

namespace plugin_common {

namespace {

// "a, b, c and 4 more"
std::string names(const std::vector<std::string>& v, size_t shown = 4) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < shown; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > shown) s += " and " + std::to_string(v.size() - shown) + " more";
  return s;
}

}  // namespace

size_t report(tfh::GraphView g, const ReportRule& rule) {
  std::map<std::string, std::vector<std::string>> by_op;  // op type -> node names
  for (const tfh::NodeView& n : g.nodes()) {
    std::string name(n.name());
    if (name.empty()) name = "(unnamed " + std::string(n.op_type()) + ")";
    by_op[std::string(n.op_type())].push_back(name);
  }
  auto count = [&](const std::string& op) { return static_cast<int64_t>(by_op[op].size()); };
  const std::string& f = rule.family;
  int64_t attention = 0;
  for (const std::string& op : rule.attention_ops) attention += count(op);
  const int64_t softmax = count("Softmax");
  const int64_t layers = attention + softmax;
  const int64_t gelus =
      count("Gelu") + count("BiasGelu") + count("FastGelu") + count("GemmFastGelu");
  const int64_t norms = count("LayerNormalization") + count("SkipLayerNormalization");
  const int64_t embed = count("EmbedLayerNormalization");

  std::ostringstream stats;
  if (rule.embed_required) stats << "EmbedLayerNormalization " << embed << ", ";
  for (const std::string& op : rule.attention_ops) stats << op << " " << count(op) << ", ";
  stats << "SkipLayerNormalization " << count("SkipLayerNormalization") << ", LayerNormalization "
        << count("LayerNormalization") << ", Gelu " << count("Gelu") << ", BiasGelu "
        << count("BiasGelu") << ", FastGelu " << count("FastGelu");
  if (count("GemmFastGelu")) stats << ", GemmFastGelu " << count("GemmFastGelu");

  std::vector<std::string> gaps;
  if (layers == 0)
    gaps.push_back("no self-attention found (no " + rule.attention_ops.front() +
                   ", no Softmax): not a " + f + "-family model?");
  if (rule.embed_required && embed != 1)
    gaps.push_back(embed == 0 ? "no EmbedLayerNormalization (" + f + ".embed_layer_norm)" +
                                    (by_op["Gather"].empty()
                                         ? std::string()
                                         : " (embedding Gathers left: " + names(by_op["Gather"]) + ")")
                              : std::to_string(embed) + " EmbedLayerNormalization, expected 1");
  if (softmax)
    gaps.push_back(std::to_string(softmax) + " of " + std::to_string(layers) +
                   " self-attention blocks not fused by " + f + ".attention (Softmax left: " +
                   names(by_op["Softmax"]) + ")");
  // Ops a fusion removes, and which fusion.
  static const char* const kLeftover[][3] = {{"ReduceMean", "LayerNorm", "layer_norm"},
                                             {"Erf", "Gelu", "gelu"},
                                             {"Tanh", "FastGelu", "fast_gelu"}};
  for (const auto& [op, what, pass] : kLeftover) {
    const bool listed = std::find(rule.leftover.begin(), rule.leftover.end(), op) != rule.leftover.end();
    if (listed && count(op))
      gaps.push_back(std::string(what) + " not fused by " + f + "." + pass + " (" + op +
                     " left: " + names(by_op[op]) + ")");
  }
  if (layers && gelus != layers) {
    std::string s = "Gelu-family ops: " + std::to_string(gelus) + " for " +
                    std::to_string(layers) + " layers";
    if (count("Tanh") && !count("Erf"))
      s += " (Tanh left: " + names(by_op["Tanh"]) + "; " + f + ".fast_gelu)";
    gaps.push_back(s);
  }
  if (layers && norms < 2 * layers)
    gaps.push_back("LayerNormalization + SkipLayerNormalization: " + std::to_string(norms) +
                   ", expected at least " + std::to_string(2 * layers) + " for " +
                   std::to_string(layers) + " layers");

  if (gaps.empty()) {
    tfh::log(TFH_LOG_INFO, "fully optimized (" + std::to_string(layers) + " layers): " + stats.str());
  } else {
    tfh::log(TFH_LOG_WARNING, "not fully optimized: " + stats.str());
    for (const std::string& gap : gaps) tfh::log(TFH_LOG_WARNING, "  " + gap);
  }
  return 0;
}

}  // namespace plugin_common
