// core.float16 / core.bfloat16: float32 weights and computation become float16 (or bfloat16).
//
// Every node is either converted (its float slots take the target type) or kept in float32 (an op
// or node block list, the automatic block list, or an op whose ONNX type constraints have no
// target type at the model's opset). Values change type with their producer; a Cast is inserted
// only where a reader wants another type than the value has (one per value and type), Casts that
// became useless (same type in and out) or that undo a lossless widening are removed, and float
// initializers are rounded (clamped to the target's range first) where their readers want the
// target type. Graph inputs and outputs named by keep_io_types stay float32 behind Casts.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "host/ir/graph.h"

namespace tfh::passes {

struct FloatConvertOptions {
  int32_t target = onnx::TensorProto::FLOAT16;  // or BFLOAT16
  bool keep_io_all = false;                     // every float graph input and output
  std::set<std::string> keep_io_names;          // or these
  std::set<std::string> op_block_list;          // op types kept in float32 (any domain)
  std::set<std::string> node_block_list;        // node names (or an output name) kept in float32
  // Why each node (by node key, see node_key) is kept: filled by the automatic block list.
  std::map<std::string, std::string> auto_blocked;
  // Initializers read by float32 nodes are stored in the target type too, read through a Cast.
  bool force_initializers = false;
  // Weight clamping: |x| below min_positive becomes +-min_positive, above max_finite +-max_finite
  // (zero, inf and NaN stay). 0 = the target's own limits (float16: 2^-24 and 65504).
  double min_positive = 0, max_finite = 0;
};

struct FloatConvertReport {
  size_t nodes_converted = 0;
  std::vector<std::pair<std::string, std::string>> kept;  // (node, reason), model order
  size_t casts_added = 0, casts_removed = 0;
  size_t initializers = 0, bytes_before = 0, bytes_after = 0, clamped = 0;
  size_t changes() const { return nodes_converted + casts_added + casts_removed + initializers; }
  std::string summary(const char* target_name) const;
};

// The ops kept in float32 unless the user says otherwise (op_block_list adds to these;
// default_op_block_list: false drops them): positions, counters and indices that float16 cannot
// represent exactly past 2048, and sampling ops.
const std::vector<std::string>& default_float16_op_block_list();

// A node's stable identity across copies of a model: its name, or "output:<first output>" for an
// unnamed node.
std::string node_key(const ir::Node& n);

FloatConvertReport convert_float(ir::Model& model, const FloatConvertOptions& opts);

// The largest finite value and the smallest positive (subnormal) value of a 16-bit float type.
double float_type_max(int32_t type);
double float_type_min_positive(int32_t type);

}  // namespace tfh::passes
