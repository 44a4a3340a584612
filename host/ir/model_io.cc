// Model::load and Model::save: streamed protobuf I/O, external data, atomic output.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include "host/ir/dtype.h"
#include "host/ir/external_data.h"
#include "host/ir/graph.h"
#include "host/ir/mapped_file.h"
#include "host/util/error.h"
#include "host/util/file.h"
#include "host/util/signal_cleanup.h"

namespace tfh::ir {
namespace fs = std::filesystem;

namespace {

constexpr size_t kProtobufLimit = INT_MAX;  // protobuf cannot parse or write a larger message

// A mapped file handed to protobuf in 8 MB chunks; the pages of chunks before the previous one
// (which BackUp may return to) are released with MADV_DONTNEED as the parser moves on.
class MappedChunks : public google::protobuf::io::ZeroCopyInputStream {
 public:
  MappedChunks(const uint8_t* data, size_t size) : data_(data), size_(size) {
    if (size_) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_SEQUENTIAL);
  }
  bool Next(const void** data, int* size) override {
    if (pos_ >= size_) return false;
    release_behind();
    const size_t n = std::min(kChunk, size_ - pos_);
    *data = data_ + pos_;
    *size = static_cast<int>(n);
    pos_ += n;
    return true;
  }
  void BackUp(int count) override { pos_ -= static_cast<size_t>(count); }
  bool Skip(int count) override {
    if (count < 0 || static_cast<size_t>(count) > size_ - pos_) {
      pos_ = size_;
      return false;
    }
    pos_ += static_cast<size_t>(count);
    return true;
  }
  int64_t ByteCount() const override { return static_cast<int64_t>(pos_); }

 private:
  static constexpr size_t kChunk = size_t(8) << 20;
  void release_behind() {
    static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t upto = pos_ > kChunk ? (pos_ - kChunk) / page * page : 0;
    if (upto <= released_) return;
    ::madvise(const_cast<uint8_t*>(data_) + released_, upto - released_, MADV_DONTNEED);
    released_ = upto;
  }
  const uint8_t* data_;
  size_t size_, pos_ = 0, released_ = 0;
};

// Reads the file (mapped, in chunks: no whole-file buffer) into `model`.
void parse_model_file(const std::string& path, onnx::ModelProto& model) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; refused just below.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    int err = errno;
    TFH_CHECK(err != ENOENT, path, ": no such file");
    TFH_THROW(path, ": cannot open: ", errno_text(err));
  }
  struct stat st {};
  TFH_CHECK(::fstat(fd.get(), &st) == 0, path, ": cannot stat: ", errno_text(errno));
  TFH_CHECK(!S_ISDIR(st.st_mode), path, ": is a directory, not an ONNX model file");
  // A FIFO, /dev/null, a terminal or a socket has no size to check and may never end.
  TFH_CHECK(S_ISREG(st.st_mode), path, ": is ", file_type_text(st.st_mode),
            ", not an ONNX model file");
  auto size = static_cast<size_t>(st.st_size);
  TFH_CHECK(size > 0, path, ": empty file, not an ONNX model");
  TFH_CHECK(size <= kProtobufLimit, path, ": ", size, " bytes is over protobuf's 2 GB limit; "
            "a model this large must keep its weights in external data");
  unsigned char first = 0;
  TFH_CHECK(::pread(fd.get(), &first, 1, 0) == 1, path, ": cannot read: ", errno_text(errno));

  // Parsed straight from a mapping of the file: protobuf copies each tensor's bytes once, from
  // the page cache into the model (a read() buffer would add a second copy), and the pages
  // already parsed are dropped from the mapping as the parser moves on, so the peak stays the
  // model itself.
  const std::shared_ptr<MappedFile> mapped = MappedFile::open(path);
  bool ok;
  {
    MappedChunks chunks(mapped->data(), mapped->size());
    google::protobuf::io::CodedInputStream in(&chunks);
    in.SetTotalBytesLimit(INT_MAX);
    ok = model.ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
  }
  // Every ONNX writer starts with ir_version (field 1, varint): tag byte 0x08.
  TFH_CHECK(ok || first == 0x08, path, ": not an ONNX model (not a protobuf ModelProto)");
  TFH_CHECK(ok, path, ": truncated or corrupted ONNX model (protobuf parse failed; file is ", size,
            " bytes)");
  TFH_CHECK(model.has_graph(), path, ": not an ONNX model (no graph)");
}

// A file created under a temporary name: removed on destruction unless committed by rename, and
// by the signal handler when the process is interrupted first (Ctrl-C during a long save), since
// no destructor runs then. Only for names this save owns: the handler unlinks without looking.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)), on_signal_(path_) {}
  ~TempFile() {
    if (armed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }
  void arm() { armed_ = true; }  // the file exists now
  void commit(const std::string& to, const std::string& what) {
    TFH_CHECK(::rename(path_.c_str(), to.c_str()) == 0, what, ": cannot rename '", path_,
              "' to '", to, "': ", errno_text(errno));
    armed_ = false;
    on_signal_.release();
  }

 private:
  std::string path_;
  bool armed_ = false;
  RemoveOnSignal on_signal_;
};

// Changes to tensors' saved representation for one save (data written to the external file, or
// mapped data inlined), undone when the save ends: the model stays as it was loaded.
class TensorPatches {
 public:
  ~TensorPatches() {
    for (auto it = patches_.rbegin(); it != patches_.rend(); ++it) restore(*it);
  }
  void make_external(onnx::TensorProto& t, const std::string& location, size_t offset,
                     size_t length) {
    onnx::TensorProto& p = begin(t);
    add_entry(p, "location", location);
    add_entry(p, "offset", std::to_string(offset));
    add_entry(p, "length", std::to_string(length));
    p.set_data_location(onnx::TensorProto::EXTERNAL);
  }
  void make_inline(Tensor& t) {
    const auto* bytes = static_cast<const char*>(t.data());
    onnx::TensorProto& p = begin(t.proto());
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
  onnx::TensorProto& begin(onnx::TensorProto& p) {
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
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  TFH_CHECK(!ec, path, ": cannot create directory '", parent.string(), "': ", ec.message());
}

// Found before writing anything: a rename onto a directory would fail only after the data file
// was in place, and a rename onto /dev/null or a FIFO would replace the device node or pipe (as
// root, even in /dev). A symlink is followed: one to a regular file is fine (rename replaces the
// link).
void check_regular_or_absent(const std::string& path) {
  for (const std::string& p : {path, path + ".data"}) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0 || S_ISREG(st.st_mode)) continue;
    TFH_CHECK(!S_ISDIR(st.st_mode), path, ": cannot save: '", p, "' is a directory");
    TFH_THROW(path, ": cannot save: '", p, "' exists and is ", file_type_text(st.st_mode),
              ", not a regular file");
  }
}

// Whether `a` and `b` name the same file: the same path once normalised (symlinks resolved where
// they exist), or two hard links to one inode.
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec1, ec2;
  fs::path ca = fs::weakly_canonical(fs::absolute(a), ec1);
  fs::path cb = fs::weakly_canonical(fs::absolute(b), ec2);
  if (!ec1 && !ec2 && ca == cb) return true;
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

// Size of the model with every mapped tensor inlined.
size_t inline_size(const onnx::ModelProto& m, const Graph& g) {
  size_t size = m.ByteSizeLong();
  for (const Value* v : g.initializers())
    if (v->initializer()->is_external()) size += v->initializer()->nbytes() + 16;
  return size;
}

// Hands protobuf one large buffer at a time and writes it whole: protobuf's FileOutputStream
// ends up issuing 8 KB writes for large bytes fields (50,000 system calls for a BERT-base). The
// file is written with O_DIRECT where the filesystem allows it: full aligned blocks go straight
// to the device, which on these machines is both faster and steadier than filling the page cache
// and flushing it (654 MB: 0.35-0.42 s against 0.4-1.9 s); the unaligned tail is written through
// the page cache. fsync still makes it durable.
class BlockWriter : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  BlockWriter(int fd, bool direct)
      : fd_(fd), direct_(direct), buf_(static_cast<char*>(std::aligned_alloc(kAlign, kBlock))) {
    if (!buf_) throw std::bad_alloc();
  }
  ~BlockWriter() override { std::free(buf_); }
  bool Next(void** data, int* size) override {
    if (used_ == kBlock && !Flush()) return false;
    *data = buf_ + used_;
    *size = static_cast<int>(kBlock - used_);
    total_ += kBlock - used_;
    used_ = kBlock;
    return true;
  }
  void BackUp(int count) override {
    used_ -= static_cast<size_t>(count);
    total_ -= static_cast<size_t>(count);
  }
  int64_t ByteCount() const override { return static_cast<int64_t>(total_); }
  // Writes what the buffer holds: with O_DIRECT only whole aligned blocks until `last`, when the
  // tail goes through the page cache.
  bool Flush(bool last = false) {
    size_t aligned = direct_ ? used_ / kAlign * kAlign : used_;
    if (!write_all(buf_, aligned)) return false;
    if (aligned < used_) {
      if (!last) {  // keep the unaligned rest for the next block
        std::memmove(buf_, buf_ + aligned, used_ - aligned);
        used_ -= aligned;
        return true;
      }
      if (!buffered()) return false;
      if (!write_all(buf_ + aligned, used_ - aligned)) return false;
    }
    used_ = 0;
    return true;
  }
  int error() const { return errno_; }

 private:
  static constexpr size_t kBlock = size_t(4) << 20, kAlign = 4096;
  bool buffered() {  // leaves O_DIRECT for the rest of the file
    if (!direct_) return true;
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) {
      errno_ = errno;
      return false;
    }
    direct_ = false;
    return true;
  }
  bool write_all(const char* p, size_t n) {
    size_t done = 0;
    while (done < n) {
      const ssize_t w = ::write(fd_, p + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EINVAL && direct_) {  // the filesystem refuses direct I/O after all
        if (!buffered()) return false;
        continue;
      }
      if (w <= 0) {
        errno_ = w < 0 ? errno : EIO;
        return false;
      }
      done += static_cast<size_t>(w);
    }
    return true;
  }
  int fd_;
  bool direct_;
  char* buf_;
  size_t used_ = 0, total_ = 0;
  int errno_ = 0;
};

void write_model(const onnx::ModelProto& m, TempFile& tmp, const std::string& path) {
  const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  bool direct = true;
  UniqueFd fd(::open(tmp.path().c_str(), flags | O_DIRECT, 0644));
  if (!fd && errno == EINVAL) {  // tmpfs and friends: no direct I/O
    direct = false;
    fd = UniqueFd(::open(tmp.path().c_str(), flags, 0644));
  }
  TFH_CHECK(fd, path, ": cannot create '", tmp.path(), "': ", errno_text(errno));
  tmp.arm();
  bool ok;
  int err = 0;
  {
    BlockWriter out(fd.get(), direct);
    ok = m.SerializeToZeroCopyStream(&out);
    ok = out.Flush(true) && ok;
    err = out.error();
  }
  TFH_CHECK(ok, path, ": cannot write '", tmp.path(), "': ", errno_text(err ? err : EIO));
  TFH_CHECK(::fsync(fd.get()) == 0, path, ": cannot flush '", tmp.path(), "': ",
            errno_text(errno));
  TFH_CHECK(::close(fd.release()) == 0, path, ": cannot close '", tmp.path(),
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
      patches.make_external(t.proto(), location, offset, t.nbytes());
    } else if (t.is_external()) {
      patches.make_inline(t);
    }
  }
}

// The same for the initializers of the main graph's subgraphs (If/Loop/Scan bodies), as ONNX's
// save_model(save_as_external_data=True) does; every other tensor outside the main graph's
// initializers stays inline (see TensorSite). They were inlined at load; only raw_data of the
// right size can move (typed fields stay inline). Unloaded references keep their entries.
void place_subgraph_initializers(onnx::ModelProto& m, const SaveOptions& opts,
                                 const std::string& location, ExternalDataWriter& data,
                                 TensorPatches& patches) {
  for_each_other_tensor(m, [&](onnx::TensorProto& t, const TensorSite& site) {
    if (!site.subgraph_initializer || t.data_location() == onnx::TensorProto::EXTERNAL) return;
    if (!t.has_raw_data() || t.raw_data().size() <= opts.external_threshold) return;
    size_t n = checked_element_count(t.data_type(), t.dims().data(),
                                     static_cast<size_t>(t.dims_size()));
    if (n == SIZE_MAX || dtype_bytes(t.data_type(), n) != t.raw_data().size()) return;
    size_t length = t.raw_data().size();
    size_t offset = data.append(t.raw_data().data(), length);
    patches.make_external(t, location, offset, length);
  });
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  try {
    auto m = std::make_unique<Model>();
    m->path_ = path;
    parse_model_file(path, m->skeleton_);
    ExternalDataReader reader(path, opts.load_external_data);
    // Before take_from: the main graph's nodes are still in the skeleton.
    reader.resolve_other_tensors(m->skeleton_);
    m->graph_.take_from(*m->skeleton_.mutable_graph(), path, [&](auto proto) {
      return reader.make_tensor(std::move(proto));
    });
    m->dir_ = reader.dir();
    m->data_files_ = reader.files();
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

void Model::check_save_path(const std::string& path, const SaveOptions& opts) const {
  TFH_CHECK(!path.empty(), "save: empty output path");
  check_regular_or_absent(path);
  if (!path_.empty())
    TFH_CHECK(!same_file(path, loaded_file()), path, ": cannot save over the loaded model '",
              path_, "'; choose another output path");
  for (const std::string& f : data_files_)
    TFH_CHECK(!same_file(path, f), path, ": cannot save over '", f,
              "', external data of the loaded model '", path_, "'; choose another output path");
  if (opts.use_external_data) check_data_path(path);
}

// The loaded model's file, found through the folder resolved at load: a relative path_ would
// name another file once the working directory changed.
std::string Model::loaded_file() const {
  return dir_.empty() ? path_ : (fs::path(dir_) / fs::path(path_).filename()).string();
}

// `<path>.data` is about to be written: it must not replace a file the loaded model reads.
void Model::check_data_path(const std::string& path) const {
  const std::string data = path + ".data";
  if (!path_.empty())
    TFH_CHECK(!same_file(data, loaded_file()), path, ": cannot save: its external data file '",
              data, "' would replace the loaded model '", path_, "'; choose another output path");
  for (const std::string& f : data_files_)
    TFH_CHECK(!same_file(data, f), path, ": cannot save: its external data file '", data,
              "' would replace '", f, "', external data of the loaded model '", path_,
              "'; choose another output path");
}

// Unloaded external data (load_external_data = false) is referenced relative to the model's
// folder: written verbatim into another folder, the references would point at nothing (or at
// whatever has that name there). Called while the graph is lent to the skeleton.
void Model::check_unloaded_references(const std::string& path) {
  std::string unloaded;
  for (const Value* v : graph_.initializers())
    if (unloaded.empty() && v->initializer()->is_unloaded_external())
      unloaded = "initializer '" + v->name() + "'";
  if (unloaded.empty())
    for_each_other_tensor(skeleton_, [&](onnx::TensorProto& t, const TensorSite& site) {
      if (unloaded.empty() && t.data_location() == onnx::TensorProto::EXTERNAL)
        unloaded = "tensor '" + t.name() + "' (" + site.where() + ")";
    });
  if (unloaded.empty()) return;
  std::error_code ec;
  fs::path out_dir = fs::weakly_canonical(fs::absolute(path).parent_path(), ec);
  TFH_CHECK(!dir_.empty() && !ec && out_dir == fs::path(dir_), path, ": cannot save ", unloaded,
            " into another folder than the loaded model's ('", dir_,
            "'): its external data was not loaded (LoadOptions::load_external_data is false), "
            "and its reference is relative to that folder");
}

void Model::save(const std::string& path, const SaveOptions& opts) {
  try {
    check_save_path(path, opts);
    onnx::GraphProto& g = *skeleton_.mutable_graph();
    struct Lend {  // puts the graph's contents into the skeleton for the length of the save
      Graph& graph;
      onnx::GraphProto& proto;
      ~Lend() { graph.take_back(proto); }
    } lend{graph_, g};
    graph_.lend_to(g);
    check_unloaded_references(path);
    ensure_parent_dir(path);
    const std::string suffix = ".tmp." + std::to_string(::getpid());
    TempFile model_tmp(path + suffix), data_tmp(path + ".data" + suffix);
    data_tmp.arm();  // created by the writer's first append, if any: removing nothing is harmless

    size_t inline_bytes = opts.use_external_data ? 0 : inline_size(skeleton_, graph_);
    bool external = opts.use_external_data ||
                    (opts.auto_external_above_2gb && inline_bytes > kProtobufLimit);
    TFH_CHECK(external || inline_bytes <= kProtobufLimit, path, ": the model would be ",
              inline_bytes, " bytes, over protobuf's 2 GB limit; save it with external data");
    if (external) check_data_path(path);  // again: the 2 GB switch decides only now
    TensorPatches patches;
    ExternalDataWriter data(data_tmp.path());
    const std::string location = fs::path(path).filename().string() + ".data";
    place_weights(graph_, opts, external, location, data, patches);
    if (external) place_subgraph_initializers(skeleton_, opts, location, data, patches);
    data.finish();
    size_t size = skeleton_.ByteSizeLong();
    TFH_CHECK(size <= kProtobufLimit, path, ": the model is ", size,
              " bytes, over protobuf's 2 GB limit", external ? " even with external data" : "");
    write_model(skeleton_, model_tmp, path);
    if (data.used()) data_tmp.commit(path + ".data", path);
    struct Orphan {  // the data file in place, removed if the model cannot follow it
      std::string path;
      bool armed;
      ~Orphan() {
        if (armed) ::unlink(path.c_str());
      }
    } data_out{path + ".data", data.used()};
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
