// Model::load and Model::save: streamed protobuf I/O, external data, atomic output.
#include <climits>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include "host/ir/external_data.h"
#include "host/ir/graph.h"
#include "host/util/error.h"
#include "host/util/file.h"

namespace tfh::ir {
namespace fs = std::filesystem;

namespace {

constexpr size_t kProtobufLimit = INT_MAX;  // protobuf cannot parse or write a larger message

// Reads the file through a stream (no whole-file buffer) into `model`.
void parse_model_file(const std::string& path, onnx::ModelProto& model) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    TFH_CHECK(err != ENOENT, path, ": no such file");
    TFH_THROW(path, ": cannot open: ", errno_text(err));
  }
  struct stat st {};
  TFH_CHECK(::fstat(fd.get(), &st) == 0, path, ": cannot stat: ", errno_text(errno));
  TFH_CHECK(!S_ISDIR(st.st_mode), path, ": is a directory, not an ONNX model file");
  auto size = static_cast<size_t>(st.st_size);
  TFH_CHECK(size > 0, path, ": empty file, not an ONNX model");
  TFH_CHECK(size <= kProtobufLimit, path, ": ", size, " bytes is over protobuf's 2 GB limit; "
            "a model this large must keep its weights in external data");
  unsigned char first = 0;
  TFH_CHECK(::pread(fd.get(), &first, 1, 0) == 1, path, ": cannot read: ", errno_text(errno));

  google::protobuf::io::FileInputStream file(fd.get(), 1 << 20);  // big blocks: fewer reads
  bool ok;
  {
    google::protobuf::io::CodedInputStream in(&file);
    in.SetTotalBytesLimit(INT_MAX);
    ok = model.ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
  }
  TFH_CHECK(file.GetErrno() == 0, path, ": cannot read: ", errno_text(file.GetErrno()));
  // Every ONNX writer starts with ir_version (field 1, varint): tag byte 0x08.
  TFH_CHECK(ok || first == 0x08, path, ": not an ONNX model (not a protobuf ModelProto)");
  TFH_CHECK(ok, path, ": truncated or corrupted ONNX model (protobuf parse failed; file is ", size,
            " bytes)");
  TFH_CHECK(model.has_graph(), path, ": not an ONNX model (no graph)");
}

// A file created under a temporary name: removed on destruction unless committed by rename.
struct TempFile {
  std::string path;
  bool armed = false;
  ~TempFile() {
    if (armed) ::unlink(path.c_str());
  }
  void commit(const std::string& to, const std::string& what) {
    TFH_CHECK(::rename(path.c_str(), to.c_str()) == 0, what, ": cannot rename '", path, "' to '",
              to, "': ", errno_text(errno));
    armed = false;
  }
};

// Changes to tensors' saved representation for one save (data written to the external file, or
// mapped data inlined), undone when the save ends: the model stays as it was loaded.
class TensorPatches {
 public:
  ~TensorPatches() {
    for (auto it = patches_.rbegin(); it != patches_.rend(); ++it) restore(*it);
  }
  void make_external(Tensor& t, const std::string& location, size_t offset, size_t length) {
    onnx::TensorProto& p = begin(t);
    add_entry(p, "location", location);
    add_entry(p, "offset", std::to_string(offset));
    add_entry(p, "length", std::to_string(length));
    p.set_data_location(onnx::TensorProto::EXTERNAL);
  }
  void make_inline(Tensor& t) {
    const auto* bytes = static_cast<const char*>(t.data());
    onnx::TensorProto& p = begin(t);
    p.set_raw_data(std::string(bytes, bytes + t.nbytes()));
    p.clear_data_location();
  }

 private:
  struct Patch {
    onnx::TensorProto* proto;
    std::string raw;
    bool had_raw, had_location;
    int location;
    google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto> external;
  };
  static void add_entry(onnx::TensorProto& p, const std::string& k, const std::string& v) {
    auto* e = p.add_external_data();
    e->set_key(k);
    e->set_value(v);
  }
  // Moves the data fields aside (no copy) and returns the proto to change.
  onnx::TensorProto& begin(Tensor& t) {
    onnx::TensorProto& p = t.proto();
    patches_.push_back({&p, {}, p.has_raw_data(), p.has_data_location(), p.data_location(), {}});
    Patch& b = patches_.back();
    if (b.had_raw) b.raw.swap(*p.mutable_raw_data());
    p.clear_raw_data();
    b.external.Swap(p.mutable_external_data());
    return p;
  }
  static void restore(Patch& b) {
    onnx::TensorProto& p = *b.proto;
    std::string().swap(*p.mutable_raw_data());  // frees an inlined copy
    p.clear_raw_data();
    if (b.had_raw) b.raw.swap(*p.mutable_raw_data());
    p.mutable_external_data()->Swap(&b.external);
    if (b.had_location)
      p.set_data_location(static_cast<onnx::TensorProto::DataLocation>(b.location));
    else
      p.clear_data_location();
  }
  std::vector<Patch> patches_;
};

void ensure_parent_dir(const std::string& path) {
  TFH_CHECK(!path.empty(), "save: empty output path");
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  TFH_CHECK(!ec, path, ": cannot create directory '", parent.string(), "': ", ec.message());
}

// Found before writing anything: a rename onto a directory would fail only after the data file
// was already in place.
void check_not_directory(const std::string& path) {
  for (const std::string& p : {path, path + ".data"})
    TFH_CHECK(!fs::is_directory(p), path, ": cannot save: '", p, "' is a directory");
}

// Size of the model with every mapped tensor inlined.
size_t inline_size(const onnx::ModelProto& m, const Graph& g) {
  size_t size = m.ByteSizeLong();
  for (const Value* v : g.initializers())
    if (v->initializer()->is_external()) size += v->initializer()->nbytes() + 16;
  return size;
}

void write_model(const onnx::ModelProto& m, TempFile& tmp, const std::string& path) {
  UniqueFd fd(::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  TFH_CHECK(fd, path, ": cannot create '", tmp.path, "': ", errno_text(errno));
  tmp.armed = true;
  google::protobuf::io::FileOutputStream out(fd.get(), 1 << 20);
  bool ok = m.SerializeToZeroCopyStream(&out);
  ok = out.Flush() && ok;
  TFH_CHECK(ok, path, ": cannot write '", tmp.path, "': ",
            errno_text(out.GetErrno() ? out.GetErrno() : EIO));
  TFH_CHECK(::fsync(fd.get()) == 0, path, ": cannot flush '", tmp.path, "': ", errno_text(errno));
  TFH_CHECK(::close(fd.release()) == 0, path, ": cannot close '", tmp.path,
            "': ", errno_text(errno));
}

// Where each initializer's data goes in this save: into the external data file (`external` and
// larger than the threshold) or inline (mapped data is inlined; strings always are).
void place_weights(const Graph& g, const SaveOptions& opts, bool external,
                   const std::string& location, ExternalDataWriter& data, TensorPatches& patches) {
  for (Value* v : g.initializers()) {
    Tensor& t = *v->initializer();
    if (t.is_unloaded_external()) continue;  // keeps its references verbatim
    if (external && t.dtype() != onnx::TensorProto::STRING &&
        t.nbytes() > opts.external_threshold) {
      size_t offset = data.append(t.data(), t.nbytes());
      patches.make_external(t, location, offset, t.nbytes());
    } else if (t.is_external()) {
      patches.make_inline(t);
    }
  }
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  try {
    auto m = std::make_unique<Model>();
    m->path_ = path;
    parse_model_file(path, m->skeleton_);
    ExternalDataReader reader(path, opts.load_external_data);
    m->graph_.take_from(*m->skeleton_.mutable_graph(), path, [&](auto proto) {
      return reader.make_tensor(std::move(proto));
    });
    try {
      m->graph_.topo_order();
    } catch (const Error& e) {
      TFH_THROW(path, ": ", e.what());
    }
    return m;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // bad_alloc, filesystem errors: still a one-line Error
    TFH_THROW(path, ": cannot load: ", e.what());
  }
}

void Model::save(const std::string& path, const SaveOptions& opts) {
  try {
    ensure_parent_dir(path);
    check_not_directory(path);
    const std::string suffix = ".tmp." + std::to_string(::getpid());
    TempFile model_tmp{path + suffix}, data_tmp{path + ".data" + suffix, true};
    onnx::GraphProto& g = *skeleton_.mutable_graph();
    struct Lend {  // puts the graph's contents into the skeleton for the length of the save
      Graph& graph;
      onnx::GraphProto& proto;
      ~Lend() { graph.take_back(proto); }
    } lend{graph_, g};
    graph_.lend_to(g);

    size_t inline_bytes = opts.use_external_data ? 0 : inline_size(skeleton_, graph_);
    bool external = opts.use_external_data ||
                    (opts.auto_external_above_2gb && inline_bytes > kProtobufLimit);
    TFH_CHECK(external || inline_bytes <= kProtobufLimit, path, ": the model would be ",
              inline_bytes, " bytes, over protobuf's 2 GB limit; save it with external data");
    TensorPatches patches;
    ExternalDataWriter data(data_tmp.path);
    place_weights(graph_, opts, external, fs::path(path).filename().string() + ".data", data,
                  patches);
    data.finish();
    size_t size = skeleton_.ByteSizeLong();
    TFH_CHECK(size <= kProtobufLimit, path, ": the model is ", size,
              " bytes, over protobuf's 2 GB limit", external ? " even with external data" : "");
    write_model(skeleton_, model_tmp, path);
    if (data.used()) data_tmp.commit(path + ".data", path);
    TempFile data_out{path + ".data", data.used()};  // an orphan if the model cannot follow it
    model_tmp.commit(path, path);
    data_out.armed = false;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    TFH_THROW(path, ": cannot save: ", e.what());
  }
}

int64_t Model::opset(const std::string& domain) const {
  auto norm = [](const std::string& d) { return d == "ai.onnx" ? std::string() : d; };
  for (const auto& op : skeleton_.opset_import())
    if (norm(op.domain()) == norm(domain)) return op.version();
  return -1;
}

void Model::set_opset(const std::string& domain, int64_t version) {
  auto norm = [](const std::string& d) { return d == "ai.onnx" ? std::string() : d; };
  for (auto& op : *skeleton_.mutable_opset_import()) {
    if (norm(op.domain()) != norm(domain)) continue;
    op.set_version(version);
    return;
  }
  auto* op = skeleton_.add_opset_import();
  op->set_domain(domain);
  op->set_version(version);
}

}  // namespace tfh::ir
