#include "host/ir/external_data.h"

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "host/ir/dtype.h"
#include "host/ir/graph.h"
#include "host/ir/mapped_file.h"
#include "host/util/error.h"

namespace tfh::ir {
namespace fs = std::filesystem;

namespace {

std::string dims_text(const onnx::TensorProto& t) {
  std::ostringstream os;
  os << '[';
  for (int i = 0; i < t.dims_size(); ++i) os << (i ? ", " : "") << t.dims(i);
  os << ']';
  return os.str();
}

bool parse_size(const std::string& s, size_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// ---- walking every tensor outside the main graph's initializers --------------------------------

using Where = std::function<std::string()>;

std::string node_text(const onnx::NodeProto& n) {
  if (!n.name().empty()) return "node '" + n.name() + "'";
  std::string s = "unnamed " + n.op_type() + " node";
  return n.output_size() > 0 ? s + " producing '" + n.output(0) + "'" : s;
}

// `where` of a graph is "" for the main graph.
std::string graph_text(const Where& where) {
  std::string w = where();
  return w.empty() ? "the main graph" : w;
}

void visit_sparse(onnx::SparseTensorProto& s, const TensorSite& site, const TensorVisitor& fn) {
  if (s.has_values()) fn(*s.mutable_values(), site);
  if (s.has_indices()) fn(*s.mutable_indices(), site);
}

void visit_graph(onnx::GraphProto& g, const Where& where, bool in_main, bool initializers,
                 const TensorVisitor& fn);

// `outer`: where the nodes are ("" for the main graph). `in_main`: they belong to the main graph
// (at any depth), not to a function or training_info.
void visit_nodes(google::protobuf::RepeatedPtrField<onnx::NodeProto>& nodes, const Where& outer,
                 bool in_main, const TensorVisitor& fn) {
  for (auto& n : nodes) {
    for (auto& a : *n.mutable_attribute()) {
      if (!a.has_t() && a.tensors_size() == 0 && !a.has_sparse_tensor() &&
          a.sparse_tensors_size() == 0 && !a.has_g() && a.graphs_size() == 0)
        continue;
      const Where at = [&] {
        std::string o = outer();
        return "attribute '" + a.name() + "' of " + node_text(n) + (o.empty() ? "" : " in " + o);
      };
      const TensorSite site{at, false};
      if (a.has_t()) fn(*a.mutable_t(), site);
      for (auto& t : *a.mutable_tensors()) fn(t, site);
      if (a.has_sparse_tensor()) visit_sparse(*a.mutable_sparse_tensor(), site, fn);
      for (auto& s : *a.mutable_sparse_tensors()) visit_sparse(s, site, fn);
      auto subgraph = [&](onnx::GraphProto& g) {
        const Where w = [&] { return "graph '" + g.name() + "' in " + at(); };
        visit_graph(g, w, in_main, true, fn);
      };
      if (a.has_g()) subgraph(*a.mutable_g());
      for (auto& g : *a.mutable_graphs()) subgraph(g);
    }
  }
}

void visit_graph(onnx::GraphProto& g, const Where& where, bool in_main, bool initializers,
                 const TensorVisitor& fn) {
  if (initializers) {
    const Where w = [&] { return "initializer of " + graph_text(where); };
    for (auto& t : *g.mutable_initializer()) fn(t, {w, in_main});
  }
  const Where ws = [&] { return "sparse initializer of " + graph_text(where); };
  for (auto& s : *g.mutable_sparse_initializer()) visit_sparse(s, {ws, false}, fn);
  visit_nodes(*g.mutable_node(), where, in_main, fn);
}

}  // namespace

void for_each_other_tensor(onnx::ModelProto& m, const TensorVisitor& fn) {
  const Where main = [] { return std::string(); };
  visit_graph(*m.mutable_graph(), main, true, false, fn);
  for (auto& f : *m.mutable_functions()) {
    const Where w = [&] {
      return "function '" + (f.domain().empty() ? "" : f.domain() + ".") + f.name() + "'";
    };
    visit_nodes(*f.mutable_node(), w, false, fn);
  }
  for (int i = 0; i < m.training_info_size(); ++i) {
    onnx::TrainingInfoProto& ti = *m.mutable_training_info(i);
    auto training = [&](onnx::GraphProto& g, const char* part) {
      const Where w = [&] {
        return "graph '" + g.name() + "' (training_info #" + std::to_string(i + 1) + " " + part +
               ")";
      };
      visit_graph(g, w, false, true, fn);
    };
    if (ti.has_initialization()) training(*ti.mutable_initialization(), "initialization");
    if (ti.has_algorithm()) training(*ti.mutable_algorithm(), "algorithm");
  }
}

ExternalDataReader::ExternalDataReader(std::string model_path, bool map_data)
    : model_path_(std::move(model_path)), map_data_(map_data) {}

std::unique_ptr<Tensor> ExternalDataReader::make_tensor(std::unique_ptr<onnx::TensorProto> p) {
  const std::string subject = "initializer '" + p->name() + "'";
  TFH_CHECK(p->data_type() != onnx::TensorProto::UNDEFINED, model_path_, ": ", subject,
            " has no data type");
  size_t n = element_count(*p, subject);
  size_t nbytes = dtype_bytes(p->data_type(), n);
  if (p->data_location() == onnx::TensorProto::EXTERNAL)
    return make_external(std::move(p), subject, nbytes);
  check_inline_size(*p, subject, n, nbytes);
  return std::make_unique<Tensor>(std::move(p));
}

void ExternalDataReader::resolve_other_tensors(onnx::ModelProto& m) {
  for_each_other_tensor(m, [&](onnx::TensorProto& t, const TensorSite& site) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) return;
    const std::string subject =
        (t.name().empty() ? std::string("unnamed tensor") : "tensor '" + t.name() + "'") + " (" +
        site.where() + ")";
    TFH_CHECK(t.data_type() != onnx::TensorProto::STRING, model_path_, ": ", subject,
              ": string tensors cannot have external data");
    size_t nbytes = dtype_bytes(t.data_type(), element_count(t, subject));
    if (!map_data_) {
      const std::string location = reference(t, subject).location;
      check_location(location, subject);
      unmapped_files_.insert((fs::path(dir()) / location).lexically_normal().string());
      return;
    }
    size_t offset = 0, length = 0;
    auto mapping = map(t, subject, nbytes, offset, length);
    const char* bytes = reinterpret_cast<const char*>(mapping->data());
    t.set_raw_data(bytes ? std::string(bytes + offset, length) : std::string());
    t.clear_external_data();
    t.clear_data_location();
  });
}

std::vector<std::string> ExternalDataReader::files() const {
  std::set<std::string> all = unmapped_files_;
  for (const auto& f : files_) all.insert(f.first);
  return {all.begin(), all.end()};
}

const std::string& ExternalDataReader::dir() {
  if (dir_.empty()) {
    std::error_code ec;
    dir_ = fs::canonical(fs::absolute(model_path_).parent_path(), ec).string();
    TFH_CHECK(!ec, model_path_, ": cannot resolve the model's folder: ", ec.message());
  }
  return dir_;
}

ExternalDataReader::Reference ExternalDataReader::reference(const onnx::TensorProto& p,
                                                            const std::string& subject) const {
  Reference r;
  for (const auto& e : p.external_data()) {
    bool ok = true;
    if (e.key() == "location") r.location = e.value();
    else if (e.key() == "offset") ok = parse_size(e.value(), r.offset);
    else if (e.key() == "length") ok = parse_size(e.value(), r.length);
    TFH_CHECK(ok, model_path_, ": ", subject, ": external data ", e.key(), " '", e.value(),
              "' is not a number");
  }
  TFH_CHECK(!r.location.empty(), model_path_, ": ", subject, ": external data has no location");
  return r;
}

// Elements of `t`, refusing dims no tensor in memory can have: a negative dimension, or a count
// (or byte size) that does not fit in size_t and would wrap every size computed from it.
size_t ExternalDataReader::element_count(const onnx::TensorProto& t,
                                         const std::string& subject) const {
  for (int64_t d : t.dims())
    TFH_CHECK(d >= 0, model_path_, ": ", subject, " has a negative dimension in ", dims_text(t));
  size_t n = checked_element_count(t.data_type(), t.dims().data(),
                                   static_cast<size_t>(t.dims_size()));
  TFH_CHECK(n != SIZE_MAX, model_path_, ": ", subject, ": dims ", dims_text(t), " of ",
            dtype_name(t.data_type()), " hold more elements than fit in memory");
  return n;
}

void ExternalDataReader::check_inline_size(const onnx::TensorProto& t, const std::string& subject,
                                           size_t n, size_t nbytes) const {
  if (t.has_raw_data() && nbytes != SIZE_MAX) {
    TFH_CHECK(t.raw_data().size() == nbytes, model_path_, ": ", subject, ": raw_data has ",
              t.raw_data().size(), " bytes, but ", dims_text(t), " of ",
              dtype_name(t.data_type()), " needs ", nbytes);
    return;
  }
  size_t want = dtype_typed_count(t.data_type(), n);
  if (t.has_raw_data() || want == SIZE_MAX) return;  // a type newer than we know: cannot check
  TFH_CHECK(typed_value_count(t) == want, model_path_, ": ", subject, " has ",
            typed_value_count(t), " values, but ", dims_text(t), " of ", dtype_name(t.data_type()),
            " needs ", want);
}

std::unique_ptr<Tensor> ExternalDataReader::make_external(std::unique_ptr<onnx::TensorProto> p,
                                                          const std::string& subject,
                                                          size_t nbytes) {
  if (!map_data_) {
    const std::string location = reference(*p, subject).location;
    check_location(location, subject);
    unmapped_files_.insert((fs::path(dir()) / location).lexically_normal().string());
    return std::make_unique<Tensor>(std::move(p));
  }
  size_t offset = 0, length = 0;
  auto mapping = map(*p, subject, nbytes, offset, length);
  return std::make_unique<Tensor>(std::move(p), std::move(mapping), offset, length);
}

std::shared_ptr<MappedFile> ExternalDataReader::map(const onnx::TensorProto& t,
                                                    const std::string& subject, size_t nbytes,
                                                    size_t& offset, size_t& length) {
  const Reference r = reference(t, subject);
  std::string file = resolve(r.location, subject);
  auto& mapping = files_[file];
  if (!mapping) {
    try {
      mapping = MappedFile::open(file);
    } catch (const Error& e) {
      files_.erase(file);
      TFH_THROW(model_path_, ": ", subject, ": ", e.what());
    }
  }
  size_t size = mapping->size();
  offset = r.offset;
  length = r.length;
  if (length == SIZE_MAX) length = nbytes != SIZE_MAX ? nbytes : size - std::min(offset, size);
  TFH_CHECK(offset <= size && length <= size - offset, model_path_, ": ", subject,
            ": external data at offset ", offset, " length ", length, " is past the end of '",
            r.location, "' (", size, " bytes)");
  TFH_CHECK(nbytes == SIZE_MAX || length == nbytes, model_path_, ": ", subject,
            ": external data length ", length, ", but ", dims_text(t), " of ",
            dtype_name(t.data_type()), " needs ", nbytes);
  return mapping;
}

// Refuses, from the text alone, locations that leave the model's folder: absolute paths and ".."
// components (a model must not make us read, or a save overwrite, arbitrary files).
void ExternalDataReader::check_location(const std::string& location,
                                        const std::string& subject) const {
  fs::path rel(location);
  TFH_CHECK(!rel.is_absolute(), model_path_, ": ", subject, ": external data location '",
            location, "' is absolute; it must be relative to the model's folder");
  for (const auto& part : rel)
    TFH_CHECK(part != "..", model_path_, ": ", subject, ": external data location '", location,
              "' escapes the model's folder");
}

// The data file, canonical. Also refuses symlinks resolving outside the model's folder.
std::string ExternalDataReader::resolve(const std::string& location, const std::string& subject) {
  check_location(location, subject);
  std::error_code ec;
  fs::path file = fs::canonical(fs::path(dir()) / location, ec);
  TFH_CHECK(!ec, model_path_, ": ", subject, ": external data file '", location,
            "' not found: ", ec.message());
  fs::path inside = file.lexically_relative(dir());
  TFH_CHECK(!inside.empty() && *inside.begin() != "..", model_path_, ": ", subject,
            ": external data location '", location, "' resolves to '", file.string(),
            "', outside the model's folder");
  return file.string();
}

size_t ExternalDataWriter::append(const void* data, size_t n) {
  if (!fd_) {
    fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    TFH_CHECK(fd_, path_, ": cannot create: ", errno_text(errno));
  }
  // Page-aligned big tensors can be mapped one by one; 64 bytes suits any element type and SIMD.
  size_t align = n >= (size_t{1} << 20) ? 4096 : 64;
  static const char zeros[4096] = {};
  size_t pad = (align - size_ % align) % align;
  write_all(fd_.get(), zeros, pad, path_);
  size_t offset = size_ + pad;
  write_all(fd_.get(), data, n, path_);
  size_ = offset + n;
  return offset;
}

void ExternalDataWriter::finish() {
  if (!fd_) return;
  TFH_CHECK(::fsync(fd_.get()) == 0, path_, ": cannot flush: ", errno_text(errno));
  TFH_CHECK(::close(fd_.release()) == 0, path_, ": cannot close: ", errno_text(errno));
}

}  // namespace tfh::ir
