// Params::resolve (host/plugin/params.h) and the TfhParamsApi getters seen through ParamsView.
#include "host/plugin/params.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>

#include "host/plugin/host_api.h"
#include "host/util/error.h"
#include "tfhost/plugin.hpp"

namespace tfh::plugin {
namespace {

const TfhParamDesc kParams[] = {
    tfh::param("num_heads", TFH_PARAM_INT, "0", "attention heads (0: detect)"),
    tfh::param("epsilon", TFH_PARAM_FLOAT, "1e-12", "layer norm epsilon"),
    tfh::param("use_mask", TFH_PARAM_BOOL, "true", "use the attention mask"),
    tfh::param("mask_format", TFH_PARAM_STRING, "raw", "raw | index"),
    tfh::param("axes", TFH_PARAM_INT_LIST, "[-1]", "axes"),
    tfh::param("scales", TFH_PARAM_FLOAT_LIST, "[]", "scales"),
    tfh::param("op_block_list", TFH_PARAM_STRING_LIST, "[]", "ops kept in float32"),
    tfh::param("keep_io_types", TFH_PARAM_BOOL_OR_STRING_LIST, "false", "keep float32 I/O"),
    tfh::required_param("hidden_size", TFH_PARAM_INT, "model hidden size"),
};

std::vector<ParamSpec> schema() { return copy_param_specs(kParams, std::size(kParams)); }

Params resolve_yaml(const std::string& yaml) {
  return Params::resolve(schema(), YAML::Load(yaml), "bert.attention", "configs/x.yaml:4:5");
}

std::string error_of(const std::string& yaml) {
  try {
    resolve_yaml(yaml);
  } catch (const tfh::Error& e) {
    return e.what();
  }
  return "";
}

class ParamsTest : public ::testing::Test {
 protected:
  void SetUp() override { tfh::sdk::set_host(host_api()); }
};

TEST_F(ParamsTest, CopiesTheSchema) {
  auto s = schema();
  ASSERT_EQ(s.size(), std::size(kParams));
  EXPECT_EQ(s[0].name, "num_heads");
  EXPECT_EQ(s[0].default_yaml, std::optional<std::string>("0"));
  EXPECT_EQ(s[8].default_yaml, std::nullopt);
  EXPECT_EQ(s[1].description, "layer norm epsilon");
  EXPECT_STREQ(param_type_name(TFH_PARAM_BOOL_OR_STRING_LIST), "bool or string list");
  TfhParamDesc bad = tfh::param(nullptr, TFH_PARAM_INT, "0", "");
  EXPECT_THROW(copy_param_specs(&bad, 1), tfh::Error);
}

// A TfhParamDesc as a future ABI might append to it: the ABI 1 fields, then more. A plugin built
// against such a header hands the host an array of these, struct_size = sizeof(FutureParamDesc).
struct FutureParamDesc {
  uint32_t struct_size;
  const char* name;
  TfhParamType type;
  const char* default_value;
  const char* description;
  const char* unit;  // appended
  int64_t minimum;   // appended
};
static_assert(offsetof(FutureParamDesc, description) == offsetof(TfhParamDesc, description));
static_assert(sizeof(FutureParamDesc) > sizeof(TfhParamDesc));

constexpr uint32_t kFutureSize = sizeof(FutureParamDesc);
const FutureParamDesc kFutureParams[] = {
    {kFutureSize, "heads", TFH_PARAM_INT, "12", "attention heads", "count", 1},
    {kFutureSize, "epsilon", TFH_PARAM_FLOAT, "1e-5", "layer norm epsilon", "", 0},
    {kFutureSize, "hidden", TFH_PARAM_INT, nullptr, "hidden size", "count", 1},
    {kFutureSize, "mask", TFH_PARAM_STRING_LIST, "[]", "ops to skip", "", 0},
};

const TfhParamDesc* as_param_table(const FutureParamDesc* p) {
  return reinterpret_cast<const TfhParamDesc*>(p);
}

std::string copy_error(const TfhParamDesc* params, size_t n) {
  try {
    copy_param_specs(params, n);
  } catch (const tfh::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(ParamsTest, ALargerFutureParamDescIsSteppedByItsStructSize) {
  const auto s = copy_param_specs(as_param_table(kFutureParams), std::size(kFutureParams));
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].name, "heads");
  EXPECT_EQ(s[0].type, TFH_PARAM_INT);
  EXPECT_EQ(s[0].default_yaml, std::optional<std::string>("12"));
  EXPECT_EQ(s[0].description, "attention heads");
  EXPECT_EQ(s[1].name, "epsilon");
  EXPECT_EQ(s[1].type, TFH_PARAM_FLOAT);
  EXPECT_EQ(s[1].default_yaml, std::optional<std::string>("1e-5"));
  EXPECT_EQ(s[1].description, "layer norm epsilon");
  EXPECT_EQ(s[2].name, "hidden");
  EXPECT_EQ(s[2].default_yaml, std::nullopt);
  EXPECT_EQ(s[2].description, "hidden size");
  EXPECT_EQ(s[3].name, "mask");
  EXPECT_EQ(s[3].type, TFH_PARAM_STRING_LIST);
  EXPECT_EQ(s[3].description, "ops to skip");
  // And the schema works like any other.
  Params p = Params::resolve(s, YAML::Load("{hidden: 64}"), "future.pass", "cfg.yaml:1:1");
  tfh::ParamsView v(p.c_handle());
  EXPECT_EQ(v.get_int("heads"), 12);
  EXPECT_EQ(v.get_int("hidden"), 64);
}

TEST_F(ParamsTest, ParamTableStrideErrors) {
  // An element whose struct_size differs from the first's: the table cannot be walked.
  FutureParamDesc mixed[] = {kFutureParams[0], kFutureParams[1]};
  mixed[1].struct_size = sizeof(TfhParamDesc);
  EXPECT_EQ(copy_error(as_param_table(mixed), 2),
            "parameter #1 reports struct_size " + std::to_string(sizeof(TfhParamDesc)) +
                ", but the parameter table is strided by parameter #0's (" +
                std::to_string(sizeof(FutureParamDesc)) +
                "): every element of the array must report the same size");
  // A first element smaller than ABI 1's TfhParamDesc.
  TfhParamDesc small[] = {tfh::param("n", TFH_PARAM_INT, "0", "")};
  small[0].struct_size = offsetof(TfhParamDesc, default_value);
  EXPECT_EQ(copy_error(small, 1).rfind("parameter #0 reports struct_size " +
                                           std::to_string(offsetof(TfhParamDesc, default_value)) +
                                           ", smaller than ABI 1's TfhParamDesc (40)",
                                       0),
            0u)
      << copy_error(small, 1);
  // A size that cannot be an array element's.
  FutureParamDesc odd[] = {kFutureParams[0]};
  odd[0].struct_size = sizeof(TfhParamDesc) + 4;
  EXPECT_NE(copy_error(as_param_table(odd), 1).find("not a multiple of 8"), std::string::npos)
      << copy_error(as_param_table(odd), 1);
  // No table at all for a declared count.
  EXPECT_EQ(copy_error(nullptr, 2), "the descriptor declares 2 parameters but no parameter table");
  EXPECT_TRUE(copy_param_specs(nullptr, 0).empty());
}

TEST_F(ParamsTest, DefaultsApplied) {
  Params p = resolve_yaml("{hidden_size: 768}");
  tfh::ParamsView v(p.c_handle());
  EXPECT_EQ(v.get_int("num_heads"), 0);
  EXPECT_DOUBLE_EQ(v.get_float("epsilon"), 1e-12);
  EXPECT_TRUE(v.get_bool("use_mask"));
  EXPECT_EQ(v.get_string("mask_format"), "raw");
  EXPECT_EQ(v.get_ints("axes"), std::vector<int64_t>{-1});
  EXPECT_TRUE(v.get_floats("scales").empty());
  EXPECT_TRUE(v.get_strings("op_block_list").empty());
  EXPECT_FALSE(v.get_bool("keep_io_types"));
  EXPECT_EQ(v.get_int("hidden_size"), 768);
  EXPECT_TRUE(v.has("hidden_size"));
  EXPECT_FALSE(v.has("num_heads")) << "a default is not 'set by the user'";
}

TEST_F(ParamsTest, GivenValuesOfEveryType) {
  Params p = resolve_yaml(
      "{hidden_size: 64, num_heads: 4, epsilon: 1, use_mask: no, mask_format: 17, axes: [0, 2],"
      " scales: [0.5, 2], op_block_list: [SkipLayerNormalization, Attention]}");
  tfh::ParamsView v(p.c_handle());
  EXPECT_EQ(v.get_int("num_heads"), 4);
  EXPECT_DOUBLE_EQ(v.get_float("epsilon"), 1.0) << "an int is a fine float";
  EXPECT_FALSE(v.get_bool("use_mask"));
  EXPECT_EQ(v.get_string("mask_format"), "17") << "any scalar is a fine string";
  EXPECT_EQ(v.get_ints("axes"), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(v.get_floats("scales"), (std::vector<double>{0.5, 2.0}));
  EXPECT_EQ(v.get_strings("op_block_list"),
            (std::vector<std::string>{"SkipLayerNormalization", "Attention"}));
}

TEST_F(ParamsTest, TypeErrors) {
  EXPECT_EQ(error_of("{hidden_size: abc}"),
            "configs/x.yaml:4:5: parameter 'hidden_size' of pass 'bert.attention' expects int, "
            "got 'abc'");
  EXPECT_EQ(error_of("{hidden_size: 1, num_heads: 2.5}"),
            "configs/x.yaml:4:5: parameter 'num_heads' of pass 'bert.attention' expects int, "
            "got '2.5'");
  EXPECT_EQ(error_of("{hidden_size: 1, use_mask: maybe}"),
            "configs/x.yaml:4:5: parameter 'use_mask' of pass 'bert.attention' expects bool, "
            "got 'maybe'");
  EXPECT_EQ(error_of("{hidden_size: 1, axes: 3}"),
            "configs/x.yaml:4:5: parameter 'axes' of pass 'bert.attention' expects int list, "
            "got '3'");
  EXPECT_EQ(error_of("{hidden_size: 1, op_block_list: [a, [b]]}"),
            "configs/x.yaml:4:5: parameter 'op_block_list' of pass 'bert.attention' expects "
            "string list, got '[a, [b]]'");
  EXPECT_EQ(error_of("{hidden_size: 1, mask_format: {a: 1}}"),
            "configs/x.yaml:4:5: parameter 'mask_format' of pass 'bert.attention' expects "
            "string, got '{a: 1}'");
  EXPECT_EQ(error_of("[1, 2]"),
            "configs/x.yaml:4:5: the parameters of pass 'bert.attention' must be a map of "
            "name: value, got '[1, 2]'");
}

TEST_F(ParamsTest, UnknownKeysListTheValidOnes) {
  EXPECT_EQ(error_of("{hidden_size: 1, num_head: 2}"),
            "configs/x.yaml:4:5: unknown parameter 'num_head' for pass 'bert.attention' (valid: "
            "num_heads, epsilon, use_mask, mask_format, axes, scales, op_block_list, "
            "keep_io_types, hidden_size)");
  try {
    Params::resolve({}, YAML::Load("{x: 1}"), "core.noop", "");
    FAIL() << "expected an error";
  } catch (const tfh::Error& e) {
    EXPECT_STREQ(e.what(),
                 "unknown parameter 'x' for pass 'core.noop' (this pass takes no parameters)");
  }
}

TEST_F(ParamsTest, RequiredParameters) {
  EXPECT_EQ(error_of("{num_heads: 2}"),
            "configs/x.yaml:4:5: pass 'bert.attention' requires parameter 'hidden_size' (int: "
            "model hidden size)");
  EXPECT_FALSE(error_of("").empty());
  EXPECT_EQ(error_of(""), error_of("~")) << "an empty and a null `with` mean the same";
}

TEST_F(ParamsTest, BadDefaultIsAPluginBug) {
  const TfhParamDesc bad[] = {tfh::param("n", TFH_PARAM_INT, "lots", "")};
  try {
    Params::resolve(copy_param_specs(bad, 1), YAML::Node(), "x.y", "cfg.yaml:1:1");
    FAIL() << "expected an error";
  } catch (const tfh::Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("the default of parameter 'n' ('lots') is not a valid int"),
        std::string::npos)
        << e.what();
  }
}

TEST_F(ParamsTest, BoolOrStringList) {
  Params as_bool = resolve_yaml("{hidden_size: 1, keep_io_types: true}");
  tfh::BoolOrList b = tfh::ParamsView(as_bool.c_handle()).get_bool_or_list("keep_io_types");
  EXPECT_TRUE(b.enabled);
  EXPECT_TRUE(b.names.empty());
  EXPECT_FALSE(as_bool.find("keep_io_types")->is_list_form);

  Params as_list = resolve_yaml("{hidden_size: 1, keep_io_types: [input_ids, attention_mask]}");
  b = tfh::ParamsView(as_list.c_handle()).get_bool_or_list("keep_io_types");
  EXPECT_TRUE(b.enabled);
  EXPECT_EQ(b.names, (std::vector<std::string>{"input_ids", "attention_mask"}));
  EXPECT_TRUE(as_list.find("keep_io_types")->is_list_form);

  Params empty_list = resolve_yaml("{hidden_size: 1, keep_io_types: []}");
  EXPECT_FALSE(tfh::ParamsView(empty_list.c_handle()).get_bool("keep_io_types"));

  EXPECT_EQ(error_of("{hidden_size: 1, keep_io_types: sometimes}"),
            "configs/x.yaml:4:5: parameter 'keep_io_types' of pass 'bert.attention' expects bool "
            "or string list, got 'sometimes'");
}

TEST_F(ParamsTest, CommandLineForm) {
  std::map<std::string, std::string> kv{
      {"hidden_size", "32"}, {"mask_format", "a: b"}, {"keep_io_types", "[x]"}};
  Params p = Params::resolve(schema(), kv, "bert.attention", "--set");
  tfh::ParamsView v(p.c_handle());
  EXPECT_EQ(v.get_int("hidden_size"), 32);
  EXPECT_EQ(v.get_string("mask_format"), "a: b") << "strings are taken verbatim";
  EXPECT_EQ(v.get_strings("keep_io_types"), std::vector<std::string>{"x"});
  try {
    Params::resolve(schema(), {{"hidden_size", "[1"}}, "bert.attention", "--set");
    FAIL() << "expected an error";
  } catch (const tfh::Error& e) {
    EXPECT_STREQ(e.what(),
                 "--set: parameter 'hidden_size' of pass 'bert.attention' expects int, got '[1'");
  }
  EXPECT_THROW(Params::resolve(schema(), {{"bogus", "1"}}, "bert.attention", "--set"), tfh::Error);
}

TEST_F(ParamsTest, GettersReportUndeclaredNamesAndWrongTypes) {
  Params p = resolve_yaml("{hidden_size: 8}");
  tfh::ParamsView v(p.c_handle());
  try {
    v.get_int("nope");
    FAIL() << "expected an error";
  } catch (const tfh::sdk::Error& e) {
    EXPECT_EQ(e.code(), TFH_NOT_FOUND);
    EXPECT_NE(std::string(e.what()).find("unknown parameter 'nope'"), std::string::npos);
  }
  try {
    v.get_string("hidden_size");
    FAIL() << "expected an error";
  } catch (const tfh::sdk::Error& e) {
    EXPECT_EQ(e.code(), TFH_INVALID_ARGUMENT);
    EXPECT_STREQ(e.what(), "parameter 'hidden_size' is int, not string");
  }
  EXPECT_THROW(v.get_strings("axes"), tfh::sdk::Error);
  EXPECT_FALSE(v.has("nope"));
  const TfhParamsApi* api = host_api()->params;
  const char* s = nullptr;
  TfhStatus* st = api->get_string_at(p.c_handle(), "op_block_list", 0, &s);
  EXPECT_NE(take_status_message(st), "");
  EXPECT_EQ(s, nullptr) << "out untouched on error";
}

}  // namespace
}  // namespace tfh::plugin
