#include "convert/safetensors.h"

#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <tfhost/core.hpp>

namespace gpt2 {
namespace {

size_t dtype_bytes(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  return 0;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

}  // namespace

size_t SafeTensor::num_elements() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);  // checked when the header was read
  return n;
}

namespace {
// Elements x width, or SIZE_MAX when that overflows (a bogus shape).
size_t checked_bytes(const std::vector<int64_t>& shape, size_t width) {
  size_t n = width;
  for (int64_t d : shape) {
    const size_t u = static_cast<size_t>(d);
    if (u && n > SIZE_MAX / u) return SIZE_MAX;
    n *= u;
  }
  return n;
}
}  // namespace

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
  auto fail = [&](const std::string& why) { tfh::sdk::fail(path + ": " + why); };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail("too short for a safetensors file (" + std::to_string(size_) + " bytes)");
  }
  base_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (base_ == MAP_FAILED) {
    base_ = nullptr;
    fail(std::string("cannot map: ") + std::strerror(errno));
  }
  try {
    parse_header();
  } catch (...) {
    ::munmap(base_, size_);  // the destructor does not run for a constructor that throws
    base_ = nullptr;
    throw;
  }
}

void SafeTensorsFile::parse_header() {
  auto fail = [&](const std::string& why) { tfh::sdk::fail(path_ + ": " + why); };
  const auto* bytes = static_cast<const unsigned char*>(base_);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian
  if (n == 0 || n > size_ - 8 || n > (size_t(100) << 20))
    fail("header length " + std::to_string(n) + " does not fit the file: not safetensors");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + n);
  } catch (const std::exception& e) {
    fail(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");
  const unsigned char* data = bytes + 8 + n;
  const size_t data_size = size_ - 8 - n;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      SafeTensor t;
      t.dtype = e.at("dtype").get<std::string>();
      t.shape = e.at("shape").get<std::vector<int64_t>>();
      const auto off = e.at("data_offsets").get<std::vector<uint64_t>>();
      const size_t width = dtype_bytes(t.dtype);
      if (!width) fail("tensor '" + name + "': unknown dtype " + t.dtype);
      for (int64_t d : t.shape)
        if (d < 0) fail("tensor '" + name + "': negative dimension");
      if (off.size() != 2 || off[0] > off[1] || off[1] > data_size)
        fail("tensor '" + name + "': data_offsets outside the data");
      t.nbytes = static_cast<size_t>(off[1] - off[0]);
      if (t.nbytes != checked_bytes(t.shape, width))
        fail("tensor '" + name + "': " + std::to_string(t.nbytes) + " bytes for " + t.dtype + " " +
             shape_str(t.shape));
      t.data = data + off[0];
      tensors_.emplace(name, std::move(t));
    } catch (const nlohmann::json::exception& ex) {
      fail("tensor '" + name + "': malformed header entry (" + ex.what() + ")");
    }
  }
}

SafeTensorsFile::~SafeTensorsFile() {
  if (base_) ::munmap(base_, size_);
}

const SafeTensor* SafeTensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<float> SafeTensorsFile::floats(const std::string& name,
                                           const std::vector<int64_t>& want_shape) const {
  const SafeTensor* t = find(name);
  if (!t) tfh::sdk::fail(path_ + ": no tensor '" + name + "'");
  if (t->shape != want_shape)
    tfh::sdk::fail(path_ + ": tensor '" + name + "' is " + shape_str(t->shape) + ", expected " +
                   shape_str(want_shape) + " by config.json");
  std::vector<float> out(t->num_elements());
  if (t->dtype == "F32") {
    std::memcpy(out.data(), t->data, t->nbytes);
  } else if (t->dtype == "F16" || t->dtype == "BF16") {
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, t->data + 2 * i, 2);
      out[i] = t->dtype == "F16" ? tfh::to_float(tfh::Float16{h}) : tfh::to_float(tfh::BFloat16{h});
    }
  } else {
    tfh::sdk::fail(path_ + ": tensor '" + name + "' is " + t->dtype +
                   "; weights must be F32, F16 or BF16");
  }
  return out;
}

}  // namespace gpt2
