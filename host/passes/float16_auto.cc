#include "host/passes/float16_auto.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include "host/plugin/host_api.h"
#include "host/plugin/registry.h"
#include "host/runtime/inputs.h"
#include "host/runtime/session.h"
#include "host/runtime/tensor_io.h"
#include "host/util/error.h"

namespace tfh::passes {
namespace {

namespace fs = std::filesystem;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

void log(TfhLogLevel level, const std::string& msg) {
  plugin::host_api()->log(level, "core", msg.c_str());
}

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

// A private copy of `m` (saved to a temporary folder and loaded back: the IR has no deep copy,
// and this also proves the copy round-trips).
std::unique_ptr<ir::Model> copy_of(ir::Model& m) {
  std::string tmpl = (fs::temp_directory_path() / "tfhost-auto-block-XXXXXX").string();
  TFH_CHECK(mkdtemp(tmpl.data()), "auto_block: cannot create a temporary folder under ",
            fs::temp_directory_path().string());
  const fs::path dir(tmpl);
  std::unique_ptr<ir::Model> copy;
  try {
    m.save((dir / "model.onnx").string());
    copy = ir::Model::load((dir / "model.onnx").string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);  // external data stays mapped after the unlink
  return copy;
}

struct Stats {
  std::vector<float> values;
  double max_abs = 0;  // over finite values
  bool finite = true;
};

// Every floating-point node output of `m` becomes a graph output; one run; the values by name.
std::map<std::string, Stats> run_all(ir::Model& m, const plugin::Registry& r,
                                     const std::vector<runtime::NamedTensor>& feeds) {
  m.infer_shapes(&r.shape_hooks());
  ir::Graph& g = m.graph();
  std::vector<ir::Value*> extra;
  for (const auto& n : g.nodes())
    for (ir::Value* v : n->outputs()) {
      const int32_t t = v ? v->elem_type() : 0;
      if (v && !v->is_graph_output() &&
          (t == kFloat || t == onnx::TensorProto::FLOAT16 || t == onnx::TensorProto::BFLOAT16))
        extra.push_back(v);
    }
  for (ir::Value* v : extra) g.add_graph_output(v);
  const runtime::KernelRegistry kernels(r);
  runtime::Session s(static_cast<const ir::Model&>(m), kernels);
  auto outs = s.run(runtime::feeds_of(feeds));
  std::map<std::string, Stats> by_name;
  for (size_t i = 0; i < outs.size(); ++i) {
    const plugin::HostTensor& t = *outs[i];
    if (t.type != TFH_TYPE_FLOAT && t.type != TFH_TYPE_FLOAT16 && t.type != TFH_TYPE_BFLOAT16)
      continue;
    Stats st;
    size_t n = 1;
    for (int64_t d : t.dims) n *= static_cast<size_t>(d);
    st.values.resize(n);
    for (size_t k = 0; k < n; ++k) {
      const double x = runtime::element_as_double(t, k);
      st.values[k] = static_cast<float>(x);
      if (std::isfinite(x))
        st.max_abs = std::max(st.max_abs, std::fabs(x));
      else
        st.finite = false;
    }
    by_name[s.outputs()[i]->name()] = std::move(st);
  }
  for (ir::Value* v : extra) g.remove_graph_output(v);
  return by_name;
}

// How far `got` is from `want`, relative to want's largest magnitude; infinite when got has a
// NaN or inf that want does not.
double divergence(const Stats& got, const Stats& want) {
  if (got.values.size() != want.values.size()) return 0;  // not comparable (a reshaped value)
  const double scale = std::max(want.max_abs, 1e-6);
  double worst = 0;
  for (size_t i = 0; i < got.values.size(); ++i) {
    const float a = got.values[i], b = want.values[i];
    if (!std::isfinite(b)) continue;
    if (!std::isfinite(a)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, std::fabs(double(a) - b) / scale);
  }
  return worst;
}

}  // namespace

std::map<std::string, std::string> find_float_blocks(const ir::Model& model_in,
                                                     const FloatConvertOptions& base,
                                                     const AutoBlockOptions& o) {
  TFH_CHECK(o.registry, "auto_block needs the plugin registry (run it as a pass)");
  ir::Model& model = const_cast<ir::Model&>(model_in);  // only saved (copied), never edited
  const plugin::Registry& r = *o.registry;
  const char* target = base.target == onnx::TensorProto::BFLOAT16 ? "bfloat16" : "float16";
  const double limit = base.max_finite > 0 ? base.max_finite : float_type_max(base.target);

  auto ref_model = copy_of(model);
  const plugin::InputGenEntry& gen = runtime::pick_generator(r, o.inputs, o.model_type);
  runtime::InputRequest req;
  req.batch = o.batch;
  req.sequence = o.sequence;
  req.past = o.past;
  req.seed = o.seed;
  const auto feeds = runtime::make_inputs(r, gen, *ref_model, req);
  log(TFH_LOG_INFO, "auto_block: running the model in float32 on " + gen.name + " inputs");
  const std::map<std::string, Stats> ref = run_all(*ref_model, r, feeds);

  std::map<std::string, std::string> blocked;
  // 1. Values beyond the target's range: their producer and every reader stay float32.
  for (const auto& n : ref_model->graph().nodes()) {
    for (ir::Value* v : n->outputs()) {
      auto it = v ? ref.find(v->name()) : ref.end();
      if (it == ref.end() || it->second.max_abs <= limit) continue;
      const std::string why = "reaches " + num(it->second.max_abs) + ", beyond " + target +
                              "'s " + num(limit);
      blocked.emplace(node_key(*n), "its result '" + v->name() + "' " + why);
      for (const auto& use : v->consumers())
        blocked.emplace(node_key(*use.first), "reads '" + v->name() + "', which " + why);
    }
  }
  // 2. Divergence: convert a copy with what is blocked so far, run it, blame the nodes whose
  // outputs diverge beyond the tolerance while their inputs stay well within it.
  FloatConvertOptions opts = base;
  opts.keep_io_all = true;  // the same float32 feeds work
  for (int round = 0; round < o.max_rounds; ++round) {
    opts.auto_blocked = blocked;
    auto conv = copy_of(model);
    conv->infer_shapes(&r.shape_hooks());
    // Keys as the original names the nodes: the conversion moves an unnamed node that makes a
    // kept graph output onto a new value, which would change its "output:" key.
    std::map<const ir::Node*, std::string> key_of;
    for (const auto& n : conv->graph().nodes()) key_of[n.get()] = node_key(*n);
    auto key = [&key_of](const ir::Node& n) {
      auto it = key_of.find(&n);
      return it != key_of.end() ? it->second : node_key(n);
    };
    convert_float(*conv, opts);
    const std::map<std::string, Stats> got = run_all(*conv, r, feeds);
    std::map<std::string, double> err;
    for (const auto& [name, st] : got)
      if (auto w = ref.find(name); w != ref.end()) err[name] = divergence(st, w->second);
    // Inserted Casts are see-through: a value read through one, or made and then cast back
    // for a kept graph output, has the error of the value on the other side.
    std::function<double(const ir::Value*, int)> err_of = [&](const ir::Value* v, int depth) {
      if (!v) return 0.0;
      if (auto e = err.find(v->name()); e != err.end()) return e->second;
      if (depth > 2) return 0.0;
      if (v->producer() && v->producer()->op_type() == "Cast")
        return err_of(v->producer()->inputs()[0], depth + 1);
      for (const auto& use : v->consumers())
        if (use.first->op_type() == "Cast" && err.count(use.first->outputs()[0]->name()))
          return err.at(use.first->outputs()[0]->name());
      return 0.0;
    };
    size_t added = 0;
    double worst_output = 0;
    // The value a node reads, seen through an inserted Cast.
    auto source = [](ir::Value* v) {
      return v && v->producer() && v->producer()->op_type() == "Cast" ? v->producer()->inputs()[0] : v;
    };
    std::map<std::string, std::string> found;
    for (const auto& n : conv->graph().nodes()) {
      if (n->op_type() == "Cast") continue;
      double in_err = 0, out_err = 0;
      std::string worst;
      for (ir::Value* v : n->inputs()) in_err = std::max(in_err, err_of(v, 0));
      for (ir::Value* v : n->outputs())
        if (const double e = err_of(v, 0); e > out_err) out_err = e, worst = v->name();
      if (!(out_err > o.tolerance && out_err > 4 * in_err)) continue;
      const std::string by = (std::isinf(out_err) ? std::string("inf/NaN") : num(out_err));
      if (!blocked.count(key(*n))) {
        found.emplace(key(*n), std::string("its ") + target + " result '" + worst +
                                        "' differs from float32 by " + by +
                                        " of its range (tolerance " + num(o.tolerance) +
                                        ") while its inputs differ by " + num(in_err));
        continue;
      }
      // Already float32 and still diverging: its inputs lost what it needs when they were
      // rounded (cancellation): their makers stay float32 too.
      for (ir::Value* v : n->inputs()) {
        ir::Value* src = source(v);
        if (!src || !src->producer() || src->producer()->op_type() == "Cast" ||
            blocked.count(key(*src->producer())))
          continue;
        const int32_t t = src->elem_type();
        if (t != onnx::TensorProto::FLOAT16 && t != onnx::TensorProto::BFLOAT16) continue;
        found.emplace(key(*src->producer()),
                      "its result '" + src->name() + "' rounded to " + target + " makes " +
                          key(*n) + " (float32) differ by " + by + " of its range");
      }
    }
    for (auto& kv : found) added += blocked.insert(std::move(kv)).second;
    for (ir::Value* v : model.graph().outputs())
      if (auto e = err.find(v->name()); e != err.end()) worst_output = std::max(worst_output, e->second);
    log(TFH_LOG_INFO, "auto_block: round " + std::to_string(round + 1) + ": " +
                          std::to_string(blocked.size()) + " nodes kept in float32, " +
                          std::to_string(added) + " new; graph outputs within " +
                          num(worst_output) + " of float32");
    if (!added) break;
  }
  for (const auto& [node, why] : blocked) log(TFH_LOG_INFO, "auto_block: keeps " + node + ": " + why);
  return blocked;
}

}  // namespace tfh::passes
