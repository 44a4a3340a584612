// Symbolic shape inference: ONNX's own for standard ops, plus hooks for ops ONNX does not know
// (com.microsoft contrib ops), supplied by whoever owns the op (a plugin's TfhOpDesc, a built-in).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

namespace tfh::ir {

class Node;
class Tensor;

// One node's inference problem. Inputs are what is known so far (nullptr: unknown / omitted);
// the hook fills output_types (pre-sized to the node's output count; leave an entry untouched
// when it cannot say).
struct ShapeInferenceContext {
  const Node* node = nullptr;
  std::vector<const onnx::TypeProto*> input_types;
  std::vector<const Tensor*> input_constants;  // initializer data when the input is constant
  std::vector<onnx::TypeProto> output_types;
};

// Throws tfh::Error when the node is malformed (the message names the node).
using ShapeHook = std::function<void(ShapeInferenceContext&)>;

class ShapeHooks {
 public:
  void add(const std::string& domain, const std::string& op_type, ShapeHook hook) {
    hooks_[{domain, op_type}] = std::move(hook);
  }
  const ShapeHook* find(const std::string& domain, const std::string& op_type) const {
    auto it = hooks_.find({domain, op_type});
    return it == hooks_.end() ? nullptr : &it->second;
  }
  void clear() { hooks_.clear(); }

 private:
  std::map<std::pair<std::string, std::string>, ShapeHook> hooks_;
};

}  // namespace tfh::ir
