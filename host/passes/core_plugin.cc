// The built-in "core" plugin: the same descriptor table a .so returns, filled with constant data
// (no static initialiser runs), whose apply functions call the host passes in core_passes.h.
#include "host/passes/core_plugin.h"

#include <tfhost/plugin.hpp>

#include <cstring>
#include <exception>
#include <iterator>

#include "host/passes/core_inputs.h"
#include "host/passes/core_passes.h"
#include "host/passes/float16.h"
#include "host/passes/float16_auto.h"
#include "host/plugin/registry.h"
#include "host/plugin/host_api.h"
#include "host/plugin/params.h"
#include "host/util/error.h"
#include "common_fusions.h"  // plugins/common: the family-independent fusions, SDK-only

namespace tfh::passes {
namespace {

bool param_bool(const TfhParams* p, const char* name, bool fallback) {
  const plugin::ParamValue* v = p ? plugin::Params::from_c(p)->find(name) : nullptr;
  return v ? v->b : fallback;
}

size_t run_remove_identity(ir::Model& m, const TfhParams* p) {
  return remove_identity(m, {param_bool(p, "dropout", true)});
}
size_t run_eliminate_dead_nodes(ir::Model& m, const TfhParams*) {
  return eliminate_dead_nodes(m.graph());
}
size_t run_remove_unused_initializers(ir::Model& m, const TfhParams* p) {
  return remove_unused_initializers(m.graph(), {param_bool(p, "prune_inputs", true)});
}
size_t run_repair_duplicate_definitions(ir::Model& m, const TfhParams*) {
  return repair_duplicate_definitions(m.graph());
}
size_t run_topological_sort(ir::Model& m, const TfhParams*) { return topological_sort(m.graph()); }
size_t run_input_int32(ir::Model& m, const TfhParams*) { return input_int32(m); }

const plugin::ParamValue* param(const TfhParams* p, const char* name) {
  return p ? plugin::Params::from_c(p)->find(name) : nullptr;
}
std::vector<std::string> param_strings(const TfhParams* p, const char* name) {
  const plugin::ParamValue* v = param(p, name);
  return v ? v->strings : std::vector<std::string>{};
}
double param_float(const TfhParams* p, const char* name, double fallback) {
  const plugin::ParamValue* v = param(p, name);
  return v ? v->f : fallback;
}
std::string param_string(const TfhParams* p, const char* name) {
  const plugin::ParamValue* v = param(p, name);
  return v ? v->s : std::string();
}

size_t run_constant_folding(ir::Model& m, const TfhParams* p) {
  const plugin::ParamValue* v = param(p, "max_bytes");
  TFH_CHECK(!v || v->i > 0, "core.constant_folding: max_bytes must be > 0");
  return constant_folding(m, v ? static_cast<size_t>(v->i) : size_t(64) << 20);
}

// The family-independent fusions of plugins/common, run through the SDK like a plugin's: the
// host hands the SDK its own table first.
template <TfhStatus* (*Wrapped)(TfhGraph*, const TfhParams*, size_t*)>
TfhStatus* sdk_apply(TfhGraph* graph, const TfhParams* params, size_t* n_changed) {
  tfh::sdk::set_host(plugin::host_api());
  tfh::sdk::plugin_name_slot() = "core";
  return Wrapped(graph, params, n_changed);
}

// core.float16 / core.bfloat16 (float16.h), with the automatic block list when asked.
template <int32_t Target>
size_t run_float(ir::Model& m, const TfhParams* p) {
  const bool bf16 = Target == onnx::TensorProto::BFLOAT16;
  const std::string pass = bf16 ? "core.bfloat16" : "core.float16";
  FloatConvertOptions o;
  o.target = Target;
  ir::Graph& g = m.graph();
  TFH_CHECK(!bf16 || m.opset("") >= 13, pass, ": the model imports ONNX opset ", m.opset(""),
            "; bfloat16 needs opset 13 or later (Cast and most ops take bfloat16 from 13 on)");
  if (const plugin::ParamValue* keep = param(p, "keep_io_types")) {
    if (keep->is_list_form) {
      for (const std::string& name : keep->strings) {
        const ir::Value* v = g.find(name);
        TFH_CHECK(v && (v->is_graph_input() || v->is_graph_output()), pass, ": keep_io_types names '",
                  name, "', which is not a graph input or output of the model");
        o.keep_io_names.insert(name);
      }
    } else {
      o.keep_io_all = keep->b;
    }
  }
  if (param_bool(p, "default_op_block_list", true))
    for (const std::string& op : default_float16_op_block_list()) o.op_block_list.insert(op);
  for (const std::string& op : param_strings(p, "op_block_list")) o.op_block_list.insert(op);
  for (const std::string& name : param_strings(p, "node_block_list")) {
    bool found = false;
    for (const auto& n : g.nodes())
      found = found || n->name() == name || (!n->outputs().empty() && n->outputs()[0] &&
                                              n->outputs()[0]->name() == name);
    TFH_CHECK(found, pass, ": node_block_list names '", name,
              "', which is no node of the model (nor a node's first output)");
    o.node_block_list.insert(name);
  }
  o.force_initializers =
      param_bool(p, bf16 ? "force_bf16_initializers" : "force_fp16_initializers", false);
  o.min_positive = param_float(p, "min_positive_val", 0);
  o.max_finite = param_float(p, "max_finite_val", 0);
  TFH_CHECK(o.min_positive >= 0 && o.max_finite >= 0, pass,
            ": min_positive_val and max_finite_val must be >= 0 (0 = the type's own limit)");
  m.infer_shapes(plugin::active_shape_hooks());  // element types of every value
  if (param_bool(p, "auto_block", false)) {
    AutoBlockOptions a;
    a.registry = plugin::Registry::active();
    a.inputs = param_string(p, "auto_block_inputs");
    a.model_type = param_string(p, "model_type");
    a.tolerance = param_float(p, "auto_block_tolerance", a.tolerance);
    TFH_CHECK(a.tolerance > 0, pass, ": auto_block_tolerance must be > 0");
    o.auto_blocked = find_float_blocks(m, o, a);
  }
  const FloatConvertReport r = convert_float(m, o);
  const TfhHostApi* h = plugin::host_api();
  h->log(TFH_LOG_INFO, "core", (pass + ": " + r.summary(bf16 ? "bfloat16" : "float16")).c_str());
  for (const auto& [node, why] : r.kept)
    h->log(TFH_LOG_DEBUG, "core", (pass + ": " + node + " stays float32: " + why).c_str());
  return r.changes();
}
// Contrib ops are typed through the hooks of the registry running this pass.
size_t run_shape_inference(ir::Model& m, const TfhParams*) {
  return m.infer_shapes(plugin::active_shape_hooks());
}
size_t run_cleanup(ir::Model& m, const TfhParams*);

// The ABI boundary of a built-in: exceptions become a status, as in any plugin; *n_changed is
// written only on success.
template <size_t (*Run)(ir::Model&, const TfhParams*)>
TfhStatus* apply(TfhGraph* graph, const TfhParams* params, size_t* n_changed) {
  try {
    *n_changed = Run(*plugin::from_c(graph), params);
    return nullptr;
  } catch (const Error& e) {
    return plugin::make_status(TFH_INVALID_GRAPH, e.what());
  } catch (const std::exception& e) {
    return plugin::make_status(TFH_RUNTIME_EXCEPTION, e.what());
  }
}

constexpr uint32_t kParamSize = sizeof(TfhParamDesc);
constexpr uint32_t kFusionSize = sizeof(TfhFusionDesc);
constexpr uint32_t kConverterSize = sizeof(TfhConverterDesc);
constexpr const char* kSince = "0.1.0";

const TfhParamDesc kIdentityParams[] = {
    {kParamSize, "dropout", TFH_PARAM_BOOL, "true",
     "also remove Dropout in inference form (mask unused, training_mode absent or false)"},
};
const TfhParamDesc kInitializerParams[] = {
    {kParamSize, "prune_inputs", TFH_PARAM_BOOL, "true",
     "also drop graph inputs that mirror removed initializers (older exporters list both)"},
};

const TfhFusionDesc kRemoveIdentity = {
    kFusionSize, "core.remove_identity",
    "Identity(x) => x, Dropout(x) in inference form => x; graph output names are kept", kSince,
    nullptr, nullptr, std::size(kIdentityParams), kIdentityParams, apply<run_remove_identity>};
const TfhFusionDesc kEliminateDeadNodes = {
    kFusionSize, "core.eliminate_dead_nodes",
    "removes nodes none of whose outputs reach a graph output", kSince, nullptr, nullptr, 0,
    nullptr, apply<run_eliminate_dead_nodes>};
const TfhFusionDesc kRemoveUnusedInitializers = {
    kFusionSize, "core.remove_unused_initializers",
    "removes initializers no node reads (and the graph inputs that mirror them)", kSince, nullptr,
    nullptr, std::size(kInitializerParams), kInitializerParams,
    apply<run_remove_unused_initializers>};
const TfhFusionDesc kRepairDuplicateDefinitions = {
    kFusionSize, "core.repair_duplicate_definitions",
    "a value defined twice keeps its last definition; earlier ones are renamed", kSince, nullptr,
    nullptr, 0, nullptr, apply<run_repair_duplicate_definitions>};
const TfhParamDesc kFoldingParams[] = {
    {kParamSize, "max_bytes", TFH_PARAM_INT, "67108864",
     "a result larger than this and than its inputs together (Expand, Tile, ConstantOfShape) is "
     "not stored: its node stays"},
};
const TfhFusionDesc kConstantFolding = {
    kFusionSize, "core.constant_folding",
    "nodes whose inputs are all constants are computed once (tfhost's CPU kernels) and become "
    "initializers; random ops and subgraphs excepted",
    kSince, nullptr, nullptr, std::size(kFoldingParams), kFoldingParams,
    apply<run_constant_folding>};
const TfhFusionDesc kLayerNormFusion = {
    kFusionSize, "core.layer_norm",
    "ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add over the last axis => LayerNormalization "
    "(any model; what the family presets run as <family>.layer_norm)",
    kSince, "", "LayerNormalization", 0, nullptr,
    sdk_apply<tfh::wrap_pass<plugin_common::fuse_layer_norm>>};
const TfhFusionDesc kSkipLayerNormFusion = {
    kFusionSize, "core.skip_layer_norm",
    "LayerNormalization(Add([Add(x, bias)], residual)) => com.microsoft.SkipLayerNormalization",
    kSince, "com.microsoft", "SkipLayerNormalization",
    std::size(plugin_common::kSkipLayerNormParams), plugin_common::kSkipLayerNormParams,
    sdk_apply<tfh::wrap_pass<plugin_common::fuse_skip_layer_norm>>};
const TfhFusionDesc kGeluFusion = {
    kFusionSize, "core.gelu", "x * 0.5 * (1 + Erf(x / sqrt 2)), either order => com.microsoft.Gelu",
    kSince, "com.microsoft", "Gelu", 0, nullptr,
    sdk_apply<tfh::wrap_pass<plugin_common::fuse_gelu>>};
const TfhFusionDesc kFastGeluFusion = {
    kFusionSize, "core.fast_gelu",
    "0.5x(1 + Tanh(sqrt(2/pi)(x + 0.044715x^3))) => com.microsoft.FastGelu", kSince,
    "com.microsoft", "FastGelu", 0, nullptr,
    sdk_apply<tfh::wrap_pass<plugin_common::fuse_fast_gelu>>};
const TfhFusionDesc kBiasGeluFusion = {
    kFusionSize, "core.bias_gelu",
    "Gelu/FastGelu(x + bias) => BiasGelu(x, bias) / FastGelu(x, bias)", kSince, "com.microsoft",
    "BiasGelu", 0, nullptr, sdk_apply<tfh::wrap_pass<plugin_common::fuse_bias_gelu>>};
const TfhFusionDesc* const kFusions[] = {
    &kRemoveIdentity,  &kEliminateDeadNodes, &kRemoveUnusedInitializers,
    &kRepairDuplicateDefinitions, &kConstantFolding, &kLayerNormFusion, &kSkipLayerNormFusion,
    &kGeluFusion, &kFastGeluFusion, &kBiasGeluFusion};

const TfhConverterDesc kTopologicalSort = {
    kConverterSize, "core.topological_sort", "orders nodes so every input is defined before use",
    kSince, 0, 0, nullptr, apply<run_topological_sort>};
const TfhConverterDesc kCleanup = {
    kConverterSize, "core.cleanup", "runs the core cleanup passes, in the order of model type 'core'",
    kSince, 0, 0, nullptr, apply<run_cleanup>};
const TfhConverterDesc kShapeInference = {
    kConverterSize, "core.shape_inference",
    "infers types and shapes of every value (ONNX's rules for standard ops, each contrib op's "
    "hook from its plugin) and records them as value_info",
    kSince, 0, 0, nullptr, apply<run_shape_inference>};
const TfhConverterDesc kInputInt32 = {
    kConverterSize, "core.input_int32",
    "int64 graph inputs (ids, masks, positions) become int32; consumers that take int32 read them "
    "directly (a Cast to int32 there goes), the others through one Cast back; float inputs are "
    "never touched",
    kSince, 0, 0, nullptr, apply<run_input_int32>};
#define TFH_FLOAT_PARAMS(FORCE, TYPE)                                                            \
  {kParamSize, "keep_io_types", TFH_PARAM_BOOL_OR_STRING_LIST, "false",                          \
   "graph inputs and outputs that stay float32 (true: all of them), behind Casts"},              \
  {kParamSize, "op_block_list", TFH_PARAM_STRING_LIST, "[]",                                     \
   "op types kept in float32, added to the default list"},                                       \
  {kParamSize, "default_op_block_list", TFH_PARAM_BOOL, "true",                                  \
   "also keep the default ops in float32: Range CumSum TopK NonMaxSuppression RoiAlign "         \
   "RandomNormal(Like) RandomUniform(Like) Multinomial EyeLike"},                                \
  {kParamSize, "node_block_list", TFH_PARAM_STRING_LIST, "[]",                                   \
   "nodes kept in float32, by name (or by first output for an unnamed node)"},                   \
  {kParamSize, FORCE, TFH_PARAM_BOOL, "false",                                                   \
   "also store initializers read by float32 nodes as " TYPE ", read through a Cast"},            \
  {kParamSize, "min_positive_val", TFH_PARAM_FLOAT, "0",                                         \
   "weights smaller in magnitude become +-this (0: the smallest " TYPE " subnormal)"},           \
  {kParamSize, "max_finite_val", TFH_PARAM_FLOAT, "0",                                           \
   "weights larger in magnitude become +-this (0: the largest finite " TYPE ")"},                \
  {kParamSize, "auto_block", TFH_PARAM_BOOL, "false",                                            \
   "run the model on dummy inputs and keep in float32 the nodes whose values leave the " TYPE    \
   " range or whose " TYPE " result diverges (reported by name and why)"},                       \
  {kParamSize, "auto_block_tolerance", TFH_PARAM_FLOAT, "0.01",                                  \
   "divergence allowed per value: max |" TYPE " - float32| over the value's max |float32|"},     \
  {kParamSize, "auto_block_inputs", TFH_PARAM_STRING, "\"\"",                                     \
   "input generator (or model type) for auto_block; default: the model type's, else core.inputs"}, \
  {kParamSize, "model_type", TFH_PARAM_STRING, "\"\"",                                            \
   "set by tfhost from --model_type / model.family"}
const TfhParamDesc kFloat16Params[] = {TFH_FLOAT_PARAMS("force_fp16_initializers", "float16")};
const TfhParamDesc kBFloat16Params[] = {TFH_FLOAT_PARAMS("force_bf16_initializers", "bfloat16")};
#undef TFH_FLOAT_PARAMS
const TfhConverterDesc kFloat16 = {
    kConverterSize, "core.float16",
    "float32 weights and computation become float16: Casts only where types change, ops without "
    "float16 in ONNX's types and block-listed ones kept in float32, weights clamped to the float16 "
    "range; auto_block finds what must stay float32 by running the model",
    kSince, 0, std::size(kFloat16Params), kFloat16Params, apply<run_float<onnx::TensorProto::FLOAT16>>};
const TfhConverterDesc kBFloat16 = {
    kConverterSize, "core.bfloat16",
    "core.float16 with bfloat16 (float32's range, 8 bits of precision): the same options",
    kSince, 0, std::size(kBFloat16Params), kBFloat16Params,
    apply<run_float<onnx::TensorProto::BFLOAT16>>};
const TfhConverterDesc* const kConverters[] = {&kTopologicalSort, &kCleanup, &kShapeInference,
                                               &kInputInt32, &kFloat16, &kBFloat16};

// What `tfhost optimize` runs without --model_type, and what core.cleanup runs. Repair comes
// first: the others follow use-def chains that a duplicate definition makes ambiguous.
const char* const kCleanupPasses[] = {
    "core.repair_duplicate_definitions", "core.remove_identity", "core.eliminate_dead_nodes",
    "core.remove_unused_initializers", "core.topological_sort"};
// core.inputs through the ABI: the tensors are handed to the host's list like a plugin's.
int64_t param_int(const TfhParams* p, const char* name, int64_t fallback) {
  const plugin::ParamValue* v = p ? plugin::Params::from_c(p)->find(name) : nullptr;
  return v ? v->i : fallback;
}
TfhStatus* generate_core_inputs(const TfhGraph* graph, const TfhParams* params, uint64_t seed,
                                TfhTensorList* out) {
  try {
    InputSizes sizes;
    sizes.batch = param_int(params, "batch_size", 1);
    sizes.sequence = param_int(params, "sequence_length", 8);
    sizes.past = param_int(params, "past_sequence_length", 0);
    const TfhHostApi* h = plugin::host_api();
    for (DummyInput& in : core_inputs(*plugin::from_c(graph), sizes, seed)) {
      TfhTensor* t = nullptr;
      if (TfhStatus* st = h->tensor->tensor_create(in.tensor->type, in.tensor->dims.data(),
                                                   in.tensor->dims.size(), &t))
        return st;
      if (in.tensor->nbytes) std::memcpy(h->tensor->tensor_mutable_data(t), in.tensor->data, in.tensor->nbytes);
      if (TfhStatus* st = h->tensor->tensor_list_append(out, in.name.c_str(), t)) return st;
    }
    return nullptr;
  } catch (const std::exception& e) {
    return plugin::make_status(TFH_INVALID_ARGUMENT, e.what());
  }
}

const TfhParamDesc kInputParams[] = {
    {kParamSize, "batch_size", TFH_PARAM_INT, "1", "rows of every input (the 'batch' dims)"},
    {kParamSize, "sequence_length", TFH_PARAM_INT, "8", "new tokens per row (the 'sequence' dims)"},
    {kParamSize, "past_sequence_length", TFH_PARAM_INT, "0",
     "tokens already in the past key/value cache (the 'past' dims; total = past + sequence)"},
};
const TfhInputGenDesc kCoreInputs = {
    sizeof(TfhInputGenDesc), "core.inputs",
    "generic dummy inputs: dims bound by name, input_ids within the embedding table, "
    "right-padded attention_mask, token_type_ids, position_ids, past_* tensors",
    kSince, std::size(kInputParams), kInputParams, generate_core_inputs, 1e-4, 2e-2};
const TfhInputGenDesc* const kInputGens[] = {&kCoreInputs};

const TfhModelTypeDesc kCoreModelType = {
    sizeof(TfhModelTypeDesc), "core", "generic cleanup only, for a model no family plugin serves",
    std::size(kCleanupPasses), kCleanupPasses, "core.inputs"};
const TfhModelTypeDesc* const kModelTypes[] = {&kCoreModelType};

const TfhPluginInfo kCoreInfo = {
    TFH_ABI_VERSION, sizeof(TfhPluginInfo), "core", TFH_VERSION, "same as tfhost",
    "generic passes built into tfhost",
    std::size(kFusions), kFusions, std::size(kConverters), kConverters,
    std::size(kInputGens), kInputGens, 0, nullptr, 0, nullptr,
    std::size(kModelTypes), kModelTypes, nullptr};

TfhStatus* (*core_apply(const char* name))(TfhGraph*, const TfhParams*, size_t*) {
  for (const TfhFusionDesc* f : kFusions)
    if (std::strcmp(f->name, name) == 0) return f->apply;
  for (const TfhConverterDesc* c : kConverters)
    if (std::strcmp(c->name, name) == 0) return c->apply;
  return nullptr;
}

// core.cleanup: the model type's list, each pass with its defaults.
size_t run_cleanup(ir::Model& m, const TfhParams*) {
  size_t total = 0;
  for (const char* name : kCleanupPasses) {
    size_t n = 0;
    TfhStatus* st = core_apply(name)(plugin::to_c(&m), nullptr, &n);
    if (st) TFH_THROW(name, ": ", plugin::take_status_message(st));
    total += n;
  }
  return total;
}

}  // namespace

const TfhPluginInfo* core_plugin_info() { return &kCoreInfo; }

}  // namespace tfh::passes
