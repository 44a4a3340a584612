// HostTensor: the object behind TfhTensor*, shared by the host table (views of initializers and
// attributes, plugin-made tensors) and the runtime (activations handed to kernels).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "tfhost/abi.h"

namespace tfh::plugin {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<unsigned char[], AlignedFree>;

constexpr size_t kAlign = 64;

inline AlignedBuffer aligned_zeroed(size_t bytes) {
  size_t n = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, n);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, n);
  return AlignedBuffer(static_cast<unsigned char*>(p));
}

// Same, without zeroing: for buffers a kernel fills completely (run outputs).
inline AlignedBuffer aligned_uninit(size_t bytes) {
  size_t n = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, n);
  if (!p) throw std::bad_alloc();
  return AlignedBuffer(static_cast<unsigned char*>(p));
}

// Bits per element; 0 for types without a fixed-size dense layout (string, unknown).
inline size_t elem_bits(TfhDataType t) {
  switch (t) {
    case TFH_TYPE_UINT8:
    case TFH_TYPE_INT8:
    case TFH_TYPE_BOOL:
    case TFH_TYPE_FLOAT8E4M3FN:
    case TFH_TYPE_FLOAT8E4M3FNUZ:
    case TFH_TYPE_FLOAT8E5M2:
    case TFH_TYPE_FLOAT8E5M2FNUZ:
      return 8;
    case TFH_TYPE_UINT16:
    case TFH_TYPE_INT16:
    case TFH_TYPE_FLOAT16:
    case TFH_TYPE_BFLOAT16:
      return 16;
    case TFH_TYPE_FLOAT:
    case TFH_TYPE_INT32:
    case TFH_TYPE_UINT32:
      return 32;
    case TFH_TYPE_INT64:
    case TFH_TYPE_UINT64:
    case TFH_TYPE_DOUBLE:
    case TFH_TYPE_COMPLEX64:
      return 64;
    case TFH_TYPE_COMPLEX128:
      return 128;
    case TFH_TYPE_UINT4:
    case TFH_TYPE_INT4:
      return 4;
    default:
      return 0;
  }
}

inline size_t checked_num_elements(const int64_t* dims, size_t rank) {
  size_t n = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 0)
      throw std::invalid_argument("tensor dimension " + std::to_string(i) + " is negative (" +
                                         std::to_string(dims[i]) + ")");
    size_t d = static_cast<size_t>(dims[i]);
    if (d != 0 && n > SIZE_MAX / d) throw std::invalid_argument("tensor is too large");
    n *= d;
  }
  return n;
}

// The object behind TfhTensor*: either a read-only view (of an ir::Tensor, an attribute
// TensorProto, or a Constant node's scalar/list attribute) or a tensor that owns its data.
struct HostTensor {
  TfhDataType type = TFH_TYPE_UNDEFINED;
  std::vector<int64_t> dims;
  size_t num_elements = 0;
  size_t nbytes = 0;
  const void* data = nullptr;  // NULL when the bytes cannot be provided (external, string)
  AlignedBuffer storage;       // owned data, or a converted copy of typed proto fields
  bool owned = false;          // made by tensor_create: writable, freed by tensor_release
  bool writable = false;       // a runtime output: tensor_mutable_data answers, host frees it

  void set_shape(TfhDataType t, std::vector<int64_t> d) {
    type = t;
    dims = std::move(d);
    num_elements = checked_num_elements(dims.data(), dims.size());
    const size_t bits = elem_bits(t);
    if (bits && num_elements > (SIZE_MAX - 7) / bits) throw std::invalid_argument("tensor is too large");
    nbytes = (num_elements * bits + 7) / 8;
  }
};


}  // namespace tfh::plugin
