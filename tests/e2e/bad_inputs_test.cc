// Every kind of bad input, through `tfhost run` (a config pointing at it) and, where it is a model
// or a plugin, through `tfhost optimize --input`: a non-zero exit, at most three stderr lines that
// name the file (and the node, tensor or key), the input byte-identical, no output written.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "e2e/e2e_util.h"
#include "support/test_util.h"

namespace tfh::e2e {
namespace {

// ---- small models built here -------------------------------------------------------------------

onnx::ValueInfoProto float_value(const std::string& name, int64_t n) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_value(n);
  return v;
}

onnx::NodeProto node(const std::string& name, const std::string& op,
                     const std::vector<std::string>& in, const std::vector<std::string>& out) {
  onnx::NodeProto n;
  n.set_name(name);
  n.set_op_type(op);
  for (const auto& i : in) n.add_input(i);
  for (const auto& o : out) n.add_output(o);
  return n;
}

// x -> Relu -> y, opset 14: valid; each bad model below breaks it in one way.
onnx::ModelProto tiny_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(14);
  auto* g = m.mutable_graph();
  g->set_name("tiny");
  *g->add_input() = float_value("x", 4);
  *g->add_output() = float_value("y", 4);
  *g->add_node() = node("relu_0", "Relu", {"x"}, {"y"});
  return m;
}

onnx::ModelProto cycle_model() {
  onnx::ModelProto m = tiny_model();
  auto* g = m.mutable_graph();
  g->clear_node();
  *g->add_node() = node("node_a", "Add", {"x", "b_out"}, {"y"});
  *g->add_node() = node("node_b", "Relu", {"y"}, {"b_out"});
  return m;
}

onnx::ModelProto dangling_model() {
  onnx::ModelProto m = tiny_model();
  m.mutable_graph()->mutable_node(0)->set_input(0, "nowhere_value");
  return m;
}

onnx::TensorProto weight(const std::string& name) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(4);
  return t;
}

onnx::ModelProto with_weight(const onnx::TensorProto& w) {
  onnx::ModelProto m = tiny_model();
  auto* g = m.mutable_graph();
  *g->add_initializer() = w;
  g->clear_node();
  *g->add_node() = node("add_0", "Add", {"x", w.name()}, {"y"});
  return m;
}

onnx::ModelProto bad_size_model() {
  onnx::TensorProto w = weight("weight_w");
  w.set_raw_data(std::string(8, '\0'));  // 4 floats need 16 bytes
  return with_weight(w);
}

onnx::ModelProto escaping_external_model() {
  onnx::TensorProto w = weight("weight_ext");
  w.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = w.add_external_data();
  e->set_key("location");
  e->set_value("../secret.bin");
  return with_weight(w);
}

// A valid model whose weight lives in `location` (16 bytes, next to the model).
onnx::ModelProto external_weight_model(const std::string& location) {
  onnx::TensorProto w = weight("weight_ext");
  w.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = w.add_external_data();
  e->set_key("location");
  e->set_value(location);
  return with_weight(w);
}

// While alive, and after two seconds, opens the FIFO at `path` for writing whenever a reader waits
// on it: a tfhost that wrongly waits on the FIFO then sees an empty file instead of hanging.
class FifoUnblocker {
 public:
  explicit FifoUnblocker(std::string path) : path_(std::move(path)), thread_([this] { run(); }) {}
  ~FifoUnblocker() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run() {
    const auto start = std::chrono::steady_clock::now();
    while (!stop_) {
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(2)) {
        int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) ::close(fd);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::string path_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---- the matrix ------------------------------------------------------------------------------

class BadInput : public ::testing::Test {
 protected:
  std::string models() const { return tmp_ / "models"; }
  std::string out_dir() const { return tmp_ / "out"; }
  std::string out() const { return tmp_ / "out/result.onnx"; }

  void SetUp() override {
    ::mkdir(models().c_str(), 0755);
    ::mkdir(out_dir().c_str(), 0755);
  }

  std::string write_model(const std::string& name, const onnx::ModelProto& m) {
    const std::string p = models() + "/" + name;
    test::write_model_proto(m, p);
    return p;
  }
  std::string write_bytes(const std::string& name, const std::string& bytes) {
    const std::string p = models() + "/" + name;
    test::write_file(p, bytes);
    return p;
  }

  // A config next to the models whose model is `model_path`; `extra` is appended verbatim.
  std::string write_config(const std::string& model_path, const std::string& pipeline = "[]",
                           const std::string& extra = "") {
    const std::string p = tmp_ / "job.yaml";
    test::write_file(p, "model: {path: " + model_path + "}\noutput: " + out() +
                            "\npipeline: " + pipeline + "\n" + extra);
    return p;
  }

  // `tfhost run` on a config pointing at `model`, then `tfhost optimize --input model`.
  void expect_both_fail(const std::string& model, const std::vector<std::string>& names) {
    FailureCheck check(model, out_dir());
    SCOPED_TRACE(model);
    const std::string config = write_config(model);
    check.expect(tfhost({"run", config}), names);
    check.expect(tfhost({"optimize", "--input", model, "--output", out()}), names);
  }

  // `tfhost run` on a config with `text` appended to a valid model and output.
  void expect_config_fails(const std::string& text, const std::vector<std::string>& names) {
    const std::string model = write_bytes("model.onnx", test::read_file(kBertModel));
    const std::string config = tmp_ / "job.yaml";
    test::write_file(config, "model: {path: models/model.onnx}\noutput: out/result.onnx\n" + text);
    FailureCheck check(model, out_dir());
    std::vector<std::string> all = names;
    all.push_back("job.yaml");
    check.expect(tfhost({"run", config}), all);
  }

  // A folder holding only the fixture plugin `name` (the fixture folder has others that fail in
  // their own ways).
  std::string plugin_dir_with(const std::string& name) {
    const std::string dir = tmp_ / "plugins";
    ::mkdir(dir.c_str(), 0755);
    const std::string file = "/lib" + name + ".so";
    test::write_file(dir + file, test::read_file(TFH_FIXTURE_PLUGIN_DIR + file));
    return dir;
  }
  std::string future_plugin_dir() { return plugin_dir_with("fixture_future_abi"); }

  test::TempDir tmp_;
};

TEST_F(BadInput, MissingFile) { expect_both_fail(models() + "/missing.onnx", {"missing.onnx"}); }

TEST_F(BadInput, TextFileThatIsNotOnnx) {
  expect_both_fail(write_bytes("notes.onnx", "these are my notes, not a model\nline two\n"),
                   {"notes.onnx"});
}

TEST_F(BadInput, TruncatedModel) {
  const std::string bytes = test::read_file(kBertModel);
  expect_both_fail(write_bytes("truncated.onnx", bytes.substr(0, bytes.size() / 2)),
                   {"truncated.onnx"});
}

TEST_F(BadInput, CorruptedProtobuf) {
  std::string bytes = test::read_file(kBertModel);
  for (size_t i = 0; i < 16; ++i) bytes[i] = '\xff';  // a field tag no varint decoder accepts
  expect_both_fail(write_bytes("corrupted.onnx", bytes), {"corrupted.onnx"});
}

TEST_F(BadInput, GraphWithACycle) {
  const std::string p = write_model("cycle.onnx", cycle_model());
  FailureCheck check(p, out_dir());
  for (auto r :
       {tfhost({"run", write_config(p)}), tfhost({"optimize", "--input", p, "--output", out()})}) {
    check.expect(r, {"cycle.onnx"});
    EXPECT_TRUE(contains(r.err, "node_a") || contains(r.err, "node_b")) << r.err;
  }
}

TEST_F(BadInput, DanglingInput) {
  expect_both_fail(write_model("dangling.onnx", dangling_model()),
                   {"dangling.onnx", "nowhere_value"});
}

TEST_F(BadInput, InitializerSizeDoesNotMatchShape) {
  expect_both_fail(write_model("badsize.onnx", bad_size_model()), {"badsize.onnx", "weight_w"});
}

TEST_F(BadInput, ExternalDataOutsideTheModelFolder) {
  test::write_file(tmp_ / "secret.bin", std::string(16, 'x'));  // exists: only the path is wrong
  const std::string p = write_model("escape.onnx", escaping_external_model());
  FailureCheck check(p, out_dir());
  for (auto r :
       {tfhost({"run", write_config(p)}), tfhost({"optimize", "--input", p, "--output", out()})}) {
    check.expect(r, {"escape.onnx"});
    EXPECT_TRUE(contains(r.err, "secret.bin") || contains(r.err, "weight_ext")) << r.err;
  }
}

// A FIFO would block the read forever; /dev/null is no model either. `run` refuses them while
// checking the config; `optimize` reaches the loader.
TEST_F(BadInput, InputThatIsNotARegularFile) {
  const std::string fifo = models() + "/pipe.onnx";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  FifoUnblocker unblock(fifo);
  FailureCheck check("", out_dir());  // reading the FIFO to compare it would block the test
  check.expect(tfhost({"run", write_config(fifo)}), {"pipe.onnx"});
  check.expect(tfhost({"optimize", "--input", fifo, "--output", out()}),
               {"pipe.onnx", "is a FIFO", "not an ONNX model file"});
  check.expect(tfhost({"optimize", "--input", "/dev/null", "--output", out()}),
               {"/dev/null", "is a character device"});
}

// The output must not replace a file the input model reads: its external data, directly or as
// the `<output>.data` the saver would write.
TEST_F(BadInput, OutputOverTheInputsExternalData) {
  const std::string model = write_model("ext.onnx", external_weight_model("weights.bin"));
  const std::string data = write_bytes("weights.bin", std::string(16, '\x11'));
  FailureCheck check(model, out_dir());
  const std::vector<std::string> names{"weights.bin", "external data of the loaded model",
                                       "ext.onnx"};
  check.expect(tfhost({"run", write_config(model), "--set", "output=" + data}), names);
  check.expect(tfhost({"optimize", "--input", model, "--output", data}), names);
  EXPECT_EQ(test::read_file(data), std::string(16, '\x11'));
}

TEST_F(BadInput, OutputDataFileWouldReplaceTheInputsExternalData) {
  const std::string model = write_model("ext.onnx", external_weight_model("next.onnx.data"));
  const std::string data = write_bytes("next.onnx.data", std::string(16, '\x22'));
  const std::string next = models() + "/next.onnx";
  FailureCheck check(model, out_dir());
  const std::vector<std::string> names{"next.onnx.data", "would replace", "ext.onnx"};
  check.expect(tfhost({"run", write_config(model, "[]", "save: {use_external_data_format: true}\n"),
                       "--set", "output=" + next}),
               names);
  check.expect(tfhost({"optimize", "--input", model, "--output", next,
                       "--use_external_data_format"}),
               names);
  EXPECT_EQ(test::read_file(data), std::string(16, '\x22'));
  EXPECT_FALSE(test::file_exists(next));
}

// A rename onto a FIFO (or a device) would replace it: refused, the FIFO stays.
TEST_F(BadInput, OutputThatIsAFifo) {
  const std::string model = write_bytes("model.onnx", test::read_file(kBertModel));
  const std::string fifo = tmp_ / "pipe_out.onnx";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  FailureCheck check(model, out_dir());
  const std::vector<std::string> names{"pipe_out.onnx", "is a FIFO", "not a regular file"};
  check.expect(tfhost({"run", write_config(model), "--set", "output=" + fifo}), names);
  check.expect(tfhost({"optimize", "--input", model, "--output", fifo}), names);
  struct stat st {};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(BadInput, UnknownPass) {
  expect_config_fails(
      "pipeline:\n  - pass: core.remove_identiy\n",
      {"job.yaml:4:11", "core.remove_identiy", "did you mean 'core.remove_identity'"});
}

TEST_F(BadInput, UnknownWithParameter) {
  expect_config_fails("pipeline:\n  - pass: core.remove_identity\n    with: {bogus_param: 1}\n",
                      {"job.yaml:5:", "bogus_param"});
}

TEST_F(BadInput, MalformedYaml) {
  expect_config_fails("pipeline: [\n  - pass: x\n", {"job.yaml:", "invalid YAML"});
}

TEST_F(BadInput, UnknownConfigKey) {
  expect_config_fails("pipline: []\n", {"job.yaml:3:1", "unknown key 'pipline'", "valid: "});
}

TEST_F(BadInput, BadSetOverride) {
  const std::string model = write_bytes("model.onnx", test::read_file(kBertModel));
  FailureCheck check(model, out_dir());
  check.expect(tfhost({"run", write_config(model), "--set", "pipeline.4.pass=x"}),
               {"--set pipeline.4.pass=x", "out of range"});
}

TEST_F(BadInput, OutputIsTheInput) {
  const std::string model = write_bytes("model.onnx", test::read_file(kBertModel));
  FailureCheck check(model, out_dir());
  check.expect(tfhost({"run", write_config(model), "--set", "output=" + model}),
               {"model.onnx", "is the input model"});
  check.expect(tfhost({"optimize", "--input", model, "--output", model}),
               {"model.onnx", "is the input model"});
}

// A stale plugin found by searching (--plugin-path, TFHOST_PLUGIN_PATH) is skipped with one
// warning naming the file and the reason; the run goes on. Named in plugins.load: an error (below).
TEST_F(BadInput, FutureAbiPluginFoundBySearchingIsSkipped) {
  const std::string model = write_bytes("model.onnx", test::read_file(kBertModel));
  const std::string dir = future_plugin_dir();
  const std::string env = "TFHOST_PLUGIN_PATH=" + dir;
  for (const auto& r :
       {tfhost({"--plugin-path", dir, "run", write_config(model)}),
        tfhost({"optimize", "--plugin-path", dir, "--input", model, "--output", out()}),
        tfhost({"run", write_config(model)}, {env}),
        tfhost({"optimize", "--input", model, "--output", out()}, {env})}) {
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.err, "libfixture_future_abi.so: skipped: plugin 'fixture_future_abi' "
                                "was built for tfhost plugin ABI "))
        << r.err;
    EXPECT_EQ(line_count(r.err), 1u) << r.err;
  }
}

TEST_F(BadInput, FutureAbiPluginThroughConfigLoad) {
  const std::string model = write_bytes("model.onnx", test::read_file(kBertModel));
  FailureCheck check(model, out_dir());
  const std::string config = write_config(
      model, "[]", "plugins: {load: [" TFH_FIXTURE_PLUGIN_DIR "/libfixture_future_abi.so]}\n");
  check.expect(tfhost({"run", config}), {"job.yaml:4:", "libfixture_future_abi.so", "ABI"});
}

TEST_F(BadInput, PluginWhoseFusionFails) {
  // Through a config naming the pass; `optimize` reaches it through the model type "throws".
  const std::string model = write_bytes("model.onnx", test::read_file(kBertModel));
  FailureCheck check(model, out_dir());
  const std::string config =
      write_config(model, "\n  - pass: fixture.boom",
                   "plugins: {load: [" TFH_FIXTURE_PLUGIN_DIR "/libfixture_throws.so]}\n");
  check.expect(tfhost({"run", config}),
               {"job.yaml:4:11", "fixture.boom", "fixture_throws", "boom"});
}

TEST_F(BadInput, PluginWhoseFusionFailsThroughOptimize) {
  const std::string model = write_bytes("model.onnx", test::read_file(kBertModel));
  const std::string dir = plugin_dir_with("fixture_throws");
  FailureCheck check(model, out_dir());
  check.expect(tfhost({"optimize", "--plugin-path", dir, "--input", model, "--output", out(),
                       "--model_type", "throws"}),
               {"fixture.boom", "fixture_throws", "boom"});
}

}  // namespace
}  // namespace tfh::e2e
