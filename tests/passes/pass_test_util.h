// Helpers for the core pass tests: small models written as ONNX protos (so they go through
// ir::load like a real export, duplicate definitions and subgraphs included), and a before/after
// comparison through ONNX Runtime.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "host/ir/graph.h"
#include "support/ort_reference.h"
#include "support/test_util.h"

namespace tfh::passes::testing {

inline onnx::ValueInfoProto tensor_info(const std::string& name, const std::vector<int64_t>& dims,
                                        int elem = onnx::TensorProto::FLOAT) {
  onnx::ValueInfoProto vi;
  vi.set_name(name);
  auto* t = vi.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem);
  auto* shape = t->mutable_shape();
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
  return vi;
}

class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13, int64_t ir_version = 7) {
    m_.set_ir_version(ir_version);
    auto* op = m_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    m_.mutable_graph()->set_name("test");
  }
  ModelBuilder& input(const std::string& name, const std::vector<int64_t>& dims = {2, 3},
                      int elem = onnx::TensorProto::FLOAT) {
    *graph().add_input() = tensor_info(name, dims, elem);
    return *this;
  }
  ModelBuilder& output(const std::string& name, const std::vector<int64_t>& dims = {2, 3},
                       int elem = onnx::TensorProto::FLOAT) {
    *graph().add_output() = tensor_info(name, dims, elem);
    return *this;
  }
  ModelBuilder& initializer(const std::string& name, const std::vector<int64_t>& dims,
                            const std::vector<float>& values) {
    onnx::TensorProto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return *this;
  }
  ModelBuilder& bool_initializer(const std::string& name, bool value) {
    onnx::TensorProto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::BOOL);
    t->add_int32_data(value ? 1 : 0);
    return *this;
  }
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    return add_node(graph(), op, inputs, outputs, name);
  }
  static onnx::NodeProto& add_node(onnx::GraphProto& g, const std::string& op,
                                   const std::vector<std::string>& inputs,
                                   const std::vector<std::string>& outputs,
                                   const std::string& name = "") {
    onnx::NodeProto* n = g.add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(g.node_size()) : name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return *n;
  }
  onnx::GraphProto& graph() { return *m_.mutable_graph(); }
  const onnx::ModelProto& proto() const { return m_; }

 private:
  onnx::ModelProto m_;
};

inline void set_float_attr(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

// A one-node subgraph `out = Identity(reads)` for If branches.
inline onnx::GraphProto identity_branch(const std::string& reads, const std::string& out) {
  onnx::GraphProto g;
  g.set_name(out + "_branch");
  ModelBuilder::add_node(g, "Identity", {reads}, {out}, out + "_id");
  *g.add_output() = tensor_info(out, {2, 3});
  return g;
}

inline void set_graph_attr(onnx::NodeProto& n, const std::string& name, onnx::GraphProto g) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::GRAPH);
  *a->mutable_g() = std::move(g);
}

inline size_t count_op(const ir::Model& m, const std::string& op) {
  size_t n = 0;
  for (const auto& node : m.graph().nodes()) n += node->op_type() == op ? 1 : 0;
  return n;
}

inline std::vector<std::string> output_names(const ir::Model& m) {
  std::vector<std::string> out;
  for (const ir::Value* v : m.graph().outputs()) out.push_back(v->name());
  return out;
}

// Saves models in a scratch folder and runs them through ONNX Runtime.
class PassTest : public ::testing::Test {
 protected:
  // Writes `b` as "<name>.onnx" and loads it into the IR.
  std::unique_ptr<ir::Model> load(const ModelBuilder& b, const std::string& name = "before") {
    const std::string path = save(b, name);
    return ir::Model::load(path);
  }
  std::string save(const ModelBuilder& b, const std::string& name) {
    const std::string path = tmp_ / (name + ".onnx");
    test::write_model_proto(b.proto(), path);
    return path;
  }
  // Deterministic values for every graph input of the model at `path` that is not an
  // initializer: floats that differ per element, `true` for bools.
  static std::vector<onnx::TensorProto> inputs_for(const std::string& path) {
    const onnx::ModelProto m = test::read_model_proto(path);
    std::vector<onnx::TensorProto> out;
    for (const auto& in : m.graph().input()) {
      bool is_init = false;
      for (const auto& t : m.graph().initializer()) is_init |= t.name() == in.name();
      if (is_init) continue;
      onnx::TensorProto t;
      t.set_name(in.name());
      const auto& tt = in.type().tensor_type();
      t.set_data_type(tt.elem_type());
      size_t n = 1;
      for (const auto& d : tt.shape().dim()) {
        t.add_dims(d.dim_value());
        n *= static_cast<size_t>(d.dim_value());
      }
      for (size_t i = 0; i < n; ++i) {
        if (tt.elem_type() == onnx::TensorProto::BOOL)
          t.add_int32_data(1);
        else
          t.add_float_data(0.25f * static_cast<float>(i) - 0.6f);
      }
      out.push_back(std::move(t));
    }
    return out;
  }
  // The edited model validates, saves, and computes exactly what the reference model at
  // `reference_path` computes, with the same output names.
  void expect_same_outputs(ir::Model& after, const std::string& reference_path) {
    after.graph().validate();
    const std::string after_path = tmp_ / "after.onnx";
    after.save(after_path);
    const auto inputs = inputs_for(reference_path);
    const auto want = test::ort_run(reference_path, inputs);
    const auto got = test::ort_run(after_path, inputs);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].name(), want[i].name());
    const test::Diff d = test::compare_outputs(want, got);
    EXPECT_TRUE(d.message.empty()) << d.message;
    EXPECT_EQ(d.max_abs, 0.0) << d.where;
  }

  test::TempDir tmp_;
};

}  // namespace tfh::passes::testing
