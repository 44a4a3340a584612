// Pins the plugin ABI's layout (sdk/include/tfhost/abi.h) for x86_64 LP64. A failure here means a
// change broke every plugin already built: the ABI is append only (sdk/ABI.md). An append adds
// new TFH_PIN lines and updates that struct's TFH_PIN_SIZE; no existing offset ever changes.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

#include "host/plugin/host_api.h"
#include "tfhost/abi.h"

#define TFH_PIN(T, field, off)                                                         \
  static_assert(offsetof(T, field) == (off), #T "::" #field " moved: the plugin ABI "  \
                                             "cannot change, append only (sdk/ABI.md)")
#define TFH_PIN_SIZE(T, size)                                                          \
  static_assert(sizeof(T) == (size), "sizeof(" #T ") changed: the plugin ABI cannot "  \
                                     "change, append only; update this pin only for an append")

#if defined(__x86_64__) && defined(__LP64__)

// Enumerations are fixed-width integers whatever the compiler.
static_assert(sizeof(TfhErrorCode) == 4 && sizeof(TfhDataType) == 4 && sizeof(TfhValueKind) == 4 &&
                  sizeof(TfhAttrType) == 4 && sizeof(TfhParamType) == 4 &&
                  sizeof(TfhDevice) == 4 && sizeof(TfhLogLevel) == 4,
              "ABI enumerations are int32_t: cannot change, append only");
// Values that plugins compiled today carry in their binaries.
static_assert(TFH_OK == 0 && TFH_FAIL == 1 && TFH_INVALID_ARGUMENT == 2 && TFH_NOT_FOUND == 3 &&
                  TFH_NOT_IMPLEMENTED == 4 && TFH_INVALID_GRAPH == 5 &&
                  TFH_RUNTIME_EXCEPTION == 6 && TFH_OUT_OF_MEMORY == 7,
              "error codes cannot change: append only");
static_assert(TFH_TYPE_FLOAT == 1 && TFH_TYPE_INT64 == 7 && TFH_TYPE_FLOAT16 == 10 &&
                  TFH_TYPE_BFLOAT16 == 16 && TFH_TYPE_FLOAT8E4M3FN == 17 && TFH_TYPE_INT4 == 22,
              "data types are ONNX TensorProto.DataType numbers: cannot change, append only");
static_assert(TFH_PARAM_BOOL == 1 && TFH_PARAM_BOOL_OR_STRING_LIST == 8,
              "parameter types cannot change: append only");
static_assert(TFH_DEVICE_CPU == 0 && TFH_DEVICE_CUDA == 1 && TFH_LOG_DEBUG == 0 &&
                  TFH_LOG_ERROR == 3 && TFH_VALUE_SEQUENCE == 2 && TFH_ATTR_TENSOR == 4,
              "enumeration values cannot change: append only");

// TfhParamDesc
TFH_PIN(TfhParamDesc, struct_size, 0);
TFH_PIN(TfhParamDesc, name, 8);
TFH_PIN(TfhParamDesc, type, 16);
TFH_PIN(TfhParamDesc, default_value, 24);
TFH_PIN(TfhParamDesc, description, 32);
TFH_PIN_SIZE(TfhParamDesc, 40);

// TfhFusionDesc
TFH_PIN(TfhFusionDesc, struct_size, 0);
TFH_PIN(TfhFusionDesc, name, 8);
TFH_PIN(TfhFusionDesc, description, 16);
TFH_PIN(TfhFusionDesc, since, 24);
TFH_PIN(TfhFusionDesc, produces_domain, 32);
TFH_PIN(TfhFusionDesc, produces_op, 40);
TFH_PIN(TfhFusionDesc, n_params, 48);
TFH_PIN(TfhFusionDesc, params, 56);
TFH_PIN(TfhFusionDesc, apply, 64);
TFH_PIN_SIZE(TfhFusionDesc, 72);

// TfhConverterDesc
TFH_PIN(TfhConverterDesc, struct_size, 0);
TFH_PIN(TfhConverterDesc, name, 8);
TFH_PIN(TfhConverterDesc, description, 16);
TFH_PIN(TfhConverterDesc, since, 24);
TFH_PIN(TfhConverterDesc, builds_model, 32);
TFH_PIN(TfhConverterDesc, n_params, 40);
TFH_PIN(TfhConverterDesc, params, 48);
TFH_PIN(TfhConverterDesc, apply, 56);
TFH_PIN_SIZE(TfhConverterDesc, 64);

// TfhInputGenDesc
TFH_PIN(TfhInputGenDesc, struct_size, 0);
TFH_PIN(TfhInputGenDesc, name, 8);
TFH_PIN(TfhInputGenDesc, description, 16);
TFH_PIN(TfhInputGenDesc, since, 24);
TFH_PIN(TfhInputGenDesc, n_params, 32);
TFH_PIN(TfhInputGenDesc, params, 40);
TFH_PIN(TfhInputGenDesc, generate, 48);
TFH_PIN(TfhInputGenDesc, tolerance_fp32, 56);
TFH_PIN(TfhInputGenDesc, tolerance_fp16, 64);
TFH_PIN_SIZE(TfhInputGenDesc, 72);

// TfhOpDesc
TFH_PIN(TfhOpDesc, struct_size, 0);
TFH_PIN(TfhOpDesc, domain, 8);
TFH_PIN(TfhOpDesc, op_type, 16);
TFH_PIN(TfhOpDesc, since_version, 24);
TFH_PIN(TfhOpDesc, description, 32);
TFH_PIN(TfhOpDesc, infer_shapes, 40);
TFH_PIN_SIZE(TfhOpDesc, 48);

// TfhKernelDesc
TFH_PIN(TfhKernelDesc, struct_size, 0);
TFH_PIN(TfhKernelDesc, name, 8);
TFH_PIN(TfhKernelDesc, domain, 16);
TFH_PIN(TfhKernelDesc, op_type, 24);
TFH_PIN(TfhKernelDesc, since_version, 32);
TFH_PIN(TfhKernelDesc, end_version, 36);
TFH_PIN(TfhKernelDesc, device, 40);
TFH_PIN(TfhKernelDesc, type_constraints, 48);
TFH_PIN(TfhKernelDesc, priority, 56);
TFH_PIN(TfhKernelDesc, create, 64);
TFH_PIN(TfhKernelDesc, compute, 72);
TFH_PIN(TfhKernelDesc, destroy, 80);
TFH_PIN(TfhKernelDesc, host_inputs, 88);  // appended
TFH_PIN_SIZE(TfhKernelDesc, 96);

// TfhModelTypeDesc
TFH_PIN(TfhModelTypeDesc, struct_size, 0);
TFH_PIN(TfhModelTypeDesc, name, 8);
TFH_PIN(TfhModelTypeDesc, description, 16);
TFH_PIN(TfhModelTypeDesc, n_passes, 24);
TFH_PIN(TfhModelTypeDesc, passes, 32);
TFH_PIN(TfhModelTypeDesc, input_generator, 40);
TFH_PIN_SIZE(TfhModelTypeDesc, 48);

// TfhPluginInfo
TFH_PIN(TfhPluginInfo, abi_version, 0);
TFH_PIN(TfhPluginInfo, struct_size, 4);
TFH_PIN(TfhPluginInfo, name, 8);
TFH_PIN(TfhPluginInfo, version, 16);
TFH_PIN(TfhPluginInfo, license, 24);
TFH_PIN(TfhPluginInfo, description, 32);
TFH_PIN(TfhPluginInfo, n_fusions, 40);
TFH_PIN(TfhPluginInfo, fusions, 48);
TFH_PIN(TfhPluginInfo, n_converters, 56);
TFH_PIN(TfhPluginInfo, converters, 64);
TFH_PIN(TfhPluginInfo, n_input_generators, 72);
TFH_PIN(TfhPluginInfo, input_generators, 80);
TFH_PIN(TfhPluginInfo, n_kernels, 88);
TFH_PIN(TfhPluginInfo, kernels, 96);
TFH_PIN(TfhPluginInfo, n_ops, 104);
TFH_PIN(TfhPluginInfo, ops, 112);
TFH_PIN(TfhPluginInfo, n_model_types, 120);
TFH_PIN(TfhPluginInfo, model_types, 128);
TFH_PIN(TfhPluginInfo, shutdown, 136);
TFH_PIN_SIZE(TfhPluginInfo, 144);

// TfhGraphApi
TFH_PIN(TfhGraphApi, struct_size, 0);
TFH_PIN(TfhGraphApi, graph_num_nodes, 8);
TFH_PIN(TfhGraphApi, graph_node, 16);
TFH_PIN(TfhGraphApi, graph_num_inputs, 24);
TFH_PIN(TfhGraphApi, graph_input, 32);
TFH_PIN(TfhGraphApi, graph_num_outputs, 40);
TFH_PIN(TfhGraphApi, graph_output, 48);
TFH_PIN(TfhGraphApi, graph_num_initializers, 56);
TFH_PIN(TfhGraphApi, graph_initializer, 64);
TFH_PIN(TfhGraphApi, graph_find_value, 72);
TFH_PIN(TfhGraphApi, graph_opset, 80);
TFH_PIN(TfhGraphApi, graph_set_opset, 88);
TFH_PIN(TfhGraphApi, graph_unique_name, 96);
TFH_PIN(TfhGraphApi, node_name, 104);
TFH_PIN(TfhGraphApi, node_op_type, 112);
TFH_PIN(TfhGraphApi, node_domain, 120);
TFH_PIN(TfhGraphApi, node_num_inputs, 128);
TFH_PIN(TfhGraphApi, node_input, 136);
TFH_PIN(TfhGraphApi, node_num_outputs, 144);
TFH_PIN(TfhGraphApi, node_output, 152);
TFH_PIN(TfhGraphApi, node_num_attrs, 160);
TFH_PIN(TfhGraphApi, node_attr_name, 168);
TFH_PIN(TfhGraphApi, node_attr_type, 176);
TFH_PIN(TfhGraphApi, node_attr_int, 184);
TFH_PIN(TfhGraphApi, node_attr_float, 192);
TFH_PIN(TfhGraphApi, node_attr_string, 200);
TFH_PIN(TfhGraphApi, node_attr_ints, 208);
TFH_PIN(TfhGraphApi, node_attr_floats, 216);
TFH_PIN(TfhGraphApi, node_attr_tensor, 224);
TFH_PIN(TfhGraphApi, value_name, 232);
TFH_PIN(TfhGraphApi, value_producer, 240);
TFH_PIN(TfhGraphApi, value_num_consumers, 248);
TFH_PIN(TfhGraphApi, value_consumer, 256);
TFH_PIN(TfhGraphApi, value_is_graph_input, 264);
TFH_PIN(TfhGraphApi, value_is_graph_output, 272);
TFH_PIN(TfhGraphApi, value_constant, 280);
TFH_PIN(TfhGraphApi, value_kind, 288);
TFH_PIN(TfhGraphApi, value_elem_type, 296);
TFH_PIN(TfhGraphApi, value_rank, 304);
TFH_PIN(TfhGraphApi, value_dim, 312);
TFH_PIN(TfhGraphApi, graph_add_node, 320);
TFH_PIN(TfhGraphApi, graph_remove_node, 328);
TFH_PIN(TfhGraphApi, node_set_input, 336);
TFH_PIN(TfhGraphApi, node_set_attr_int, 344);
TFH_PIN(TfhGraphApi, node_set_attr_float, 352);
TFH_PIN(TfhGraphApi, node_set_attr_string, 360);
TFH_PIN(TfhGraphApi, node_set_attr_ints, 368);
TFH_PIN(TfhGraphApi, node_set_attr_floats, 376);
TFH_PIN(TfhGraphApi, node_set_attr_tensor, 384);
TFH_PIN(TfhGraphApi, node_remove_attr, 392);
TFH_PIN(TfhGraphApi, graph_replace_all_uses, 400);
TFH_PIN(TfhGraphApi, graph_add_initializer, 408);
TFH_PIN(TfhGraphApi, graph_remove_initializer, 416);
TFH_PIN(TfhGraphApi, value_set_name, 424);
TFH_PIN(TfhGraphApi, value_set_type, 432);
TFH_PIN(TfhGraphApi, graph_topological_sort, 440);
TFH_PIN(TfhGraphApi, node_since_version, 448);
TFH_PIN(TfhGraphApi, graph_infer_shapes, 456);
TFH_PIN(TfhGraphApi, graph_add_input, 464);
TFH_PIN(TfhGraphApi, graph_add_output, 472);
TFH_PIN_SIZE(TfhGraphApi, 480);

// TfhTensorApi
TFH_PIN(TfhTensorApi, struct_size, 0);
TFH_PIN(TfhTensorApi, tensor_create, 8);
TFH_PIN(TfhTensorApi, tensor_release, 16);
TFH_PIN(TfhTensorApi, tensor_type, 24);
TFH_PIN(TfhTensorApi, tensor_rank, 32);
TFH_PIN(TfhTensorApi, tensor_dims, 40);
TFH_PIN(TfhTensorApi, tensor_num_elements, 48);
TFH_PIN(TfhTensorApi, tensor_nbytes, 56);
TFH_PIN(TfhTensorApi, tensor_data, 64);
TFH_PIN(TfhTensorApi, tensor_mutable_data, 72);
TFH_PIN(TfhTensorApi, tensor_list_append, 80);
TFH_PIN_SIZE(TfhTensorApi, 88);

// TfhParamsApi
TFH_PIN(TfhParamsApi, struct_size, 0);
TFH_PIN(TfhParamsApi, get_bool, 8);
TFH_PIN(TfhParamsApi, get_int, 16);
TFH_PIN(TfhParamsApi, get_float, 24);
TFH_PIN(TfhParamsApi, get_string, 32);
TFH_PIN(TfhParamsApi, get_ints, 40);
TFH_PIN(TfhParamsApi, get_floats, 48);
TFH_PIN(TfhParamsApi, get_num_strings, 56);
TFH_PIN(TfhParamsApi, get_string_at, 64);
TFH_PIN(TfhParamsApi, has, 72);
TFH_PIN_SIZE(TfhParamsApi, 80);

// TfhShapeApi
TFH_PIN(TfhShapeApi, struct_size, 0);
TFH_PIN(TfhShapeApi, node, 8);
TFH_PIN(TfhShapeApi, num_inputs, 16);
TFH_PIN(TfhShapeApi, input_elem_type, 24);
TFH_PIN(TfhShapeApi, input_rank, 32);
TFH_PIN(TfhShapeApi, input_dim, 40);
TFH_PIN(TfhShapeApi, input_constant, 48);
TFH_PIN(TfhShapeApi, num_outputs, 56);
TFH_PIN(TfhShapeApi, set_output, 64);
TFH_PIN_SIZE(TfhShapeApi, 72);

// TfhHostApi
TFH_PIN(TfhHostApi, abi_version, 0);
TFH_PIN(TfhHostApi, struct_size, 4);
TFH_PIN(TfhHostApi, host_version, 8);
TFH_PIN(TfhHostApi, status_create, 16);
TFH_PIN(TfhHostApi, status_release, 24);
TFH_PIN(TfhHostApi, status_code, 32);
TFH_PIN(TfhHostApi, status_message, 40);
TFH_PIN(TfhHostApi, log, 48);
TFH_PIN(TfhHostApi, alloc, 56);
TFH_PIN(TfhHostApi, free, 64);
TFH_PIN(TfhHostApi, graph, 72);
TFH_PIN(TfhHostApi, tensor, 80);
TFH_PIN(TfhHostApi, params, 88);
TFH_PIN(TfhHostApi, shape, 96);
TFH_PIN(TfhHostApi, kernel, 104);
TFH_PIN_SIZE(TfhHostApi, 112);

// TfhKernelApi
TFH_PIN(TfhKernelApi, struct_size, 0);
TFH_PIN(TfhKernelApi, node, 8);
TFH_PIN(TfhKernelApi, num_inputs, 16);
TFH_PIN(TfhKernelApi, input, 24);
TFH_PIN(TfhKernelApi, num_outputs, 32);
TFH_PIN(TfhKernelApi, output_used, 40);
TFH_PIN(TfhKernelApi, output, 48);
TFH_PIN(TfhKernelApi, scratch, 56);
TFH_PIN(TfhKernelApi, num_threads, 64);
TFH_PIN(TfhKernelApi, output_from_input, 72);
TFH_PIN(TfhKernelApi, input_sequence_length, 80);
TFH_PIN(TfhKernelApi, input_sequence_at, 88);
TFH_PIN(TfhKernelApi, output_sequence_begin, 96);
TFH_PIN(TfhKernelApi, output_sequence_append, 104);
TFH_PIN(TfhKernelApi, constant_input_consumed, 112);
TFH_PIN(TfhKernelApi, run_next_kernel, 120);
TFH_PIN_SIZE(TfhKernelApi, 128);
#endif  // x86_64 LP64

namespace {

TEST(AbiLayout, HasFieldChecksTheWritersSize) {
  TfhGraphApi api{};
  api.struct_size = sizeof(TfhGraphApi);
  EXPECT_TRUE(TFH_HAS_FIELD(&api, TfhGraphApi, graph_num_nodes));
  EXPECT_TRUE(TFH_HAS_FIELD(&api, TfhGraphApi, node_since_version));

  // A table written by an older host ends before the appended field.
  api.struct_size = static_cast<uint32_t>(offsetof(TfhGraphApi, node_since_version));
  EXPECT_TRUE(TFH_HAS_FIELD(&api, TfhGraphApi, graph_topological_sort));
  EXPECT_FALSE(TFH_HAS_FIELD(&api, TfhGraphApi, node_since_version));

  // A size that covers only part of a field does not count.
  api.struct_size = static_cast<uint32_t>(offsetof(TfhGraphApi, node_since_version) + 4);
  EXPECT_FALSE(TFH_HAS_FIELD(&api, TfhGraphApi, node_since_version));

  const TfhGraphApi* none = nullptr;
  EXPECT_FALSE(TFH_HAS_FIELD(none, TfhGraphApi, graph_num_nodes));
}

TEST(AbiLayout, HasFieldOnPluginDescriptors) {
  TfhPluginInfo info{};
  info.struct_size = static_cast<uint32_t>(offsetof(TfhPluginInfo, n_ops));  // a shorter, older one
  EXPECT_TRUE(TFH_HAS_FIELD(&info, TfhPluginInfo, kernels));
  EXPECT_FALSE(TFH_HAS_FIELD(&info, TfhPluginInfo, ops));
  EXPECT_FALSE(TFH_HAS_FIELD(&info, TfhPluginInfo, shutdown));
  TfhParamDesc p{};
  p.struct_size = sizeof p;
  EXPECT_TRUE(TFH_HAS_FIELD(&p, TfhParamDesc, description));
}

// Every slot of a function table after its header is a function pointer the host must fill.
template <typename T>
void expect_all_slots_filled(const T* t, size_t header, const char* what) {
  ASSERT_NE(t, nullptr) << what;
  EXPECT_EQ(t->struct_size, sizeof(T)) << what;
  const char* base = reinterpret_cast<const char*>(t);
  for (size_t off = header; off < sizeof(T); off += sizeof(void*)) {
    void* slot = nullptr;
    std::memcpy(&slot, base + off, sizeof slot);
    EXPECT_NE(slot, nullptr) << what << ": slot at offset " << off << " is NULL";
  }
}

TEST(AbiLayout, HostFillsEveryTable) {
  const TfhHostApi* h = tfh::plugin::host_api();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->abi_version, TFH_ABI_VERSION);
  EXPECT_EQ(h->struct_size, sizeof(TfhHostApi));
  EXPECT_GE(TFH_ABI_VERSION, TFH_ABI_MIN_SUPPORTED);
  ASSERT_NE(h->host_version, nullptr);
  expect_all_slots_filled(h, offsetof(TfhHostApi, status_create), "TfhHostApi");
  expect_all_slots_filled(h->graph, sizeof(void*), "TfhGraphApi");
  expect_all_slots_filled(h->tensor, sizeof(void*), "TfhTensorApi");
  expect_all_slots_filled(h->params, sizeof(void*), "TfhParamsApi");
  expect_all_slots_filled(h->shape, sizeof(void*), "TfhShapeApi");
  expect_all_slots_filled(h->kernel, sizeof(void*), "TfhKernelApi");
  EXPECT_EQ(h, tfh::plugin::host_api()) << "one process-wide table";
}

TEST(AbiLayout, StatusRoundTrip) {
  const TfhHostApi* h = tfh::plugin::host_api();
  EXPECT_EQ(h->status_create(TFH_OK, "fine"), nullptr) << "TFH_OK is no status";
  TfhStatus* s = h->status_create(TFH_NOT_FOUND, "no such thing");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(h->status_code(s), TFH_NOT_FOUND);
  EXPECT_STREQ(h->status_message(s), "no such thing");
  h->status_release(s);
  h->status_release(nullptr);  // harmless
  EXPECT_EQ(h->status_code(nullptr), TFH_OK);
  TfhErrorCode code = TFH_OK;
  EXPECT_EQ(tfh::plugin::take_status_message(h->status_create(TFH_FAIL, "x"), &code), "x");
  EXPECT_EQ(code, TFH_FAIL);
}

TEST(AbiLayout, LogRespectsLevel) {
  const TfhHostApi* h = tfh::plugin::host_api();
  TfhLogLevel saved = tfh::plugin::log_level();
  tfh::plugin::set_log_level(TFH_LOG_WARNING);
  testing::internal::CaptureStderr();
  h->log(TFH_LOG_INFO, "bert", "quiet");
  h->log(TFH_LOG_WARNING, "bert", "loud");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "tfhost: [bert] warning: loud\n");
  tfh::plugin::set_log_level(saved);
}

TEST(AbiLayout, AllocIsAlignedCpuMemory) {
  const TfhHostApi* h = tfh::plugin::host_api();
  void* p = h->alloc(100, TFH_DEVICE_CPU);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  std::memset(p, 1, 100);
  h->free(p, TFH_DEVICE_CPU);
  EXPECT_EQ(h->alloc(16, TFH_DEVICE_CUDA), nullptr) << "no CUDA allocator in this build yet";
  h->free(nullptr, TFH_DEVICE_CUDA);
}

}  // namespace
