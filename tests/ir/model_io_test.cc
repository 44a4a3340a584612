// Model load/save: lossless round trips, repeated saves, value_info bookkeeping, atomic output.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ir_test_util.h"

namespace tfh::ir::test {
namespace {

// A model using every part of ModelProto/GraphProto the IR must carry through untouched.
onnx::ModelProto rich_model() {
  auto m = new_model("rich");
  m.set_producer_version("1.2.3");
  m.set_domain("ai.tfhost.test");
  m.set_model_version(7);
  m.set_doc_string("model doc");
  auto* meta = m.add_metadata_props();
  meta->set_key("author");
  meta->set_value("tests");
  auto* fn = m.add_functions();  // a model-local function
  fn->set_name("Twice");
  fn->set_domain("local");
  fn->add_input("a");
  fn->add_output("b");
  auto* fn_node = fn->add_node();
  fn_node->set_op_type("Add");
  fn_node->add_input("a");
  fn_node->add_input("a");
  fn_node->add_output("b");
  fn->add_opset_import()->set_version(14);
  auto* ti = m.add_training_info();
  ti->mutable_initialization()->set_name("init");
  *ti->mutable_initialization()->add_initializer() = float_tensor("seed", {1}, {0.5f});

  onnx::GraphProto& g = *m.mutable_graph();
  g.set_doc_string("graph doc");
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {-1, 4});
  *g.add_input() = tensor_info("cond", onnx::TensorProto::BOOL, {});
  *g.add_initializer() = float_tensor("w", {4, 4}, std::vector<float>(16, 0.25f));
  onnx::TensorProto b;  // typed field, not raw_data
  b.set_name("b");
  b.set_data_type(onnx::TensorProto::FLOAT);
  b.add_dims(4);
  for (float f : {1.f, 2.f, 3.f, 4.f}) b.add_float_data(f);
  *g.add_initializer() = b;
  auto* sp = g.add_sparse_initializer();
  *sp->mutable_values() = float_tensor("sp", {1}, {9.f});
  *sp->mutable_indices() = int64_tensor("sp_idx", {1}, {2});
  sp->add_dims(4);

  auto* mm = add_node(g, "MatMul", {"x", "w"}, {"mm_out"}, "mm");
  mm->set_doc_string("node doc");
  // An unknown field (a newer ONNX's NodeProto field): must survive the round trip.
  std::string bytes = mm->SerializeAsString() + std::string("\xa0\x06\x01", 3);
  mm->ParseFromString(bytes);
  add_node(g, "Add", {"mm_out", "b"}, {"add_out"}, "add");
  auto* iff = add_node(g, "If", {"cond"}, {"if_out"}, "if");
  auto* then_attr = iff->add_attribute();
  then_attr->set_name("then_branch");
  then_attr->set_type(onnx::AttributeProto::GRAPH);
  then_attr->mutable_g()->set_name("then");
  add_node(*then_attr->mutable_g(), "Identity", {"add_out"}, {"t_out"});
  *then_attr->mutable_g()->add_output() = tensor_info("t_out", onnx::TensorProto::FLOAT, {-1, 4});
  auto* else_attr = iff->add_attribute();
  else_attr->set_name("else_branch");
  else_attr->set_type(onnx::AttributeProto::GRAPH);
  else_attr->mutable_g()->set_name("else");
  add_node(*else_attr->mutable_g(), "Relu", {"mm_out"}, {"e_out"});
  *else_attr->mutable_g()->add_output() = tensor_info("e_out", onnx::TensorProto::FLOAT, {-1, 4});
  auto* twice = add_node(g, "Twice", {"if_out"}, {"tw_out"}, "", "local");  // unnamed node
  (void)twice;
  auto* gemm = add_node(g, "Gemm", {"tw_out", "w", ""}, {"y"}, "gemm");  // omitted optional input
  auto* alpha = gemm->add_attribute();
  alpha->set_name("alpha");
  alpha->set_type(onnx::AttributeProto::FLOAT);
  alpha->set_f(0.5f);
  auto* trans = gemm->add_attribute();
  trans->set_name("transB");
  trans->set_type(onnx::AttributeProto::INT);
  trans->set_i(1);
  add_node(g, "Add", {"y", "sp"}, {"z"}, "use_sparse");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {-1, 4});
  *g.add_output() = tensor_info("z", onnx::TensorProto::FLOAT, {-1, 4});
  *g.add_value_info() = tensor_info("add_out", onnx::TensorProto::FLOAT, {-1, 4});
  *g.add_value_info() = tensor_info("stale_entry", onnx::TensorProto::FLOAT, {1});  // names nothing
  *g.add_value_info() = tensor_info("mm_out", onnx::TensorProto::FLOAT, {-1, 4});
  auto* qa = g.add_quantization_annotation();
  qa->set_tensor_name("w");
  return m;
}

TEST(ModelIo, EveryRepoModelRoundTripsByteIdentical) {
  TempDir dir;
  auto models = model_files();
  ASSERT_GE(models.size(), 5u);
  for (const auto& path : models) {
    SCOPED_TRACE(path);
    auto model = Model::load(path);
    std::string out = dir / "out.onnx";
    model->save(out);
    std::string original = read_file(path), saved = read_file(out);
    EXPECT_EQ(saved.size(), original.size());
    EXPECT_TRUE(saved == original);
    onnx::ModelProto a, b;  // and as messages (independent of serialization order)
    ASSERT_TRUE(a.ParseFromString(original));
    ASSERT_TRUE(b.ParseFromString(saved));
    EXPECT_TRUE(a.SerializeAsString() == b.SerializeAsString());
  }
}

TEST(ModelIo, RichModelRoundTripsByteIdentical) {
  TempDir dir;
  onnx::ModelProto m = rich_model();
  write_model(m, dir / "rich.onnx");
  auto model = Model::load(dir / "rich.onnx");
  const Graph& g = model->graph();
  EXPECT_EQ(g.num_nodes(), 6u);
  EXPECT_EQ(g.inputs().size(), 2u);
  EXPECT_EQ(g.initializers().size(), 2u);
  EXPECT_TRUE(g.find("sp")->is_sparse_initializer());
  EXPECT_EQ(model->opset(""), 14);
  EXPECT_EQ(model->opset("ai.onnx"), 14);
  EXPECT_EQ(model->opset("com.microsoft"), 1);
  EXPECT_EQ(model->opset("ai.onnx.ml"), -1);
  model->save(dir / "out.onnx");
  EXPECT_TRUE(read_file(dir / "out.onnx") == m.SerializeAsString());
}

TEST(ModelIo, SaveTwiceAndModelStaysUsable) {
  TempDir dir;
  write_model(rich_model(), dir / "rich.onnx");
  auto model = Model::load(dir / "rich.onnx");
  model->save(dir / "a.onnx");
  model->save(dir / "b.onnx");
  EXPECT_TRUE(read_file(dir / "a.onnx") == read_file(dir / "b.onnx"));
  // Still a working graph: data readable, attributes back on their nodes, skeleton graph empty.
  const Graph& g = model->graph();
  const Tensor* b = g.find("b")->initializer();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(static_cast<const float*>(b->data())[3], 4.f);
  EXPECT_EQ(g.find("y")->producer()->attr("transB")->i(), 1);
  EXPECT_EQ(model->skeleton().graph().node_size(), 0);
  EXPECT_EQ(model->skeleton().graph().initializer_size(), 0);
  EXPECT_EQ(use_def_problems(g), "");
  // No temporary files left next to the outputs.
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"a.onnx", "b.onnx", "rich.onnx"}));
}

// Writing over the file a model was loaded from would destroy the input the user still has; a
// hard link or a symlink to it is the same file.
TEST(ModelIo, SaveOverTheInputFileIsRefused) {
  TempDir dir;
  std::string src = model_files().front();
  write_file(dir / "m.onnx", read_file(src));
  ASSERT_EQ(link((dir / "m.onnx").c_str(), (dir / "hard.onnx").c_str()), 0);
  ASSERT_EQ(symlink("m.onnx", (dir / "soft.onnx").c_str()), 0);
  auto model = Model::load(dir / "m.onnx");
  for (const std::string& out : {dir / "m.onnx", dir / "hard.onnx", dir / "soft.onnx",
                                 dir / "./sub/../m.onnx"}) {
    std::string msg = error_of([&] { model->save(out); });
    EXPECT_NE(msg.find(out), std::string::npos) << msg;
    EXPECT_NE(msg.find("'" + dir / "m.onnx" + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("loaded model"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(error_of([&] { model->check_save_path(out); }), msg);
  }
  EXPECT_TRUE(read_file(dir / "m.onnx") == read_file(src));
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"hard.onnx", "m.onnx", "soft.onnx"}));
  model->save(dir / "copy.onnx");  // elsewhere: fine, and exact
  EXPECT_TRUE(read_file(dir / "copy.onnx") == read_file(src));
}

TEST(ModelIo, LoadDoesNotModifyTheInput) {
  TempDir dir;
  write_model(rich_model(), dir / "rich.onnx");
  std::string before = read_file(dir / "rich.onnx");
  auto mtime = fs::last_write_time(dir / "rich.onnx");
  auto model = Model::load(dir / "rich.onnx");
  model->graph().find("b")->initializer()->data();  // converts typed data in memory only
  model->save(dir / "copy.onnx");
  EXPECT_TRUE(read_file(dir / "rich.onnx") == before);
  EXPECT_EQ(fs::last_write_time(dir / "rich.onnx"), mtime);
}

// Build a -> Relu chain x -> t1 -> t2 -> y with value_info [t2, t1].
onnx::ModelProto chain_model() {
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2});
  add_node(g, "Relu", {"x"}, {"t1"}, "r1");
  add_node(g, "Relu", {"t1"}, {"t2"}, "r2");
  add_node(g, "Relu", {"t2"}, {"y"}, "r3");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {2});
  *g.add_value_info() = tensor_info("t2", onnx::TensorProto::FLOAT, {2});
  *g.add_value_info() = tensor_info("t1", onnx::TensorProto::FLOAT, {2});
  return m;
}

std::vector<std::string> value_info_names(const std::string& path) {
  onnx::ModelProto m;
  m.ParseFromString(read_file(path));
  std::vector<std::string> out;
  for (const auto& vi : m.graph().value_info()) out.push_back(vi.name());
  return out;
}

TEST(ModelIo, ValueInfoKeepsOrderAndDropsRemovedValues) {
  TempDir dir;
  write_model(chain_model(), dir / "chain.onnx");
  auto model = Model::load(dir / "chain.onnx");
  model->save(dir / "same.onnx");
  EXPECT_EQ(value_info_names(dir / "same.onnx"), (std::vector<std::string>{"t2", "t1"}));

  Graph& g = model->graph();
  Value* t1 = g.find("t1");
  Value* t2 = g.find("t2");
  g.replace_all_uses(t2, t1);
  g.remove_node(t2->producer());
  g.remove_value(t2);
  Value* extra = g.add_value("extra");  // gains an entry: appended after the loaded ones
  g.add_node("r4", "Relu", "", {t1}, {extra});
  g.add_graph_output(extra);
  Value* mid = g.add_value("mid");
  g.add_node("r5", "Relu", "", {extra}, {mid});
  auto& info = mid->mutable_info();
  info.mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  model->save(dir / "edited.onnx");
  EXPECT_EQ(value_info_names(dir / "edited.onnx"), (std::vector<std::string>{"t1", "mid"}));
}

TEST(ModelIo, CreatesTheParentDirectory) {
  TempDir dir;
  auto model = Model::load(model_files().front());
  std::string out = dir / "a/b/c/model.onnx";
  model->save(out);
  EXPECT_TRUE(fs::is_regular_file(out));
}

TEST(ModelIo, FailedSaveLeavesNothing) {
  TempDir dir;
  auto model = Model::load(model_files().front());
  write_file(dir / "afile", "not a directory");
  // The parent of the output is a file.
  std::string msg = error_of([&] { model->save(dir / "afile/out.onnx"); });
  EXPECT_NE(msg.find("afile/out.onnx"), std::string::npos) << msg;
  // The output path is a directory.
  fs::create_directory(dir / "sub");
  msg = error_of([&] { model->save(dir / "sub"); });
  EXPECT_NE(msg.find("is a directory"), std::string::npos) << msg;
  EXPECT_TRUE(fs::is_directory(dir / "sub"));
  EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"afile", "sub"}));
}

// A rename onto a FIFO or a device node would replace it (as root, even /dev/null itself); a
// symlink to one counts as one. Refused before anything is written.
TEST(ModelIo, OutputThatIsNotARegularFileIsRefused) {
  TempDir dir;
  auto model = Model::load(model_files().front());
  ASSERT_EQ(mkfifo((dir / "pipe.onnx").c_str(), 0644), 0);
  ASSERT_EQ(symlink("/dev/null", (dir / "null.onnx").c_str()), 0);
  ASSERT_EQ(mkfifo((dir / "ext.onnx.data").c_str(), 0644), 0);
  SaveOptions ext;
  ext.use_external_data = true;
  for (auto [out, opts, needle] : std::vector<std::tuple<std::string, SaveOptions, std::string>>{
           {dir / "pipe.onnx", {}, "is a FIFO"},
           {dir / "null.onnx", {}, "is a character device"},
           {dir / "ext.onnx", ext, "is a FIFO"}}) {
    SCOPED_TRACE(out);
    std::string msg = error_of([&] { model->save(out, opts); });
    EXPECT_NE(msg.find(out), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
    EXPECT_EQ(error_of([&] { model->check_save_path(out, opts); }), msg);
  }
  struct stat st {};
  ASSERT_EQ(stat((dir / "pipe.onnx").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(lstat((dir / "null.onnx").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(files_in(dir.path()),
            (std::vector<std::string>{"ext.onnx.data", "null.onnx", "pipe.onnx"}));
}

// A graph input that is also a graph output keeps both declarations, which may differ.
TEST(ModelIo, InputPassedThroughAsOutputRoundTrips) {
  TempDir dir;
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {-1, 4});
  g.mutable_input(0)->set_doc_string("the input");
  add_node(g, "Relu", {"x"}, {"y"}, "relu");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {-1, 4});
  *g.add_output() = tensor_info("x", onnx::TensorProto::FLOAT, {2, 4});
  g.mutable_output(1)->set_doc_string("the input, passed through");
  write_model(m, dir / "through.onnx");
  auto model = Model::load(dir / "through.onnx");
  model->save(dir / "same.onnx");
  EXPECT_TRUE(read_file(dir / "same.onnx") == m.SerializeAsString());

  // A rename renames both declarations.
  Graph& graph = model->graph();
  graph.rename_value(graph.find("x"), "input_ids");
  model->save(dir / "renamed.onnx");
  onnx::ModelProto renamed;
  ASSERT_TRUE(renamed.ParseFromString(read_file(dir / "renamed.onnx")));
  EXPECT_EQ(renamed.graph().input(0).name(), "input_ids");
  EXPECT_EQ(renamed.graph().input(0).doc_string(), "the input");
  EXPECT_EQ(renamed.graph().output(1).name(), "input_ids");
  EXPECT_EQ(renamed.graph().output(1).doc_string(), "the input, passed through");
  EXPECT_EQ(renamed.graph().output(1).type().tensor_type().shape().dim(0).dim_value(), 2);

  // The output re-pointed at another value takes its declaration along.
  graph.replace_all_uses(graph.find("input_ids"), graph.find("y"));
  model->save(dir / "replaced.onnx");
  onnx::ModelProto replaced;
  ASSERT_TRUE(replaced.ParseFromString(read_file(dir / "replaced.onnx")));
  EXPECT_EQ(replaced.graph().input(0).doc_string(), "the input");
  ASSERT_EQ(replaced.graph().output_size(), 2);
  EXPECT_EQ(replaced.graph().output(1).name(), "y");
}

// Ctrl-C (or kill) during a save: the temporaries go, and the process still dies of the signal.
// A child saves a 64 MB model over and over; it is signalled as soon as a temporary exists.
TEST(ModelIo, InterruptedSaveLeavesNoTemporaries) {
  TempDir dir;
  const int64_t n = 16 << 20;  // floats
  {
    std::ofstream f(dir / "big.bin", std::ios::binary);
  }
  ASSERT_EQ(truncate((dir / "big.bin").c_str(), n * 4), 0);  // sparse: no disk used until written
  auto m = new_model();
  auto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {n});
  onnx::TensorProto t;
  t.set_name("big");
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(n);
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = t.add_external_data();
  e->set_key("location");
  e->set_value("big.bin");
  *g.add_initializer() = t;
  add_node(g, "Add", {"x", "big"}, {"y"}, "add");
  *g.add_output() = tensor_info("y", onnx::TensorProto::FLOAT, {n});
  write_model(m, dir / "big.onnx");
  auto model = Model::load(dir / "big.onnx");
  fs::create_directory(dir / "out");

  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(strsignal(sig));
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      SaveOptions opts;
      for (int i = 0;; ++i) {
        opts.use_external_data = i % 2 == 0;  // both temporaries: the model's and the data's
        try {
          model->save(dir / "out/m.onnx", opts);
        } catch (...) {
          _exit(3);
        }
      }
    }
    bool seen = false;
    for (int i = 0; i < 30000 && !seen; ++i) {
      for (const auto& name : files_in(dir / "out"))
        if (name.find(".tmp.") != std::string::npos) seen = true;
      if (!seen) usleep(1000);
    }
    kill(child, sig);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(seen) << "no temporary file appeared";
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "status " << status;
    for (const auto& name : files_in(dir / "out"))
      EXPECT_EQ(name.find(".tmp."), std::string::npos) << name << " left behind";
  }
}

// Makes writes past `bytes` fail (EFBIG) for the length of a scope, as a full disk would.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old_);
    rlimit l = old_;
    l.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &l);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  sighandler_t old_handler_;
};

TEST(ModelIo, WriteFailureKeepsTheOldOutputAndRemovesTemporaries) {
  TempDir dir;
  std::string src = model_files().front();
  auto model = Model::load(src);
  write_file(dir / "out.onnx", "previous contents");
  for (bool external : {false, true}) {
    SCOPED_TRACE(external);
    SaveOptions opts;
    opts.use_external_data = external;
    std::string msg;
    {
      FileSizeLimit limit(32 * 1024);
      msg = error_of([&] { model->save(dir / "out.onnx", opts); });
    }
    EXPECT_NE(msg.find("out.onnx"), std::string::npos) << msg;
    EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
    EXPECT_EQ(read_file(dir / "out.onnx"), "previous contents");
    EXPECT_EQ(files_in(dir.path()), (std::vector<std::string>{"out.onnx"}));
  }
  // And the model is intact: a later save works and is exact.
  model->save(dir / "out.onnx");
  EXPECT_TRUE(read_file(dir / "out.onnx") == read_file(src));
}

}  // namespace
}  // namespace tfh::ir::test
