// External data: saved to `<output>.data` and mapped back; locations confined to the model folder.
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "ir_test_util.h"

namespace tfh::ir::test {
namespace {

std::string entry(const onnx::TensorProto& t, const std::string& key) {
  for (const auto& e : t.external_data())
    if (e.key() == key) return e.value();
  return "";
}

std::string bytes_of(const Tensor& t) {
  return std::string(static_cast<const char*>(t.data()), t.nbytes());
}

// Every initializer of `a` has a twin of the same name and bytes in `b`.
void expect_same_weights(const Model& a, const Model& b) {
  ASSERT_EQ(a.graph().initializers().size(), b.graph().initializers().size());
  for (const Value* v : a.graph().initializers()) {
    const Value* w = b.graph().find(v->name());
    ASSERT_TRUE(w && w->initializer()) << v->name();
    EXPECT_TRUE(bytes_of(*v->initializer()) == bytes_of(*w->initializer())) << v->name();
  }
}

TEST(ExternalData, SaveAndLoadBack) {
  TempDir dir;
  std::string src = model_files().front();
  auto original = Model::load(src);
  SaveOptions opts;
  opts.use_external_data = true;
  opts.external_threshold = 1024;
  original->save(dir / "ext.onnx", opts);
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"ext.onnx", "ext.onnx.data"}));
  EXPECT_LT(fs::file_size(dir / "ext.onnx"), fs::file_size(src) / 4);

  auto ext = Model::load(dir / "ext.onnx");
  expect_same_weights(*original, *ext);
  size_t external = 0;
  for (const Value* v : ext->graph().initializers()) {
    const Tensor& t = *v->initializer();
    EXPECT_EQ(t.is_external(), t.nbytes() > 1024) << v->name();
    if (!t.is_external()) continue;
    ++external;
    EXPECT_EQ(entry(t.proto(), "location"), "ext.onnx.data");
    EXPECT_EQ(std::stoul(entry(t.proto(), "offset")) % 64, 0u) << v->name();
    EXPECT_EQ(std::stoul(entry(t.proto(), "length")), t.nbytes());
  }
  EXPECT_GT(external, 5u);

  // Saved again without external data: exactly the original file.
  ext->save(dir / "inline.onnx");
  EXPECT_TRUE(read_file(dir / "inline.onnx") == read_file(src));
}

TEST(ExternalData, SaveOverTheMappedInput) {
  TempDir dir;
  auto original = Model::load(model_files().front());
  SaveOptions opts;
  opts.use_external_data = true;
  original->save(dir / "m.onnx", opts);
  auto model = Model::load(dir / "m.onnx");
  // The .data being replaced is the one this model's tensors are mapped from.
  opts.external_threshold = 4096;
  model->save(dir / "m.onnx", opts);
  expect_same_weights(*original, *model);  // old mapping still valid
  auto reloaded = Model::load(dir / "m.onnx");
  expect_same_weights(*original, *reloaded);
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"m.onnx", "m.onnx.data"}));
}

// A one-initializer model whose tensor lives in `location` at `offset` (4 floats).
onnx::ModelProto external_model(const std::string& location, size_t offset, size_t length = 16) {
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {4});
  onnx::TensorProto t;
  t.set_name("weights");
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(4);
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  for (auto [k, v] : {std::pair<std::string, std::string>{"location", location},
                      {"offset", std::to_string(offset)}, {"length", std::to_string(length)}}) {
    auto* e = t.add_external_data();
    e->set_key(k);
    e->set_value(v);
  }
  *g.add_initializer() = t;
  add_node(g, "Add", {"x", "weights"}, {"y"}, "add");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {4});
  return m;
}

const float kWeights[4] = {1.f, 2.f, 3.f, 4.f};

void write_weights(const std::string& path, size_t offset) {
  write_file(path,
             std::string(offset, '\0') + std::string(reinterpret_cast<const char*>(kWeights), 16));
}

TEST(ExternalData, HandWrittenReferenceIsMapped) {
  TempDir dir;
  fs::create_directory(dir / "sub");
  write_weights(dir / "sub/w.bin", 100);
  write_model(external_model("sub/w.bin", 100), dir / "m.onnx");
  auto model = Model::load(dir / "m.onnx");
  Tensor& t = *model->graph().find("weights")->initializer();
  EXPECT_TRUE(t.is_external());
  EXPECT_EQ(std::memcmp(t.data(), kWeights, 16), 0);
  // mutable_data() copies: the file stays as it was.
  static_cast<float*>(t.mutable_data())[0] = 42.f;
  EXPECT_FALSE(t.is_external());
  EXPECT_EQ(static_cast<const float*>(t.data())[0], 42.f);
  std::string file = read_file(dir / "sub/w.bin");
  EXPECT_EQ(std::memcmp(file.data() + 100, kWeights, 16), 0);
}

TEST(ExternalData, NotLoadedKeepsReferences) {
  TempDir dir;
  write_weights(dir / "w.bin", 0);
  onnx::ModelProto m = external_model("w.bin", 0);
  write_model(m, dir / "m.onnx");
  LoadOptions lo;
  lo.load_external_data = false;
  auto model = Model::load(dir / "m.onnx", lo);
  const Tensor& t = *model->graph().find("weights")->initializer();
  EXPECT_TRUE(t.is_unloaded_external());
  EXPECT_NE(error_of([&] { t.data(); }).find("'weights'"), std::string::npos);
  model->save(dir / "m.onnx");  // keeps the entries verbatim
  EXPECT_TRUE(read_file(dir / "m.onnx") == m.SerializeAsString());
}

void expect_refused(const TempDir& dir, const std::string& location, size_t offset,
                    const std::string& needle, size_t length = 16) {
  write_model(external_model(location, offset, length), dir / "m.onnx");
  std::string msg = error_of([&] { Model::load(dir / "m.onnx"); });
  EXPECT_NE(msg.find(dir / "m.onnx"), std::string::npos) << msg;
  EXPECT_NE(msg.find("initializer 'weights'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << "'" << needle << "' not in: " << msg;
}

TEST(ExternalData, LocationsOutsideTheModelFolderAreRefused) {
  TempDir dir;
  fs::create_directory(dir / "model");
  write_weights(dir / "outside.bin", 0);
  write_weights(dir / "model/inside.bin", 0);
  const TempDir& d = dir;  // the model lives in d/model, next to d/outside.bin
  auto in_model = [&](const std::string& loc, const std::string& needle) {
    write_model(external_model(loc, 0), d / "model/m.onnx");
    std::string msg = error_of([&] { Model::load(d / "model/m.onnx"); });
    EXPECT_NE(msg.find(d / "model/m.onnx"), std::string::npos) << msg;
    EXPECT_NE(msg.find("initializer 'weights'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "'" << needle << "' not in: " << msg;
  };
  in_model(d / "outside.bin", "absolute");
  in_model("../outside.bin", "escapes");
  in_model("./sub/../../outside.bin", "escapes");
  ASSERT_EQ(symlink((d / "outside.bin").c_str(), (d / "model/link.bin").c_str()), 0);
  in_model("link.bin", "outside the model's folder");
  in_model("missing.bin", "not found");
  // A symlink that stays inside is fine.
  ASSERT_EQ(symlink("inside.bin", (d / "model/link_in.bin").c_str()), 0);
  write_model(external_model("link_in.bin", 0), d / "model/m.onnx");
  EXPECT_NO_THROW(Model::load(d / "model/m.onnx"));
}

TEST(ExternalData, RangePastTheEndOrWrongLengthIsRefused) {
  TempDir dir;
  write_weights(dir / "w.bin", 8);  // 24 bytes
  expect_refused(dir, "w.bin", 16, "past the end");
  expect_refused(dir, "w.bin", 100, "past the end");
  expect_refused(dir, "w.bin", 0, "length 12", 12);
}

// Two 1.1 GB tensors in a sparse file (no disk or memory used until read): inline they would pass
// protobuf's 2 GB limit, so save refuses (auto off) or writes external data (auto on, default).
TEST(ExternalData, Over2GBGoesExternalAutomatically) {
  TempDir dir;
  const int64_t n = 275'000'000;  // floats per tensor
  const size_t bytes = static_cast<size_t>(n) * 4;
  if (fs::space(dir.path()).available < 3 * bytes) GTEST_SKIP() << "needs 3.3 GB of free disk";
  {
    std::ofstream f(dir / "big.bin", std::ios::binary);
  }
  ASSERT_EQ(truncate((dir / "big.bin").c_str(), static_cast<off_t>(2 * bytes)), 0);
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {n});
  for (int i = 0; i < 2; ++i) {
    auto t = external_model("big.bin", i * bytes, bytes).graph().initializer(0);
    t.set_name("big" + std::to_string(i));
    t.set_dims(0, n);
    *g.add_initializer() = t;
  }
  add_node(g, "Add", {"x", "big0"}, {"s"}, "add0");
  add_node(g, "Add", {"s", "big1"}, {"y"}, "add1");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {n});
  write_model(m, dir / "big.onnx");
  auto model = Model::load(dir / "big.onnx");

  SaveOptions no_auto;
  no_auto.auto_external_above_2gb = false;
  std::string msg = error_of([&] { model->save(dir / "out/inline.onnx", no_auto); });
  EXPECT_NE(msg.find("2 GB"), std::string::npos) << msg;
  EXPECT_EQ(files_in(dir / "out"), std::vector<std::string>{});

  model->save(dir / "out/auto.onnx");
  EXPECT_EQ(files_in(dir / "out"), (std::vector<std::string>{"auto.onnx", "auto.onnx.data"}));
  EXPECT_LT(fs::file_size(dir / "out/auto.onnx"), 4096u);
  EXPECT_GE(fs::file_size(dir / "out/auto.onnx.data"), 2 * bytes);
  auto back = Model::load(dir / "out/auto.onnx");
  const Tensor& t1 = *back->graph().find("big1")->initializer();
  EXPECT_TRUE(t1.is_external());
  EXPECT_EQ(entry(t1.proto(), "location"), "auto.onnx.data");
  EXPECT_EQ(static_cast<const float*>(t1.data())[n - 1], 0.f);
}

}  // namespace
}  // namespace tfh::ir::test
