// The bert plugin's fusions (one file each); each is a TfhFusionDesc apply through wrap_pass.
#pragma once

#include <tfhost/plugin.hpp>

namespace bert {

// ReduceMean/Sub/Pow/ReduceMean/Add(eps)/Sqrt/Div/Mul(gamma)/Add(beta) => LayerNormalization.
size_t fuse_layer_norm(tfh::GraphView g);
// Div(x, sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5) (and the Mul(0.5) first form) => Gelu.
size_t fuse_gelu(tfh::GraphView g);

}  // namespace bert
