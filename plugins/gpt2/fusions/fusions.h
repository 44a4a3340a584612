// The gpt2 plugin's fusions (one file each; the generic ones come from plugins/common).
#pragma once

#include "common_fusions.h"

namespace gpt2 {

// Reshape(Gemm(Reshape(x, [-1, K]), W, b), [.., N]) => Add(MatMul(x, W), b).
size_t fuse_gemm_reshape(tfh::GraphView g);

// The causal self-attention block => Attention (unidirectional, past/present) or, with separate
// past keys and values, MultiHeadAttention.
size_t fuse_attention(tfh::GraphView g, const tfh::ParamsView& p);

// gpt2.shared_kv_cache (shared_kv_cache.cc): Attention nodes with past/present graph I/O get one
// buffer for both (past_present_share_buffer, a past_sequence_length input); not in the preset.
size_t share_kv_cache(tfh::GraphView g);

// gpt2.inputs (inputs.cc): batched-generation dummy inputs with past and left padding.
void generate_inputs(tfh::GraphView g, const tfh::ParamsView& p, uint64_t seed,
                     tfh::TensorListView out);

// gpt2.from_checkpoint (convert/from_checkpoint.cc): builds the fused model with past state from a
// Hugging Face checkpoint directory into the empty graph `g`.
size_t build_from_checkpoint(tfh::GraphView g, const tfh::ParamsView& p);

// gpt2.cpu.DecodeAttention (kernels/decode_attention.cc): Attention for one new token over a
// past, above tfhost's shared kernel; every other case is handed on to it.
extern const TfhKernelDesc kDecodeAttention;

// gpt2.report: plugin_common::report with GPT-2's rule (per layer one Attention or
// MultiHeadAttention and one FastGelu; no ReduceMean, Softmax or Tanh left).
inline size_t report_gpt2(tfh::GraphView g) {
  static const plugin_common::ReportRule kRule{
      "gpt2", {"Attention", "MultiHeadAttention"}, false, {"ReduceMean", "Tanh", "Erf"}};
  return plugin_common::report(g, kRule);
}

}  // namespace gpt2
