#include "host/ir/external_data.h"

#include <cerrno>
#include <charconv>
#include <filesystem>
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

}  // namespace

ExternalDataReader::ExternalDataReader(std::string model_path, bool map_data)
    : model_path_(std::move(model_path)), map_data_(map_data) {}

std::unique_ptr<Tensor> ExternalDataReader::make_tensor(std::unique_ptr<onnx::TensorProto> p) {
  const std::string& name = p->name();
  TFH_CHECK(p->data_type() != onnx::TensorProto::UNDEFINED, model_path_, ": initializer '", name,
            "' has no data type");
  size_t n = 1;
  for (int64_t d : p->dims()) {
    TFH_CHECK(d >= 0, model_path_, ": initializer '", name, "' has a negative dimension in ",
              dims_text(*p));
    n *= static_cast<size_t>(d);
  }
  size_t nbytes = dtype_bytes(p->data_type(), n);
  if (p->data_location() == onnx::TensorProto::EXTERNAL) return make_external(std::move(p), nbytes);
  check_inline_size(*p, n, nbytes);
  return std::make_unique<Tensor>(std::move(p));
}

void ExternalDataReader::check_inline_size(const onnx::TensorProto& t, size_t n,
                                           size_t nbytes) const {
  if (t.has_raw_data() && nbytes != SIZE_MAX) {
    TFH_CHECK(t.raw_data().size() == nbytes, model_path_, ": initializer '", t.name(),
              "': raw_data has ", t.raw_data().size(), " bytes, but ", dims_text(t), " of ",
              dtype_name(t.data_type()), " needs ", nbytes);
    return;
  }
  size_t want = dtype_typed_count(t.data_type(), n);
  if (t.has_raw_data() || want == SIZE_MAX) return;  // a type newer than we know: cannot check
  TFH_CHECK(typed_value_count(t) == want, model_path_, ": initializer '", t.name(), "' has ",
            typed_value_count(t), " values, but ", dims_text(t), " of ", dtype_name(t.data_type()),
            " needs ", want);
}

std::unique_ptr<Tensor> ExternalDataReader::make_external(std::unique_ptr<onnx::TensorProto> p,
                                                          size_t nbytes) {
  const std::string name = p->name();
  std::string location;
  size_t offset = 0, length = SIZE_MAX;
  for (const auto& e : p->external_data()) {
    bool ok = true;
    if (e.key() == "location") location = e.value();
    else if (e.key() == "offset") ok = parse_size(e.value(), offset);
    else if (e.key() == "length") ok = parse_size(e.value(), length);
    TFH_CHECK(ok, model_path_, ": initializer '", name, "': external data ", e.key(), " '",
              e.value(), "' is not a number");
  }
  TFH_CHECK(!location.empty(), model_path_, ": initializer '", name,
            "': external data has no location");
  if (!map_data_) return std::make_unique<Tensor>(std::move(p));
  std::string file = resolve(location, name);
  auto& mapping = files_[file];
  if (!mapping) {
    try {
      mapping = MappedFile::open(file);
    } catch (const Error& e) {
      TFH_THROW(model_path_, ": initializer '", name, "': ", e.what());
    }
  }
  size_t size = mapping->size();
  if (length == SIZE_MAX) length = nbytes != SIZE_MAX ? nbytes : size - std::min(offset, size);
  TFH_CHECK(offset <= size && length <= size - offset, model_path_, ": initializer '", name,
            "': external data at offset ", offset, " length ", length, " is past the end of '",
            location, "' (", size, " bytes)");
  TFH_CHECK(nbytes == SIZE_MAX || length == nbytes, model_path_, ": initializer '", name,
            "': external data length ", length, ", but ", dims_text(*p), " of ",
            dtype_name(p->data_type()), " needs ", nbytes);
  return std::make_unique<Tensor>(std::move(p), mapping, offset, length);
}

// The data file, canonical. Refuses locations that leave the model's folder: absolute paths, ".."
// components, and symlinks resolving outside (a model must not make us read arbitrary files).
std::string ExternalDataReader::resolve(const std::string& location, const std::string& tensor) {
  fs::path rel(location);
  TFH_CHECK(!rel.is_absolute(), model_path_, ": initializer '", tensor,
            "': external data location '", location,
            "' is absolute; it must be relative to the model's folder");
  for (const auto& part : rel)
    TFH_CHECK(part != "..", model_path_, ": initializer '", tensor, "': external data location '",
              location, "' escapes the model's folder");
  std::error_code ec;
  if (dir_.empty()) {
    dir_ = fs::canonical(fs::absolute(model_path_).parent_path(), ec).string();
    TFH_CHECK(!ec, model_path_, ": cannot resolve the model's folder: ", ec.message());
  }
  fs::path file = fs::canonical(fs::path(dir_) / rel, ec);
  TFH_CHECK(!ec, model_path_, ": initializer '", tensor, "': external data file '", location,
            "' not found: ", ec.message());
  fs::path inside = file.lexically_relative(dir_);
  TFH_CHECK(!inside.empty() && *inside.begin() != "..", model_path_, ": initializer '", tensor,
            "': external data location '", location, "' resolves to '", file.string(),
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
