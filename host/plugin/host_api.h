// The host side of the plugin ABI: the TfhHostApi function table and the conversions between
// opaque C handles and host objects. Everything here is host-internal; plugins see only abi.h.
//
// Handle mapping (reinterpret_cast, never exposed):
//   TfhGraph*  <-> tfh::ir::Model*      (a graph needs its model's opset imports)
//   TfhNode*   <-> tfh::ir::Node*
//   TfhValue*  <-> tfh::ir::Value*
//   TfhParams* <-> tfh::plugin::Params*
//   TfhTensor*, TfhTensorList*, TfhStatus*, TfhShapeContext*: see host_api.cc
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "tfhost/abi.h"

namespace tfh::plugin {

// The process-wide host table (static storage, filled on first call; no static initialiser work).
const TfhHostApi* host_api();

inline TfhGraph* to_c(ir::Model* m) { return reinterpret_cast<TfhGraph*>(m); }
inline ir::Model* from_c(TfhGraph* g) { return reinterpret_cast<ir::Model*>(g); }
inline const ir::Model* from_c(const TfhGraph* g) { return reinterpret_cast<const ir::Model*>(g); }

// Status helpers. make_status allocates a TfhStatus the way host->status_create does.
TfhStatus* make_status(TfhErrorCode code, const std::string& msg);
// Returns "" for NULL, otherwise the message; releases the status in both cases.
std::string take_status_message(TfhStatus* s, TfhErrorCode* code = nullptr);

// A named list of CPU tensors (dummy inputs): the host object behind TfhTensorList.
struct HostTensor;  // defined in host_api.cc
class TensorList {
 public:
  TensorList();
  ~TensorList();
  TfhTensorList* c_handle() { return reinterpret_cast<TfhTensorList*>(this); }
  size_t size() const;
  const std::string& name(size_t i) const;
  const TfhTensor* tensor(size_t i) const;

 private:
  friend struct TensorListAccess;
  std::vector<std::pair<std::string, HostTensor*>> items_;
};

}  // namespace tfh::plugin
