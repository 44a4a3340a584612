// gpt2.shared_kv_cache: one key/value buffer per layer for past and present, updated in place
// (com.microsoft.Attention's past_present_share_buffer), so that decoding does not copy the
// whole cache into a new present at every step, and every step has the same shapes (one CUDA
// graph serves them all).
//
// Each Attention that reads a graph input past_i [2, B, N, P, D] (read by nothing else) and
// writes a graph output present_i becomes:
//   past_i    [2, B, N, max_sequence_length, D]   the buffer (rows after the past are free)
//   present_i [2, B, N, max_sequence_length, D]   the same buffer, new keys/values at rows P..
//   past_sequence_length  int32 [1]               a new graph input: P, shared by every layer
// The node keeps ONNX Runtime's Attention schema (its CUDA kernel implements the attribute, its
// CPU kernel refuses it). The attention mask stays [B, P + S] (what ONNX Runtime reads); tfhost's
// Attention kernels also take it fixed-width, [B, max_sequence_length], the first P + S entries
// counting, which keeps every decoding step's shapes equal.
#include <string>
#include <vector>

#include "fusions/fusions.h"

namespace gpt2 {
namespace {

constexpr const char* kPastLength = "past_sequence_length";
constexpr const char* kMaxLength = "max_sequence_length";

// past_i/present_i with their sequence dimension (3) made the symbol max_sequence_length.
void widen_sequence(tfh::ValueView v) {
  std::vector<tfh::Dim> shape = v.shape();
  if (shape.size() != 5) return;  // unknown shape: nothing to say
  shape[3] = tfh::Dim{-1, kMaxLength};
  v.set_type(v.elem_type(), shape);
}

}  // namespace

size_t share_kv_cache(tfh::GraphView g) {
  std::vector<tfh::NodeView> nodes;
  for (tfh::NodeView n : g.nodes()) {
    if (!n.is("Attention", "com.microsoft") || n.attr_int("past_present_share_buffer", 0) != 0)
      continue;
    const std::vector<tfh::ValueView> ins = n.inputs(), outs = n.outputs();
    if (ins.size() < 5 || !ins[4] || outs.size() < 2 || !outs[1]) continue;
    const tfh::ValueView past = ins[4], present = outs[1];
    if (!past.is_graph_input() || past.num_consumers() != 1 || past.is_graph_output() ||
        !present.is_graph_output())
      continue;
    if (ins.size() > 6 && ins[6]) continue;  // a past_sequence_length of its own already
    nodes.push_back(n);
  }
  if (nodes.empty()) {
    tfh::log(TFH_LOG_WARNING,
             "shared_kv_cache: no Attention reads a past graph input (read by it alone) and "
             "writes a present graph output: nothing to share (run it after gpt2.attention, on "
             "a model with past state)");
    return 0;
  }

  tfh::ValueView length;
  for (tfh::ValueView v : g.inputs())
    if (v.name() == kPastLength) length = v;
  if (length && (length.elem_type() != TFH_TYPE_INT32 || length.rank() != 1 ||
                 length.dim(0).value != 1))
    tfh::sdk::fail(std::string("gpt2.shared_kv_cache: the graph input '") + kPastLength +
                   "' exists and is not int32 [1]");
  if (!length) length = g.add_input(kPastLength, TFH_TYPE_INT32, {1});

  for (tfh::NodeView n : nodes) {
    n.set_attr("past_present_share_buffer", int64_t{1});
    g.set_input(n, 6, length);
    widen_sequence(n.input(4));
    widen_sequence(n.output(1));
  }
  return nodes.size();
}

}  // namespace gpt2
