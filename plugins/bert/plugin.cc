// The bert plugin: what `onnxruntime.transformers.optimizer --model_type bert` does, for PyTorch
// exports of BERT, DistilBERT, RoBERTa and ALBERT. Each fusion is usable alone from a config
// (`- pass: bert.gelu`); the model type `bert` runs them in order after the core cleanup.
#include <tfhost/plugin.hpp>

#include "fusions/fusions.h"
#ifdef BERT_HAVE_CUDA
#include "kernels/embed_layer_norm_cuda.h"
#endif

namespace {

constexpr TfhFusionDesc kLayerNorm = tfh::fusion(
    "bert.layer_norm",
    "ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add over the last axis => LayerNormalization",
    "0.1.0", "", "LayerNormalization", tfh::wrap_pass<bert::fuse_layer_norm>);
constexpr TfhFusionDesc kGelu = tfh::fusion(
    "bert.gelu", "x * 0.5 * (1 + Erf(x / sqrt 2)), either order => com.microsoft.Gelu", "0.1.0",
    "com.microsoft", "Gelu", tfh::wrap_pass<bert::fuse_gelu>);
constexpr TfhFusionDesc kFastGelu = tfh::fusion(
    "bert.fast_gelu", "0.5x(1 + Tanh(sqrt(2/pi)(x + 0.044715x^3))) => com.microsoft.FastGelu",
    "0.1.0", "com.microsoft", "FastGelu", tfh::wrap_pass<bert::fuse_fast_gelu>);
constexpr TfhFusionDesc kBiasGelu = tfh::fusion(
    "bert.bias_gelu", "Gelu(x + bias) => BiasGelu(x, bias); FastGelu(x + bias) => FastGelu(x, bias)",
    "0.1.0", "com.microsoft", "BiasGelu", tfh::wrap_pass<bert::fuse_bias_gelu>);
constexpr TfhFusionDesc kGeluApproximation = tfh::fusion(
    "bert.gelu_approximation",
    "Gelu(x) => FastGelu(x), BiasGelu(x, bias) => FastGelu(x, bias): the tanh form (each "
    "activation moves by at most 4.7e-4; --enable_gelu_approximation, not in the preset)",
    "0.1.0", "com.microsoft", "FastGelu", tfh::wrap_pass<plugin_common::approximate_gelu>);
constexpr TfhFusionDesc kGemmFastGelu = tfh::fusion(
    "bert.gemm_fast_gelu", plugin_common::kGemmFastGeluHelp, "0.1.0", "com.microsoft",
    "GemmFastGelu", tfh::wrap_pass<plugin_common::fuse_gemm_fast_gelu>);
constexpr TfhFusionDesc kSkipLayerNorm = tfh::fusion(
    "bert.skip_layer_norm",
    "LayerNormalization(Add([Add(x, bias)], skip)) => com.microsoft.SkipLayerNormalization",
    "0.1.0", "com.microsoft", "SkipLayerNormalization",
    tfh::wrap_pass<bert::fuse_skip_layer_norm>, plugin_common::kSkipLayerNormParams);
constexpr TfhFusionDesc kEmbedLayerNorm = tfh::fusion(
    "bert.embed_layer_norm",
    "word (+ segment) + position embedding Gathers -> LayerNorm => EmbedLayerNormalization",
    "0.1.0", "com.microsoft", "EmbedLayerNormalization",
    tfh::wrap_pass<bert::fuse_embed_layer_norm>);
// Named like optimize's flags, which reach the pass through them.
constexpr TfhParamDesc kAttentionParams[] = {
    tfh::param("use_mask_index", TFH_PARAM_BOOL, "false",
               "mask as 1-D per-row lengths (ReduceSum of the 2-D mask; right padding only)"),
    tfh::param("use_raw_attention_mask", TFH_PARAM_BOOL, "false",
               "mask as the raw 2-D attention mask (the default already; exact for any padding)"),
    tfh::param("no_attention_mask", TFH_PARAM_BOOL, "false",
               "no mask input (only for models whose inputs are never padded)"),
    tfh::param("num_heads", TFH_PARAM_INT, "0", "attention heads (0: read from the graph)"),
    tfh::param("hidden_size", TFH_PARAM_INT, "0",
               "hidden size (0: any; otherwise only blocks of that size are fused)"),
};
constexpr TfhFusionDesc kAttention = tfh::fusion(
    "bert.attention",
    "Q/K/V MatMul+Add, Reshape, Transpose, scaled QK^T + mask, Softmax, .V => Attention",
    "0.1.0", "com.microsoft", "Attention", tfh::wrap_pass<bert::fuse_attention>,
    kAttentionParams);
// Changes nothing: logs the fused-op statistics, and a warning per fusion that fell short.
constexpr TfhFusionDesc kReport = tfh::fusion(
    "bert.report",
    "say whether the model is fully optimized (1 EmbedLayerNormalization, per layer 1 Attention, "
    "1 Gelu-family op, 2+ (Skip)LayerNormalization; no ReduceMean/Softmax/Erf) and what is left",
    "0.1.0", "", "", tfh::wrap_pass<bert::report_bert>);
const TfhFusionDesc* const kFusions[] = {
    &kLayerNorm,      &kGelu,      &kFastGelu, &kBiasGelu, &kGeluApproximation, &kGemmFastGelu,
    &kSkipLayerNorm, &kEmbedLayerNorm, &kAttention, &kReport};

// Shape inference first: the residual and bias checks read value shapes.
const char* const kPreset[] = {"core.repair_duplicate_definitions", "core.remove_identity",
                               "core.eliminate_dead_nodes",         "core.shape_inference",
                               "bert.layer_norm",                   "bert.skip_layer_norm",
                               "bert.embed_layer_norm",             "bert.attention",
                               "bert.gelu",
                               "bert.fast_gelu",                    "bert.bias_gelu",
                               "core.eliminate_dead_nodes",         "core.remove_unused_initializers",
                               "core.topological_sort",           "bert.report"};
constexpr TfhModelTypeDesc kBert = tfh::model_type(
    "bert", "PyTorch BERT, DistilBERT, RoBERTa, ALBERT exports",
    kPreset, "bert.inputs");
const TfhModelTypeDesc* const kModelTypes[] = {&kBert};

constexpr TfhParamDesc kInputParams[] = {
    tfh::param("batch_size", TFH_PARAM_INT, "1", "rows (the exporter's batch dims)"),
    tfh::param("sequence_length", TFH_PARAM_INT, "8", "tokens per row (the sequence dims)"),
};
constexpr TfhInputGenDesc kInputs = tfh::input_generator(
    "bert.inputs",
    "token ids within the vocabulary (padding id on padded positions), segment ids, a "
    "right-padded attention mask, position ids; roles found from the graph, then from the names",
    "0.1.0", tfh::wrap_generator<bert::generate_inputs>, kInputParams, 1e-4, 2e-2);
const TfhInputGenDesc* const kInputGens[] = {&kInputs};

#ifdef BERT_HAVE_CUDA
const TfhKernelDesc* const kKernels[] = {&bert::cuda::kEmbedLayerNormCuda};
#endif

constexpr TfhPluginInfo kInfo =
    tfh::PluginInfo("bert", "0.1.0", "same as tfhost", "fusions for BERT-family exports")
        .fusions(kFusions)
#ifdef BERT_HAVE_CUDA
        .kernels(kKernels)
#endif
        .input_generators(kInputGens)
        .model_types(kModelTypes);

}  // namespace

TFH_PLUGIN(kInfo)
