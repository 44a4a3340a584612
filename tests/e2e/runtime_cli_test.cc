// The measuring subcommands end to end: check, compare, perf, profile, benchmark.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "e2e/e2e_util.h"
#include "support/ort_reference.h"
#include "support/test_util.h"

namespace tfh::e2e {
namespace {

const char* const kModels[] = {
    "albert_tiny_opset14",     "bert_tiny_opset14",   "bert_tiny_opset17",
    "distilbert_tiny_opset14", "roberta_tiny_opset14", "gpt2nopast_tiny_opset14",
    "gpt2past_tiny_opset14",   "gpt2past_tiny_opset14_fmask", "gpt2hf_tiny_opset14_withpast"};

TEST(RuntimeCli, CheckReproducesPyTorchOnEveryBundledExport) {
  std::vector<std::string> args{"check", "--atol", "1e-4", "--rtol", "0"};
  for (const char* m : kModels) args.push_back(std::string(TFH_SOURCE_DIR "/models/") + m);
  const auto r = tfhost(args);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "PASS: 18/18 data sets")) << r.out;
}

// generate's tokens are ONNX Runtime's greedy ones: each step's arg-max of the last position's
// logits, ORT running the export on the whole sequence so far. The export without a past (its
// only input is input_ids) and its fused form; generate picks in the model, from the last
// position before the LM head (it says so), where ORT computes every position's logits.
TEST(RuntimeCli, GeneratePicksOnnxRuntimesGreedyTokens) {
  test::TempDir tmp;
  const std::string exported = TFH_SOURCE_DIR "/models/gpt2nopast_tiny_opset14/model.onnx";
  const std::string fused = tmp / "fused.onnx";
  ASSERT_EQ(tfhost({"optimize", "--input", exported, "--output", fused, "--model_type", "gpt2"})
                .exit_code, 0);
  const std::vector<int64_t> prompt = {5, 17, 301, 9};
  const int steps = 5;
  std::vector<int64_t> want = prompt;
  for (int step = 0; step < steps; ++step) {
    onnx::TensorProto ids;
    ids.set_name("input_ids");
    ids.set_data_type(onnx::TensorProto::INT64);
    ids.add_dims(1);
    ids.add_dims(static_cast<int64_t>(want.size()));
    for (int64_t t : want) ids.add_int64_data(t);
    const auto out = test::ort_run(exported, {ids});
    ASSERT_EQ(out[0].dims_size(), 3);
    const int64_t vocab = out[0].dims(2);
    const std::vector<double> logits = test::tensor_values(out[0]);
    const auto last = logits.end() - vocab;
    want.push_back(std::max_element(last, logits.end()) - last);
  }
  std::string row = "row 0:";
  for (size_t k = prompt.size(); k < want.size(); ++k) row += " " + std::to_string(want[k]);
  for (const std::string& model : {exported, fused}) {
    const auto r = tfhost({"generate", "--model", model, "--prompt", "5 17 301 9", "-n",
                           std::to_string(steps)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, row + "\n") << model;
    EXPECT_TRUE(contains(r.err, "picked in the model from the last position, taken before the LM "
                                "head '")) << r.err;
  }
}

// Logits that do not come straight from an LM-head MatMul (here MatMul + a zero bias): generate
// takes the last position from the logits themselves, and picks the same tokens.
TEST(RuntimeCli, GeneratePicksFromTheLogitsWithoutAnLmHead) {
  test::TempDir tmp;
  const std::string exported = TFH_SOURCE_DIR "/models/gpt2nopast_tiny_opset14/model.onnx";
  onnx::ModelProto m = test::read_model_proto(exported);
  onnx::GraphProto& g = *m.mutable_graph();
  const std::string logits = g.output(0).name();
  std::string head_weight;
  for (auto& n : *g.mutable_node())
    for (auto& o : *n.mutable_output())
      if (o == logits) {
        o = logits + "_raw";
        ASSERT_EQ(n.op_type(), "MatMul");
        head_weight = n.input(1);
      }
  int64_t vocab = 0;
  for (const auto& t : g.initializer())
    if (t.name() == head_weight) vocab = t.dims(1);  // the LM head's [hidden, vocabulary]
  ASSERT_GT(vocab, 0);
  onnx::TensorProto* zero = g.add_initializer();
  zero->set_name("zero_bias");
  zero->set_data_type(onnx::TensorProto::FLOAT);
  zero->add_dims(vocab);
  for (int64_t i = 0; i < vocab; ++i) zero->add_float_data(0.f);
  onnx::NodeProto* add = g.add_node();
  add->set_op_type("Add");
  add->set_name("bias_after_lm_head");
  add->add_input(logits + "_raw");
  add->add_input("zero_bias");
  add->add_output(logits);
  const std::string biased = tmp / "biased.onnx";
  test::write_model_proto(m, biased);
  std::string out[2];
  for (int i = 0; i < 2; ++i) {
    const auto r = tfhost({"generate", "--model", i ? biased : exported, "--prompt",
                           "5 17 301 9", "-n", "5", "-b", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    out[i] = r.out;
    EXPECT_EQ(contains(r.err, "taken before the LM head"), i == 0) << r.err;
  }
  EXPECT_EQ(out[1], out[0]);
}

// A copy of bert_tiny's test folder whose expected output_0 is shifted by `delta` in one element.
std::string tampered_case(const test::TempDir& tmp, float delta) {
  const std::string src = TFH_SOURCE_DIR "/models/bert_tiny_opset14";
  const std::string dir = tmp / "case";
  std::filesystem::create_directories(dir + "/test_data_set_0");
  test::write_file(dir + "/model.onnx", test::read_file(src + "/model.onnx"));
  for (const char* f : {"input_0.pb", "input_1.pb", "input_2.pb", "output_1.pb"})
    test::write_file(dir + "/test_data_set_0/" + f,
                     test::read_file(src + "/test_data_set_0/" + f));
  onnx::TensorProto t;
  if (!t.ParseFromString(test::read_file(src + "/test_data_set_0/output_0.pb")))
    throw std::runtime_error("output_0.pb is not a TensorProto");
  std::string raw = t.raw_data();
  float v;
  std::memcpy(&v, raw.data(), 4);
  v += delta;
  std::memcpy(raw.data(), &v, 4);
  t.set_raw_data(raw);
  test::write_file(dir + "/test_data_set_0/output_0.pb", t.SerializeAsString());
  return dir;
}

TEST(RuntimeCli, CheckExitCodes) {
  test::TempDir tmp;
  const auto ok = tfhost({"check", tampered_case(tmp, 0.f)});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  test::TempDir tmp2;
  const auto bad = tfhost({"check", tampered_case(tmp2, 0.5f)});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_TRUE(contains(bad.out, "FAIL last_hidden_state")) << bad.out;
  EXPECT_TRUE(contains(bad.out, "1/1024 outside tolerance")) << bad.out;
  const auto missing = tfhost({"check", tmp / "nope"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_TRUE(contains(missing.err, "nope: no such folder")) << missing.err;
}

TEST(RuntimeCli, PerfPrintsPercentilesAndWritesItsResults) {
  test::TempDir tmp;
  const std::string model = tmp / "model.onnx";
  test::write_file(model, test::read_file(kBertModel));
  const auto r = tfhost({"perf", "--model", model, "-b", "2", "-s", "16", "--samples", "5",
                         "--warmup", "1", "-t", "1", "--save_inputs", tmp / "inputs"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* line : {"Latency mean: ", "Latency P50: ", "Latency P75: ", "Latency P90: ",
                           "Latency P95: ", "Latency P99: ", "Throughput: ",
                           "Planned activation memory: ", "Peak RSS: "})
    EXPECT_TRUE(contains(r.out, std::string("\n") + line)) << line << "\n" << r.out;
  bool found = false;
  for (const std::string& f : test::list_dir(tmp.path()))
    if (f.rfind("perf_results_CPU_B2_S16_", 0) == 0) {
      found = true;
      EXPECT_TRUE(contains(test::read_file(tmp / f), "Samples: 5")) << f;
    }
  EXPECT_TRUE(found);
  const std::string inputs = test::read_file(tmp / "inputs/inputs.json");
  EXPECT_TRUE(contains(inputs, "\"name\":\"input_ids\",\"type\":\"int64\",\"dims\":[2,16]"))
      << inputs;
}

// --cuda_graph and --io_binding steer a GPU run: without --use_gpu they are usage errors.
TEST(RuntimeCli, GpuOnlyOptionsNeedUseGpu) {
  for (const char* opt : {"--cuda_graph", "--io_binding"}) {
    const auto r = tfhost({"perf", "--model", kBertModel, "--samples", "1", opt});
    EXPECT_EQ(r.exit_code, 2) << opt << r.err;
    EXPECT_TRUE(contains(r.err, std::string(opt) + " needs --use_gpu")) << r.err;
  }
  const auto help = tfhost({"perf", "--help"});
  EXPECT_TRUE(contains(help.out, "--cuda_graph")) << help.out;
  EXPECT_TRUE(contains(help.out, "--io_binding")) << help.out;
  const auto gen = tfhost({"generate", "--model", kBertModel, "--prompt", "1 2", "--cuda_graph"});
  EXPECT_EQ(gen.exit_code, 2) << gen.err;
  EXPECT_TRUE(contains(gen.err, "--cuda_graph needs --use_gpu")) << gen.err;
}

TEST(RuntimeCli, ProfileWritesATraceAndASummary) {
  test::TempDir tmp;
  const std::string trace = tmp / "trace.json";
  const auto r = tfhost({"profile", "--model", kBertModel, "-s", "8", "--samples", "2",
                         "--warmup", "0", "--top", "3", "-o", trace});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "By op type:")) << r.out;
  EXPECT_TRUE(contains(r.out, "  MatMul ")) << r.out;
  EXPECT_TRUE(contains(r.out, "Slowest nodes:")) << r.out;
  const std::string json = test::read_file(trace);
  EXPECT_EQ(json.rfind("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", 0), 0u);
  EXPECT_TRUE(contains(json, "\"ph\":\"X\"")) << json.substr(0, 500);
  EXPECT_TRUE(contains(json, "\"cat\":\"MatMul\"")) << json.substr(0, 500);
}

TEST(RuntimeCli, CompareFindsEqualAndDifferentModels) {
  const auto same = tfhost({"compare", "--baseline_model", kBertModel, "--optimized_model",
                            kBertModel, "-b", "2", "-s", "8", "--samples", "2"});
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
  EXPECT_TRUE(contains(same.out, "PASS: 2/2 samples")) << same.out;

  // The same graph with one weight changed: outputs differ, exit 1.
  test::TempDir tmp;
  onnx::ModelProto m = test::read_model_proto(kBertModel);
  bool changed = false;
  for (auto& init : *m.mutable_graph()->mutable_initializer())
    if (!changed && init.data_type() == onnx::TensorProto::FLOAT && init.dims_size() == 2 &&
        init.has_raw_data()) {
      std::string raw = init.raw_data();
      for (size_t i = 0; i + 4 <= raw.size(); i += 4) {
        float v;
        std::memcpy(&v, raw.data() + i, 4);
        v *= 1.5f;
        std::memcpy(raw.data() + i, &v, 4);
      }
      init.set_raw_data(raw);
      changed = true;
    }
  ASSERT_TRUE(changed);
  test::write_file(tmp / "changed.onnx", m.SerializeAsString());
  const auto diff = tfhost({"compare", "--baseline_model", kBertModel, "--optimized_model",
                            tmp / "changed.onnx", "-s", "8", "--samples", "2"});
  EXPECT_EQ(diff.exit_code, 1) << diff.out << diff.err;
  EXPECT_TRUE(contains(diff.out, "FAIL: 0/2 samples")) << diff.out;
}

TEST(RuntimeCli, BenchmarkWritesTableCsvAndJson) {
  test::TempDir tmp;
  const auto r = tfhost({"benchmark", "--model", TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14/model.onnx",
                         "--batch_sizes", "1", "2", "--sequence_lengths", "1",
                         "--past_sequence_lengths", "4", "--samples", "3", "--warmup", "1",
                         "--result_csv", tmp / "r.csv", "--result_json", tmp / "r.json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "| original | 2 | 1 | 4 |")) << r.out;
  EXPECT_TRUE(contains(r.out, "| optimized (core) | 2 | 1 | 4 |")) << r.out;
  EXPECT_EQ(line_count(test::read_file(tmp / "r.csv")), 5u);  // header + 2 points x 2 models
  EXPECT_TRUE(contains(test::read_file(tmp / "r.json"), "\"past_sequence_length\": 4"));
}

}  // namespace
}  // namespace tfh::e2e
