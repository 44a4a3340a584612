// Small graphs for the SDK tests, built with the host IR and driven through the real host table.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "host/plugin/host_api.h"
#include "host/plugin/params.h"
#include "tfhost/plugin.hpp"

namespace tfh::sdktest {

// Points the SDK at the host table, as tfh_plugin_init does inside a plugin.
class SdkTest : public ::testing::Test {
 protected:
  void SetUp() override { tfh::sdk::set_host(tfh::plugin::host_api()); }
};

// Builds an ir::Model node by node. Values are named; float tensors are [2, 4] unless told.
class GraphBuilder {
 public:
  explicit GraphBuilder(int64_t opset = 13) : model_(std::make_unique<ir::Model>()) {
    model_->set_opset("", opset);
    model_->skeleton().set_ir_version(8);
    model_->skeleton().set_producer_name("tfh_sdk_tests");
  }

  ir::Model& model() { return *model_; }
  ir::Graph& g() { return model_->graph(); }
  GraphView view() { return GraphView(plugin::to_c(model_.get())); }

  ir::Value* input(const std::string& name, int32_t elem = onnx::TensorProto::FLOAT,
                   std::vector<int64_t> dims = {2, 4}) {
    ir::Value* v = g().add_value(name);
    set_type(v, elem, dims);
    g().add_graph_input(v);
    return v;
  }
  void output(ir::Value* v, int32_t elem = onnx::TensorProto::FLOAT,
              std::vector<int64_t> dims = {2, 4}) {
    set_type(v, elem, dims);
    g().add_graph_output(v);
  }
  // A scalar (or `dims`-shaped, all equal) float initializer.
  ir::Value* scalar(const std::string& name, float value, std::vector<int64_t> dims = {}) {
    auto t = std::make_unique<onnx::TensorProto>();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    size_t n = 1;
    for (int64_t d : dims) {
      t->add_dims(d);
      n *= static_cast<size_t>(d);
    }
    for (size_t i = 0; i < n; ++i) t->add_float_data(value);
    return g().add_initializer(std::make_unique<ir::Tensor>(std::move(t)));
  }
  ir::Value* int_initializer(const std::string& name, std::vector<int64_t> values,
                             std::vector<int64_t> dims) {
    auto t = std::make_unique<onnx::TensorProto>();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    for (int64_t v : values) t->add_int64_data(v);
    return g().add_initializer(std::make_unique<ir::Tensor>(std::move(t)));
  }
  // A Constant node with a float scalar `value` tensor (or `value_float` when asked).
  ir::Value* constant_node(const std::string& name, float value, bool as_value_float = false) {
    ir::Node* n = g().add_node(name + "_node", "Constant", "", {}, {g().add_value(name)});
    onnx::AttributeProto& a = n->set_attr(as_value_float ? "value_float" : "value");
    if (as_value_float) {
      a.set_name("value_float");
      a.set_type(onnx::AttributeProto::FLOAT);
      a.set_f(value);
    } else {
      a.set_name("value");
      a.set_type(onnx::AttributeProto::TENSOR);
      a.mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
      a.mutable_t()->add_float_data(value);
    }
    return n->outputs()[0];
  }
  // Adds `op` with `inputs`, one output named `out` (returned).
  ir::Value* node(const std::string& op, const std::vector<ir::Value*>& inputs,
                  const std::string& out, const std::string& domain = "") {
    ir::Value* o = g().add_value(out);
    g().add_node(out + "_" + op, op, domain, inputs, {o});
    return o;
  }

  // Op type -> count (domain-qualified for non-ONNX domains).
  std::map<std::string, int> op_counts() const {
    std::map<std::string, int> counts;
    for (const auto& n : model_->graph().nodes())
      ++counts[(n->domain().empty() || n->domain() == "ai.onnx" ? "" : n->domain() + ".") +
               n->op_type()];
    return counts;
  }

 private:
  static void set_type(ir::Value* v, int32_t elem, const std::vector<int64_t>& dims) {
    auto* tt = v->mutable_info().mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem);
    tt->mutable_shape()->clear_dim();
    for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  std::unique_ptr<ir::Model> model_;
};

// The Gelu erf subgraph: y = Mul(Mul(x, Add(Erf(Div(x, 1.4142)), 1)), 0.5), operands in ORT's
// (PyTorch exporter's) order unless `swapped`.
inline ir::Value* build_gelu(GraphBuilder& b, ir::Value* x, const std::string& p,
                             bool swapped = false, float sqrt2 = 1.4142135f) {
  ir::Value* c = b.scalar(p + "sqrt2", sqrt2);
  ir::Value* one = b.scalar(p + "one", 1.0f);
  ir::Value* half = b.scalar(p + "half", 0.5f);
  ir::Value* d = b.node("Div", {x, c}, p + "div");
  ir::Value* e = b.node("Erf", {d}, p + "erf");
  ir::Value* a = swapped ? b.node("Add", {one, e}, p + "add") : b.node("Add", {e, one}, p + "add");
  ir::Value* m = swapped ? b.node("Mul", {a, x}, p + "mul") : b.node("Mul", {x, a}, p + "mul");
  return swapped ? b.node("Mul", {half, m}, p + "y") : b.node("Mul", {m, half}, p + "y");
}

// The Gelu pattern of pattern.hpp's header comment.
// Div(x, 1.4142) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)  =>  com.microsoft.Gelu(x)
inline Pattern gelu_pattern() {
  auto x = Any("x");
  auto erf = Op("Erf", {Op("Div", {x, Const(1.4142).tol(1e-3)}).as("div")});
  auto cdf = Op("Add", {erf, Const(1.0)}).commutative();
  return Op("Mul", {Op("Mul", {x, cdf}).commutative(), Const(0.5)}).commutative();
}

inline size_t fuse_gelu(GraphView g) {
  return rewrite(g, gelu_pattern(), ReplaceWith("com.microsoft", "Gelu", {"x"}));
}

}  // namespace tfh::sdktest
