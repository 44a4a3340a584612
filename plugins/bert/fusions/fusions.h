// The bert plugin's fusions (one file each; the generic ones come from plugins/common); each is
// a TfhFusionDesc apply through wrap_pass.
#pragma once

#include "common_fusions.h"

namespace bert {

using plugin_common::as_int32;
using plugin_common::dense_bias;
using plugin_common::fuse_bias_gelu;
using plugin_common::fuse_fast_gelu;
using plugin_common::fuse_gelu;
using plugin_common::fuse_layer_norm;
using plugin_common::fuse_skip_layer_norm;
using plugin_common::merge_duplicate_mask_ops;

using plugin_common::fuse_embed_layer_norm;
// The self-attention block (Q/K/V projections .. context Reshape) => com.microsoft.Attention.
size_t fuse_attention(tfh::GraphView g, const tfh::ParamsView& p);
// bert.report: plugin_common::report with the rule of the issue (one EmbedLayerNormalization,
// per layer one Attention and one Gelu-family op; no ReduceMean, Softmax or Erf left).
inline size_t report_bert(tfh::GraphView g) {
  static const plugin_common::ReportRule kRule{"bert", {"Attention"}, true, {"ReduceMean", "Erf"}};
  return plugin_common::report(g, kRule);
}

// bert.inputs (inputs.cc): dummy inputs by role (token ids, segment ids, mask, position ids).
void generate_inputs(tfh::GraphView g, const tfh::ParamsView& p, uint64_t seed,
                     tfh::TensorListView out);

}  // namespace bert
