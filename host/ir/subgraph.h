// Outer-scope references of subgraph attributes (If/Loop/Scan bodies). The bodies stay opaque
// AttributeProtos; these helpers find and rename the names they read from the enclosing graph.
#pragma once

#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

namespace tfh::ir {

// Names the attribute's subgraphs (nested ones included) read but do not define, in first-use
// order.
std::vector<std::string> outer_scope_names(const onnx::AttributeProto& attr);

// Renames uses of outer-scope `from` to `to` inside the attribute's subgraphs (where not shadowed).
void rename_outer_scope_name(onnx::AttributeProto& attr, const std::string& from,
                             const std::string& to);

inline bool has_subgraph(const onnx::AttributeProto& a) { return a.has_g() || a.graphs_size() > 0; }

}  // namespace tfh::ir
