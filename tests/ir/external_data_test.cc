// External data: saved to `<output>.data` and mapped back; locations confined to the model folder.
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "host/ir/external_data.h"
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

// A save must not replace a file the loaded model maps: the model itself, one of its external data
// files, or (through `<output>.data`) one of those again. Rename would keep the mapping valid, but
// the input model on disk would then be broken or gone.
TEST(ExternalData, SaveOverTheMappedInputIsRefused) {
  TempDir dir;
  auto original = Model::load(model_files().front());
  SaveOptions ext;
  ext.use_external_data = true;
  original->save(dir / "b.onnx", ext);
  write_file(dir / "a.onnx", read_file(dir / "b.onnx"));  // a.onnx maps b.onnx.data
  const std::string model_bytes = read_file(dir / "a.onnx");
  const std::string data_bytes = read_file(dir / "b.onnx.data");
  ASSERT_EQ(link((dir / "b.onnx.data").c_str(), (dir / "hard.bin").c_str()), 0);
  auto model = Model::load(dir / "a.onnx");

  auto refused = [&](const std::string& out, const SaveOptions& opts,
                     std::vector<std::string> needles) {
    SCOPED_TRACE(out);
    std::string msg = error_of([&] { model->save(out, opts); });
    ASSERT_FALSE(msg.empty());
    EXPECT_NE(msg.find(out), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << n << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(error_of([&] { model->check_save_path(out, opts); }), msg);
  };
  refused(dir / "a.onnx", {}, {"loaded model"});
  refused(dir / "b.onnx.data", {}, {"'" + dir / "b.onnx.data" + "'", "external data"});
  refused(dir / "hard.bin", {}, {"'" + dir / "b.onnx.data" + "'", "external data"});
  // The saver's data file would be b.onnx.data.
  refused(dir / "b.onnx", ext, {"'" + dir / "b.onnx.data" + "'", "would replace"});
  EXPECT_TRUE(read_file(dir / "a.onnx") == model_bytes);
  EXPECT_TRUE(read_file(dir / "b.onnx.data") == data_bytes);
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"a.onnx", "b.onnx", "b.onnx.data",
                                                            "hard.bin"}));

  // b.onnx itself is not read by a.onnx: replacing it inline leaves b.onnx.data alone.
  model->save(dir / "b.onnx");
  EXPECT_TRUE(read_file(dir / "b.onnx.data") == data_bytes);
  model->save(dir / "c.onnx", ext);
  expect_same_weights(*original, *Model::load(dir / "c.onnx"));
  expect_same_weights(*original, *Model::load(dir / "a.onnx"));
  expect_same_weights(*original, *model);
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
  model->save(dir / "copy.onnx");  // keeps the entries verbatim
  EXPECT_TRUE(read_file(dir / "copy.onnx") == m.SerializeAsString());
  // Elsewhere the relative reference would point at nothing; over w.bin it would destroy the data.
  std::string msg = error_of([&] { model->save(dir / "sub/copy.onnx"); });
  EXPECT_NE(msg.find("initializer 'weights'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("another folder"), std::string::npos) << msg;
  msg = error_of([&] { model->save(dir / "w.bin"); });
  EXPECT_NE(msg.find("external data of the loaded model"), std::string::npos) << msg;
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"copy.onnx", "m.onnx", "w.bin"}));
  // Unloaded references are still confined to the model's folder.
  write_model(external_model("../w.bin", 0), dir / "escape.onnx");
  msg = error_of([&] { Model::load(dir / "escape.onnx", lo); });
  EXPECT_NE(msg.find("escapes the model's folder"), std::string::npos) << msg;
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

// ---- external data outside the main graph's initializers ----------------------------------------

// The 4 floats of `location` at `offset`, as an external reference named `name`.
onnx::TensorProto external_floats(const std::string& name, const std::string& location,
                                  size_t offset) {
  onnx::TensorProto t = external_model(location, offset).graph().initializer(0);
  t.set_name(name);
  return t;
}

onnx::NodeProto* add_constant(onnx::GraphProto& g, const std::string& name, const std::string& out,
                              const onnx::TensorProto& value) {
  auto* n = add_node(g, "Constant", {}, {out}, name);
  auto* a = n->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = value;
  return n;
}

// Every place besides the main graph's initializers where ONNX allows external data, each tensor
// pointing at 16 bytes of `location` (tensor k at offset 16 * k), except `odd_one`, which points
// at `odd_location`.
const std::vector<std::string> kSites = {"const_value", "then_w", "then_const", "sp", "fn_value",
                                         "train_w"};

onnx::ModelProto external_everywhere(const std::string& location, const std::string& odd_one = "",
                                     const std::string& odd_location = "") {
  auto tensor = [&](const std::string& name) {
    auto k = static_cast<size_t>(std::find(kSites.begin(), kSites.end(), name) - kSites.begin());
    return external_floats(name, name == odd_one ? odd_location : location, 16 * (k % 4));
  };
  onnx::ModelProto m = external_model(location, 0);
  auto& g = *m.mutable_graph();
  add_constant(g, "const", "c_out", tensor("const_value"));
  *g.add_input() = tensor_info("cond", onnx::TensorProto::BOOL, {});
  auto* iff = add_node(g, "If", {"cond"}, {"if_out"}, "if");
  auto* then_attr = iff->add_attribute();
  then_attr->set_name("then_branch");
  then_attr->set_type(onnx::AttributeProto::GRAPH);
  auto& then_g = *then_attr->mutable_g();
  then_g.set_name("then");
  *then_g.add_initializer() = tensor("then_w");
  add_constant(then_g, "then_const", "tc_out", tensor("then_const"));
  add_node(then_g, "Add", {"then_w", "tc_out"}, {"t_out"}, "then_add");
  *then_g.add_output() = tensor_info("t_out", onnx::TensorProto::FLOAT, {4});
  auto* else_attr = iff->add_attribute();
  else_attr->set_name("else_branch");
  else_attr->set_type(onnx::AttributeProto::GRAPH);
  auto& else_g = *else_attr->mutable_g();
  else_g.set_name("else");
  add_node(else_g, "Identity", {"c_out"}, {"e_out"}, "else_id");
  *else_g.add_output() = tensor_info("e_out", onnx::TensorProto::FLOAT, {4});
  *g.add_output() = tensor_info("if_out", onnx::TensorProto::FLOAT, {4});
  auto* sp = g.add_sparse_initializer();
  *sp->mutable_values() = tensor("sp");
  *sp->mutable_indices() = int64_tensor("sp_idx", {4}, {0, 2, 4, 6});
  sp->add_dims(8);
  auto* fn = m.add_functions();
  fn->set_name("F");
  fn->set_domain("local");
  fn->add_output("f_out");
  fn->add_opset_import()->set_version(14);
  auto* fn_const = fn->add_node();
  fn_const->set_name("fn_const");
  fn_const->set_op_type("Constant");
  fn_const->add_output("f_out");
  auto* fa = fn_const->add_attribute();
  fa->set_name("value");
  fa->set_type(onnx::AttributeProto::TENSOR);
  *fa->mutable_t() = tensor("fn_value");
  auto* init = m.add_training_info()->mutable_initialization();
  init->set_name("init");
  *init->add_initializer() = tensor("train_w");
  return m;
}

// 16 floats 0..15: the tensor at offset 16 * k holds 4k .. 4k + 3.
void write_sixteen(const std::string& path) {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i);
  write_file(path, std::string(reinterpret_cast<const char*>(v.data()), 64));
}

std::string floats_at(size_t k) {
  std::vector<float> v{4.f * k, 4.f * k + 1, 4.f * k + 2, 4.f * k + 3};
  return std::string(reinterpret_cast<const char*>(v.data()), 16);
}

// name -> (location or "" when inline, raw bytes) of every tensor the walker reaches.
std::map<std::string, std::pair<std::string, std::string>> other_tensors(onnx::ModelProto m) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for_each_other_tensor(m, [&](onnx::TensorProto& t, const TensorSite&) {
    bool ext = t.data_location() == onnx::TensorProto::EXTERNAL;
    out[t.name()] = {ext ? entry(t, "location") : "", t.raw_data()};
  });
  return out;
}

onnx::ModelProto parse(const std::string& path) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(read_file(path))) << path;
  return m;
}

TEST(ExternalData, TensorsOutsideInitializersAreLoadedAndSaved) {
  TempDir dir;
  fs::create_directories(dir / "in");
  write_sixteen(dir / "in/w.bin");
  write_model(external_everywhere("w.bin"), dir / "in/m.onnx");
  const std::string model_bytes = read_file(dir / "in/m.onnx");
  auto model = Model::load(dir / "in/m.onnx");

  // Read at load: each holds its bytes inline, in memory...
  const auto* value = model->graph().find("c_out")->producer()->attr("value");
  ASSERT_NE(value, nullptr);
  EXPECT_NE(value->t().data_location(), onnx::TensorProto::EXTERNAL);
  EXPECT_TRUE(value->t().raw_data() == floats_at(0));
  // ... and in a save to another folder, which a reference relative to in/ would not survive.
  model->save(dir / "out/inline.onnx");
  auto saved = other_tensors(parse(dir / "out/inline.onnx"));
  for (size_t k = 0; k < kSites.size(); ++k) {
    SCOPED_TRACE(kSites[k]);
    ASSERT_TRUE(saved.count(kSites[k]));
    EXPECT_EQ(saved[kSites[k]].first, "");
    EXPECT_TRUE(saved[kSites[k]].second == floats_at(k % 4));
  }
  auto back = Model::load(dir / "out/inline.onnx");
  EXPECT_EQ(back->graph().num_nodes(), model->graph().num_nodes());

  // With external data, subgraph initializers go to the output's data file, as with ONNX's
  // save_model(save_as_external_data=True); attribute tensors, sparse tensors, functions and
  // training_info stay inline, as there.
  SaveOptions ext;
  ext.use_external_data = true;
  ext.external_threshold = 8;
  model->save(dir / "out/ext.onnx", ext);
  saved = other_tensors(parse(dir / "out/ext.onnx"));
  EXPECT_EQ(saved["then_w"].first, "ext.onnx.data");
  for (const std::string& name : {"const_value", "then_const", "sp", "fn_value", "train_w"})
    EXPECT_EQ(saved[name].first, "") << name;
  // Loaded back, every value is what it was.
  Model::load(dir / "out/ext.onnx")->save(dir / "out/again.onnx");
  EXPECT_TRUE(read_file(dir / "out/again.onnx") == read_file(dir / "out/inline.onnx"));
  // The save changed nothing in memory, nor in the input's folder.
  EXPECT_TRUE(value->t().raw_data() == floats_at(0));
  model->save(dir / "out/inline2.onnx");
  EXPECT_TRUE(read_file(dir / "out/inline2.onnx") == read_file(dir / "out/inline.onnx"));
  EXPECT_TRUE(read_file(dir / "in/m.onnx") == model_bytes);
  EXPECT_EQ(files_in(dir / "in"), (std::vector<std::string>{"m.onnx", "w.bin"}));

  // Not loaded: kept verbatim, and refused in another folder.
  LoadOptions lo;
  lo.load_external_data = false;
  auto refs = Model::load(dir / "in/m.onnx", lo);
  refs->save(dir / "in/copy.onnx");
  EXPECT_TRUE(read_file(dir / "in/copy.onnx") == model_bytes);
  std::string msg = error_of([&] { refs->save(dir / "out/refs.onnx"); });
  EXPECT_NE(msg.find("another folder"), std::string::npos) << msg;
}

TEST(ExternalData, LocationsOutsideTheModelFolderAreRefusedEverywhere) {
  TempDir dir;
  fs::create_directory(dir / "model");
  write_sixteen(dir / "outside.bin");
  write_sixteen(dir / "model/w.bin");
  ASSERT_EQ(symlink((dir / "outside.bin").c_str(), (dir / "model/link.bin").c_str()), 0);
  const std::map<std::string, std::string> where = {
      {"const_value", "attribute 'value' of node 'const'"},
      {"then_w", "initializer of graph 'then' in attribute 'then_branch' of node 'if'"},
      {"then_const",
       "attribute 'value' of node 'then_const' in graph 'then' in attribute 'then_branch' of "
       "node 'if'"},
      {"sp", "sparse initializer of the main graph"},
      {"fn_value", "attribute 'value' of node 'fn_const' in function 'local.F'"},
      {"train_w", "initializer of graph 'init' (training_info #1 initialization)"},
  };
  const std::string path = dir / "model/m.onnx";
  for (const std::string& site : kSites) {
    for (auto [location, needle] : std::vector<std::pair<std::string, std::string>>{
             {"../outside.bin", "escapes the model's folder"},
             {dir / "outside.bin", "is absolute"},
             {"link.bin", "outside the model's folder"},
             {"missing.bin", "not found"}}) {
      SCOPED_TRACE(site + " at " + location);
      write_model(external_everywhere("w.bin", site, location), path);
      std::string msg = error_of([&] { Model::load(path); });
      EXPECT_NE(msg.find(path + ": tensor '" + site + "' (" + where.at(site) + "): "),
                std::string::npos)
          << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  // The range is checked too.
  auto m = external_everywhere("w.bin");
  auto& t = *m.mutable_functions(0)->mutable_node(0)->mutable_attribute(0)->mutable_t();
  t.mutable_external_data(1)->set_value("56");  // offset: 16 bytes from 56 pass the end (64)
  write_model(m, path);
  std::string msg = error_of([&] { Model::load(path); });
  EXPECT_NE(msg.find("tensor 'fn_value'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("past the end"), std::string::npos) << msg;
  EXPECT_TRUE(read_file(dir / "outside.bin") == floats_at(0) + floats_at(1) + floats_at(2) +
                                                    floats_at(3));
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
