// The YAML config parser: schema, locations in messages, --set overrides, path rule.
#include "host/pipeline/config.h"

#include <gtest/gtest.h>

#include <string>

#include "host/pipeline/suggest.h"
#include "host/util/error.h"

namespace tfh::pipeline {
namespace {

const char* const kMinimal =
    "model: {path: m.onnx}\n"
    "output: out/m_opt.onnx\n"
    "pipeline: []\n";

Config parse(const std::string& text, const std::vector<std::string>& sets = {}) {
  return parse_config(text, "configs/x.yaml", "configs", sets);
}

// The message of the tfh::Error that parsing throws ("" if it does not throw).
std::string error_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    parse(text, sets);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST(Config, MinimalConfigGetsDefaultsAndPathsRelativeToTheConfigFolder) {
  Config c = parse(kMinimal);
  EXPECT_EQ(c.file, "configs/x.yaml");
  EXPECT_EQ(c.version, 1);
  EXPECT_EQ(c.model.path, "configs/m.onnx");
  EXPECT_EQ(c.output, "configs/out/m_opt.onnx");
  EXPECT_EQ(c.device, Device::Auto);
  EXPECT_TRUE(c.steps.empty());
  EXPECT_FALSE(c.verify.has_value());
  EXPECT_FALSE(c.benchmark.has_value());
  EXPECT_FALSE(c.save.use_external_data_format);
}

TEST(Config, ParentFoldersAndAbsolutePaths) {
  Config c = parse("model: {path: ../models/m.onnx}\noutput: /tmp/o.onnx\npipeline: []\n");
  EXPECT_EQ(c.model.path, "models/m.onnx");
  EXPECT_EQ(c.output, "/tmp/o.onnx");
  EXPECT_EQ(resolve_path("", "a/../b.onnx"), "b.onnx");
}

TEST(Config, EverySectionParses) {
  Config c = parse(
      "version: 1\n"
      "model: {path: m.onnx, family: bert, num_heads: 12, hidden_size: 768}\n"
      "output: o.onnx\n"
      "device: cuda\n"
      "plugins: {search: [plug, /abs/dir], load: [bert, ../lib/libx.so]}\n"
      "pipeline:\n"
      "  - preset: bert\n"
      "  - pass: core.float16\n"
      "    with: {keep_io_types: true, op_block_list: [SkipLayerNormalization]}\n"
      "verify: {inputs: bert.inputs, with: {batch: 2}, samples: 3, seed: 7, tolerance: {fp16: "
      "0.2}}\n"
      "benchmark: {batch: [1, 8], sequence: 16, past: [0, 4], warmup: 2, iterations: 9, "
      "cuda_graph: true}\n"
      "save: {use_external_data_format: true}\n");
  EXPECT_EQ(c.model.family, "bert");
  EXPECT_EQ(c.model.num_heads, 12);
  EXPECT_EQ(c.model.hidden_size, 768);
  EXPECT_EQ(c.device, Device::Cuda);
  ASSERT_EQ(c.plugins.search.size(), 2u);
  EXPECT_EQ(c.plugins.search[0].value, "configs/plug");
  EXPECT_EQ(c.plugins.search[1].value, "/abs/dir");
  ASSERT_EQ(c.plugins.load.size(), 2u);
  EXPECT_EQ(c.plugins.load[0].value, "bert");  // a name: looked up in the search path
  EXPECT_EQ(c.plugins.load[1].value, "lib/libx.so");
  ASSERT_EQ(c.steps.size(), 2u);
  EXPECT_EQ(c.steps[0].kind, Step::Kind::Preset);
  EXPECT_EQ(c.steps[0].name, "bert");
  EXPECT_EQ(c.steps[0].where, "configs/x.yaml:7:13");
  EXPECT_EQ(c.steps[1].kind, Step::Kind::Pass);
  EXPECT_EQ(c.steps[1].name, "core.float16");
  EXPECT_TRUE(c.steps[1].with["keep_io_types"].as<bool>());
  EXPECT_EQ(c.steps[1].with_where, "configs/x.yaml:9:11");
  ASSERT_TRUE(c.verify);
  EXPECT_EQ(c.verify->inputs, "bert.inputs");
  EXPECT_EQ(c.verify->samples, 3);
  EXPECT_EQ(c.verify->seed, 7u);
  EXPECT_FALSE(c.verify->tolerance_fp32);
  EXPECT_DOUBLE_EQ(*c.verify->tolerance_fp16, 0.2);
  ASSERT_TRUE(c.benchmark);
  EXPECT_EQ(c.benchmark->batch, (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(c.benchmark->sequence, (std::vector<int64_t>{16}));
  EXPECT_EQ(c.benchmark->past, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(c.benchmark->iterations, 9);
  EXPECT_TRUE(c.benchmark->cuda_graph);
  EXPECT_TRUE(c.save.use_external_data_format);
}

TEST(Config, UnknownTopLevelKeyNamesLineColumnAndValidKeys) {
  std::string e = error_of("model: {path: m.onnx}\noutput: o.onnx\npipline: []\n");
  EXPECT_HAS(e,
             "configs/x.yaml:3:1: unknown key 'pipline' (valid: version, model, output, "
             "device, plugins, pipeline, verify, benchmark, save)");
  EXPECT_HAS(e, "did you mean 'pipeline'?");
}

TEST(Config, UnknownNestedKeys) {
  EXPECT_HAS(error_of("model:\n  pth: m.onnx\noutput: o\npipeline: []\n"),
             "configs/x.yaml:2:3: unknown key 'pth' in 'model' (valid: path, family, num_heads, "
             "hidden_size); did you mean 'path'?");
  EXPECT_HAS(error_of(std::string(kMinimal) + "verify: {sample: 3}\n"),
             "configs/x.yaml:4:10: unknown key 'sample' in 'verify'");
  EXPECT_HAS(error_of("model: {path: m}\noutput: o\npipeline:\n  - pass: x\n    width: {}\n"),
             "configs/x.yaml:5:5: unknown key 'width' in 'pipeline.0' (valid: pass, with)");
  EXPECT_HAS(error_of(std::string(kMinimal) + "save: {external: true}\n"),
             "unknown key 'external' in 'save'");
}

TEST(Config, BadValuesNameTheKeyAndTheExpectedType) {
  EXPECT_HAS(error_of("model: {path: m, num_heads: twelve}\noutput: o\npipeline: []\n"),
             "configs/x.yaml:1:29: 'model.num_heads' expects an integer >= 0, got 'twelve'");
  EXPECT_HAS(error_of(std::string(kMinimal) + "device: gpu\n"),
             "configs/x.yaml:4:9: 'device' expects one of cpu, cuda, auto, got 'gpu'");
  EXPECT_HAS(error_of(std::string(kMinimal) + "verify: {samples: 0}\n"),
             "'verify.samples' expects an integer >= 1, got '0'");
  EXPECT_HAS(error_of(std::string(kMinimal) + "benchmark: {batch: [1, x]}\n"),
             "'benchmark.batch.1' expects an integer >= 1, got 'x'");
  EXPECT_HAS(error_of(std::string(kMinimal) + "benchmark: {cuda_graph: 2}\n"),
             "'benchmark.cuda_graph' expects true or false, got '2'");
  EXPECT_HAS(error_of(std::string(kMinimal) + "save: {use_external_data_format: maybe}\n"),
             "'save.use_external_data_format' expects true or false, got 'maybe'");
  EXPECT_HAS(error_of("model: {path: [a, b]}\noutput: o\npipeline: []\n"),
             "'model.path' expects a string, got a list");
  EXPECT_HAS(error_of("model: m.onnx\noutput: o\npipeline: []\n"),
             "configs/x.yaml:1:8: 'model' expects a map with keys path, family");
  EXPECT_HAS(error_of(std::string(kMinimal) + "verify: {tolerance: -1}\n"),
             "'verify.tolerance' expects a number >= 0, got '-1'");
}

TEST(Config, PipelineMustBeAnOrderedListOfSteps) {
  EXPECT_HAS(error_of("model: {path: m}\noutput: o\npipeline: {a: {pass: x}}\n"),
             "configs/x.yaml:3:11: 'pipeline' expects an ordered list of steps");
  EXPECT_HAS(error_of("model: {path: m}\noutput: o\npipeline:\n  - core.cleanup\n"),
             "configs/x.yaml:4:5: 'pipeline.0' expects a step '{pass: NAME}', "
             "'{preset: FAMILY}' or '{opt_level: N}', got 'core.cleanup'");
  EXPECT_HAS(error_of("model: {path: m}\noutput: o\npipeline:\n  - {opt_level: 3}\n"),
             "configs/x.yaml:4:17: 'pipeline.0.opt_level' must be 0, 1, 2 or 99, got '3'");
  EXPECT_HAS(error_of("model: {path: m}\noutput: o\npipeline:\n  - {pass: a, preset: b}\n"),
             "configs/x.yaml:4:5: 'pipeline.0' must have exactly one of 'pass', 'preset' or "
             "'opt_level'");
  EXPECT_HAS(error_of("model: {path: m}\noutput: o\npipeline:\n  - {preset: b, with: {}}\n"),
             "unknown key 'with' in 'pipeline.0' (valid: preset)");
  EXPECT_HAS(error_of("model: {path: m}\noutput: o\npipeline:\n  - {pass: a, with: [1]}\n"),
             "'pipeline.0.with' expects a map of parameters, got a list");
}

TEST(Config, MissingDuplicateVersionAndEmpty) {
  EXPECT_HAS(error_of("model: {path: m}\npipeline: []\n"),
             "configs/x.yaml:1:1: missing key 'output'");
  EXPECT_HAS(error_of("model: {family: bert}\noutput: o\npipeline: []\n"),
             "missing key 'path' in 'model'");
  EXPECT_HAS(error_of(std::string(kMinimal) + "output: p\n"),
             "configs/x.yaml:4:1: key 'output' is given twice");
  EXPECT_HAS(error_of(std::string(kMinimal) + "version: 2\n"),
             "configs/x.yaml:4:10: config version 2 is not supported");
  EXPECT_HAS(error_of(""), "configs/x.yaml: the config is empty");
  EXPECT_HAS(error_of("- a\n- b\n"), "the config expects a map");
}

TEST(Config, MalformedYamlNamesLineAndColumn) {
  std::string e = error_of("model: {path: m}\noutput: o\npipeline:\n  - pass: [a\n");
  EXPECT_HAS(e, "configs/x.yaml:");
  EXPECT_HAS(e, ": invalid YAML: ");
  e = error_of("model: {path: m}\noutput: o\n  bad indent: x\n");
  EXPECT_HAS(e, "configs/x.yaml:3:");
  EXPECT_HAS(e, "invalid YAML");
}

TEST(Config, PathsFromTheFileAreRelativeToItsFolder) {
  Config c = parse(kMinimal, {});
  EXPECT_EQ(c.model.path.rfind("configs/", 0), 0u) << c.model.path;
  EXPECT_EQ(c.output.rfind("configs/", 0), 0u) << c.output;
}

TEST(Config, SetOverridesScalarsAndCreatesSections) {
  Config c = parse(kMinimal, {"model.path=other.onnx", "output=/tmp/x.onnx", "verify.samples=3",
                              "device=cpu", "model.num_heads=4"});
  EXPECT_EQ(c.model.path, "other.onnx");  // typed on the command line: relative to the cwd
  EXPECT_EQ(c.output, "/tmp/x.onnx");
  ASSERT_TRUE(c.verify);
  EXPECT_EQ(c.verify->samples, 3);
  EXPECT_EQ(c.device, Device::Cpu);
  EXPECT_EQ(c.model.num_heads, 4);
  EXPECT_EQ(c.model.path_where, "--set model.path=other.onnx");
}

TEST(Config, SetReachesListEntriesAndAppends) {
  const std::string text =
      "model: {path: m}\noutput: o\npipeline:\n  - preset: core\n  - pass: core.float16\n";
  Config c = parse(text, {"pipeline.1.with.keep_io_types=true", "pipeline.2.pass=core.cleanup",
                          "pipeline.1.with.op_block_list=[A, B]"});
  ASSERT_EQ(c.steps.size(), 3u);
  EXPECT_TRUE(c.steps[1].with["keep_io_types"].as<bool>());
  EXPECT_EQ(c.steps[1].with["op_block_list"].size(), 2u);
  EXPECT_EQ(c.steps[2].name, "core.cleanup");
  EXPECT_EQ(c.steps[2].where, "--set pipeline.2.pass=core.cleanup");
  // A `with:` made by --set is located at the --set; one from the file keeps its line and
  // also names the --set that changed it.
  EXPECT_EQ(c.steps[1].with_where, "--set pipeline.1.with.op_block_list=[A, B]");
  Config d = parse("model: {path: m}\noutput: o\npipeline:\n  - pass: p\n    with: {a: 1}\n",
                   {"pipeline.0.with.b=2"});
  EXPECT_EQ(d.steps[0].with_where, "configs/x.yaml:5:11 (--set pipeline.0.with.b=2)");
  // A section created by --set is located at the --set that created it.
  Config e = parse(kMinimal, {"verify.samples=2"});
  EXPECT_EQ(e.verify->where, "--set verify.samples=2");
}

TEST(Config, SetNullRemovesASection) {
  Config c = parse(std::string(kMinimal) + "verify: {samples: 2}\n", {"verify=null"});
  EXPECT_FALSE(c.verify.has_value());
}

TEST(Config, BadSetsAreNamed) {
  EXPECT_HAS(error_of(kMinimal, {"output"}), "--set output: expected key=value");
  EXPECT_HAS(error_of(kMinimal, {"=x"}), "--set =x: expected key=value");
  EXPECT_HAS(error_of(kMinimal, {"pipeline.3.pass=x"}),
             "--set pipeline.3.pass=x: index 3 is out of range ('pipeline' has 0 entries)");
  EXPECT_HAS(error_of(kMinimal, {"pipeline.first.pass=x"}), "is not an index");
  EXPECT_HAS(error_of(kMinimal, {"output.path=x"}), "'output' is a single value, not a map");
  EXPECT_HAS(error_of(kMinimal, {"model..path=x"}), "empty name in key");
  EXPECT_HAS(error_of(kMinimal, {"verify.samples=[1"}), "the value is not valid YAML");
  // Validation errors in overridden values name the --set, not a line of the file.
  EXPECT_HAS(error_of(kMinimal, {"verify.samples=abc"}),
             "--set verify.samples=abc: 'verify.samples' expects an integer >= 1, got 'abc'");
  EXPECT_HAS(error_of(kMinimal, {"pipline=[]"}), "--set pipline=[]: unknown key 'pipline'");
  EXPECT_HAS(error_of(kMinimal, {"device=gpu"}), "--set device=gpu: 'device' expects one of");
}

TEST(Config, LoadConfigReportsMissingFile) {
  try {
    load_config("/nonexistent/dir/x.yaml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "/nonexistent/dir/x.yaml: config file not found");
  }
}

TEST(Suggest, EditDistanceAndClosestName) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  const std::vector<std::string> passes{"core.cleanup", "core.remove_identity", "bert.gelu"};
  EXPECT_EQ(closest_name("core.remove_identiy", passes), "core.remove_identity");
  EXPECT_EQ(closest_name("gelu", passes), "bert.gelu");  // namespace left out
  EXPECT_EQ(closest_name("something_else", passes), "");
  EXPECT_EQ(did_you_mean("core.clean", passes), "; did you mean 'core.cleanup'?");
  EXPECT_EQ(join_names({}), "none");
}

}  // namespace
}  // namespace tfh::pipeline
