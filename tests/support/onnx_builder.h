// A tiny ONNX graph builder for tests that build models node by node (protobuf only, no tfhost
// code): the plugins' pattern tests use it.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstring>
#include <random>
#include <string>
#include <variant>
#include <vector>

namespace tfh::test {

using Dim = std::variant<int64_t, std::string>;

// A model built node by node (ONNX protobuf, no tfhost code).
class Builder {
 public:
  explicit Builder(int64_t opset) {
    m_.set_ir_version(8);
    auto* o = m_.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    g_ = m_.mutable_graph();
    g_->set_name("built");
  }
  std::string input(const std::string& name, int elem, const std::vector<Dim>& dims) {
    typed(g_->add_input(), name, elem, dims);
    return name;
  }
  void output(const std::string& name, int elem = onnx::TensorProto::FLOAT) {
    auto* v = g_->add_output();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(elem);
  }
  // Random N(0, scale) weights (or `fill` + N(0, scale)) of type `elem`.
  std::string weight(const std::vector<int64_t>& dims, float scale = 0.3f, float fill = 0.f,
                     int elem = onnx::TensorProto::FLOAT) {
    std::normal_distribution<float> d(0.f, scale);
    size_t n = 1;
    for (int64_t x : dims) n *= static_cast<size_t>(x);
    std::vector<float> v(n);
    for (float& x : v) x = fill + d(rng_);
    return floats(v, dims, elem);
  }
  std::string scalar(float v, int elem = onnx::TensorProto::FLOAT) { return floats({v}, {}, elem); }
  std::string ints(const std::vector<int64_t>& v) {
    auto* t = init(onnx::TensorProto::INT64, {static_cast<int64_t>(v.size())});
    for (int64_t x : v) t->add_int64_data(x);
    return t->name();
  }
  // A node; returns its (first) output's name.
  std::string node(const std::string& op, const std::vector<std::string>& ins,
                   const std::vector<onnx::AttributeProto>& attrs = {}) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(++count_));
    for (const auto& i : ins) n->add_input(i);
    n->add_output(n->name() + "_out");
    for (const auto& a : attrs) *n->add_attribute() = a;
    return n->output(0);
  }
  onnx::ModelProto& model() { return m_; }
  // Unsqueeze/ReduceMean/ReduceSum axes: an attribute before opset 13 (18 for ReduceMean), an
  // input from then on.
  std::string reduce_mean(const std::string& x, int64_t axis, int64_t opset) {
    if (opset >= 18) return node("ReduceMean", {x, ints({axis})});
    return node("ReduceMean", {x}, {attr("axes", std::vector<int64_t>{axis})});
  }
  std::string unsqueeze(const std::string& x, int64_t axis, int64_t opset) {
    if (opset >= 13) return node("Unsqueeze", {x, ints({axis})});
    return node("Unsqueeze", {x}, {attr("axes", std::vector<int64_t>{axis})});
  }

  static onnx::AttributeProto attr(const std::string& name, int64_t v) {
    onnx::AttributeProto a;
    a.set_name(name);
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(v);
    return a;
  }
  static onnx::AttributeProto attr(const std::string& name, std::vector<int64_t> v) {
    onnx::AttributeProto a;
    a.set_name(name);
    a.set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a.add_ints(x);
    return a;
  }

 private:
  static void typed(onnx::ValueInfoProto* v, const std::string& name, int elem,
                    const std::vector<Dim>& dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem);
    auto* s = t->mutable_shape();
    for (const Dim& d : dims) {
      auto* dim = s->add_dim();
      if (std::holds_alternative<int64_t>(d)) dim->set_dim_value(std::get<int64_t>(d));
      else dim->set_dim_param(std::get<std::string>(d));
    }
  }
  onnx::TensorProto* init(int elem, const std::vector<int64_t>& dims) {
    auto* t = g_->add_initializer();
    t->set_name("w" + std::to_string(++count_));
    t->set_data_type(elem);
    for (int64_t d : dims) t->add_dims(d);
    return t;
  }
  std::string floats(const std::vector<float>& v, const std::vector<int64_t>& dims, int elem) {
    auto* t = init(elem, dims);
    if (elem == onnx::TensorProto::FLOAT) {
      for (float x : v) t->add_float_data(x);
    } else {  // float16, round to nearest (the values here are tame)
      for (float x : v) t->add_int32_data(half_bits(x));
    }
    return t->name();
  }
  static int32_t half_bits(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const int e = static_cast<int>((x >> 23) & 0xff) - 127 + 15;
    if (e <= 0) return static_cast<int32_t>(sign);  // tiny: zero (not used here)
    const uint32_t man = (x & 0x7fffffu) + 0x1000u;  // round half up
    return static_cast<int32_t>(sign + (static_cast<uint32_t>(e) << 10) + (man >> 13));
  }

  onnx::ModelProto m_;
  onnx::GraphProto* g_;
  int count_ = 0;
  std::mt19937 rng_{7};
};

}  // namespace tfh::test
