// plugin.hpp: TFH_PLUGIN, the trampolines and the constant descriptor tables, exercised in-process
// (the test binary plays the plugin; the loader tests load real .so fixtures).
#include "sdk/sdk_test_util.h"

namespace {

size_t fuse_gelu_pass(tfh::GraphView g, const tfh::ParamsView& p) {
  if (!p.get_bool("enabled")) return 0;
  return tfh::sdktest::fuse_gelu(g);
}
size_t throws_std(tfh::GraphView) { throw std::out_of_range("index 7 out of range"); }
size_t throws_int(tfh::GraphView) { throw 42; }
void make_inputs(tfh::GraphView g, const tfh::ParamsView& p, uint64_t seed,
                 tfh::TensorListView out) {
  for (tfh::ValueView in : g.inputs())
    out.add(std::string(in.name()),
            tfh::Tensor::from<int64_t>({1, 2}, {p.get_int("batch"), static_cast<int64_t>(seed)}));
}

const TfhParamDesc kGeluParams[] = {
    tfh::param("enabled", TFH_PARAM_BOOL, "true", "run the fusion")};
constexpr TfhFusionDesc kGelu =
    tfh::fusion("test.gelu", "Div->Erf->Add->Mul->Mul => com.microsoft.Gelu", "0.1.0",
                "com.microsoft", "Gelu", tfh::wrap_pass<fuse_gelu_pass>, kGeluParams);
constexpr TfhFusionDesc kThrowsStd =
    tfh::fusion("test.throws_std", "throws", "0.1.0", nullptr, nullptr, tfh::wrap_pass<throws_std>);
constexpr TfhFusionDesc kThrowsInt =
    tfh::fusion("test.throws_int", "throws", "0.1.0", nullptr, nullptr, tfh::wrap_pass<throws_int>);
const TfhFusionDesc* const kFusions[] = {&kGelu, &kThrowsStd, &kThrowsInt};
const TfhParamDesc kInputParams[] = {tfh::param("batch", TFH_PARAM_INT, "1", "batch size")};
constexpr TfhInputGenDesc kInputs = tfh::input_generator(
    "test.inputs", "ids", "0.1.0", tfh::wrap_generator<make_inputs>, kInputParams, 1e-4, 1e-2);
const TfhInputGenDesc* const kInputGens[] = {&kInputs};
const char* const kPasses[] = {"test.gelu"};
constexpr TfhModelTypeDesc kType = tfh::model_type("test", "a test family", kPasses, "test.inputs");
const TfhModelTypeDesc* const kTypes[] = {&kType};
int g_shutdowns = 0;
void on_shutdown() { ++g_shutdowns; }
constexpr TfhPluginInfo kInfo = tfh::PluginInfo("test", "0.1.0", "MIT", "SDK test plugin")
                                    .fusions(kFusions)
                                    .input_generators(kInputGens)
                                    .model_types(kTypes)
                                    .shutdown(on_shutdown);

}  // namespace

TFH_PLUGIN(kInfo)

namespace tfh::sdktest {
namespace {

class SdkPlugin : public ::testing::Test {
 protected:
  void SetUp() override { sdk::set_host(nullptr); }
  void TearDown() override { sdk::set_host(plugin::host_api()); }
};

TEST_F(SdkPlugin, InitStoresTheHostAndReturnsStaticInfo) {
  EXPECT_THROW(host(), sdk::Error) << "no host before init";
  const TfhPluginInfo* info = nullptr;
  ASSERT_EQ(tfh_plugin_init(plugin::host_api(), &info), nullptr);
  ASSERT_EQ(info, &kInfo);
  EXPECT_EQ(&host(), plugin::host_api());
  EXPECT_EQ(info->abi_version, TFH_ABI_VERSION);
  EXPECT_EQ(info->struct_size, sizeof(TfhPluginInfo));
  EXPECT_STREQ(info->name, "test");
  ASSERT_EQ(info->n_fusions, 3u);
  EXPECT_STREQ(info->fusions[0]->name, "test.gelu");
  EXPECT_EQ(info->fusions[0]->struct_size, sizeof(TfhFusionDesc));
  EXPECT_EQ(info->fusions[0]->n_params, 1u);
  EXPECT_EQ(info->fusions[0]->params[0].struct_size, sizeof(TfhParamDesc));
  EXPECT_STREQ(info->fusions[0]->params[0].default_value, "true");
  EXPECT_EQ(info->n_input_generators, 1u);
  EXPECT_DOUBLE_EQ(info->input_generators[0]->tolerance_fp16, 1e-2);
  EXPECT_EQ(info->n_model_types, 1u);
  EXPECT_EQ(info->model_types[0]->n_passes, 1u);
  EXPECT_EQ(info->n_kernels, 0u);
  EXPECT_EQ(info->kernels, nullptr);
  EXPECT_EQ(info->n_ops, 0u);
  info->shutdown();
  EXPECT_EQ(g_shutdowns, 1);
}

TEST_F(SdkPlugin, InitRefusesAnOlderHost) {
  TfhHostApi old = *plugin::host_api();
  old.abi_version = TFH_ABI_VERSION - 1;
  const TfhPluginInfo* info = nullptr;
  TfhErrorCode code = TFH_OK;
  std::string msg = plugin::take_status_message(tfh_plugin_init(&old, &info), &code);
  EXPECT_EQ(code, TFH_NOT_IMPLEMENTED);
  EXPECT_EQ(msg, "plugin 'test' was built for tfhost plugin ABI " +
                     std::to_string(TFH_ABI_VERSION) + ", the host provides ABI " +
                     std::to_string(TFH_ABI_VERSION - 1));
  EXPECT_EQ(info, nullptr) << "out untouched on error";
  EXPECT_EQ(tfh_plugin_init(nullptr, &info), nullptr) << "no host: nothing to report through";
  EXPECT_EQ(info, nullptr);
}

TEST_F(SdkPlugin, TrampolinesRunFusionsAndTurnExceptionsIntoStatuses) {
  const TfhPluginInfo* info = nullptr;
  ASSERT_EQ(tfh_plugin_init(plugin::host_api(), &info), nullptr);
  GraphBuilder b;
  b.output(build_gelu(b, b.input("x"), ""));
  auto specs = plugin::copy_param_specs(kGelu.params, kGelu.n_params);

  plugin::Params off =
      plugin::Params::resolve(specs, YAML::Load("{enabled: false}"), "test.gelu", "");
  size_t n = 99;
  ASSERT_EQ(kGelu.apply(plugin::to_c(&b.model()), off.c_handle(), &n), nullptr);
  EXPECT_EQ(n, 0u);
  plugin::Params on = plugin::Params::resolve(specs, YAML::Node(), "test.gelu", "");
  ASSERT_EQ(kGelu.apply(plugin::to_c(&b.model()), on.c_handle(), &n), nullptr);
  EXPECT_EQ(n, 1u);

  TfhErrorCode code = TFH_OK;
  std::string msg =
      plugin::take_status_message(kThrowsStd.apply(plugin::to_c(&b.model()), nullptr, &n), &code);
  EXPECT_EQ(code, TFH_RUNTIME_EXCEPTION);
  EXPECT_EQ(msg, "index 7 out of range");
  msg = plugin::take_status_message(kThrowsInt.apply(plugin::to_c(&b.model()), nullptr, &n), &code);
  EXPECT_EQ(code, TFH_RUNTIME_EXCEPTION);
  EXPECT_EQ(msg, "unknown exception in plugin");

  // An input generator fills a host TensorList.
  plugin::TensorList list;
  auto gen_specs = plugin::copy_param_specs(kInputs.params, kInputs.n_params);
  plugin::Params p =
      plugin::Params::resolve(gen_specs, YAML::Load("{batch: 3}"), "test.inputs", "");
  ASSERT_EQ(kInputs.generate(plugin::to_c(&b.model()), p.c_handle(), 42, list.c_handle()), nullptr);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list.name(0), "x");
  TensorView t(list.tensor(0));
  EXPECT_EQ(t.data<int64_t>()[0], 3);
  EXPECT_EQ(t.data<int64_t>()[1], 42);
}

TEST_F(SdkPlugin, StatusAndErrorHelpers) {
  sdk::set_host(plugin::host_api());
  Status ok;
  EXPECT_TRUE(ok.ok());
  Status bad(host().status_create(TFH_NOT_FOUND, "missing"));
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), TFH_NOT_FOUND);
  EXPECT_EQ(bad.message(), "missing");
  Status moved = std::move(bad);
  EXPECT_TRUE(bad.ok());
  try {
    moved.throw_if_error();
    FAIL();
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), TFH_NOT_FOUND);
    EXPECT_STREQ(e.what(), "missing");
  }
  EXPECT_NO_THROW(check(nullptr));
  auto status_of = []() -> TfhStatus* {
    TFH_PLUGIN_TRY { sdk::fail(TFH_INVALID_GRAPH, "bad graph"); }
    TFH_PLUGIN_CATCH
  };
  TfhErrorCode code = TFH_OK;
  EXPECT_EQ(plugin::take_status_message(status_of(), &code), "bad graph");
  EXPECT_EQ(code, TFH_INVALID_GRAPH);
  EXPECT_STREQ(data_type_name(TFH_TYPE_BFLOAT16), "bfloat16");
  EXPECT_STREQ(data_type_name(999), "unknown");
  static_assert(data_type_of<Float16>() == TFH_TYPE_FLOAT16);
  static_assert(data_type_of<int64_t>() == TFH_TYPE_INT64);
}

}  // namespace
}  // namespace tfh::sdktest
