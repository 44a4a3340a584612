// Tensor: an initializer's data, owned (moved out of the model) or mapped from an external file.
#include <algorithm>
#include <cstring>
#include <string>

#include "host/ir/dtype.h"
#include "host/ir/graph.h"

#include <sys/mman.h>
#include <unistd.h>
#include "host/ir/mapped_file.h"
#include "host/util/error.h"

namespace tfh::ir {
namespace {

using TP = onnx::TensorProto;

// ONNX stores 8- and 16-bit types (and float16/bfloat16/bool bit patterns) one per int32_data
// entry; only the low bits carry the value. Hosts are little-endian (x86-64, aarch64).
template <typename Narrow>
void narrow_int32(const google::protobuf::RepeatedField<int32_t>& src, char* out) {
  for (int i = 0; i < src.size(); ++i) {
    Narrow v = static_cast<Narrow>(src.Get(i));
    std::memcpy(out + i * sizeof(Narrow), &v, sizeof(Narrow));
  }
}

template <typename T>
void copy_field(const google::protobuf::RepeatedField<T>& src, char* out) {
  if (!src.empty()) std::memcpy(out, src.data(), src.size() * sizeof(T));
}

// The typed field holding `p`'s data, converted to raw bytes; the typed fields are cleared.
std::string typed_to_raw(TP& p, size_t nbytes) {
  std::string raw(nbytes, '\0');
  char* out = raw.data();
  switch (p.data_type()) {
    case TP::FLOAT: case TP::COMPLEX64: copy_field(p.float_data(), out); break;
    case TP::DOUBLE: case TP::COMPLEX128: copy_field(p.double_data(), out); break;
    case TP::INT64: copy_field(p.int64_data(), out); break;
    case TP::UINT64: copy_field(p.uint64_data(), out); break;
    case TP::UINT32:
      for (int i = 0; i < p.uint64_data_size(); ++i) {
        uint32_t v = static_cast<uint32_t>(p.uint64_data(i));
        std::memcpy(out + 4 * i, &v, 4);
      }
      break;
    case TP::INT32: copy_field(p.int32_data(), out); break;
    case TP::INT16: case TP::UINT16: case TP::FLOAT16: case TP::BFLOAT16:
      narrow_int32<uint16_t>(p.int32_data(), out);
      break;
    default:  // 1-byte types, float8, and packed 4-bit types (one byte per int32_data entry)
      narrow_int32<uint8_t>(p.int32_data(), out);
      break;
  }
  p.clear_float_data();
  p.clear_double_data();
  p.clear_int32_data();
  p.clear_int64_data();
  p.clear_uint64_data();
  return raw;
}

}  // namespace

Tensor::Tensor(std::unique_ptr<onnx::TensorProto> proto)
    : proto_(std::move(proto)), dims_(proto_->dims().begin(), proto_->dims().end()) {
  // Every size derived from the dims (num_elements, nbytes, a pass's loops) must not wrap around.
  if (checked_element_count(dtype(), dims_.data(), dims_.size()) != SIZE_MAX) return;
  std::string dims;
  for (size_t i = 0; i < dims_.size(); ++i) dims += (i ? ", " : "") + std::to_string(dims_[i]);
  TFH_THROW("tensor '", name(), "': dims [", dims, "] ",
            std::any_of(dims_.begin(), dims_.end(), [](int64_t d) { return d < 0; })
                ? "have a negative dimension"
                : "hold more elements than fit in memory");
}

Tensor::Tensor(std::unique_ptr<onnx::TensorProto> proto, std::shared_ptr<MappedFile> mapping,
               size_t offset, size_t length)
    : Tensor(std::move(proto)) {
  mapping_ = std::move(mapping);
  offset_ = offset;
  length_ = length;
}

Tensor::~Tensor() = default;

size_t Tensor::num_elements() const {
  size_t n = 1;
  for (int64_t d : dims_) n *= static_cast<size_t>(d);  // checked in the constructor
  return n;
}

size_t Tensor::nbytes() const {
  size_t b = dtype_bytes(dtype(), num_elements());
  return b == SIZE_MAX ? 0 : b;
}

bool Tensor::is_unloaded_external() const {
  return !mapping_ && proto_->data_location() == TP::EXTERNAL;
}

void Tensor::release_data() {
  if (mapping_) {
    // Whole pages inside [offset, offset + length): neighbours' bytes stay.
    const long page = sysconf(_SC_PAGESIZE);
    const uintptr_t begin = reinterpret_cast<uintptr_t>(mapping_->data() + offset_);
    const uintptr_t end = begin + length_;
    const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
    return;
  }
  if (dtype() == TP::STRING || is_unloaded_external()) return;
  released_ = true;
  std::string().swap(*proto_->mutable_raw_data());
  proto_->clear_raw_data();
  proto_->clear_float_data();
  proto_->clear_int32_data();
  proto_->clear_int64_data();
  proto_->clear_double_data();
  proto_->clear_uint64_data();
}

const void* Tensor::data() const {
  if (mapping_) return mapping_->data() ? mapping_->data() + offset_ : nullptr;
  TFH_CHECK(!released_, "tensor '", name(),
            "': its bytes were released after the runtime packed them (the model cannot be "
            "saved or run again)");
  TFH_CHECK(!is_unloaded_external(), "tensor '", name(),
            "': its external data was not loaded (LoadOptions::load_external_data is false)");
  if (dtype() == TP::STRING) return nullptr;
  size_t bytes = nbytes();
  if (!proto_->has_raw_data() && bytes > 0) {
    TFH_CHECK(typed_value_count(*proto_) == dtype_typed_count(dtype(), num_elements()), "tensor '",
              name(), "': has ", typed_value_count(*proto_), " typed values, its dims need ",
              dtype_typed_count(dtype(), num_elements()));
    proto_->set_raw_data(typed_to_raw(*proto_, bytes));
  }
  return proto_->raw_data().data();
}

void* Tensor::mutable_data() {
  if (mapping_) {
    const char* src = static_cast<const char*>(data());
    proto_->set_raw_data(std::string(src, src + length_));
    proto_->clear_external_data();
    proto_->clear_data_location();
    mapping_.reset();
    offset_ = length_ = 0;
  }
  if (data() == nullptr) return nullptr;
  return proto_->mutable_raw_data()->data();
}

std::unique_ptr<onnx::TensorProto> Tensor::release_proto() {
  if (mapping_) mutable_data();
  dims_.clear();
  return std::move(proto_);
}

}  // namespace tfh::ir
