// The bert plugin: what `onnxruntime.transformers.optimizer --model_type bert` does, for PyTorch
// exports of BERT, DistilBERT, RoBERTa and ALBERT. Each fusion is usable alone from a config
// (`- pass: bert.gelu`); the model type `bert` runs them in order after the core cleanup.
#include <tfhost/plugin.hpp>

#include "fusions/fusions.h"

namespace {

constexpr TfhFusionDesc kLayerNorm = tfh::fusion(
    "bert.layer_norm",
    "ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add over the last axis => LayerNormalization",
    "0.1.0", "", "LayerNormalization", tfh::wrap_pass<bert::fuse_layer_norm>);
constexpr TfhFusionDesc kGelu = tfh::fusion(
    "bert.gelu", "x * 0.5 * (1 + Erf(x / sqrt 2)), either order => com.microsoft.Gelu", "0.1.0",
    "com.microsoft", "Gelu", tfh::wrap_pass<bert::fuse_gelu>);
const TfhFusionDesc* const kFusions[] = {&kLayerNorm, &kGelu};

const char* const kPreset[] = {"core.repair_duplicate_definitions", "core.remove_identity",
                               "core.eliminate_dead_nodes",         "bert.layer_norm",
                               "bert.gelu",                         "core.remove_unused_initializers",
                               "core.topological_sort"};
constexpr TfhModelTypeDesc kBert = tfh::model_type(
    "bert", "PyTorch BERT, DistilBERT, RoBERTa, ALBERT exports (fusions being added: issue 4)",
    kPreset, "core.inputs");
const TfhModelTypeDesc* const kModelTypes[] = {&kBert};

constexpr TfhPluginInfo kInfo =
    tfh::PluginInfo("bert", "0.1.0", "same as tfhost", "fusions for BERT-family exports")
        .fusions(kFusions)
        .model_types(kModelTypes);

}  // namespace

TFH_PLUGIN(kInfo)
