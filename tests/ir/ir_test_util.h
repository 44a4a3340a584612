// Helpers for the IR tests: temp dirs, files, and small ONNX graphs built with protobuf directly.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include "host/ir/graph.h"
#include "host/util/error.h"

namespace tfh::ir::test {

namespace fs = std::filesystem;

// A fresh directory under the build tree, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    fs::path base = fs::path(TFH_BINARY_DIR) / "tmp";
    fs::create_directories(base);
    std::string tmpl = (base / "ir_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

inline void write_model(const onnx::ModelProto& m, const std::string& path) {
  write_file(path, m.SerializeAsString());
}

inline std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::string> model_files() {
  std::vector<std::string> out;
  for (const auto& d : fs::directory_iterator(fs::path(TFH_SOURCE_DIR) / "models"))
    if (fs::exists(d.path() / "model.onnx")) out.push_back((d.path() / "model.onnx").string());
  std::sort(out.begin(), out.end());
  return out;
}

// While alive, and from `delay` on, opens the FIFO at `path` for writing (and closes it at once)
// whenever a reader waits on it: code that wrongly opens a FIFO for reading then sees an empty
// file after `delay` instead of blocking the test forever, so the test fails instead of hanging.
class FifoUnblocker {
 public:
  explicit FifoUnblocker(std::string path,
                         std::chrono::milliseconds delay = std::chrono::milliseconds(2000))
      : path_(std::move(path)), delay_(delay), thread_([this] { run(); }) {}
  ~FifoUnblocker() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run() {
    const auto start = std::chrono::steady_clock::now();
    while (!stop_) {
      if (std::chrono::steady_clock::now() - start >= delay_) {
        int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // ENXIO: no reader
        if (fd >= 0) ::close(fd);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::string path_;
  std::chrono::milliseconds delay_;
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: starts once the members it reads exist
};

// Seconds `fn` takes.
template <typename Fn>
double seconds_of(Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The message of the tfh::Error `fn` throws ("" if it throws none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const tfh::Error& e) {
    return e.what();
  }
  return "";
}

// ---- graph building ----------------------------------------------------------------------------

// dims: >= 0 a fixed size, -1 the symbol "N".
inline onnx::ValueInfoProto tensor_info(const std::string& name, int32_t elem,
                                        std::vector<int64_t> dims) {
  onnx::ValueInfoProto vi;
  vi.set_name(name);
  auto* t = vi.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem);
  auto* shape = t->mutable_shape();
  for (int64_t d : dims) {
    if (d >= 0) shape->add_dim()->set_dim_value(d);
    else shape->add_dim()->set_dim_param("N");
  }
  return vi;
}

inline onnx::NodeProto* add_node(onnx::GraphProto& g, const std::string& op,
                                 std::vector<std::string> inputs, std::vector<std::string> outputs,
                                 const std::string& name = "", const std::string& domain = "") {
  auto* n = g.add_node();
  n->set_op_type(op);
  if (!name.empty()) n->set_name(name);
  if (!domain.empty()) n->set_domain(domain);
  for (auto& i : inputs) n->add_input(i);
  for (auto& o : outputs) n->add_output(o);
  return n;
}

inline onnx::TensorProto float_tensor(const std::string& name, std::vector<int64_t> dims,
                                      std::vector<float> values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  return t;
}

inline onnx::TensorProto int64_tensor(const std::string& name, std::vector<int64_t> dims,
                                      std::vector<int64_t> values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : dims) t.add_dims(d);
  for (int64_t v : values) t.add_int64_data(v);
  return t;
}

// An empty model at opset 14 (plus com.microsoft 1).
inline onnx::ModelProto new_model(const std::string& graph_name = "g") {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("tfhost-test");
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(14);
  op = m.add_opset_import();
  op->set_domain("com.microsoft");
  op->set_version(1);
  m.mutable_graph()->set_name(graph_name);
  return m;
}

// Every use recorded in a value's consumers is a real input slot and the reverse; every producer
// lists the value as its output. `extra` adds values to check that no node mentions any more.
// Returns "" when consistent, else what is wrong.
inline std::string use_def_problems(const Graph& g, std::vector<const Value*> extra = {}) {
  using Use = std::pair<const Node*, size_t>;
  std::map<const Value*, std::map<Use, int>> actual;
  std::set<const Value*> values(extra.begin(), extra.end());
  std::ostringstream os;
  for (const auto& n : g.nodes()) {
    for (size_t i = 0; i < n->inputs().size(); ++i)
      if (n->inputs()[i]) ++actual[n->inputs()[i]][{n.get(), i}];
    for (const Value* v : n->implicit_inputs()) ++actual[v][{n.get(), Node::kImplicitSlot}];
    for (size_t k = 0; k < n->outputs().size(); ++k) {
      const Value* v = n->outputs()[k];
      if (!v) continue;
      values.insert(v);
      if (v->producer() != n.get() || v->producer_output() != k)
        os << "output '" << v->name() << "' of " << describe(*n) << " has another producer; ";
    }
  }
  for (const auto& e : actual) values.insert(e.first);
  for (const auto* list : {&g.inputs(), &g.outputs(), &g.initializers()})
    values.insert(list->begin(), list->end());
  for (const Value* v : values) {
    if (g.find(v->name()) != v) os << "value '" << v->name() << "' is not in the graph; ";
    std::map<Use, int> recorded;
    for (const auto& c : v->consumers()) ++recorded[{c.first, c.second}];
    if (recorded != actual[v]) os << "consumers of '" << v->name() << "' are wrong; ";
    if (v->producer() && v->producer()->outputs().at(v->producer_output()) != v)
      os << "producer of '" << v->name() << "' does not list it; ";
  }
  return os.str();
}

}  // namespace tfh::ir::test
