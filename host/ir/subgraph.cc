#include "host/ir/subgraph.h"

#include <unordered_set>

namespace tfh::ir {
namespace {

using Names = std::unordered_set<std::string>;

Names local_names(const onnx::GraphProto& g) {
  Names s;
  for (const auto& v : g.input()) s.insert(v.name());
  for (const auto& t : g.initializer()) s.insert(t.name());
  for (const auto& t : g.sparse_initializer()) s.insert(t.values().name());
  for (const auto& n : g.node())
    for (const auto& o : n.output()) s.insert(o);
  return s;
}

template <typename Attr, typename Fn>
void for_each_subgraph(Attr& a, Fn fn) {
  if (a.has_g()) fn(*a.mutable_g());
  for (auto& g : *a.mutable_graphs()) fn(g);
}

void collect(const onnx::GraphProto& g, std::vector<std::string>& out, Names& seen) {
  Names local = local_names(g);
  auto use = [&](const std::string& n) {
    if (!n.empty() && !local.count(n) && seen.insert(n).second) out.push_back(n);
  };
  for (const auto& node : g.node()) {
    for (const auto& in : node.input()) use(in);
    for (const auto& a : node.attribute())
      for (const auto& n : outer_scope_names(a)) use(n);
  }
  for (const auto& o : g.output()) use(o.name());  // a body may return an outer value directly
}

void rename(onnx::GraphProto& g, const std::string& from, const std::string& to) {
  if (local_names(g).count(from)) return;  // shadowed: this body means its own `from`
  for (auto& node : *g.mutable_node()) {
    for (auto& in : *node.mutable_input())
      if (in == from) in = to;
    for (auto& a : *node.mutable_attribute()) rename_outer_scope_name(a, from, to);
  }
  for (auto& o : *g.mutable_output())
    if (o.name() == from) o.set_name(to);
}

}  // namespace

std::vector<std::string> outer_scope_names(const onnx::AttributeProto& attr) {
  std::vector<std::string> out;
  Names seen;
  if (attr.has_g()) collect(attr.g(), out, seen);
  for (const auto& g : attr.graphs()) collect(g, out, seen);
  return out;
}

void rename_outer_scope_name(onnx::AttributeProto& attr, const std::string& from,
                             const std::string& to) {
  for_each_subgraph(attr, [&](onnx::GraphProto& g) { rename(g, from, to); });
}

}  // namespace tfh::ir
