// Model::load refuses broken input with one tfh::Error naming the file and the node/tensor, and
// never touches the file it reads.
#include <sys/stat.h>

#include "ir_test_util.h"

namespace tfh::ir::test {
namespace {

// Loads `path`, expecting an error whose message names the file and contains every `needle`.
// Also checks the file is byte-for-byte what it was.
void expect_load_error(const std::string& path, std::vector<std::string> needles) {
  std::string before = fs::exists(path) && fs::is_regular_file(path) ? read_file(path) : "";
  std::string msg = error_of([&] { Model::load(path); });
  ASSERT_FALSE(msg.empty()) << path << " loaded without error";
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  for (const auto& n : needles)
    EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  if (!before.empty()) {
    EXPECT_TRUE(read_file(path) == before);
  }
}

TEST(LoadErrors, MissingFileAndDirectory) {
  TempDir dir;
  expect_load_error(dir / "nope.onnx", {"no such file"});
  expect_load_error(dir.path().string(), {"directory"});
}

// A FIFO would block the open (or the read) forever; /dev/null and other devices are no model.
TEST(LoadErrors, NotARegularFile) {
  TempDir dir;
  ASSERT_EQ(mkfifo((dir / "pipe.onnx").c_str(), 0644), 0);
  {
    FifoUnblocker unblock(dir / "pipe.onnx");
    // Refused at once: waiting for a writer until the unblocker steps in takes 2 s.
    EXPECT_LT(seconds_of([&] {
                expect_load_error(dir / "pipe.onnx", {"is a FIFO", "not an ONNX model file"});
              }),
              1.0);
  }
  expect_load_error("/dev/null", {"is a character device", "not an ONNX model file"});
  // An external data file that is a FIFO.
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {4});
  onnx::TensorProto t;
  t.set_name("weights");
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(4);
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = t.add_external_data();
  e->set_key("location");
  e->set_value("pipe.onnx");
  *g.add_initializer() = t;
  add_node(g, "Add", {"x", "weights"}, {"y"}, "add");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {4});
  write_model(m, dir / "m.onnx");
  FifoUnblocker unblock(dir / "pipe.onnx");
  const std::vector<std::string> needles{"initializer 'weights'", "pipe.onnx", "is a FIFO"};
  EXPECT_LT(seconds_of([&] { expect_load_error(dir / "m.onnx", needles); }), 1.0);
}

TEST(LoadErrors, NotOnnx) {
  TempDir dir;
  write_file(dir / "empty.onnx", "");
  expect_load_error(dir / "empty.onnx", {"empty"});
  write_file(dir / "text.onnx", "hello world, this is a text file\n");
  expect_load_error(dir / "text.onnx", {"not an ONNX model"});
  const char png[] =
      "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0\x1f\xf3\xff"
      "a";
  write_file(dir / "image.onnx", std::string(png, sizeof(png) - 1));
  expect_load_error(dir / "image.onnx", {"not an ONNX model"});
  // Parses as a protobuf, but has no graph.
  onnx::ModelProto no_graph;
  no_graph.set_ir_version(8);
  write_model(no_graph, dir / "nograph.onnx");
  expect_load_error(dir / "nograph.onnx", {"no graph"});
}

TEST(LoadErrors, TruncatedAndCorrupted) {
  TempDir dir;
  std::string real = read_file(model_files().front());
  write_file(dir / "half.onnx", real.substr(0, real.size() / 2));
  expect_load_error(dir / "half.onnx", {"truncated or corrupted"});
  // ir_version, then a graph field whose content is a malformed varint.
  write_file(dir / "bad.onnx", std::string("\x08\x07\x3a\x06\x08\xff\xff\xff\xff\xff", 10));
  expect_load_error(dir / "bad.onnx", {"truncated or corrupted"});
}

TEST(LoadErrors, Cycle) {
  TempDir dir;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2});
  add_node(g, "Add", {"x", "b_out"}, {"a_out"}, "node_a");
  add_node(g, "Relu", {"a_out"}, {"b_out"}, "node_b");
  add_node(g, "Relu", {"a_out"}, {"y"}, "after_cycle");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {2});
  write_model(m, dir / "cycle.onnx");
  std::string msg = error_of([&] { Model::load(dir / "cycle.onnx"); });
  EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir / "cycle.onnx"), std::string::npos) << msg;
  EXPECT_TRUE(msg.find("node_a") != std::string::npos || msg.find("node_b") != std::string::npos)
      << msg;
  EXPECT_EQ(msg.find("after_cycle"), std::string::npos)
      << "names a node outside the cycle: " << msg;
}

TEST(LoadErrors, DanglingInputs) {
  TempDir dir;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2});
  add_node(g, "Add", {"x", "ghost"}, {"y"}, "adder");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {2});
  write_model(m, dir / "dangling.onnx");
  expect_load_error(dir / "dangling.onnx", {"node 'adder'", "input 'ghost'", "not produced"});

  g.mutable_node(0)->set_input(1, "x");
  *g.add_output() = tensor_info("nobody_makes_me", onnx::TensorProto::FLOAT, {2});
  write_model(m, dir / "dangling_output.onnx");
  expect_load_error(dir / "dangling_output.onnx", {"graph output 'nobody_makes_me'"});

  // A subgraph reading an outer name that does not exist.
  g.mutable_output()->RemoveLast();
  auto* iff = add_node(g, "If", {"x"}, {"z"}, "branchy");
  auto* a = iff->add_attribute();
  a->set_name("then_branch");
  a->set_type(onnx::AttributeProto::GRAPH);
  add_node(*a->mutable_g(), "Identity", {"outer_ghost"}, {"t"});
  write_model(m, dir / "dangling_sub.onnx");
  expect_load_error(dir / "dangling_sub.onnx", {"node 'branchy'", "'outer_ghost'"});
}

// Two nodes produce the same name: not a load error. Both nodes stay, the value's producer is the
// last definition, the name is recorded, validate() reports it, and save writes both back.
TEST(LoadErrors, NameProducedTwiceIsRecordedNotRefused) {
  TempDir dir;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2});
  add_node(g, "Relu", {"x"}, {"t"}, "first");
  add_node(g, "Neg", {"x"}, {"t"}, "second");
  add_node(g, "Relu", {"t"}, {"y"}, "user");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {2});
  write_model(m, dir / "dup.onnx");
  auto model = Model::load(dir / "dup.onnx");
  Graph& graph = model->graph();
  EXPECT_EQ(graph.num_nodes(), 3u);
  EXPECT_EQ(graph.redefined_names(), std::vector<std::string>{"t"});
  EXPECT_EQ(graph.find("t")->producer()->name(), "second");
  std::string msg = error_of([&] { graph.validate(); });
  EXPECT_NE(msg.find("'t'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("first"), std::string::npos) << msg;
  model->save(dir / "out.onnx");
  EXPECT_TRUE(read_file(dir / "out.onnx") == m.SerializeAsString());
  // Removing the last definition hands the value back to the first.
  graph.remove_node(graph.find("t")->producer());
  EXPECT_EQ(graph.find("t")->producer()->name(), "first");
  EXPECT_NO_THROW(graph.validate());

  // Or a repair: the first definition gets a fresh name.
  auto again = Model::load(dir / "dup.onnx");
  Graph& g2 = again->graph();
  Node* first = g2.nodes().front().get();
  g2.set_output(first, 0, g2.add_value(g2.unique_name("t")));
  EXPECT_EQ(g2.find("t")->producer()->name(), "second");
  EXPECT_NO_THROW(g2.validate());
}

TEST(LoadErrors, InitializerSizeMismatch) {
  TempDir dir;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2});
  *g.add_initializer() = float_tensor("short_weight", {2, 3}, {1, 2, 3, 4, 5});  // 5 of 6 floats
  add_node(g, "Add", {"x", "short_weight"}, {"y"});
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {2});
  write_model(m, dir / "raw.onnx");
  expect_load_error(dir / "raw.onnx",
                    {"initializer 'short_weight'", "raw_data has 20 bytes", "24"});

  *g.mutable_initializer(0) = int64_tensor("short_weight", {4}, {1, 2, 3});  // 3 of 4 int64
  write_model(m, dir / "typed.onnx");
  expect_load_error(dir / "typed.onnx", {"initializer 'short_weight'", "has 3 values", "needs 4"});

  onnx::TensorProto f16;  // float16 in int32_data: one entry per element
  f16.set_name("half");
  f16.set_data_type(onnx::TensorProto::FLOAT16);
  f16.add_dims(3);
  f16.add_int32_data(0x3c00);
  f16.add_int32_data(0x3c00);
  *g.mutable_initializer(0) = f16;
  write_model(m, dir / "f16.onnx");
  expect_load_error(dir / "f16.onnx", {"initializer 'half'", "has 2 values", "needs 3"});
}

// Dims whose element count (or byte size) does not fit in size_t would wrap every size computed
// from them: 2^62 + 1 times 4 floats wraps to 4, exactly what 16 bytes of raw_data hold.
TEST(LoadErrors, ElementCountOverflow) {
  TempDir dir;
  const int64_t huge = (int64_t{1} << 62) + 1;
  auto model_with = [&](const onnx::TensorProto& w, bool as_constant) {
    auto m = new_model();
    auto& g = *m.mutable_graph();
    *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {4});
    if (as_constant) {
      auto* c = add_node(g, "Constant", {}, {"w_out"}, "const");
      auto* a = c->add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      *a->mutable_t() = w;
      add_node(g, "Add", {"x", "w_out"}, {"y"}, "add");
    } else {
      *g.add_initializer() = w;
      add_node(g, "Add", {"x", w.name()}, {"y"}, "add");
    }
    *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {4});
    return m;
  };
  onnx::TensorProto wraps = float_tensor("wrapping", {huge, 4}, {1, 2, 3, 4});
  write_model(model_with(wraps, false), dir / "wrap.onnx");
  expect_load_error(dir / "wrap.onnx", {"initializer 'wrapping'", "more elements than fit"});
  // The byte size overflowing alone: 2^62 floats are 2^64 bytes.
  onnx::TensorProto bytes = float_tensor("bytes", {int64_t{1} << 62}, {});
  write_model(model_with(bytes, false), dir / "bytes.onnx");
  expect_load_error(dir / "bytes.onnx", {"initializer 'bytes'", "more elements than fit"});
  // A zero dimension makes any other size harmless.
  onnx::TensorProto empty = float_tensor("empty", {huge, 0, huge}, {});
  write_model(model_with(empty, false), dir / "empty.onnx");
  EXPECT_EQ(Model::load(dir / "empty.onnx")->graph().find("empty")->initializer()->nbytes(), 0u);

  // External data, in an initializer and in a Constant.
  write_file(dir / "w.bin", std::string(16, '\0'));
  onnx::TensorProto ext = float_tensor("ext", {huge, 4}, {});
  ext.clear_raw_data();
  ext.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = ext.add_external_data();
  e->set_key("location");
  e->set_value("w.bin");
  write_model(model_with(ext, false), dir / "ext.onnx");
  expect_load_error(dir / "ext.onnx", {"initializer 'ext'", "more elements than fit"});
  write_model(model_with(ext, true), dir / "const.onnx");
  expect_load_error(dir / "const.onnx",
                    {"tensor 'ext' (attribute 'value' of node 'const')", "more elements than fit"});
  ext.set_dims(0, -4);
  write_model(model_with(ext, true), dir / "negative.onnx");
  expect_load_error(dir / "negative.onnx", {"tensor 'ext'", "negative dimension"});
}

// A Tensor made by a pass or the runtime is checked the same way when it is constructed.
TEST(LoadErrors, TensorWithImpossibleDimsIsRefused) {
  const int64_t huge = (int64_t{1} << 62) + 1;
  for (auto [dims, needle] : std::vector<std::pair<std::vector<int64_t>, std::string>>{
           {{huge, 4}, "more elements than fit"}, {{2, -1}, "negative dimension"}}) {
    auto p = std::make_unique<onnx::TensorProto>(float_tensor("made", dims, {1, 2, 3, 4}));
    std::string msg = error_of([&] { Tensor t(std::move(p)); });
    EXPECT_NE(msg.find("tensor 'made'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace tfh::ir::test
