#include "host/runtime/kernel_registry.h"

#include <onnx/defs/schema.h>

#include <algorithm>
#include <sstream>

#include "host/plugin/host_api.h"
#include "host/plugin/registry.h"
#include "host/util/error.h"
#include "kernels/registry.h"
#include "tfhost/core.hpp"

namespace tfh::runtime {
namespace {

int32_t type_code(const std::string& name) {
  static const std::map<std::string, int32_t> codes = {
      {"float", TFH_TYPE_FLOAT},     {"float32", TFH_TYPE_FLOAT},   {"float16", TFH_TYPE_FLOAT16},
      {"bfloat16", TFH_TYPE_BFLOAT16}, {"double", TFH_TYPE_DOUBLE}, {"int8", TFH_TYPE_INT8},
      {"uint8", TFH_TYPE_UINT8},     {"int16", TFH_TYPE_INT16},     {"uint16", TFH_TYPE_UINT16},
      {"int32", TFH_TYPE_INT32},     {"uint32", TFH_TYPE_UINT32},   {"int64", TFH_TYPE_INT64},
      {"uint64", TFH_TYPE_UINT64},   {"bool", TFH_TYPE_BOOL},       {"string", TFH_TYPE_STRING}};
  auto it = codes.find(name);
  return it == codes.end() ? -1 : it->second;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// "T=float,float16;M=int32" -> {T: [1, 10], M: [6]}
std::map<std::string, std::vector<int32_t>> parse_constraints(const std::string& text,
                                                              const std::string& kernel) {
  std::map<std::string, std::vector<int32_t>> out;
  std::stringstream groups(text);
  std::string group;
  while (std::getline(groups, group, ';')) {
    if (trim(group).empty()) continue;
    size_t eq = group.find('=');
    if (eq == std::string::npos)
      TFH_THROW("kernel '", kernel, "': type constraint '", trim(group), "' has no '='");
    std::string param = trim(group.substr(0, eq));
    std::stringstream types(group.substr(eq + 1));
    std::string t;
    while (std::getline(types, t, ',')) {
      int32_t code = type_code(trim(t));
      if (code < 0)
        TFH_THROW("kernel '", kernel, "': unknown type '", trim(t), "' in constraint '",
                  trim(group), "'");
      out[param].push_back(code);
    }
  }
  return out;
}

std::string norm_domain(const std::string& d) { return d == "ai.onnx" ? std::string() : d; }

}  // namespace

KernelRegistry::KernelRegistry() {
  // The built-in kernels use the SDK's C++ layer, which reaches the host through this slot.
  if (!sdk::host_slot()) sdk::set_host(plugin::host_api());
  for (const TfhKernelDesc* d : kernels::builtin_kernels()) add(d, "tfhost");
}

KernelRegistry::KernelRegistry(const plugin::Registry& plugins) : KernelRegistry() {
  for (const plugin::KernelEntry& k : plugins.kernels()) add(k.desc, k.plugin, k.lib);
}

void KernelRegistry::add(const TfhKernelDesc* desc, const std::string& origin,
                         std::shared_ptr<plugin::PluginLibrary> lib) {
  if (!desc || !desc->op_type || !desc->compute)
    TFH_THROW("a kernel of '", origin, "' has no op_type or compute function");
  KernelCandidate c;
  c.desc = desc;
  c.origin = origin;
  c.lib = std::move(lib);
  if (TFH_HAS_FIELD(desc, TfhKernelDesc, host_inputs)) c.host_inputs = desc->host_inputs;
  c.constraints = parse_constraints(desc->type_constraints ? desc->type_constraints : "",
                                    desc->name ? desc->name : desc->op_type);
  by_op_[{norm_domain(desc->domain ? desc->domain : ""), desc->op_type}].push_back(
      kernels_.size());
  kernels_.push_back(std::move(c));
}

const KernelCandidate* KernelRegistry::select(const ir::Model& model, const ir::Node& node,
                                              TfhDevice device, std::string* why_not) const {
  const std::vector<const KernelCandidate*> all = candidates(model, node, device, why_not);
  return all.empty() ? nullptr : all.front();
}

std::vector<const KernelCandidate*> KernelRegistry::candidates(const ir::Model& model,
                                                               const ir::Node& node,
                                                               TfhDevice device,
                                                               std::string* why_not) const {
  std::vector<const KernelCandidate*> out;
  const std::string domain = norm_domain(node.domain());
  auto it = by_op_.find({domain, node.op_type()});
  if (it == by_op_.end()) {
    if (why_not) *why_not = "no kernel for " + (domain.empty() ? "" : domain + ".") + node.op_type();
    return out;
  }
  const int64_t opset = model.opset(domain);
  // Which type parameter each input binds, from the ONNX schema when there is one.
  const onnx::OpSchema* schema =
      opset > 0 ? onnx::OpSchemaRegistry::Schema(node.op_type(),
                                                  static_cast<int>(std::min<int64_t>(opset, 1 << 30)),
                                                  domain)
                : nullptr;
  auto param_of = [&](size_t i) -> std::string {
    if (!schema || schema->inputs().empty()) return {};
    const auto& formals = schema->inputs();
    const auto& f = i < formals.size() ? formals[i] : formals.back();
    if (i >= formals.size() && f.GetOption() != onnx::OpSchema::Variadic) return {};
    return f.GetTypeStr();
  };
  std::string reason = "no kernel for opset " + std::to_string(opset);
  for (size_t idx : it->second) {
    const KernelCandidate& k = kernels_[idx];
    const TfhKernelDesc& d = *k.desc;
    if (d.device != device) {
      reason = "no kernel for this device";
      continue;
    }
    if (opset >= 0 && (opset < d.since_version || (d.end_version > 0 && opset > d.end_version)))
      continue;
    bool ok = true;
    for (size_t i = 0; ok && i < node.inputs().size(); ++i) {
      const ir::Value* v = node.inputs()[i];
      if (!v || v->elem_type() == 0) continue;
      auto c = k.constraints.find(param_of(i));
      if (c == k.constraints.end()) continue;
      if (std::find(c->second.begin(), c->second.end(), v->elem_type()) == c->second.end()) {
        ok = false;
        reason = "no kernel for input '" + v->name() + "' of element type " +
                 std::to_string(v->elem_type());
      }
    }
    if (!ok) continue;
    out.push_back(&k);
  }
  // Highest priority first; ties keep registration order.
  std::stable_sort(out.begin(), out.end(), [](const KernelCandidate* a, const KernelCandidate* b) {
    return a->desc->priority > b->desc->priority;
  });
  if (out.empty() && why_not) *why_not = reason;
  return out;
}

}  // namespace tfh::runtime
