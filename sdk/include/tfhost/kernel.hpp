// Kernels over the C ABI: a C++ class per operator, registered as a static TfhKernelDesc.
//
//   struct MyRelu {
//     explicit MyRelu(tfh::NodeView node) {}              // read attributes once, at plan time
//     void compute(tfh::KernelContext& ctx) {              // runs on every session run
//       tfh::TensorView x = ctx.input(0);
//       tfh::OutputTensor y = ctx.output(0, x.dtype(), x.dims());
//       ...
//     }
//   };
//   static const TfhKernelDesc kRelu = TFH_KERNEL_DESC(MyRelu, "my.relu", "", "Relu", 6, 0,
//                                                      TFH_DEVICE_CPU, "T=float", 10);
//
// The same layer serves the kernels built into tfhost (kernels/cpu) and a plugin's kernels.
// Exceptions thrown by the constructor or compute arrive at the host as a status.
#pragma once

#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "tfhost/graph.hpp"

namespace tfh {

inline const TfhKernelApi& kernel_api() {
  const TfhHostApi& h = host();
  if (!TFH_HAS_FIELD(&h, TfhHostApi, kernel) || !h.kernel)
    throw sdk::Error(TFH_NOT_IMPLEMENTED, "this tfhost has no kernel table (host too old)");
  return *h.kernel;
}

// A writable output of the running kernel (host-allocated on the kernel's device).
class OutputTensor {
 public:
  explicit OutputTensor(TfhTensor* t) : t_(t) {}
  TensorView view() const { return TensorView(t_); }
  TfhDataType dtype() const { return view().dtype(); }
  Span<const int64_t> dims() const { return view().dims(); }
  size_t size() const { return view().size(); }
  void* raw() const { return tensor_api().tensor_mutable_data(t_); }
  template <typename T>
  T* data() const {
    if (dtype() != data_type_of<T>())
      sdk::fail(std::string("output tensor is ") + data_type_name(dtype()) + ", not " +
                data_type_name(data_type_of<T>()));
    return static_cast<T*>(raw());
  }

 private:
  TfhTensor* t_;
};

class KernelContext {
 public:
  explicit KernelContext(TfhKernelContext* c) : c_(c) {}
  TfhKernelContext* handle() const { return c_; }

  NodeView node() const { return NodeView(const_cast<TfhNode*>(kernel_api().node(c_))); }
  size_t num_inputs() const { return kernel_api().num_inputs(c_); }
  // Falsy for an omitted optional input (or an index past the end).
  TensorView input(size_t i) const { return TensorView(kernel_api().input(c_, i)); }
  // Input i, which must be present.
  TensorView required(size_t i) const {
    TensorView t = input(i);
    if (!t) sdk::fail("input " + std::to_string(i) + " is missing");
    return t;
  }
  size_t num_outputs() const { return kernel_api().num_outputs(c_); }
  bool output_used(size_t i) const { return kernel_api().output_used(c_, i) != 0; }

  OutputTensor output(size_t i, TfhDataType type, Span<const int64_t> dims) {
    TfhTensor* t = nullptr;
    check(kernel_api().output(c_, i, type, dims.data(), dims.size(), &t));
    return OutputTensor(t);
  }
  OutputTensor output(size_t i, TfhDataType type, const std::vector<int64_t>& dims) {
    return output(i, type, Span<const int64_t>{dims.data(), dims.size()});
  }

  // Output i with input j's bytes under the shape `dims` (a view op): shares input j's buffer
  // when the host can, else copies. Hosts without the field: allocate and copy here.
  OutputTensor output_from_input(size_t i, size_t j, const std::vector<int64_t>& dims) {
    const TfhKernelApi& k = kernel_api();
    if (TFH_HAS_FIELD(&k, TfhKernelApi, output_from_input) && k.output_from_input) {
      TfhTensor* t = nullptr;
      check(k.output_from_input(c_, i, j, dims.data(), dims.size(), &t));
      return OutputTensor(t);
    }
    TensorView in = required(j);
    OutputTensor out = output(i, in.dtype(), dims);
    if (out.view().nbytes() != in.nbytes()) sdk::fail("output_from_input: byte counts differ");
    if (in.nbytes()) std::memcpy(out.raw(), in.raw(), in.nbytes());
    return out;
  }

  // Sequence values. -1: input i is not a sequence.
  int64_t sequence_length(size_t i) const {
    const TfhKernelApi& k = kernel_api();
    if (!TFH_HAS_FIELD(&k, TfhKernelApi, input_sequence_length)) return -1;
    return k.input_sequence_length(c_, i);
  }
  TensorView sequence_at(size_t i, size_t k) const {
    return TensorView(kernel_api().input_sequence_at(c_, i, k));
  }
  // Makes output i an (empty) sequence; append adds one tensor to it.
  void begin_sequence(size_t i) {
    const TfhKernelApi& k = kernel_api();
    if (!TFH_HAS_FIELD(&k, TfhKernelApi, output_sequence_begin))
      sdk::fail("this tfhost has no sequence values (host too old)");
    check(k.output_sequence_begin(c_, i));
  }
  OutputTensor append(size_t i, TfhDataType type, const std::vector<int64_t>& dims) {
    TfhTensor* t = nullptr;
    check(kernel_api().output_sequence_append(c_, i, type, dims.data(), dims.size(), &t));
    return OutputTensor(t);
  }

  template <typename T>
  T* scratch(size_t count) {
    void* p = kernel_api().scratch(c_, count * sizeof(T));
    if (!p && count) throw sdk::Error(TFH_OUT_OF_MEMORY, "out of scratch memory");
    return static_cast<T*>(p);
  }
  int num_threads() const { return kernel_api().num_threads(c_); }
  // Hands this node to the kernel the runtime would have chosen without this one (the next by
  // priority), on the same inputs and outputs: for a kernel specialised for some cases.
  void run_next() {
    const TfhKernelApi& k = kernel_api();
    if (!TFH_HAS_FIELD(&k, TfhKernelApi, run_next_kernel) || !k.run_next_kernel)
      sdk::fail(TFH_NOT_IMPLEMENTED, "this tfhost cannot hand a node to another kernel");
    check(k.run_next_kernel(c_));
  }

 private:
  TfhKernelContext* c_;
};

// From a kernel's constructor: this kernel keeps its own copy of constant input i (e.g. a packed
// layout) and will not read the original again, so a host that owns the model may free it.
inline void constant_input_consumed(NodeView node, size_t i) {
  const TfhHostApi& h = host();
  if (!TFH_HAS_FIELD(&h, TfhHostApi, kernel) || !h.kernel) return;
  if (TFH_HAS_FIELD(h.kernel, TfhKernelApi, constant_input_consumed) &&
      h.kernel->constant_input_consumed)
    h.kernel->constant_input_consumed(node.handle(), i);
}

namespace sdk {

template <typename K>
TfhStatus* kernel_create(const TfhNode* node, void** state) noexcept {
  try {
    *state = new K(NodeView(const_cast<TfhNode*>(node)));
    return nullptr;
  } catch (...) {
    return status_from_current_exception();
  }
}

// A device kernel may take the stream too: compute(KernelContext&, void* stream) (the CUDA
// runtime passes its cudaStream_t; NULL on the CPU).
template <typename K>
TfhStatus* kernel_compute(void* state, TfhKernelContext* ctx, void* stream) noexcept {
  try {
    KernelContext c(ctx);
    if constexpr (std::is_invocable_v<decltype(&K::compute), K*, KernelContext&, void*>)
      static_cast<K*>(state)->compute(c, stream);
    else
      static_cast<K*>(state)->compute(c);
    return nullptr;
  } catch (...) {
    return status_from_current_exception();
  }
}

template <typename K>
void kernel_destroy(void* state) noexcept {
  delete static_cast<K*>(state);
}

}  // namespace sdk
}  // namespace tfh

// A static TfhKernelDesc for class K (see the top of this file).
#define TFH_KERNEL_DESC(K, name, domain, op_type, since, end, device, constraints, priority)   \
  TFH_KERNEL_DESC_HOST_INPUTS(K, name, domain, op_type, since, end, device, constraints,       \
                              priority, 0)
// The same, for a device kernel that reads some inputs on the host (TfhKernelDesc::host_inputs:
// bit i for input i), e.g. a CUDA Expand whose shape comes from the model's shape arithmetic.
#define TFH_KERNEL_DESC_HOST_INPUTS(K, name, domain, op_type, since, end, device, constraints,  \
                                    priority, host_inputs)                                     \
  TfhKernelDesc {                                                                             \
    sizeof(TfhKernelDesc), name, domain, op_type, since, end, device, constraints, priority,  \
        ::tfh::sdk::kernel_create<K>, ::tfh::sdk::kernel_compute<K>,                          \
        ::tfh::sdk::kernel_destroy<K>, static_cast<uint64_t>(host_inputs)                     \
  }
