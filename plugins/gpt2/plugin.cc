// The gpt2 plugin: what `onnxruntime.transformers.optimizer --model_type gpt2` does, for GPT-2
// and DistilGPT2 exports (convert_to_onnx's past layout, Hugging Face's separate key/value past,
// no past). Each fusion is usable alone from a config; the model type `gpt2` runs them in order.
#include <tfhost/plugin.hpp>

#include "fusions/fusions.h"

namespace {

constexpr TfhFusionDesc kGemmReshape = tfh::fusion(
    "gpt2.gemm_reshape",
    "Reshape(Gemm(Reshape(x, [-1, K]), W, b), [.., N]) (GPT-2's Conv1D) => Add(MatMul(x, W), b)",
    "0.1.0", "", "MatMul", tfh::wrap_pass<gpt2::fuse_gemm_reshape>);
constexpr TfhFusionDesc kLayerNorm = tfh::fusion(
    "gpt2.layer_norm",
    "ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add over the last axis => LayerNormalization",
    "0.1.0", "", "LayerNormalization", tfh::wrap_pass<plugin_common::fuse_layer_norm>);
constexpr TfhFusionDesc kSkipLayerNorm = tfh::fusion(
    "gpt2.skip_layer_norm",
    "LayerNormalization(Add([Add(x, bias)], residual)) => com.microsoft.SkipLayerNormalization "
    "(the sum as 4th output: GPT-2's residual stream reads it)",
    "0.1.0", "com.microsoft", "SkipLayerNormalization",
    tfh::wrap_pass<plugin_common::fuse_skip_layer_norm>, plugin_common::kSkipLayerNormParams);
constexpr TfhFusionDesc kEmbedLayerNorm = tfh::fusion(
    "gpt2.embed_layer_norm",
    "LayerNormalization(Gather(wte, ids) + Gather(wpe, positions)) => EmbedLayerNormalization "
    "(the sum as embedding_sum: the residual stream reads it)",
    "0.1.0", "com.microsoft", "EmbedLayerNormalization",
    tfh::wrap_pass<plugin_common::fuse_embed_layer_norm>);
constexpr TfhFusionDesc kFastGelu = tfh::fusion(
    "gpt2.fast_gelu", "0.5x(1 + Tanh(sqrt(2/pi)(x + 0.044715x^3))) => com.microsoft.FastGelu",
    "0.1.0", "com.microsoft", "FastGelu", tfh::wrap_pass<plugin_common::fuse_fast_gelu>);
constexpr TfhFusionDesc kBiasGelu = tfh::fusion(
    "gpt2.bias_gelu", "FastGelu(x + bias) => FastGelu(x, bias)", "0.1.0", "com.microsoft",
    "FastGelu", tfh::wrap_pass<plugin_common::fuse_bias_gelu>);
constexpr TfhFusionDesc kGemmFastGelu = tfh::fusion(
    "gpt2.gemm_fast_gelu", plugin_common::kGemmFastGeluHelp, "0.1.0", "com.microsoft",
    "GemmFastGelu", tfh::wrap_pass<plugin_common::fuse_gemm_fast_gelu>);
constexpr TfhParamDesc kAttentionParams[] = {
    tfh::param("num_heads", TFH_PARAM_INT, "0", "attention heads (0: read from the graph)"),
    tfh::param("hidden_size", TFH_PARAM_INT, "0",
               "hidden size (0: any; otherwise only blocks of that size are fused)"),
};
constexpr TfhFusionDesc kAttention = tfh::fusion(
    "gpt2.attention",
    "causal self-attention (Split QKV, past Concat, causal Where, Softmax) => Attention "
    "(unidirectional, past/present), or MultiHeadAttention for separate past key/value",
    "0.1.0", "com.microsoft", "Attention", tfh::wrap_pass<gpt2::fuse_attention>,
    kAttentionParams);
constexpr TfhFusionDesc kSharedKvCache = tfh::fusion(
    "gpt2.shared_kv_cache",
    "after gpt2.attention: each layer's past_i/present_i become one buffer [2, B, N, "
    "max_sequence_length, D] updated in place (Attention past_present_share_buffer, new int32 "
    "input past_sequence_length [1]); decoding then copies no cache and keeps its shapes "
    "(one CUDA graph for every step). Opt-in, for GPU decoding: ONNX Runtime's CPU Attention "
    "refuses the attribute (its CUDA one implements it)",
    "0.1.0", "com.microsoft", "Attention", tfh::wrap_pass<gpt2::share_kv_cache>);
constexpr TfhFusionDesc kReport = tfh::fusion(
    "gpt2.report",
    "say whether the model is fully optimized (per layer 1 Attention/MultiHeadAttention and 1 "
    "FastGelu, 2+ (Skip)LayerNormalization; no ReduceMean/Softmax/Tanh) and what is left",
    "0.1.0", "", "", tfh::wrap_pass<gpt2::report_gpt2>);
const TfhFusionDesc* const kFusions[] = {&kGemmReshape, &kLayerNorm, &kSkipLayerNorm,
                                         &kEmbedLayerNorm, &kAttention, &kFastGelu,
                                         &kBiasGelu, &kGemmFastGelu, &kSharedKvCache, &kReport};

// Shape inference first: the Reshape checks read value shapes.
const char* const kPreset[] = {"core.repair_duplicate_definitions", "core.remove_identity",
                               "core.eliminate_dead_nodes",         "core.shape_inference",
                               "gpt2.gemm_reshape",                 "gpt2.layer_norm",
                               "gpt2.skip_layer_norm",              "gpt2.embed_layer_norm",
                               "gpt2.attention",
                               "gpt2.fast_gelu",
                               "gpt2.bias_gelu",                    "core.eliminate_dead_nodes",
                               "core.remove_unused_initializers",   "core.topological_sort",
                               "gpt2.report"};
constexpr TfhModelTypeDesc kGpt2 = tfh::model_type(
    "gpt2", "GPT-2 / DistilGPT2 exports with or without past state", kPreset, "gpt2.inputs");
const TfhModelTypeDesc* const kModelTypes[] = {&kGpt2};

constexpr TfhParamDesc kInputParams[] = {
    tfh::param("batch_size", TFH_PARAM_INT, "1", "rows (the exporter's batch dims)"),
    tfh::param("sequence_length", TFH_PARAM_INT, "8", "new tokens per row"),
    tfh::param("past_sequence_length", TFH_PARAM_INT, "0",
               "tokens already in the past key/value tensors (the mask covers past + new)"),
};
constexpr TfhInputGenDesc kInputs = tfh::input_generator(
    "gpt2.inputs",
    "batched-generation inputs: token ids, a left-padded attention mask over past + new tokens, "
    "position ids derived from it, N(0, 1) past tensors in either layout",
    "0.1.0", tfh::wrap_generator<gpt2::generate_inputs>, kInputParams, 1e-4, 2e-2);
const TfhInputGenDesc* const kInputGens[] = {&kInputs};

constexpr TfhParamDesc kCheckpointParams[] = {
    tfh::param("checkpoint", TFH_PARAM_STRING, "",
               "Hugging Face checkpoint directory: config.json + model.safetensors"),
    tfh::param("precision", TFH_PARAM_STRING, "fp32",
               "fp32, or fp16 (weights, activations, past and present in float16)"),
};
constexpr TfhConverterDesc kFromCheckpoint = tfh::converter(
    "gpt2.from_checkpoint",
    "the fused GPT-2 with past state (convert_to_onnx's I/O layout) built from a checkpoint "
    "directory, no Python or PyTorch: tfhost convert gpt2 --checkpoint DIR --output OUT",
    "0.1.0", true, tfh::wrap_pass<gpt2::build_from_checkpoint>, kCheckpointParams);
const TfhConverterDesc* const kConverters[] = {&kFromCheckpoint};

const TfhKernelDesc* const kKernels[] = {&gpt2::kDecodeAttention};

constexpr TfhPluginInfo kInfo =
    tfh::PluginInfo("gpt2", "0.1.0", "same as tfhost", "fusions for GPT-2-family exports")
        .fusions(kFusions)
        .converters(kConverters)
        .kernels(kKernels)
        .input_generators(kInputGens)
        .model_types(kModelTypes);

}  // namespace

TFH_PLUGIN(kInfo)
