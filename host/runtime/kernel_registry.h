// Which kernel runs a node: every TfhKernelDesc the runtime knows (tfhost's built-ins and the
// loaded plugins'), selected by domain, op type, opset range, device, type constraints and
// priority.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "tfhost/abi.h"

namespace tfh::plugin {
class Registry;
class PluginLibrary;
}  // namespace tfh::plugin

namespace tfh::runtime {

struct KernelCandidate {
  const TfhKernelDesc* desc = nullptr;
  std::string origin;  // "tfhost" or the plugin's name, for messages and `plugins`
  // "T" -> allowed element types (ONNX TensorProto codes); empty map = any.
  std::map<std::string, std::vector<int32_t>> constraints;
  std::shared_ptr<plugin::PluginLibrary> lib;  // keeps a plugin's code loaded
  // TfhKernelDesc::host_inputs, 0 for a descriptor built before the field was appended.
  uint64_t host_inputs = 0;
};

class KernelRegistry {
 public:
  // tfhost's own kernels (kernels/cpu, and kernels/cuda when built with CUDA).
  KernelRegistry();
  // The built-ins plus every kernel the plugins in `plugins` contribute.
  explicit KernelRegistry(const plugin::Registry& plugins);

  // Adds one kernel; throws tfh::Error on a malformed descriptor or constraint string.
  void add(const TfhKernelDesc* desc, const std::string& origin,
           std::shared_ptr<plugin::PluginLibrary> lib = nullptr);

  // The best kernel for `node` on `device`: the opset the model imports for the node's domain is
  // inside [since, end], every constraint whose type parameter the node's known input types
  // bind is satisfied, highest priority first (ties: the one registered first). NULL: none.
  // `why_not` (nullable) receives a one-line reason when nothing matches.
  const KernelCandidate* select(const ir::Model& model, const ir::Node& node, TfhDevice device,
                                std::string* why_not = nullptr) const;

  // Every kernel that matches, best first (select() is the first): the runtime keeps the rest
  // for a kernel that hands a case on (TfhKernelApi::run_next_kernel).
  std::vector<const KernelCandidate*> candidates(const ir::Model& model, const ir::Node& node,
                                                 TfhDevice device,
                                                 std::string* why_not = nullptr) const;

  size_t size() const { return kernels_.size(); }
  const std::vector<KernelCandidate>& kernels() const { return kernels_; }

 private:
  std::vector<KernelCandidate> kernels_;
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> by_op_;  // (domain, op)
};

}  // namespace tfh::runtime
