// core.float16 / core.bfloat16: the conversion itself (see float16.h). The automatic block list,
// which runs the model to decide what to keep, is float16_auto.cc.
#include "host/passes/float16.h"

#include <onnx/defs/schema.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "host/passes/core_passes.h"
#include "host/util/error.h"
#include "tfhost/core.hpp"

namespace tfh::passes {
namespace {

constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

enum class Slot : uint8_t { NotFloat, Follows, Pinned };

struct NodePlan {
  bool converted = false;
  std::vector<Slot> in, out;
};

bool is_onnx(const ir::Node& n) { return n.domain().empty() || n.domain() == "ai.onnx"; }

const char* type_tag(int32_t type) {
  switch (type) {
    case onnx::TensorProto::FLOAT16: return "fp16";
    case onnx::TensorProto::BFLOAT16: return "bf16";
    case onnx::TensorProto::FLOAT: return "fp32";
    default: return "cast";
  }
}
const char* type_str(int32_t type) {
  return type == onnx::TensorProto::BFLOAT16 ? "tensor(bfloat16)" : "tensor(float16)";
}

// ONNX Runtime's contrib ops that transformer fusions make: every float slot takes T, except the
// statistics outputs of the layer norms (float32 by definition).
const char* const kContribOps[] = {
    "Attention", "MultiHeadAttention", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
    "EmbedLayerNormalization", "LayerNormalization", "SimplifiedLayerNormalization", "Gelu",
    "FastGelu", "BiasGelu", "QuickGelu", "FusedMatMul", "BiasAdd", "BiasSoftmax", "GemmFastGelu",
    "RotaryEmbedding", "GroupQueryAttention", "DecoderMaskedMultiHeadAttention"};
// Contrib ops whose ONNX Runtime schema has no bfloat16 (checked by loading each in ORT 1.30).
bool contrib_without_bfloat16(const std::string& op) { return op == "EmbedLayerNormalization"; }
bool contrib_pinned_output(const std::string& op, size_t k) {
  if (op == "SkipLayerNormalization" || op == "SkipSimplifiedLayerNormalization")
    return k == 1 || k == 2;
  if (op == "LayerNormalization") return k == 1 || k == 2;
  if (op == "SimplifiedLayerNormalization") return k == 1;
  return false;
}

bool has_subgraph(const ir::Node& n) {
  for (const auto& a : n.attributes())
    if (a.type() == onnx::AttributeProto::GRAPH || a.type() == onnx::AttributeProto::GRAPHS)
      return true;
  return false;
}

bool float_attr_value(const ir::Node& n) {  // Constant / ConstantOfShape make a float tensor
  if (n.op_type() == "ConstantOfShape") {
    const onnx::AttributeProto* v = n.attr("value");
    return !v || v->t().data_type() == kFloat;
  }
  if (const onnx::AttributeProto* v = n.attr("value")) return v->t().data_type() == kFloat;
  return n.attr("value_float") || n.attr("value_floats");
}

class Converter {
 public:
  Converter(ir::Model& m, const FloatConvertOptions& o) : m_(m), g_(m.graph()), o_(o) {
    maxf_ = o.max_finite > 0 ? o.max_finite : float_type_max(o.target);
    minp_ = o.min_positive > 0 ? o.min_positive : float_type_min_positive(o.target);
  }

  FloatConvertReport run() {
    for (const auto& n : g_.nodes()) order_.push_back(n.get());
    for (ir::Node* n : order_) plans_[n] = plan(*n);
    retype_values();
    convert_initializers();
    wire_inputs();
    keep_io_outputs();
    rewrite_attributes();
    remove_useless_casts();
    g_.topological_sort();
    return std::move(r_);
  }

 private:
  int32_t orig(const ir::Value* v) const {
    auto it = orig_.find(v);
    return it != orig_.end() ? it->second : (v ? v->elem_type() : 0);
  }
  bool is_float(const ir::Value* v) const { return v && orig(v) == kFloat; }
  int32_t now(const ir::Value* v) const {
    auto it = type_.find(v);
    return it != type_.end() ? it->second : orig(v);
  }
  bool keep_io(const ir::Value* v) const {
    return o_.keep_io_all || o_.keep_io_names.count(v->name());
  }
  static bool read_in_subgraph(const ir::Value* v) {
    for (const auto& use : v->consumers())
      if (use.second == ir::Node::kImplicitSlot) return true;
    return false;
  }

  NodePlan plan(const ir::Node& n) {
    NodePlan p;
    p.in.assign(n.inputs().size(), Slot::NotFloat);
    p.out.assign(n.outputs().size(), Slot::NotFloat);
    bool any_float = false;
    for (size_t i = 0; i < n.inputs().size(); ++i)
      if (is_float(n.inputs()[i])) p.in[i] = Slot::Pinned, any_float = true;
    for (size_t k = 0; k < n.outputs().size(); ++k)
      if (is_float(n.outputs()[k])) p.out[k] = Slot::Pinned, any_float = true;
    if (!any_float) return p;
    const std::string reason = block_reason(n);
    if (!reason.empty()) {
      r_.kept.emplace_back(describe(n), reason);
      return p;
    }
    if (is_onnx(n)) {
      plan_onnx(n, p);
    } else if (n.domain() == "com.microsoft" &&
               !(o_.target == onnx::TensorProto::BFLOAT16 && contrib_without_bfloat16(n.op_type())) &&
               std::find_if(std::begin(kContribOps), std::end(kContribOps), [&](const char* op) {
                 return n.op_type() == op;
               }) != std::end(kContribOps)) {
      for (auto& s : p.in)
        if (s == Slot::Pinned) s = Slot::Follows;
      for (size_t k = 0; k < p.out.size(); ++k)
        if (p.out[k] == Slot::Pinned && !contrib_pinned_output(n.op_type(), k)) p.out[k] = Slot::Follows;
    } else {
      r_.kept.emplace_back(describe(n), "op " + n.domain() + ":" + n.op_type() +
                                            " is not known to take " + type_str(o_.target));
      return p;
    }
    for (Slot s : p.in) p.converted = p.converted || s == Slot::Follows;
    for (Slot s : p.out) p.converted = p.converted || s == Slot::Follows;
    if (p.converted) {
      ++r_.nodes_converted;
    } else {
      const bool known = !is_onnx(n) || onnx::OpSchemaRegistry::Schema(
                                            n.op_type(), static_cast<int>(m_.opset("")), "");
      r_.kept.emplace_back(describe(n), (known ? std::string("ONNX's type constraints of ")
                                               : std::string("no ONNX schema for ")) +
                                            n.op_type() + " at opset " +
                                            std::to_string(m_.opset("")) +
                                            (known ? std::string(" do not allow ") + type_str(o_.target)
                                                   : std::string()));
    }
    return p;
  }

  std::string block_reason(const ir::Node& n) const {
    for (const ir::Value* v : n.inputs())
      if (v && orig(v) == 0)
        return "the type of its input '" + v->name() + "' is unknown (no shape inference for its maker)";
    for (const ir::Value* v : n.outputs())
      if (v && read_in_subgraph(v))
        return "its output '" + v->name() + "' is read inside a subgraph (bodies are not converted)";
    auto a = o_.auto_blocked.find(node_key(n));
    if (a != o_.auto_blocked.end()) return "auto_block: " + a->second;
    if (o_.op_block_list.count(n.op_type())) return "op_block_list has " + n.op_type();
    if (o_.node_block_list.count(n.name()) ||
        (!n.outputs().empty() && n.outputs()[0] && o_.node_block_list.count(n.outputs()[0]->name())))
      return "node_block_list";
    if (has_subgraph(n)) return "has a subgraph (bodies are not converted)";
    return "";
  }

  // Standard ops: a float slot follows when its type parameter allows the target type (outputs:
  // when that parameter also types an input, so the output's type comes from the inputs);
  // Cast(to=float), Constant and ConstantOfShape with a float value follow too.
  void plan_onnx(const ir::Node& n, NodePlan& p) const {
    const onnx::OpSchema* s =
        onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(m_.opset("")), "");
    if (!s) return;  // stays pinned: reported as not allowed
    auto allows = [&](const std::string& param) {
      for (const auto& c : s->typeConstraintParams())
        if (c.type_param_str == param)
          return std::find(c.allowed_type_strs.begin(), c.allowed_type_strs.end(),
                           type_str(o_.target)) != c.allowed_type_strs.end();
      return false;  // a fixed type such as tensor(float)
    };
    auto formal = [](const std::vector<onnx::OpSchema::FormalParameter>& f, size_t i) {
      return f.empty() ? std::string() : f[std::min(i, f.size() - 1)].GetTypeStr();
    };
    for (size_t i = 0; i < p.in.size(); ++i)
      if (p.in[i] == Slot::Pinned && allows(formal(s->inputs(), i))) p.in[i] = Slot::Follows;
    const bool special = (n.op_type() == "Cast" && n.attr("to") && n.attr("to")->i() == kFloat) ||
                         ((n.op_type() == "Constant" || n.op_type() == "ConstantOfShape") &&
                          float_attr_value(n));
    for (size_t k = 0; k < p.out.size(); ++k) {
      if (p.out[k] != Slot::Pinned) continue;
      const std::string param = formal(s->outputs(), k);
      bool tied = false;
      for (const auto& in : s->inputs()) tied = tied || in.GetTypeStr() == param;
      if ((special || tied) && allows(param)) p.out[k] = Slot::Follows;
    }
  }

  // New types of node outputs and graph inputs.
  void retype_values() {
    for (ir::Node* n : order_) {
      for (ir::Value* v : n->inputs())
        if (v) orig_.emplace(v, v->elem_type());
      for (ir::Value* v : n->outputs())
        if (v) orig_.emplace(v, v->elem_type());
    }
    for (ir::Value* v : g_.outputs()) orig_.emplace(v, v->elem_type());
    for (ir::Node* n : order_) {
      const NodePlan& p = plans_.at(n);
      for (size_t k = 0; k < p.out.size(); ++k)
        if (p.converted && p.out[k] == Slot::Follows) set_type(n->outputs()[k], o_.target);
    }
    // A graph input passed straight through as an output, or read inside a subgraph, keeps
    // its type (its declarations, and the bodies, say float).
    for (ir::Value* v : g_.inputs())
      if (!v->initializer() && is_float(v) && !keep_io(v) && !v->is_graph_output() &&
          !read_in_subgraph(v))
        set_type(v, o_.target);
  }

  void set_type(ir::Value* v, int32_t t) {
    type_[v] = t;
    if (v->has_info() || v->is_graph_input() || v->is_graph_output())
      v->mutable_info().mutable_type()->mutable_tensor_type()->set_elem_type(t);
  }

  int32_t wanted(const ir::Node* n, size_t slot) const {
    const NodePlan& p = plans_.at(n);
    return p.converted && p.in[slot] == Slot::Follows ? o_.target : kFloat;
  }

  // Float initializers: stored in the target type where (all) their readers want it. Mixed
  // readers: a target-type copy for the converted ones (or, with force_initializers, one
  // target-type tensor and a Cast for the float32 readers).
  void convert_initializers() {
    const std::vector<ir::Value*> inits = g_.initializers();
    for (ir::Value* v : inits) {
      if (v->initializer()->dtype() != kFloat || v->consumers().empty()) continue;
      bool want_target = false, want_float = false;
      for (const auto& [n, slot] : v->consumers()) {
        if (slot == ir::Node::kImplicitSlot || !plans_.count(n)) {
          want_float = true;
          continue;
        }
        (wanted(n, slot) == o_.target ? want_target : want_float) = true;
      }
      // Its own type is fixed when something outside the graph's nodes sees it: a caller that
      // may override it (graph input) or reads it (graph output) under keep_io_types, or a
      // subgraph. Its readers that want the target then read a rounded copy.
      const bool io = v->is_graph_input() || v->is_graph_output();
      const bool fixed = read_in_subgraph(v) || (io && (keep_io(v) || want_float));
      if (!want_target && !(o_.force_initializers && !fixed && !io)) continue;
      if ((want_float && (fixed || !o_.force_initializers)) || (fixed && want_target)) {
        const auto uses = v->consumers();
        ir::Value* copy = g_.add_initializer(rounded(*v->initializer(), g_.unique_name(
                                                        v->name() + "_" + type_tag(o_.target))));
        type_[copy] = o_.target;
        for (const auto& [n, slot] : uses)
          if (slot != ir::Node::kImplicitSlot && plans_.count(n) && wanted(n, slot) == o_.target)
            g_.set_input(n, slot, copy);
        continue;
      }
      std::unique_ptr<ir::Tensor> t = rounded(*v->initializer(), v->name());
      g_.remove_initializer(v);
      g_.add_initializer(std::move(t));
      set_type(v, o_.target);
    }
  }

  std::unique_ptr<ir::Tensor> rounded(const ir::Tensor& t, const std::string& name) {
    auto proto = std::make_unique<onnx::TensorProto>();
    proto->set_name(name);
    proto->set_data_type(o_.target);
    for (int64_t d : t.dims()) proto->add_dims(d);
    const size_t n = t.num_elements();
    std::string raw(2 * n, '\0');
    round_into(static_cast<const float*>(t.data()), n, raw.data());
    proto->set_raw_data(std::move(raw));
    r_.initializers++;
    r_.bytes_before += 4 * n;
    r_.bytes_after += 2 * n;
    return std::make_unique<ir::Tensor>(std::move(proto));
  }

  // Clamps and rounds n floats; parallel over the cores (a 110M-weight model is 440 MB of it).
  void round_into(const float* src, size_t n, char* dst) {
    const float minp = static_cast<float>(minp_), maxf = static_cast<float>(maxf_);
    const bool bf16 = o_.target == onnx::TensorProto::BFLOAT16;
    const int64_t count = static_cast<int64_t>(n);
    size_t clamped = 0;
#pragma omp parallel for schedule(static) reduction(+ : clamped) if (count > (1 << 16))
    for (int64_t i = 0; i < count; ++i) {
      float x = src[i];
      const float a = std::fabs(x);
      if (a != 0 && std::isfinite(x) && (a < minp || a > maxf)) {
        x = std::copysign(a < minp ? minp : maxf, x);
        ++clamped;
      }
      const uint16_t bits = bf16 ? to_bfloat16(x).bits : to_float16(x).bits;
      std::memcpy(dst + 2 * i, &bits, 2);
    }
    r_.clamped += clamped;
  }

  // A Cast of `v` to `to`, one per (value, type).
  ir::Value* cast_of(ir::Value* v, int32_t to) {
    auto key = std::make_pair(v, to);
    if (auto it = casts_.find(key); it != casts_.end()) return it->second;
    ir::Value* out = g_.add_value(g_.unique_name(v->name() + "_" + type_tag(to)));
    out->mutable_info() = v->info();
    out->mutable_info().set_name(out->name());
    out->mutable_info().mutable_type()->mutable_tensor_type()->set_elem_type(to);
    ir::Node* c = g_.add_node(g_.unique_name(v->name() + "_cast_" + type_tag(to)), "Cast", "", {v},
                              {out});
    onnx::AttributeProto& a = c->set_attr("to");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(to);
    type_[out] = to;
    ++r_.casts_added;
    return casts_[key] = out;
  }

  void wire_inputs() {
    for (ir::Node* n : order_) {
      for (size_t i = 0; i < n->inputs().size(); ++i) {
        ir::Value* v = n->inputs()[i];
        if (!is_float(v)) continue;
        const int32_t want = wanted(n, i), have = now(v);
        if (have != want) g_.set_input(n, i, cast_of(v, want));
      }
    }
  }

  // keep_io_types outputs made in the target type: the producer writes a new value, a Cast
  // back to float32 keeps the output's name and type.
  void keep_io_outputs() {
    const std::vector<ir::Value*> outs = g_.outputs();
    for (ir::Value* v : outs) {
      if (!v->producer() || !keep_io(v) || orig(v) != kFloat || now(v) == kFloat) continue;
      ir::Node* p = v->producer();
      const size_t k = v->producer_output();
      ir::Value* inner = g_.add_value(g_.unique_name(v->name() + "_" + type_tag(o_.target)));
      inner->mutable_info() = v->info();
      inner->mutable_info().set_name(inner->name());
      inner->mutable_info().mutable_type()->mutable_tensor_type()->set_elem_type(o_.target);
      g_.set_output(p, k, inner);
      type_[inner] = o_.target;
      const auto uses = v->consumers();
      for (const auto& [n, slot] : uses)
        if (slot != ir::Node::kImplicitSlot) g_.set_input(n, slot, inner);
      ir::Node* c = g_.add_node(g_.unique_name(v->name() + "_cast_fp32"), "Cast", "", {inner}, {v});
      onnx::AttributeProto& a = c->set_attr("to");
      a.set_type(onnx::AttributeProto::INT);
      a.set_i(kFloat);
      set_type(v, kFloat);
      ++r_.casts_added;
    }
  }

  // Cast(to=float) and float Constant/ConstantOfShape values in converted nodes.
  void rewrite_attributes() {
    for (ir::Node* n : order_) {
      const NodePlan& p = plans_.at(n);
      if (!p.converted || !is_onnx(*n)) continue;
      if (n->op_type() == "Cast") {
        if (n->attr("to") && n->attr("to")->i() == kFloat) n->set_attr("to").set_i(o_.target);
      } else if (n->op_type() == "Constant" || n->op_type() == "ConstantOfShape") {
        onnx::TensorProto t;
        if (const onnx::AttributeProto* v = n->attr("value")) {
          t = v->t();
        } else if (const onnx::AttributeProto* f = n->attr("value_float")) {
          t.set_data_type(kFloat);
          t.add_float_data(f->f());
          n->remove_attr("value_float");
        } else if (const onnx::AttributeProto* fs = n->attr("value_floats")) {
          t.set_data_type(kFloat);
          t.add_dims(fs->floats_size());
          for (float x : fs->floats()) t.add_float_data(x);
          n->remove_attr("value_floats");
        } else {  // ConstantOfShape without a value: float 0
          t.set_data_type(kFloat);
          t.add_dims(1);
          t.add_float_data(0);
        }
        ir::Tensor src(std::make_unique<onnx::TensorProto>(t));
        std::unique_ptr<ir::Tensor> conv = rounded(src, t.name());
        r_.initializers--;  // an attribute, not an initializer
        onnx::AttributeProto& a = n->set_attr("value");
        a.set_type(onnx::AttributeProto::TENSOR);
        *a.mutable_t() = conv->proto();
      }
    }
  }

  // Casts whose input already has the type they cast to go, and so does a Cast back after a
  // lossless widening (float16/bfloat16 -> float -> the same type).
  void remove_useless_casts() {
    bool again = true;
    while (again) {
      again = false;
      std::vector<ir::Node*> casts;
      for (const auto& n : g_.nodes())
        if (is_onnx(*n) && n->op_type() == "Cast" && n->attr("to") && n->inputs().size() == 1 &&
            n->inputs()[0] && n->outputs().size() == 1)
          casts.push_back(n.get());
      for (ir::Node* c : casts) {
        ir::Value* in = c->inputs()[0];
        ir::Value* out = c->outputs()[0];
        const int32_t to = static_cast<int32_t>(c->attr("to")->i());
        ir::Node* prev = in->producer();
        if (prev && is_onnx(*prev) && prev->op_type() == "Cast" && prev->inputs().size() == 1 &&
            prev->inputs()[0] && now(prev->inputs()[0]) == to && prev->attr("to") &&
            prev->attr("to")->i() == kFloat &&
            (to == onnx::TensorProto::FLOAT16 || to == onnx::TensorProto::BFLOAT16)) {
          g_.set_input(c, 0, prev->inputs()[0]);  // now a same-type Cast, removed below
          if (in->consumers().empty() && !in->is_graph_output()) {
            g_.remove_node(prev);
            remove_if_orphan(g_, in);
            ++r_.casts_removed;
          }
          in = c->inputs()[0];
          again = true;
        }
        if (now(in) == to && to != 0 && !out->is_graph_output()) {
          g_.replace_all_uses(out, in);
          g_.remove_node(c);
          remove_if_orphan(g_, out);
          ++r_.casts_removed;
          again = true;
        }
      }
    }
  }

  ir::Model& m_;
  ir::Graph& g_;
  const FloatConvertOptions& o_;
  double maxf_, minp_;
  std::vector<ir::Node*> order_;
  std::map<const ir::Node*, NodePlan> plans_;
  std::map<const ir::Value*, int32_t> orig_, type_;
  std::map<std::pair<ir::Value*, int32_t>, ir::Value*> casts_;
  FloatConvertReport r_;
};

}  // namespace

double float_type_max(int32_t type) {
  return type == onnx::TensorProto::BFLOAT16 ? 3.3895313892515355e38 : 65504.0;
}
double float_type_min_positive(int32_t type) {
  return type == onnx::TensorProto::BFLOAT16 ? 9.183549615799121e-41 : 5.960464477539063e-08;
}

const std::vector<std::string>& default_float16_op_block_list() {
  static const std::vector<std::string> ops = {
      "Range",      "CumSum",           "TopK",          "NonMaxSuppression",
      "RoiAlign",   "RandomNormal",     "RandomNormalLike", "RandomUniform",
      "RandomUniformLike", "Multinomial", "EyeLike"};
  return ops;
}

std::string node_key(const ir::Node& n) {
  if (!n.name().empty()) return n.name();
  return n.outputs().empty() || !n.outputs()[0] ? std::string("?") : "output:" + n.outputs()[0]->name();
}

std::string FloatConvertReport::summary(const char* target_name) const {
  std::ostringstream s;
  s << nodes_converted << " nodes in " << target_name << ", " << kept.size()
    << " kept in float32; " << initializers << " initializers rounded (" << bytes_before / 1024
    << " KiB -> " << bytes_after / 1024 << " KiB";
  if (clamped) s << ", " << clamped << " values clamped to its range";
  s << "); " << casts_added << " Casts added, " << casts_removed << " removed";
  return s.str();
}

FloatConvertReport convert_float(ir::Model& model, const FloatConvertOptions& opts) {
  TFH_CHECK(opts.target == onnx::TensorProto::FLOAT16 || opts.target == onnx::TensorProto::BFLOAT16,
            "convert_float: the target must be float16 or bfloat16");
  return Converter(model, opts).run();
}

}  // namespace tfh::passes
