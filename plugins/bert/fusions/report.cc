// bert.report: after the fusions, say what was fused and whether the model is fully optimized.
//
// Fully optimized means: one EmbedLayerNormalization; one Attention per layer; one Gelu-family op
// (Gelu, BiasGelu, FastGelu) per layer; at least two LayerNormalization + SkipLayerNormalization
// per layer; no ReduceMean, Softmax or Erf left. A layer is an Attention or a Softmax that is
// still there (every self-attention block has exactly one). What falls short is reported as a
// warning naming the fusion that did not match and the nodes it left, never silently.
#include <map>
#include <sstream>

#include "fusions/fusions.h"

namespace bert {
namespace {

// "a, b, c and 4 more"
std::string names(const std::vector<std::string>& v, size_t shown = 4) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < shown; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > shown) s += " and " + std::to_string(v.size() - shown) + " more";
  return s;
}

}  // namespace

size_t report_bert(tfh::GraphView g) {
  std::map<std::string, std::vector<std::string>> by_op;  // op type -> node names
  for (const tfh::NodeView& n : g.nodes()) {
    std::string name(n.name());
    if (name.empty()) name = "(unnamed " + std::string(n.op_type()) + ")";
    by_op[std::string(n.op_type())].push_back(name);
  }
  auto count = [&](const char* op) { return static_cast<int64_t>(by_op[op].size()); };
  const int64_t attention = count("Attention"), softmax = count("Softmax");
  const int64_t layers = attention + softmax;
  const int64_t gelus = count("Gelu") + count("BiasGelu") + count("FastGelu");
  const int64_t norms = count("LayerNormalization") + count("SkipLayerNormalization");
  const int64_t embed = count("EmbedLayerNormalization");

  std::ostringstream stats;
  stats << "EmbedLayerNormalization " << embed << ", Attention " << attention
        << ", SkipLayerNormalization " << count("SkipLayerNormalization") << ", LayerNormalization "
        << count("LayerNormalization") << ", Gelu " << count("Gelu") << ", BiasGelu "
        << count("BiasGelu") << ", FastGelu " << count("FastGelu");

  std::vector<std::string> gaps;
  if (layers == 0)
    gaps.push_back("no self-attention found (no Attention, no Softmax): not a BERT-family model?");
  if (embed != 1)
    gaps.push_back(embed == 0 ? "no EmbedLayerNormalization (bert.embed_layer_norm)" +
                                    (by_op["Gather"].empty()
                                         ? std::string()
                                         : " (embedding Gathers left: " + names(by_op["Gather"]) + ")")
                              : std::to_string(embed) + " EmbedLayerNormalization, expected 1");
  if (softmax)
    gaps.push_back(std::to_string(softmax) + " of " + std::to_string(layers) +
                   " self-attention blocks not fused by bert.attention (Softmax left: " +
                   names(by_op["Softmax"]) + ")");
  if (count("ReduceMean"))
    gaps.push_back("LayerNorm not fused by bert.layer_norm (ReduceMean left: " +
                   names(by_op["ReduceMean"]) + ")");
  if (count("Erf"))
    gaps.push_back("Gelu not fused by bert.gelu (Erf left: " + names(by_op["Erf"]) + ")");
  if (layers && gelus != layers) {
    std::string s = "Gelu-family ops: " + std::to_string(gelus) + " for " +
                    std::to_string(layers) + " layers";
    if (count("Tanh") && !count("Erf")) s += " (Tanh left: " + names(by_op["Tanh"]) + "; bert.fast_gelu)";
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

}  // namespace bert
