// The host side of the plugin ABI: the TfhHostApi function table and the conversions between
// opaque C handles and host objects. Everything here is host-internal; plugins see only abi.h.
//
// Handle mapping (reinterpret_cast, never exposed):
//   TfhGraph*        <-> tfh::ir::Model*      (a graph needs its model's opset imports)
//   TfhNode*         <-> tfh::ir::Node*
//   TfhValue*        <-> tfh::ir::Value*
//   TfhParams*       <-> tfh::plugin::Params*
//   TfhTensor*       <-> tfh::plugin::HostTensor* (a read-only view of an ir::Tensor or attribute
//                        TensorProto, or a tensor that owns its data; defined in host_api.cc)
//   TfhTensorList*   <-> tfh::plugin::TensorList*
//   TfhShapeContext* <-> tfh::plugin::ShapeContext*
//   TfhStatus*       <-> struct TfhStatus { code, message } (host_api.cc)
//
// Every table function catches every exception: status functions turn it into a TfhStatus,
// getters return a safe default (NULL, 0, -1, TFH_TYPE_UNDEFINED).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "host/ir/shape_inference.h"
#include "tfhost/abi.h"

namespace tfh::plugin {

// The process-wide host table (static storage, filled on first call; no static initialiser work).
const TfhHostApi* host_api();

// Messages logged through host->log below this level are dropped (default TFH_LOG_WARNING).
// Output goes to stderr as "tfhost: [plugin] warning: msg".
void set_log_level(TfhLogLevel level);
TfhLogLevel log_level();

// The contrib-op shape hooks of the registry whose pass is running on this thread (null when
// none): what graph_infer_shapes and core.shape_inference use. Set by Registry::run_pass.
const ir::ShapeHooks* active_shape_hooks();
class ScopedShapeHooks {
 public:
  explicit ScopedShapeHooks(const ir::ShapeHooks* hooks);
  ~ScopedShapeHooks();
  ScopedShapeHooks(const ScopedShapeHooks&) = delete;
  ScopedShapeHooks& operator=(const ScopedShapeHooks&) = delete;

 private:
  const ir::ShapeHooks* previous_;
};

inline TfhGraph* to_c(ir::Model* m) { return reinterpret_cast<TfhGraph*>(m); }
inline ir::Model* from_c(TfhGraph* g) { return reinterpret_cast<ir::Model*>(g); }
inline const ir::Model* from_c(const TfhGraph* g) { return reinterpret_cast<const ir::Model*>(g); }
inline TfhNode* to_c(ir::Node* n) { return reinterpret_cast<TfhNode*>(n); }
inline ir::Node* from_c(const TfhNode* n) {
  return reinterpret_cast<ir::Node*>(const_cast<TfhNode*>(n));
}
inline TfhValue* to_c(ir::Value* v) { return reinterpret_cast<TfhValue*>(v); }
inline ir::Value* from_c(const TfhValue* v) {
  return reinterpret_cast<ir::Value*>(const_cast<TfhValue*>(v));
}

// Status helpers. make_status allocates a TfhStatus the way host->status_create does.
TfhStatus* make_status(TfhErrorCode code, const std::string& msg);
// Returns "" for NULL, otherwise the message; releases the status in both cases.
std::string take_status_message(TfhStatus* s, TfhErrorCode* code = nullptr);

// Tensors crossing the boundary.
struct HostTensor;  // defined in host_api.cc
// A read-only view of an initializer, cached: the same pointer comes back while `t` lives.
const TfhTensor* tensor_view(const ir::Tensor& t);
// Copies a TfhTensor (a plugin's or a view) into a new initializer-style tensor named `name`.
std::unique_ptr<ir::Tensor> to_ir_tensor(const TfhTensor* t, const std::string& name);

// Drops the host's cached views into `m` (node-index snapshot, constant-tensor views of its
// initializers). Call after editing a graph outside the host table if a plugin may still hold
// handles into it, or before destroying a model that plugins have seen. Never required for
// correctness of edits made through the table itself.
void invalidate_views(const ir::Model* m);

// A named list of CPU tensors (dummy inputs): the host object behind TfhTensorList.
class TensorList {
 public:
  TensorList();
  ~TensorList();
  TensorList(const TensorList&) = delete;
  TensorList& operator=(const TensorList&) = delete;
  TfhTensorList* c_handle() { return reinterpret_cast<TfhTensorList*>(this); }
  size_t size() const;
  const std::string& name(size_t i) const;
  const TfhTensor* tensor(size_t i) const;

 private:
  friend struct TensorListAccess;
  std::vector<std::pair<std::string, HostTensor*>> items_;
};

// The host object behind TfhShapeContext: one node's shape-inference problem as a plugin sees it.
class ShapeContext {
 public:
  explicit ShapeContext(ir::ShapeInferenceContext& ctx);
  ~ShapeContext();
  ShapeContext(const ShapeContext&) = delete;
  ShapeContext& operator=(const ShapeContext&) = delete;
  TfhShapeContext* c_handle() { return reinterpret_cast<TfhShapeContext*>(this); }
  ir::ShapeInferenceContext& ctx() { return ctx_; }
  const TfhTensor* input_constant(size_t i);  // cached view; NULL when unknown

 private:
  ir::ShapeInferenceContext& ctx_;
  std::vector<std::unique_ptr<HostTensor>> constants_;
};

// The host object behind TfhKernelContext: one node's execution as a kernel sees it. The runtime
// implements it (inputs, output allocation, scratch); the TfhKernelApi table forwards to it.
class KernelContext {
 public:
  virtual ~KernelContext() = default;
  TfhKernelContext* c_handle() { return reinterpret_cast<TfhKernelContext*>(this); }
  static KernelContext* from_c(TfhKernelContext* c) { return reinterpret_cast<KernelContext*>(c); }
  static const KernelContext* from_c(const TfhKernelContext* c) {
    return reinterpret_cast<const KernelContext*>(c);
  }

  virtual const ir::Node* node() const = 0;
  virtual size_t num_inputs() const = 0;
  virtual const HostTensor* input(size_t i) const = 0;  // NULL: omitted
  virtual size_t num_outputs() const = 0;
  virtual bool output_used(size_t i) const = 0;
  // Throws tfh::Error / std::invalid_argument on a bad request (second allocation, bad index).
  virtual HostTensor* allocate_output(size_t i, TfhDataType type, std::vector<int64_t> dims) = 0;
  virtual void* scratch(size_t bytes) = 0;
  virtual int num_threads() const = 0;
  // Output i sharing input j's buffer when possible (see TfhKernelApi::output_from_input).
  virtual HostTensor* output_from_input(size_t i, size_t j, std::vector<int64_t> dims) = 0;
  // Sequence values: -1 when input i is not a sequence.
  virtual int64_t input_sequence_length(size_t i) const = 0;
  virtual const HostTensor* input_sequence_at(size_t i, size_t k) const = 0;  // NULL: out of range
  virtual void output_sequence_begin(size_t i) = 0;
  virtual HostTensor* output_sequence_append(size_t i, TfhDataType type,
                                             std::vector<int64_t> dims) = 0;
  // Runs the next matching kernel on this context (TfhKernelApi::run_next_kernel); throws
  // tfh::Error when there is none.
  virtual void run_next_kernel() = 0;
};

// Collects TfhKernelApi::constant_input_consumed calls made on this thread while it is alive
// (the runtime sets one up around the kernels' create calls).
class ConsumedInputs {
 public:
  ConsumedInputs();
  ~ConsumedInputs();
  ConsumedInputs(const ConsumedInputs&) = delete;
  ConsumedInputs& operator=(const ConsumedInputs&) = delete;
  void add(const ir::Node* n, size_t i) { items_.emplace_back(n, i); }
  const std::vector<std::pair<const ir::Node*, size_t>>& items() const { return items_; }

 private:
  std::vector<std::pair<const ir::Node*, size_t>> items_;
  ConsumedInputs* previous_;
};

// Wraps a plugin's TfhOpDesc::infer_shapes as an ir::ShapeHook. An empty hook when the descriptor
// has none. A returned status becomes tfh::Error "node 'n' (com.microsoft.Op): <message>". The
// caller keeps the plugin library loaded while the hook is registered.
ir::ShapeHook make_shape_hook(const TfhOpDesc* op);

}  // namespace tfh::plugin
