// The CUDA session beyond the fused ops: the tensor kernels fused graphs keep (Cast between the
// numeric types, broadcasting arithmetic, activations, Gather, Gemm) and the bert plugin's own
// CUDA EmbedLayerNormalization, each as a one-node model on a CUDA session against the CPU
// session; IO binding; CUDA graphs (captured on the second run of a shape, replayed with new
// values, refused with the reason when the run crosses between CPU and GPU). Skipped, with the
// reason, when this machine has no CUDA GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "host/pipeline/pipeline.h"
#include "host/plugin/registry.h"
#include "host/runtime/inputs.h"
#include "host/runtime/kernel_registry.h"
#include "host/runtime/measure.h"
#include "host/runtime/session.h"
#include "host/runtime/tensor_io.h"
#include "ir/ir_test_util.h"
#include "kernels/common/device_info.h"
#include "kernels/cuda/device.h"
#include "runtime/gpt2_decode.h"
#include "support/test_util.h"

namespace tfh::runtime {
namespace {

using namespace tfh::ir::test;
using Shape = std::vector<int64_t>;

class CudaRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kernels::cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA GPU here (" << kernels::describe_devices() << ")";
  }
};

// A tensor of `type` with values from `fill(i)` (as double, converted to the type).
std::unique_ptr<HostTensor> tensor(TfhDataType type, const Shape& dims,
                                   const std::function<double(size_t)>& fill) {
  auto f = make_tensor(TFH_TYPE_DOUBLE, dims);
  double* p = reinterpret_cast<double*>(f->storage.get());
  for (size_t i = 0; i < f->num_elements; ++i) p[i] = fill(i);
  return convert_tensor(*f, type);
}
double noise(size_t i) { return std::sin(0.7 * static_cast<double>(i) + 0.3) * 1.5; }

// Element i of a counting fill (0..250 repeated), and an exact int64 tensor (INT64_MAX has no
// double, so not through tensor()).
double counting(size_t i) { return static_cast<double>(i % 251); }
std::unique_ptr<HostTensor> ints(const std::vector<int64_t>& v) {
  auto t = make_tensor(TFH_TYPE_INT64, {static_cast<int64_t>(v.size())});
  std::memcpy(t->storage.get(), v.data(), v.size() * sizeof(int64_t));
  return t;
}

struct NodeIn {
  std::string name;
  std::unique_ptr<HostTensor> t;
  bool constant = false;  // an initializer of the model, not a graph input
};

// One node `op` over `ins` on the CPU and on a CUDA session (with the plugins when
// `with_plugins`): the outputs agree within `atol`, and the CUDA session ran the node with
// a CUDA kernel whose name starts with `kernel`.
void expect_same_on_gpu(const std::string& op, const std::string& domain,
                        const std::vector<NodeIn>& ins, size_t outputs, double atol,
                        const std::function<void(onnx::NodeProto*)>& attrs = {},
                        const std::string& kernel = "tfhost.cuda.", bool with_plugins = false,
                        int64_t opset = 17) {
  onnx::ModelProto m = new_model();
  m.mutable_opset_import(0)->set_version(opset);
  if (!domain.empty()) {
    auto* o = m.add_opset_import();
    o->set_domain(domain);
    o->set_version(1);
  }
  onnx::GraphProto& g = *m.mutable_graph();
  std::vector<std::string> names, outs;
  for (const NodeIn& in : ins) {
    names.push_back(in.name);
    if (in.name.empty()) continue;
    if (in.constant) {
      onnx::TensorProto* t = g.add_initializer();
      t->set_name(in.name);
      t->set_data_type(in.t->type);
      for (int64_t d : in.t->dims) t->add_dims(d);
      t->set_raw_data(std::string(static_cast<const char*>(in.t->data), in.t->nbytes));
      continue;
    }
    *g.add_input() = tensor_info(in.name, in.t->type, in.t->dims);
  }
  for (size_t i = 0; i < outputs; ++i) {
    outs.push_back("y" + std::to_string(i));
    g.add_output()->set_name(outs.back());
  }
  onnx::NodeProto* n = add_node(g, op, names, outs, "node", domain);
  if (attrs) attrs(n);
  TempDir tmp;
  write_model(m, tmp / "m.onnx");
  plugin::Registry registry;
  if (with_plugins) pipeline::load_plugins(registry, {}, {TFH_TEST_PLUGIN_DIR});
  auto model = ir::Model::load(tmp / "m.onnx");
  model->infer_shapes(&registry.shape_hooks());
  const KernelRegistry kernels(registry);
  SessionOptions gpu_opts;
  gpu_opts.device = TFH_DEVICE_CUDA;
  Session cpu(static_cast<const ir::Model&>(*model), kernels),
      gpu(static_cast<const ir::Model&>(*model), kernels, gpu_opts);
  const auto names_on_gpu = gpu.kernel_names();
  ASSERT_EQ(names_on_gpu.size(), 1u);
  EXPECT_EQ(names_on_gpu[0].second.rfind(kernel, 0), 0u)
      << op << " ran with " << names_on_gpu[0].second << ", not a CUDA kernel";
  std::vector<std::pair<std::string, const HostTensor*>> feeds;
  for (const NodeIn& in : ins)
    if (!in.name.empty() && !in.constant) feeds.emplace_back(in.name, in.t.get());
  const auto want = cpu.run(feeds);
  const auto got = gpu.run(feeds);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const Difference d = compare_tensors(*got[i], *want[i], 0, atol);
    EXPECT_TRUE(d.ok()) << op << " output " << i << ": max abs diff " << d.max_abs
                        << (d.shape_matches ? "" : ", shapes differ")
                        << (d.type_matches ? "" : ", types differ");
  }
}

std::vector<NodeIn> one(const std::string& name, std::unique_ptr<HostTensor> t) {
  std::vector<NodeIn> v;
  v.push_back({name, std::move(t)});
  return v;
}
std::vector<NodeIn> two(std::unique_ptr<HostTensor> a, std::unique_ptr<HostTensor> b) {
  std::vector<NodeIn> v;
  v.push_back({"a", std::move(a)});
  v.push_back({"b", std::move(b)});
  return v;
}
auto to_attr(int64_t to) {
  return [to](onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name("to");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(to);
  };
}
auto int_attr(const std::string& name, int64_t v) {
  return [name, v](onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  };
}

TEST_F(CudaRuntime, CastBetweenNumericTypes) {
  const auto ids = [](size_t i) { return static_cast<double>((i * 7919) % 50257); };
  const auto signed_values = [](size_t i) { return (static_cast<double>(i) - 20.0) * 0.77; };
  struct Case { TfhDataType from, to; std::function<double(size_t)> fill; };
  const std::vector<Case> cases = {
      {TFH_TYPE_INT64, TFH_TYPE_INT32, ids},          {TFH_TYPE_INT32, TFH_TYPE_INT64, ids},
      {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16, noise},      {TFH_TYPE_FLOAT16, TFH_TYPE_FLOAT, noise},
      {TFH_TYPE_INT64, TFH_TYPE_FLOAT, ids},          {TFH_TYPE_FLOAT, TFH_TYPE_INT32, signed_values},
      {TFH_TYPE_FLOAT, TFH_TYPE_BOOL, signed_values}, {TFH_TYPE_BOOL, TFH_TYPE_FLOAT, signed_values},
      {TFH_TYPE_INT32, TFH_TYPE_FLOAT16, ids},        {TFH_TYPE_FLOAT, TFH_TYPE_UINT8, signed_values}};
  for (const Case& c : cases)
    for (const Shape& shape : {Shape{3, 41}, Shape{1}, Shape{2, 0}}) {
      SCOPED_TRACE(std::to_string(c.from) + " -> " + std::to_string(c.to));
      expect_same_on_gpu("Cast", "", one("x", tensor(c.from, shape, c.fill)), 1, 0, to_attr(c.to));
    }
}

TEST_F(CudaRuntime, BroadcastingArithmetic) {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{1}, {2, 3}}, {{2, 3, 4}, {2, 3, 4}},
      {{5, 1, 7, 1}, {1, 3, 1, 2}}, {{3, 5}, {1, 5}}};
  for (const char* op : {"Add", "Sub", "Mul", "Div"})
    for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
      for (const auto& [a, b] : shapes) {
        SCOPED_TRACE(std::string(op) + (t == TFH_TYPE_FLOAT16 ? " float16" : " float"));
        // Divisors kept away from 0.
        auto bt = tensor(t, b, [](size_t i) { return 0.5 + std::fabs(noise(i + 5)); });
        expect_same_on_gpu(op, "", two(tensor(t, a, noise), std::move(bt)), 1,
                           t == TFH_TYPE_FLOAT16 ? 2e-2 : 1e-5);
      }
}

// Integer arithmetic (unfused exports compute position ids and masks in int32/int64): exact,
// Div truncating toward zero, with negative values, -1 divisors and broadcasting. An integer Div
// runs on the GPU only with a constant divisor without zeros (the CPU's kernel reports a
// division by zero); with a fed divisor it runs on the CPU.
TEST_F(CudaRuntime, IntegerArithmetic) {
  const auto signed_ints = [](size_t i) { return static_cast<double>(static_cast<int64_t>(i * 37 % 101) - 50); };
  const auto divisors = [](size_t i) { return static_cast<double>(i % 2 ? 3 + i % 5 : -1 - i % 7); };
  for (const char* op : {"Add", "Sub", "Mul", "Div"})
    for (TfhDataType t : {TFH_TYPE_INT32, TFH_TYPE_INT64}) {
      SCOPED_TRACE(std::string(op) + (t == TFH_TYPE_INT32 ? " int32" : " int64"));
      const bool constant = std::string(op) == "Div";
      for (auto [a, b] : {std::pair<Shape, Shape>{{2, 3, 4}, {3, 1}}, {{6}, {6}}}) {
        std::vector<NodeIn> ins = one("a", tensor(t, a, signed_ints));
        ins.push_back({"b", tensor(t, b, divisors), constant});
        expect_same_on_gpu(op, "", ins, 1, 0);
      }
    }
  std::vector<NodeIn> fed = one("a", tensor(TFH_TYPE_INT64, {6}, signed_ints));
  fed.push_back({"b", tensor(TFH_TYPE_INT64, {6}, divisors)});
  expect_same_on_gpu("Div", "", fed, 1, 0, {}, "tfhost.cpu.");
}

// Comparisons (bool out, broadcasting), Not, and CumSum's four modes on both axes.
TEST_F(CudaRuntime, ComparisonsNotAndCumSum) {
  const auto small = [](size_t i) { return static_cast<double>(static_cast<int64_t>(i * 7 % 5) - 2); };
  for (const char* op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"})
    for (TfhDataType t : {TFH_TYPE_INT64, TFH_TYPE_INT32, TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16}) {
      SCOPED_TRACE(std::string(op) + " type " + std::to_string(t));
      expect_same_on_gpu(op, "", two(tensor(t, {2, 3, 4}, small), tensor(t, {3, 1}, small)), 1, 0);
    }
  expect_same_on_gpu("Equal", "",
                     two(tensor(TFH_TYPE_BOOL, {4, 3}, small), tensor(TFH_TYPE_BOOL, {3}, noise)),
                     1, 0);
  expect_same_on_gpu("Not", "", one("x", tensor(TFH_TYPE_BOOL, {5, 7}, small)), 1, 0);
  for (TfhDataType t : {TFH_TYPE_INT64, TFH_TYPE_INT32, TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
    for (int64_t axis : {1, -3})
      for (int mode = 0; mode < 4; ++mode) {
        SCOPED_TRACE("CumSum type " + std::to_string(t) + " axis " + std::to_string(axis) +
                     " exclusive " + std::to_string(mode & 1) + " reverse " + std::to_string(mode >> 1));
        std::vector<NodeIn> ins = one("x", tensor(t, {3, 5, 2}, small));
        ins.push_back({"axis", tensor(TFH_TYPE_INT64, {}, [axis](size_t) { return double(axis); }), true});
        expect_same_on_gpu("CumSum", "", ins, 1, t == TFH_TYPE_FLOAT16 ? 1e-2 : 1e-6,
                           [mode](onnx::NodeProto* n) {
                             int_attr("exclusive", mode & 1)(n);
                             int_attr("reverse", mode >> 1)(n);
                           });
      }
}

TEST_F(CudaRuntime, Activations) {
  for (const char* op : {"Tanh", "Relu", "Sigmoid", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs",
                         "Reciprocal"})
    for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16}) {
      SCOPED_TRACE(op);
      const std::string o = op;
      const bool positive = o == "Sqrt" || o == "Log" || o == "Reciprocal";
      auto x = tensor(t, {4, 77}, [positive](size_t i) {
        return positive ? 0.25 + std::fabs(noise(i)) : noise(i);
      });
      // relative to the values (Exp and Reciprocal reach ~4.5 and 4)
      expect_same_on_gpu(op, "", one("x", std::move(x)), 1, t == TFH_TYPE_FLOAT16 ? 4e-2 : 2e-5);
    }
}

// ReduceMean over the last axis (unfused LayerNorm) and ReduceSum of an int32 mask (mask_index),
// attribute axes and constant-input axes, keepdims on and off.
TEST_F(CudaRuntime, ReduceOverTrailingAxes) {
  const auto axes_attr = [](std::vector<int64_t> axes, int64_t keep) {
    return [axes, keep](onnx::NodeProto* n) {
      auto* a = n->add_attribute();
      a->set_name("axes");
      a->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : axes) a->add_ints(v);
      a = n->add_attribute();
      a->set_name("keepdims");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(keep);
    };
  };
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16}) {
    expect_same_on_gpu("ReduceMean", "", one("x", tensor(t, {2, 5, 768}, noise)), 1,
                       t == TFH_TYPE_FLOAT16 ? 2e-3 : 1e-5, axes_attr({-1}, 1), "tfhost.cuda.", false, 13);
    expect_same_on_gpu("ReduceMean", "", one("x", tensor(t, {3, 4, 7}, noise)), 1,
                       t == TFH_TYPE_FLOAT16 ? 2e-3 : 1e-5, axes_attr({1, 2}, 0), "tfhost.cuda.", false, 13);
  }
  auto axes = make_tensor(TFH_TYPE_INT64, {1});
  reinterpret_cast<int64_t*>(axes->storage.get())[0] = 1;
  std::vector<NodeIn> ins;
  ins.push_back({"mask", tensor(TFH_TYPE_INT32, {3, 9}, [](size_t i) { return i % 9 < 6 ? 1 : 0; })});
  ins.push_back({"axes", std::move(axes), true});
  expect_same_on_gpu("ReduceSum", "", ins, 1, 0, int_attr("keepdims", 0));
}

// Pow (a square, as unfused LayerNorms have, and a general exponent) and Softmax before opset 13
// (the input flattened at its axis).
TEST_F(CudaRuntime, PowAndFlattenedSoftmax) {
  for (double e : {2.0, 0.5}) {
    std::vector<NodeIn> ins;
    ins.push_back({"a", tensor(TFH_TYPE_FLOAT, {3, 17}, [](size_t i) { return 0.1 + std::fabs(noise(i)); })});
    ins.push_back({"b", tensor(TFH_TYPE_FLOAT, {1}, [e](size_t) { return e; }), true});
    expect_same_on_gpu("Pow", "", ins, 1, 1e-5);
  }
  for (int64_t axis : {1, 2, -1}) {
    SCOPED_TRACE("Softmax-11 axis " + std::to_string(axis));
    expect_same_on_gpu("Softmax", "", one("x", tensor(TFH_TYPE_FLOAT, {2, 3, 5}, noise)), 1, 1e-5,
                       int_attr("axis", axis), "tfhost.cuda.", false, 11);
  }
}

TEST_F(CudaRuntime, GatherOnAnyAxis) {
  struct Case { Shape data; TfhDataType type; Shape idx; TfhDataType idx_type; int64_t axis; };
  const std::vector<Case> cases = {
      {{5, 3}, TFH_TYPE_FLOAT, {2, 2}, TFH_TYPE_INT64, 0},     // embedding-style, 2-D ids
      {{2, 4, 3}, TFH_TYPE_FLOAT16, {}, TFH_TYPE_INT64, 1},    // the pooler's [:, 0]
      {{2, 4, 3}, TFH_TYPE_FLOAT, {3}, TFH_TYPE_INT32, -1},    // last axis, int32 indices
      {{6}, TFH_TYPE_INT64, {4}, TFH_TYPE_INT64, 0}};          // 8-byte elements
  for (const Case& c : cases) {
    SCOPED_TRACE("axis " + std::to_string(c.axis));
    const int64_t dim = c.data[c.axis < 0 ? c.axis + c.data.size() : c.axis];
    std::vector<NodeIn> ins;
    ins.push_back({"x", tensor(c.type, c.data, [](size_t i) { return static_cast<double>(i % 13) - 4; })});
    // Indices include negative ones (counted from the end).
    ins.push_back({"i", tensor(c.idx_type, c.idx, [dim](size_t i) {
                     return static_cast<double>(static_cast<int64_t>(i * 3 % (2 * dim)) - dim);
                   })});
    expect_same_on_gpu("Gather", "", ins, 1, 0, int_attr("axis", c.axis));
  }
}

TEST_F(CudaRuntime, TransposeAndConcat) {
  const auto perm = [](std::vector<int64_t> p) {
    return [p](onnx::NodeProto* n) {
      auto* a = n->add_attribute();
      a->set_name("perm");
      a->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : p) a->add_ints(v);
    };
  };
  expect_same_on_gpu("Transpose", "", one("x", tensor(TFH_TYPE_FLOAT, {2, 3, 4}, counting)), 1, 0, perm({1, 0, 2}));
  expect_same_on_gpu("Transpose", "", one("x", tensor(TFH_TYPE_FLOAT16, {2, 3, 4, 5}, counting)), 1, 0, perm({0, 2, 1, 3}));
  expect_same_on_gpu("Transpose", "", one("x", tensor(TFH_TYPE_INT64, {3, 7}, counting)), 1, 0);  // reversed
  expect_same_on_gpu("Transpose", "", one("x", tensor(TFH_TYPE_BOOL, {1, 5, 1}, counting)), 1, 0, perm({2, 1, 0}));
  for (int64_t axis : {1, -1, 0}) {
    SCOPED_TRACE("Concat axis " + std::to_string(axis));
    const Shape a = axis == 0 ? Shape{2, 3} : Shape{3, 2}, b = axis == 0 ? Shape{0, 3} : Shape{3, 0},
                c = axis == 0 ? Shape{4, 3} : Shape{3, 5};
    std::vector<NodeIn> ins;
    ins.push_back({"a", tensor(TFH_TYPE_FLOAT16, a, counting)});
    ins.push_back({"b", tensor(TFH_TYPE_FLOAT16, b, counting)});
    ins.push_back({"c", tensor(TFH_TYPE_FLOAT16, c, [](size_t i) { return 1000.0 + i; })});
    expect_same_on_gpu("Concat", "", ins, 1, 0, int_attr("axis", axis));
  }
}

TEST_F(CudaRuntime, WhereWithBroadcasting) {
  struct Case { Shape c, x, y; TfhDataType t; };
  for (const Case& k : {Case{{2, 3}, {2, 3}, {2, 3}, TFH_TYPE_FLOAT},
                        Case{{1, 1, 4, 4}, {2, 3, 4, 4}, {}, TFH_TYPE_FLOAT16},  // causal-mask style
                        Case{{3, 1}, {1, 5}, {3, 5}, TFH_TYPE_INT64}}) {
    std::vector<NodeIn> ins;
    ins.push_back({"c", tensor(TFH_TYPE_BOOL, k.c, [](size_t i) { return static_cast<double>((i * 7) % 3 == 0); })});
    ins.push_back({"x", tensor(k.t, k.x, noise)});
    ins.push_back({"y", tensor(k.t, k.y, [](size_t i) { return -100.0 - static_cast<double>(i); })});
    expect_same_on_gpu("Where", "", ins, 1, 0);
  }
}

// Slice and Expand read their constant parameters when the kernel is made: forward and backward
// steps, negative and out-of-range bounds, several axes; Expand both ways.
TEST_F(CudaRuntime, SliceAndExpandWithConstantParameters) {
  struct Case { Shape x; std::vector<int64_t> starts, ends, axes, steps; };
  const std::vector<Case> cases = {
      {{4, 10}, {1, 2}, {3, 9}, {0, 1}, {1, 3}},
      {{4, 10}, {-1}, {-100}, {1}, {-2}},                        // backward from the end
      {{2, 5, 6}, {0, 1}, {INT64_MAX, 5}, {-1, 1}, {1, 1}},       // to the end, negative axis
      {{4, 10}, {-100}, {INT64_MIN}, {1}, {-1}},                 // backward from below -dim: 1 element
      {{3, 7}, {5}, {2}, {1}, {1}},                               // empty
  };
  for (const Case& c : cases) {
    std::vector<NodeIn> ins;
    ins.push_back({"x", tensor(TFH_TYPE_FLOAT16, c.x, counting)});
    ins.push_back({"starts", ints(c.starts), true});
    ins.push_back({"ends", ints(c.ends), true});
    ins.push_back({"axes", ints(c.axes), true});
    ins.push_back({"steps", ints(c.steps), true});
    expect_same_on_gpu("Slice", "", ins, 1, 0);
  }
  for (const auto& [x, shape] : std::vector<std::pair<Shape, std::vector<int64_t>>>{
           {{3, 1}, {2, 3, 4}}, {{1, 4}, {3, 1}}, {{2, 1, 5}, {2, 3, 5}}}) {
    std::vector<NodeIn> ins;
    ins.push_back({"x", tensor(TFH_TYPE_FLOAT, x, counting)});
    ins.push_back({"shape", ints(shape), true});
    expect_same_on_gpu("Expand", "", ins, 1, 0);
  }
}

// Shape-like parameters that are not constants (an unfused export computes them from shapes) are
// the kernels' host inputs (TfhKernelDesc::host_inputs), read at each run: Expand's shape,
// Slice's starts/ends/axes/steps, Split's sizes and CumSum's axis, fed here as graph inputs.
TEST_F(CudaRuntime, ParametersReadOnTheHostAtRunTime) {
  {
    std::vector<NodeIn> ins = one("x", tensor(TFH_TYPE_FLOAT, {3, 1}, counting));
    ins.push_back({"shape", ints({2, 3, 4})});
    expect_same_on_gpu("Expand", "", ins, 1, 0);
  }
  {
    std::vector<NodeIn> ins = one("x", tensor(TFH_TYPE_FLOAT16, {4, 10}, counting));
    ins.push_back({"starts", ints({1, -1})});
    ins.push_back({"ends", ints({3, -100})});
    ins.push_back({"axes", ints({0, 1})});
    ins.push_back({"steps", ints({1, -3})});
    expect_same_on_gpu("Slice", "", ins, 1, 0);
  }
  {
    std::vector<NodeIn> ins = one("x", tensor(TFH_TYPE_FLOAT, {4, 6}, counting));
    ins.push_back({"split", ints({4, 2})});
    expect_same_on_gpu("Split", "", ins, 2, 0, int_attr("axis", 1), "tfhost.cuda.", false, 13);
  }
  {
    std::vector<NodeIn> ins = one("x", tensor(TFH_TYPE_INT64, {3, 4}, counting));
    ins.push_back({"axis", tensor(TFH_TYPE_INT32, {}, [](size_t) { return 1.0; })});
    expect_same_on_gpu("CumSum", "", ins, 1, 0);
  }
}

// Split: sizes from the attribute (opset 11), a constant input (13) or equal parts that do not
// divide (18's num_outputs: the last part shorter), a negative axis, an empty part.
TEST_F(CudaRuntime, SplitIntoSlabs) {
  expect_same_on_gpu("Split", "", one("x", tensor(TFH_TYPE_FLOAT, {2, 9, 3}, counting)), 3, 0,
                     [](onnx::NodeProto* n) {
                       int_attr("axis", 1)(n);
                       auto* a = n->add_attribute();
                       a->set_name("split");
                       a->set_type(onnx::AttributeProto::INTS);
                       for (int64_t v : {2, 0, 7}) a->add_ints(v);
                     },
                     "tfhost.cuda.", false, 11);
  std::vector<NodeIn> ins = one("x", tensor(TFH_TYPE_FLOAT16, {4, 6}, counting));
  ins.push_back({"split", ints({1, 3, 2}), true});
  expect_same_on_gpu("Split", "", ins, 3, 0, int_attr("axis", -1), "tfhost.cuda.", false, 13);
  expect_same_on_gpu("Split", "", one("x", tensor(TFH_TYPE_INT64, {7, 2}, counting)), 3, 0,
                     int_attr("num_outputs", 3), "tfhost.cuda.", false, 18);
}

TEST_F(CudaRuntime, GemmWithBiasAndTransposedB) {
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
    for (bool trans_b : {false, true})
      for (bool bias : {false, true}) {
        SCOPED_TRACE(std::string(trans_b ? "transB " : "") + (bias ? "bias" : ""));
        std::vector<NodeIn> ins;
        ins.push_back({"a", tensor(t, {3, 40}, noise)});
        ins.push_back({"b", tensor(t, trans_b ? Shape{24, 40} : Shape{40, 24}, [](size_t i) { return noise(i + 11) * 0.2; })});
        if (bias) ins.push_back({"c", tensor(t, {24}, noise)});
        expect_same_on_gpu("Gemm", "", ins, 1, t == TFH_TYPE_FLOAT16 ? 3e-2 : 1e-4,
                           int_attr("transB", trans_b ? 1 : 0));
      }
}

// MatMul with a 2-D B: 2-D and 3-D A, B constant or fed, and an empty K, whose product is zeros;
// then batched (unfused attention's Q K^T and P V): the same leading dims on both sides, one
// strided-batched cuBLASLt product; batch dims broadcast either way, and ranks that differ.
TEST_F(CudaRuntime, MatMulWithAMatrixOrABatch) {
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
    for (auto [x, w] : {std::pair<Shape, Shape>{{2, 3, 5, 16}, {2, 3, 16, 7}},
                        {{4, 1, 33}, {4, 33, 1}}, {{3, 2, 0}, {3, 0, 5}}, {{2, 0, 4}, {2, 4, 3}},
                        // broadcast batch dims: B's all 1 (one GEMM), A's 1s, both, ranks differ
                        {{2, 3, 5, 16}, {1, 1, 16, 7}}, {{1, 3, 5, 16}, {2, 3, 16, 7}},
                        {{2, 1, 5, 16}, {1, 3, 16, 7}}, {{5, 16}, {4, 16, 7}},
                        {{2, 3, 5, 16}, {3, 16, 7}}}) {
      SCOPED_TRACE(std::string(t == TFH_TYPE_FLOAT16 ? "float16 " : "float ") + "batched K " +
                   std::to_string(x.back()));
      std::vector<NodeIn> ins;
      ins.push_back({"a", tensor(t, x, noise)});
      ins.push_back({"b", tensor(t, w, [](size_t i) { return noise(i + 5) * 0.3; })});
      expect_same_on_gpu("MatMul", "", ins, 1, t == TFH_TYPE_FLOAT16 ? 3e-2 : 1e-4);
    }
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
    for (const Shape& x : {Shape{1, 40}, Shape{2, 7, 40}, Shape{3, 0}})
      for (bool constant : {false, true}) {
        SCOPED_TRACE(std::string(t == TFH_TYPE_FLOAT16 ? "float16 " : "float ") + "K " +
                     std::to_string(x.back()) + (constant ? " constant B" : " fed B"));
        std::vector<NodeIn> ins;
        ins.push_back({"a", tensor(t, x, noise)});
        ins.push_back({"b", tensor(t, {x.back(), 24}, [](size_t i) { return noise(i + 11) * 0.3; }),
                       constant});
        expect_same_on_gpu("MatMul", "", ins, 1, t == TFH_TYPE_FLOAT16 ? 3e-2 : 1e-4);
      }
}

// ArgMax/ArgMin nodes on the CUDA kernel against the CPU's: the attributes as a session reads them
// (default axis 0 with keepdims, a negative axis without, select_last_index), three precisions.
TEST_F(CudaRuntime, ArgMaxNodesAgainstTheCpu) {
  struct Case {
    const char* op;
    int64_t axis, keepdims, last;  // axis 99: the attribute left out
  };
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16, TFH_TYPE_BFLOAT16})
    for (const Case& c : {Case{"ArgMax", 99, 1, 0}, Case{"ArgMin", -2, 0, 0},
                          Case{"ArgMax", -1, 0, 1}, Case{"ArgMin", 1, 1, 1}}) {
      SCOPED_TRACE(std::string(c.op) + " axis " + std::to_string(c.axis) + " keepdims " +
                   std::to_string(c.keepdims) + " last " + std::to_string(c.last) + " type " +
                   std::to_string(t));
      std::vector<NodeIn> ins;
      // Few distinct values: ties in most lines.
      ins.push_back({"x", tensor(t, {3, 5, 7}, [](size_t i) { return double((i * 7) % 5); })});
      expect_same_on_gpu(c.op, "", ins, 1, 0, [&](onnx::NodeProto* n) {
        for (auto [name, v] : {std::pair<const char*, int64_t>{"axis", c.axis},
                               {"keepdims", c.keepdims}, {"select_last_index", c.last}}) {
          if (v == 99) continue;
          auto* a = n->add_attribute();
          a->set_name(name);
          a->set_type(onnx::AttributeProto::INT);
          a->set_i(v);
        }
      });
    }
}

// GemmFastGelu against the CPU kernel (MatMul, then FastGelu in float): cuBLASLt's GELU epilogue
// with a constant bias and with none, a GEMM then the gelu kernel for a fed bias, 1 and 3-D X,
// an empty K (gelu of the bias alone).
TEST_F(CudaRuntime, GemmFastGeluThroughTheGeluEpilogue) {
  enum class Bias { None, Constant, Fed };
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
    for (const Shape& x : {Shape{1, 40}, Shape{2, 7, 40}, Shape{3, 0}})
      for (Bias bias : {Bias::None, Bias::Constant, Bias::Fed}) {
        SCOPED_TRACE(std::string(t == TFH_TYPE_FLOAT16 ? "float16 " : "float ") + "K " +
                     std::to_string(x.back()) + " rank " + std::to_string(x.size()) + " bias " +
                     std::to_string(static_cast<int>(bias)));
        std::vector<NodeIn> ins;
        ins.push_back({"x", tensor(t, x, noise)});
        ins.push_back({"w", tensor(t, {x.back(), 24}, [](size_t i) { return noise(i + 11) * 0.3; }),
                       true});
        if (bias != Bias::None)
          ins.push_back({"b", tensor(t, {24}, noise), bias == Bias::Constant});
        expect_same_on_gpu("GemmFastGelu", "com.microsoft", ins, 1,
                           t == TFH_TYPE_FLOAT16 ? 3e-2 : 1e-4);
      }
}

TEST_F(CudaRuntime, BertPluginEmbedLayerNormalization) {
  const int64_t B = 2, S = 7, H = 48, V = 30;
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
    for (int variant : {0, 1, 2}) {
      // 0: word and position tables only; 1: segments, mask, position ids; 2: a segment table
      // without segment ids (row 0 is added, as on the CPU).
      const bool full = variant == 1;
      SCOPED_TRACE(std::string(t == TFH_TYPE_FLOAT16 ? "float16" : "float") + " variant " +
                   std::to_string(variant));
      std::vector<NodeIn> ins;
      ins.push_back({"ids", tensor(TFH_TYPE_INT32, {B, S}, [](size_t i) { return (i * 7) % V; })});
      ins.push_back({full ? "seg" : "", full ? tensor(TFH_TYPE_INT32, {B, S}, [](size_t i) { return i % 2; }) : nullptr});
      ins.push_back({"word", tensor(t, {V, H}, noise)});
      ins.push_back({"pos", tensor(t, {16, H}, [](size_t i) { return noise(i + 3); })});
      ins.push_back({variant ? "segemb" : "", variant ? tensor(t, {2, H}, [](size_t i) { return noise(i + 9); }) : nullptr});
      ins.push_back({"gamma", tensor(t, {H}, [](size_t i) { return 1 + 0.1 * noise(i); })});
      ins.push_back({"beta", tensor(t, {H}, [](size_t i) { return 0.1 * noise(i + 1); })});
      ins.push_back({full ? "mask" : "", full ? tensor(TFH_TYPE_INT32, {B, S}, [](size_t i) { return i % S < 5 ? 1 : 0; }) : nullptr});
      ins.push_back({full ? "posids" : "", full ? tensor(TFH_TYPE_INT32, {1, S}, [](size_t i) { return S - 1 - i; }) : nullptr});
      expect_same_on_gpu("EmbedLayerNormalization", "com.microsoft", ins, full ? 3 : 2,
                         t == TFH_TYPE_FLOAT16 ? 2e-2 : 1e-4, {}, "bert.cuda.", /*plugins=*/true);
    }
}

// ---- whole models: IO binding and CUDA graphs -----------------------------------------------------

struct Fused {
  std::unique_ptr<ir::Model> model;
  plugin::Registry registry;
};
std::unique_ptr<Fused> fused(const std::string& name, const std::string& type, bool fp16,
                             const TempDir& tmp) {
  const std::string out = tmp / (name + (fp16 ? "_fp16" : "") + ".onnx");
  std::vector<std::string> args = {TFH_TFHOST_EXE, "optimize", "--input",
                                    std::string(TFH_SOURCE_DIR "/models/") + name + "/model.onnx",
                                    "--output", out, "--model_type", type};
  if (fp16) args.push_back("--float16");
  const auto r = test::run_command(args, {});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto f = std::make_unique<Fused>();
  pipeline::load_plugins(f->registry, {}, {TFH_TEST_PLUGIN_DIR});
  f->model = ir::Model::load(out);
  f->model->infer_shapes(&f->registry.shape_hooks());
  return f;
}

std::vector<NamedTensor> inputs_for(const Fused& f, int64_t batch, uint64_t seed) {
  InputRequest req;
  req.batch = batch;
  req.sequence = 8;
  req.past = f.model->graph().find("past_0") ? 4 : 0;
  req.seed = seed;
  return make_inputs(f.registry, pick_generator(f.registry, "", "core"), *f.model, req);
}

void expect_close(const std::vector<std::unique_ptr<HostTensor>>& got,
                  const std::vector<std::unique_ptr<HostTensor>>& want, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const Difference d = compare_tensors(*got[i], *want[i], 0, atol);
    EXPECT_TRUE(d.ok()) << what << ", output " << i << ": max abs diff " << d.max_abs;
  }
}

// `inputs` uploaded through `s` (held in `on_device`) as device feeds.
std::vector<Feed> device_feeds(Session& s, const std::vector<NamedTensor>& inputs,
                               std::vector<DeviceTensor>& on_device) {
  on_device.clear();
  for (const auto& [n, t] : feeds_of(inputs)) on_device.push_back(s.to_device(*t));
  std::vector<Feed> feeds;
  size_t i = 0;
  for (const auto& [n, t] : feeds_of(inputs)) feeds.push_back(Feed{n, nullptr, &on_device[i++]});
  return feeds;
}
// A run with IO binding, its outputs brought back to the host.
std::vector<std::unique_ptr<HostTensor>> run_bound(Session& s, const std::vector<Feed>& feeds) {
  std::vector<std::unique_ptr<HostTensor>> got;
  for (const DeviceTensor& d : s.run_device(feeds)) got.push_back(s.to_host(d));
  return got;
}

class CudaModels : public ::testing::TestWithParam<std::tuple<const char*, const char*, bool>> {
 protected:
  void SetUp() override {
    if (kernels::cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA GPU here (" << kernels::describe_devices() << ")";
  }
};

TEST_P(CudaModels, FusedGraphRunsWhollyOnTheGpu) {
  const auto [name, type, fp16] = GetParam();
  TempDir tmp;
  auto f = fused(name, type, fp16, tmp);
  const KernelRegistry kernels(f->registry);
  SessionOptions o;
  o.device = TFH_DEVICE_CUDA;
  Session gpu(static_cast<const ir::Model&>(*f->model), kernels, o);
  // Every node but shape arithmetic and views runs a CUDA kernel.
  for (const Session::Placement& p : gpu.placements())
    EXPECT_NE(p.where, Session::Placement::Where::Cpu)
        << p.node->name() << " (" << p.node->op_type() << ") runs on the CPU: " << p.why;
}

TEST_P(CudaModels, IoBindingMatchesHostRuns) {
  const auto [name, type, fp16] = GetParam();
  TempDir tmp;
  auto f = fused(name, type, fp16, tmp);
  const KernelRegistry kernels(f->registry);
  SessionOptions o;
  o.device = TFH_DEVICE_CUDA;
  Session gpu(static_cast<const ir::Model&>(*f->model), kernels, o);
  const auto inputs = inputs_for(*f, 2, 1);
  const auto want = gpu.run(feeds_of(inputs));
  std::vector<DeviceTensor> on_device;
  std::vector<Feed> feeds = device_feeds(gpu, inputs, on_device);
  // Mixed: the first input from the host, the rest from the device.
  feeds[0].device = nullptr;
  feeds[0].host = feeds_of(inputs)[0].second;
  expect_close(run_bound(gpu, feeds), want, 0, "run_device against run");
}

TEST_P(CudaModels, CudaGraphsReplayWithNewValuesAndShapes) {
  const auto [name, type, fp16] = GetParam();
  TempDir tmp;
  auto f = fused(name, type, fp16, tmp);
  const KernelRegistry kernels(f->registry);
  SessionOptions eager_opts, graph_opts;
  eager_opts.device = graph_opts.device = TFH_DEVICE_CUDA;
  graph_opts.cuda_graph = true;
  Session eager(static_cast<const ir::Model&>(*f->model), kernels, eager_opts),
      graphs(static_cast<const ir::Model&>(*f->model), kernels, graph_opts);
  for (uint64_t seed = 0; seed < 4; ++seed) {  // eager, capture, replay, replay
    const auto inputs = inputs_for(*f, 2, seed);
    expect_close(graphs.run(feeds_of(inputs)), eager.run(feeds_of(inputs)), fp16 ? 1e-3 : 1e-5,
                 "seed " + std::to_string(seed));
  }
  GraphStats st = graphs.graph_stats();
  EXPECT_EQ(st.refused, "");
  EXPECT_EQ(st.captured, 1u);
  EXPECT_EQ(st.replays, 2u);
  // Another batch: its own graph; the first one still replays right afterwards.
  for (int64_t batch : {3, 3, 3, 2}) {
    const auto inputs = inputs_for(*f, batch, 10 + batch);
    expect_close(graphs.run(feeds_of(inputs)), eager.run(feeds_of(inputs)), fp16 ? 1e-3 : 1e-5,
                 "batch " + std::to_string(batch));
  }
  st = graphs.graph_stats();
  EXPECT_EQ(st.captured, 2u);
  EXPECT_EQ(st.replays, 4u);
  // IO binding with graphs: device feeds are copied into the graph's inputs.
  const auto inputs = inputs_for(*f, 2, 99);
  std::vector<DeviceTensor> on_device;
  expect_close(run_bound(graphs, device_feeds(graphs, inputs, on_device)),
               eager.run(feeds_of(inputs)), fp16 ? 1e-3 : 1e-5, "graph with IO binding");
  EXPECT_EQ(graphs.graph_stats().replays, 5u);
}

INSTANTIATE_TEST_SUITE_P(Models, CudaModels,
                         ::testing::Values(std::make_tuple("bert_tiny_opset14", "bert", false),
                                           std::make_tuple("bert_tiny_opset14", "bert", true),
                                           std::make_tuple("gpt2past_tiny_opset14", "gpt2", false),
                                           std::make_tuple("gpt2past_tiny_opset14", "gpt2", true)));

// tfhost generate --use_gpu keeps the key/value cache on the GPU (IO binding) and picks the same
// tokens as on the CPU, fused in float32 and unfused.
TEST_F(CudaRuntime, GenerateOnTheGpuPicksTheCpuTokens) {
  const std::string name = "gpt2past_tiny_opset14", type = "gpt2";
  TempDir tmp;
  const std::string fused_path = tmp / "fused.onnx";
  ASSERT_EQ(test::run_command({TFH_TFHOST_EXE, "optimize", "--input",
                               std::string(TFH_SOURCE_DIR "/models/") + name + "/model.onnx",
                               "--output", fused_path, "--model_type", type}, {}).exit_code, 0);
  for (const std::string& model :
       {fused_path, std::string(TFH_SOURCE_DIR "/models/") + name + "/model.onnx"}) {
    const std::vector<std::string> args = {TFH_TFHOST_EXE, "generate", "--model", model,
                                           "--prompt", "5 17 301 9", "-n", "6", "-b", "2"};
    const auto cpu = test::run_command(args, {});
    std::vector<std::string> gpu_args = args;
    gpu_args.push_back("--use_gpu");
    const auto gpu = test::run_command(gpu_args, {});
    ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
    ASSERT_EQ(gpu.exit_code, 0) << gpu.err;
    EXPECT_EQ(gpu.out, cpu.out) << model;
    // Picked on the GPU (Gather + ArgMax appended to the graph): only the ids came back, and
    // nothing crossed mid-step (a pick on the CPU would have downloaded the logits).
    EXPECT_NE(gpu.err.find("the tokens picked in the model, their ids copied back in "),
              std::string::npos) << gpu.err;
    EXPECT_NE(gpu.err.find("values copied between CPU and GPU mid-step: 0"), std::string::npos)
        << gpu.err;
  }
  // The shared key/value buffer model with CUDA graphs: the prompt, then 5 single-token steps of
  // one shape (eager, captured, 3 replays), the same tokens.
  const std::string shared_path = tmp / "shared.onnx";
  ASSERT_EQ(test::run_command({TFH_TFHOST_EXE, "optimize", "--input",
                               std::string(TFH_SOURCE_DIR "/models/") + name + "/model.onnx",
                               "--output", shared_path, "--model_type", type,
                               "--enable_shared_kv_cache"}, {}).exit_code, 0);
  const std::vector<std::string> args = {TFH_TFHOST_EXE, "generate", "--model", shared_path,
                                         "--prompt", "5 17 301 9", "-n", "6", "-b", "2"};
  const auto cpu = test::run_command(args, {});
  std::vector<std::string> gpu_args = args;
  gpu_args.push_back("--use_gpu");
  gpu_args.push_back("--cuda_graph");
  const auto gpu = test::run_command(gpu_args, {});
  ASSERT_EQ(gpu.exit_code, 0) << gpu.err;
  EXPECT_EQ(gpu.out, cpu.out);
  EXPECT_NE(gpu.err.find("CUDA graphs: 1 captured, 3 replays"), std::string::npos) << gpu.err;
  // The same with the split-keys decode kernel (70 new tokens: buffers of 74 rows, 2 chunks).
  std::vector<std::string> long_args = args;
  long_args[long_args.size() - 3] = "70";  // -n
  const auto cpu_long = test::run_command(long_args, {});
  long_args.push_back("--use_gpu");
  long_args.push_back("--cuda_graph");
  const auto split = test::run_command(long_args, {"TFH_CUDA_DECODE_ATTENTION=split"});
  ASSERT_EQ(split.exit_code, 0) << split.err;
  EXPECT_NE(split.err.find("the split-keys decode kernel"), std::string::npos) << split.err;
  EXPECT_EQ(split.out, cpu_long.out);
  // perf with IO binding times that step in place: buffers donated, presents fed back; one graph.
  const auto perf = test::run_command({TFH_TFHOST_EXE, "perf", "-m", shared_path, "--model_type",
                                       type, "-b", "2", "-s", "1", "--past_sequence_length", "6",
                                       "--use_gpu", "--cuda_graph", "--io_binding", "--samples",
                                       "5", "--warmup", "2"},
                                      // (tuning on; the emulator's cuBLASLt then offers two
                                      // algorithms, the first 2 ms slower; no effect on a GPU)
                                      {"TFH_CUDA_GEMM_TUNING=on", "TFH_EMU_GEMM_ALGOS=2000,0"});
  ASSERT_EQ(perf.exit_code, 0) << perf.err;
  EXPECT_NE(perf.out.find("2 key/value buffers updated in place"), std::string::npos) << perf.out;
  EXPECT_NE(perf.out.find("CUDA graphs: 1 captured, 5 replayed runs ("), std::string::npos) << perf.out;
  EXPECT_NE(perf.out.find(" GPU operations in a run)"), std::string::npos) << perf.out;
  // The GEMMs were tuned in the eager warm-up run, before the capture (which cannot wait).
  EXPECT_NE(perf.out.find("GEMM tuning: "), std::string::npos) << perf.out;
  EXPECT_NE(perf.out.find(" product shapes, "), std::string::npos) << perf.out;
#ifdef TFH_CUDA_EMULATED
  EXPECT_NE(perf.out.find(" with several algorithms offered, "), std::string::npos) << perf.out;
  EXPECT_EQ(perf.out.find(" 0 of them faster"), std::string::npos) << perf.out;
#endif
}

// A model built here, on a CUDA session (with CUDA graphs when `graphs`) and on the CPU (the
// reference); the file is tmp / "m.onnx".
struct GpuAndCpu {
  GpuAndCpu(const onnx::ModelProto& m, bool graphs)
      : model(load(m, tmp)), gpu(*model, kernels, options(graphs)), cpu(*model, kernels) {}
  TempDir tmp;
  const std::unique_ptr<const ir::Model> model;
  const KernelRegistry kernels;
  Session gpu, cpu;

 private:
  static std::unique_ptr<const ir::Model> load(const onnx::ModelProto& m, const TempDir& tmp) {
    write_model(m, tmp / "m.onnx");
    auto model = ir::Model::load(tmp / "m.onnx");
    model->infer_shapes();
    return model;
  }
  static SessionOptions options(bool graphs) {
    SessionOptions o;
    o.device = TFH_DEVICE_CUDA;
    o.cuda_graph = graphs;
    return o;
  }
};

// TFH_CUDA_PREFETCH_WEIGHTS=1 (MiB): before each step, the weights of the steps after it are
// asked into L2 on a stream beside the session's, up to 1 MiB ahead; a weight larger than that
// (a 1.5 MB one here) is passed over. Three MatMuls: the first run has no device weights yet
// (they are uploaded as it goes), the second (captured into a graph) asks for the second one's
// 256 KiB once (the third is too large), as a branch the capture joins back; the replays ask
// for nothing more on the host and give the CPU's results. A bad value is an error naming the
// variable.
TEST_F(CudaRuntime, WeightsPrefetchedAheadBesideTheModel) {
  test::ScopedEnv env("TFH_CUDA_PREFETCH_WEIGHTS");
  onnx::ModelProto m = new_model();
  onnx::GraphProto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2, 256});
  auto weight = [&](const std::string& name, int64_t n) {
    std::vector<float> w(static_cast<size_t>(256 * n));
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(noise(i + name.size())) * 0.05f;
    *g.add_initializer() = float_tensor(name, {256, n}, w);
  };
  weight("w1", 256), weight("w2", 256), weight("w3", 1500);
  add_node(g, "MatMul", {"x", "w1"}, {"a"}, "mm1");
  add_node(g, "MatMul", {"a", "w2"}, {"b"}, "mm2");
  add_node(g, "MatMul", {"b", "w3"}, {"y"}, "mm3");
  g.add_output()->set_name("y");

  env.set("lots");
  try {
    GpuAndCpu bad(m, /*graphs=*/true);
    ADD_FAILURE() << "TFH_CUDA_PREFETCH_WEIGHTS=lots accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("TFH_CUDA_PREFETCH_WEIGHTS"), std::string::npos) << e.what();
  }
  size_t nodes_without = 0;
  for (const char* window : {"off", "1"}) {
    SCOPED_TRACE(std::string("TFH_CUDA_PREFETCH_WEIGHTS=") + window);
    env.set(window);
    GpuAndCpu both(m, /*graphs=*/true);
    const uint64_t asked_before = kernels::cuda::l2_prefetch_bytes_asked();
    for (int rep = 0; rep < 4; ++rep) {
      auto x = tensor(TFH_TYPE_FLOAT, {2, 256}, [rep](size_t i) { return noise(i + rep); });
      expect_close(both.gpu.run({{"x", x.get()}}), both.cpu.run({{"x", x.get()}}), 1e-3,
                   "run " + std::to_string(rep));
    }
    const GraphStats st = both.gpu.graph_stats();
    EXPECT_EQ(st.captured, 1u) << st.refused;
    EXPECT_EQ(st.replays, 2u);
    const uint64_t asked = kernels::cuda::l2_prefetch_bytes_asked() - asked_before;
    if (std::string(window) == "off") {
      EXPECT_EQ(asked, 0u);
      nodes_without = st.nodes;
    } else {
      EXPECT_EQ(asked, 256u * 256u * sizeof(float));  // w2, in the captured run
      EXPECT_EQ(st.nodes, nodes_without + 1) << "the prefetch kernel, a node of the graph";
    }
  }
}

// Add (GPU) -> Floor (no CUDA kernel: CPU) -> Add (GPU): the run crosses sides, so no graph is
// captured; the session says which node and runs eagerly, with right results every time.
// A host input made on the GPU (Expand's shape from a CUDA Add) is downloaded for the kernel:
// one value crosses per run, and the result is the CPU's.
TEST_F(CudaRuntime, AHostInputMadeOnTheGpuIsDownloaded) {
  onnx::ModelProto m = new_model();
  onnx::GraphProto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {3, 1});
  *g.add_input() = tensor_info("a", onnx::TensorProto::INT64, {3});
  *g.add_input() = tensor_info("b", onnx::TensorProto::INT64, {3});
  add_node(g, "Add", {"a", "b"}, {"shape"}, "add");
  add_node(g, "Expand", {"x", "shape"}, {"y"}, "expand");
  g.add_output()->set_name("y");
  GpuAndCpu both(m, /*graphs=*/false);
  Session &gpu = both.gpu, &cpu = both.cpu;
  for (const Session::Placement& p : gpu.placements())
    EXPECT_EQ(p.where, Session::Placement::Where::Gpu) << p.node->name() << ": " << p.why;
  auto x = tensor(TFH_TYPE_FLOAT, {3, 1}, noise);
  auto a = tensor(TFH_TYPE_INT64, {3}, [](size_t i) { return double(i + 1); });
  auto b = tensor(TFH_TYPE_INT64, {3}, [](size_t i) { return i == 1 ? 1.0 : 0.0; });
  const std::vector<std::pair<std::string, const HostTensor*>> feeds = {
      {"x", x.get()}, {"a", a.get()}, {"b", b.get()}};
  expect_close(gpu.run(feeds), cpu.run(feeds), 0, "Expand to [1, 3, 3]");
  EXPECT_EQ(gpu.device_traffic().copies, 1u);
  EXPECT_EQ(gpu.device_traffic().bytes, 3 * sizeof(int64_t));
  EXPECT_NE(gpu.device_traffic().first.find("'shape' on the CPU, made on the GPU"), std::string::npos)
      << gpu.device_traffic().first;
}

TEST_F(CudaRuntime, CudaGraphRefusedWhenARunCrossesSides) {
  onnx::ModelProto m = new_model();
  onnx::GraphProto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2, 5});
  add_node(g, "Add", {"x", "x"}, {"a"}, "add1");
  add_node(g, "Floor", {"a"}, {"f"}, "floor");
  add_node(g, "Add", {"f", "x"}, {"y"}, "add2");
  g.add_output()->set_name("y");
  GpuAndCpu both(m, /*graphs=*/true);
  Session &gpu = both.gpu, &cpu = both.cpu;
  for (int rep = 0; rep < 4; ++rep) {
    auto x = tensor(TFH_TYPE_FLOAT, {2, 5}, [rep](size_t i) { return noise(i + rep); });
    expect_close(gpu.run({{"x", x.get()}}), cpu.run({{"x", x.get()}}), 1e-6, "run " + std::to_string(rep));
  }
  const GraphStats st = gpu.graph_stats();
  EXPECT_EQ(st.captured, 0u);
  EXPECT_NE(st.refused.find("floor"), std::string::npos) << st.refused;
  // The eager runs copy `a` down for Floor and `f` back up for add2; Floor says why it is on the CPU.
  EXPECT_EQ(gpu.device_traffic().copies, 2u);
  EXPECT_EQ(gpu.device_traffic().bytes, 2 * 10 * sizeof(float));
  EXPECT_NE(gpu.device_traffic().first.find("floor"), std::string::npos) << gpu.device_traffic().first;
  size_t on_cpu = 0;
  for (const Session::Placement& p : gpu.placements())
    if (p.where == Session::Placement::Where::Cpu) {
      ++on_cpu;
      EXPECT_EQ(p.node->name(), "floor");
      EXPECT_FALSE(p.why.empty());
    }
  EXPECT_EQ(on_cpu, 1u);
  // perf and benchmark say so too.
  const std::string path = both.tmp / "m.onnx";
  const auto perf = test::run_command({TFH_TFHOST_EXE, "perf", "-m", path, "--use_gpu", "-b", "2",
                                       "-s", "5", "--samples", "2", "--warmup", "1"});
  ASSERT_EQ(perf.exit_code, 0) << perf.out << perf.err;
  EXPECT_NE(perf.out.find("values copied between CPU and GPU mid-run: 2 ("), std::string::npos)
      << perf.out;
  const auto bench = test::run_command(
      {TFH_TFHOST_EXE, "benchmark", "--model", path, "--optimized_model", path, "--use_gpu",
       "--batch_sizes", "2", "--sequence_lengths", "5", "--samples", "2", "--warmup", "1",
       "--result_csv", both.tmp / "b.csv", "--result_json", both.tmp / "b.json"});
  ASSERT_EQ(bench.exit_code, 0) << bench.out << bench.err;
  EXPECT_NE((bench.out + bench.err)
                .find("2 values copied between CPU and GPU per run; first: node 'floor'"),
            std::string::npos)
      << bench.out << bench.err;
}

// y = x + ConstantOfShape(Shape(x)): the constant is shape arithmetic, made on the CPU and kept
// on the GPU once per shape, up to 1 MiB a value. A row of 300000 floats is larger: those shapes
// copy it up on every run, so their capture is refused; rows of 16 or 32 are still captured and
// replayed, before and after.
TEST_F(CudaRuntime, CudaGraphRefusedForOneSetOfShapesOnly) {
  onnx::ModelProto m = new_model();
  onnx::GraphProto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {1, -1});
  add_node(g, "Shape", {"x"}, {"s"}, "shape");
  onnx::NodeProto* cos = add_node(g, "ConstantOfShape", {"s"}, {"c"}, "fill");
  auto* value = cos->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  *value->mutable_t() = float_tensor("v", {1}, {0.5f});
  add_node(g, "Add", {"x", "c"}, {"y"}, "add");
  g.add_output()->set_name("y");
  GpuAndCpu both(m, /*graphs=*/true);
  Session &gpu = both.gpu, &cpu = both.cpu;
  int rep = 0;
  auto run = [&](int64_t n) {
    auto x = tensor(TFH_TYPE_FLOAT, {1, n}, [rep](size_t i) { return noise(i + rep); });
    expect_close(gpu.run({{"x", x.get()}}), cpu.run({{"x", x.get()}}), 1e-6,
                 "run " + std::to_string(rep) + ", n " + std::to_string(n));
    ++rep;
  };
  run(16), run(16);  // captured on the second run
  EXPECT_EQ(gpu.graph_stats().captured, 1u);
  EXPECT_EQ(gpu.graph_stats().nodes, 1u);  // the Add: the constant is on the GPU already
  EXPECT_EQ(gpu.device_traffic().copies, 0u);
  run(300000), run(300000);  // the capture of these shapes is refused: eager, and correct
  GraphStats st = gpu.graph_stats();
  EXPECT_EQ(st.captured, 1u);
  EXPECT_EQ(st.refused_shapes, 1u);
  EXPECT_FALSE(st.refused_for_good);
  EXPECT_NE(st.refused.find("'add'"), std::string::npos) << st.refused;
  EXPECT_EQ(st.refusal_text().rfind("1 input shape set not capturable: ", 0), 0u) << st.refusal_text();
  run(300000);  // eager again, without another try
  EXPECT_EQ(gpu.device_traffic().copies, 1u);
  EXPECT_EQ(gpu.graph_stats().refused_shapes, 1u);
  EXPECT_EQ(gpu.graph_stats().replays, 0u);
  run(16);  // the earlier graph replays
  EXPECT_EQ(gpu.graph_stats().replays, 1u);
  run(32), run(32);  // and new shapes are still captured
  st = gpu.graph_stats();
  EXPECT_EQ(st.captured, 2u);
  EXPECT_EQ(st.replays, 1u);
  EXPECT_EQ(gpu.device_traffic().copies, 0u);
}

// A device feed at an address that is not a multiple of its element size is refused with a clear
// error (a CUDA kernel reading it would fault: "misaligned address"); at one that is, it runs.
TEST_F(CudaRuntime, AMisalignedDeviceFeedIsAClearError) {
  onnx::ModelProto m = new_model();
  onnx::GraphProto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2, 3});
  add_node(g, "Add", {"x", "x"}, {"y"}, "add");
  g.add_output()->set_name("y");
  GpuAndCpu both(m, /*graphs=*/false);
  auto x = tensor(TFH_TYPE_FLOAT, {2, 4}, [](size_t i) { return noise(i); });
  const DeviceTensor whole = both.gpu.to_device(*x);
  DeviceTensor shifted = whole;  // 2 x 3 floats starting 2 bytes in, then 4 bytes in
  shifted.dims = {2, 3};
  shifted.nbytes = 24;
  shifted.data = static_cast<char*>(whole.data) + 2;
  try {
    both.gpu.run_device({Feed{"x", nullptr, &shifted}});
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("input 'x': a device tensor at an address that is not a "
                                         "multiple of its element size (4 bytes)"),
              std::string::npos) << e.what();
  }
  shifted.data = static_cast<char*>(whole.data) + 4;
  const auto y = both.gpu.to_host(both.gpu.run_device({Feed{"x", nullptr, &shifted}})[0]);
  const float* px = static_cast<const float*>(x->data);
  for (size_t i = 0; i < 6; ++i)
    EXPECT_EQ(static_cast<const float*>(y->data)[i], 2 * px[i + 1]) << i;
}

#ifdef TFH_CUDA_EMULATED
// A call that fails while capturing without saying capture is why (the emulator's cuBLASLt made
// to fail under capture): the run is redone eagerly, right, and these shapes stay eager; other
// shapes are still captured once the fault is gone. (Emulator only: a GPU's cuBLASLt captures.)
TEST_F(CudaRuntime, AFailureWhileCapturingRunsTheShapesEagerly) {
  onnx::ModelProto m = new_model();
  onnx::GraphProto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {-1, 8});
  std::vector<float> w(8 * 5);
  for (size_t i = 0; i < w.size(); ++i) w[i] = noise(i);
  *g.add_initializer() = float_tensor("w", {8, 5}, w);
  add_node(g, "MatMul", {"x", "w"}, {"y"}, "matmul");
  g.add_output()->set_name("y");
  GpuAndCpu both(m, /*graphs=*/true);
  Session &gpu = both.gpu, &cpu = both.cpu;
  int rep = 0;
  auto run = [&](int64_t rows) {
    auto x = tensor(TFH_TYPE_FLOAT, {rows, 8}, [rep](size_t i) { return noise(i + 3 * rep); });
    expect_close(gpu.run({{"x", x.get()}}), cpu.run({{"x", x.get()}}), 1e-5,
                 "run " + std::to_string(rep) + ", rows " + std::to_string(rows));
    ++rep;
  };
  run(3);  // eager: seen once
  setenv("TFH_EMU_GEMM_FAILS_WHILE_CAPTURING", "1", 1);
  run(3);  // the capture fails in cuBLASLt: redone eagerly
  GraphStats st = gpu.graph_stats();
  EXPECT_EQ(st.captured, 0u);
  EXPECT_EQ(st.refused_shapes, 1u);
  EXPECT_FALSE(st.refused_for_good);
  EXPECT_EQ(st.refused.rfind("capturing failed: ", 0), 0u) << st.refused;
  unsetenv("TFH_EMU_GEMM_FAILS_WHILE_CAPTURING");
  run(3);  // these shapes stay eager
  EXPECT_EQ(gpu.graph_stats().captured, 0u);
  run(4), run(4), run(4);  // others are captured and replayed
  st = gpu.graph_stats();
  EXPECT_EQ(st.captured, 1u);
  EXPECT_EQ(st.replays, 1u);
  EXPECT_EQ(st.refused_shapes, 1u);
  // When the eager run fails as well, the error is the run's own: it reaches the caller, and
  // these shapes are captured once the fault is gone.
  run(5);
  setenv("TFH_EMU_GEMM_FAILS_WHILE_CAPTURING", "always", 1);
  auto x = tensor(TFH_TYPE_FLOAT, {5, 8}, [](size_t i) { return noise(i); });
  EXPECT_THROW(gpu.run({{"x", x.get()}}), std::exception);
  unsetenv("TFH_EMU_GEMM_FAILS_WHILE_CAPTURING");
  EXPECT_EQ(gpu.graph_stats().refused_shapes, 1u);
  run(5);  // captured now
  st = gpu.graph_stats();
  EXPECT_EQ(st.captured, 2u);
  EXPECT_EQ(st.refused_shapes, 1u);
  run(5);
  EXPECT_EQ(gpu.graph_stats().replays, 2u);
}
#endif

// Reshape -> Reshape -> Add on a feed: the reshapes are views of the feed's bytes (no copy), so
// the captured graph is the Add alone; the results are the CPU's and the feed keeps its bytes.
TEST_F(CudaRuntime, AViewOfAFeedIsNoCopy) {
  onnx::ModelProto m = new_model();
  onnx::GraphProto& g = *m.mutable_graph();
  *g.add_input() = tensor_info("x", onnx::TensorProto::FLOAT, {2, 6});
  *g.add_initializer() = int64_tensor("s1", {2}, {3, 4});
  *g.add_initializer() = int64_tensor("s2", {1}, {12});
  add_node(g, "Reshape", {"x", "s1"}, {"r1"}, "reshape1");
  add_node(g, "Reshape", {"r1", "s2"}, {"r2"}, "reshape2");
  add_node(g, "Add", {"r2", "r2"}, {"y"}, "add");
  g.add_output()->set_name("y");
  GpuAndCpu both(m, /*graphs=*/true);
  Session &gpu = both.gpu, &cpu = both.cpu;
  for (int rep = 0; rep < 3; ++rep) {
    auto x = tensor(TFH_TYPE_FLOAT, {2, 6}, [rep](size_t i) { return noise(i + rep); });
    const std::vector<float> before(static_cast<const float*>(x->data),
                                    static_cast<const float*>(x->data) + 12);
    expect_close(gpu.run({{"x", x.get()}}), cpu.run({{"x", x.get()}}), 1e-6, "run " + std::to_string(rep));
    EXPECT_EQ(std::memcmp(before.data(), x->data, 12 * sizeof(float)), 0);
  }
  EXPECT_EQ(gpu.graph_stats().captured, 1u);
  EXPECT_EQ(gpu.graph_stats().replays, 1u);
  EXPECT_EQ(gpu.graph_stats().nodes, 1u);  // the Add: no copy for either reshape
}

// The shipped float16 and bfloat16 configs (configs/*_fp16*.yaml, *_bf16*.yaml, device: auto) run
// verify and benchmark on the GPU when one is present and say so; verify passes. Their paths are made absolute, the
// output goes to a temporary folder and the benchmark grid shrinks to one small point.
TEST_F(CudaRuntime, HalfPrecisionConfigsRunOnTheGpu) {
  size_t configs = 0;
  for (const std::string& name : test::list_dir(TFH_SOURCE_DIR "/configs")) {
    if ((name.find("_fp16") == std::string::npos && name.find("_bf16") == std::string::npos) ||
        name.size() < 5 || name.substr(name.size() - 5) != ".yaml")
      continue;
    SCOPED_TRACE(name);
    ++configs;
    TempDir tmp;
    std::string text = test::read_file(std::string(TFH_SOURCE_DIR "/configs/") + name), out;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("benchmark:", 0) == 0)
        line = line.find("past:") != std::string::npos
                   ? "benchmark: {batch: [1], sequence: [1], past: [4], warmup: 1, iterations: 2, cuda_graph: true}"
                   : "benchmark: {batch: [1], sequence: [8], warmup: 1, iterations: 2, cuda_graph: true}";
      else if (line.rfind("output:", 0) == 0)
        line = "output: " + (tmp / "out.onnx");
      for (size_t at; (at = line.find("../models/")) != std::string::npos;)
        line.replace(at, 3, std::string(TFH_SOURCE_DIR) + "/");
      out += line + "\n";
    }
    test::write_file(tmp / name, out);
    const auto r = test::run_command({TFH_TFHOST_EXE, "run", tmp / name});
    const std::string all = r.out + r.err;
    ASSERT_EQ(r.exit_code, 0) << all;
    EXPECT_NE(all.find("device: auto: verify and benchmark run on the GPU"), std::string::npos) << all;
    EXPECT_NE(all.find("verify: PASS"), std::string::npos) << all;
    EXPECT_NE(all.find("CUDA graphs"), std::string::npos) << all;
    EXPECT_TRUE(test::file_exists(tmp / "out.onnx"));
  }
  EXPECT_GE(configs, 4u);
}

// MultiHeadAttention as the gpt2 plugin fuses Hugging Face's GPT-2 (query, key, value [B, S, H],
// bias [3H], past_key/past_value [B, N, P, D], causal) and the other forms the CUDA kernel takes:
// a prompt and single tokens over a past, every mask format, an attention bias, no past; fp32
// and fp16 against the CPU kernel, present_key/present_value included.
TEST_F(CudaRuntime, MultiHeadAttentionWithPastMaskAndBias) {
  const int64_t B = 2, N = 2, D = 8, H = N * D;
  struct Case {
    int64_t S, P;
    bool causal, bias;
    int mask;  // 0 none, 1 [B, T] (row 1 left-padded), 2 [B] ends, 3 [B, S, T]
    bool attention_bias;
  };
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
    for (const Case& c : {Case{3, 4, true, true, 1, false}, Case{1, 5, true, true, 1, false},
                          Case{1, 6, true, false, 2, false}, Case{4, 0, false, true, 3, true},
                          Case{5, 0, true, false, 0, false}, Case{2, 3, false, true, 0, true}}) {
      const int64_t T = c.P + c.S;
      SCOPED_TRACE("S " + std::to_string(c.S) + ", P " + std::to_string(c.P) + ", mask " +
                   std::to_string(c.mask) + (t == TFH_TYPE_FLOAT16 ? ", fp16" : ""));
      std::vector<NodeIn> ins;
      ins.push_back({"q", tensor(t, {B, c.S, H}, noise)});
      ins.push_back({"k", tensor(t, {B, c.S, H}, [](size_t i) { return noise(i + 11); })});
      ins.push_back({"v", tensor(t, {B, c.S, H}, [](size_t i) { return noise(i + 13); })});
      if (c.bias) ins.push_back({"bias", tensor(t, {3 * H}, [](size_t i) { return noise(i + 5) * 0.3; }), true});
      else ins.push_back({"", nullptr});
      if (c.mask == 1)
        ins.push_back({"mask", tensor(TFH_TYPE_INT32, {B, T}, [T](size_t i) {
                         return i / T == 1 && i % T == 0 ? 0.0 : 1.0;
                       })});
      else if (c.mask == 2)
        ins.push_back({"mask", tensor(TFH_TYPE_INT32, {B}, [T](size_t i) { return double(T - 2 * i); })});
      else if (c.mask == 3)
        ins.push_back({"mask", tensor(TFH_TYPE_INT32, {B, c.S, T}, [T](size_t i) {
                         return (i % T) == (i / T) % T ? 0.0 : 1.0;
                       })});
      else
        ins.push_back({"", nullptr});
      if (c.attention_bias)
        ins.push_back({"ab", tensor(t, {1, N, c.S, T}, [](size_t i) { return noise(i + 17); })});
      else
        ins.push_back({"", nullptr});
      if (c.P) {
        ins.push_back({"past_key", tensor(t, {B, N, c.P, D}, [](size_t i) { return noise(i + 19); })});
        ins.push_back({"past_value", tensor(t, {B, N, c.P, D}, [](size_t i) { return noise(i + 23); })});
      }
      expect_same_on_gpu("MultiHeadAttention", "com.microsoft", ins, c.P ? 3 : 1,
                         t == TFH_TYPE_FLOAT16 ? 2e-2 : 1e-4, [c](onnx::NodeProto* n) {
                           int_attr("num_heads", 2)(n);
                           if (c.causal) int_attr("unidirectional", 1)(n);
                         });
    }
  // A head size over 128, known when the session is planned: the CPU runs it.
  std::vector<NodeIn> wide = one("q", tensor(TFH_TYPE_FLOAT, {1, 2, 256}, noise));
  wide.push_back({"k", tensor(TFH_TYPE_FLOAT, {1, 2, 256}, noise)});
  wide.push_back({"v", tensor(TFH_TYPE_FLOAT, {1, 2, 256}, noise)});
  expect_same_on_gpu("MultiHeadAttention", "com.microsoft", wide, 1, 1e-4,
                     [](onnx::NodeProto* n) { int_attr("num_heads", 1)(n); }, "tfhost.cpu.");
}

// Attention with one past/present buffer (past_present_share_buffer): past_sequence_length read
// on the device, the new rows written in place, masks [B, P + S] and fixed-width [B, M]; a
// prompt (the prefill kernels) and single tokens (the decode kernel), fp32 and fp16, against
// the CPU kernel (whose present keeps the buffer's other rows, as the GPU's must).
TEST_F(CudaRuntime, AttentionWithASharedPastPresentBuffer) {
  const int64_t B = 2, N = 2, D = 8, H = N * D, M = 10;
  for (TfhDataType t : {TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16})
    for (int64_t S : {1, 3})
      for (int64_t P : {int64_t{0}, int64_t{4}, M - S})
        for (bool full_width : {false, true}) {
          SCOPED_TRACE("S " + std::to_string(S) + ", P " + std::to_string(P) +
                       (full_width ? ", mask [B, M]" : ", mask [B, P + S]") +
                       (t == TFH_TYPE_FLOAT16 ? ", fp16" : ""));
          const int64_t W = full_width ? M : P + S;
          std::vector<NodeIn> ins;
          ins.push_back({"x", tensor(t, {B, S, H}, noise)});
          ins.push_back({"w", tensor(t, {H, 3 * H}, [](size_t i) { return noise(i + 3) * 0.3; }), true});
          ins.push_back({"b", tensor(t, {3 * H}, [](size_t i) { return noise(i + 5) * 0.1; }), true});
          ins.push_back({"mask", tensor(TFH_TYPE_INT32, {B, W}, [P, S, W](size_t i) {
                           const int64_t j = static_cast<int64_t>(i) % W, b = static_cast<int64_t>(i) / W;
                           return j < P + S && !(b == 1 && j == 0) ? 1.0 : 0.0;  // row 1 left-padded
                         })});
          ins.push_back({"past", tensor(t, {2, B, N, M, D}, [](size_t i) { return noise(i + 7); })});
          ins.push_back({"", nullptr});
          ins.push_back({"psl", tensor(TFH_TYPE_INT32, {1}, [P](size_t) { return double(P); })});
          expect_same_on_gpu("Attention", "com.microsoft", ins, 2, t == TFH_TYPE_FLOAT16 ? 2e-2 : 1e-4,
                             [](onnx::NodeProto* n) {
                               int_attr("num_heads", 2)(n);
                               int_attr("unidirectional", 1)(n);
                               int_attr("past_present_share_buffer", 1)(n);
                             });
        }
}

// Decoding through gpt2.shared_kv_cache's model on the GPU with IO binding, the key/value buffers
// donated back every step: each present is the buffer its past came in (no copy of the cache).
// With CUDA graphs every single-token step has the same shapes (the mask is [B, M]), so one
// graph serves them all; its replays use the graph's own buffers, which come back as the
// presents and are fed back in place. Logits and buffers equal the CPU's at every step.
TEST_F(CudaRuntime, SharedKvCacheDecodesInPlace) {
  TempDir tmp;
  const std::string path = tmp / "shared.onnx";
  const auto r = test::run_command({TFH_TFHOST_EXE, "optimize", "--input",
                                    TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14/model.onnx",
                                    "--output", path, "--model_type", "gpt2",
                                    "--enable_shared_kv_cache"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  plugin::Registry registry;
  pipeline::load_plugins(registry, {}, {TFH_TEST_PLUGIN_DIR});
  auto model = ir::Model::load(path);
  model->infer_shapes(&registry.shape_hooks());
  const KernelRegistry kernels(registry);
  for (bool graphs : {false, true}) {
    SCOPED_TRACE(graphs ? "CUDA graphs" : "eager");
    SessionOptions o;
    o.device = TFH_DEVICE_CUDA;
    o.cuda_graph = graphs;
    Session gpu(static_cast<const ir::Model&>(*model), kernels, o);
    Session cpu(static_cast<const ir::Model&>(*model), kernels);
    test::Gpt2DecodeSpec spec;
    spec.max_length = 16;
    spec.full_width_mask = true;
    std::vector<std::unique_ptr<HostTensor>> want;  // the CPU's outputs of the last step
    std::vector<DeviceTensor> got;                  // the GPU's
    for (int64_t step = 0; step < 8; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      std::vector<const HostTensor*> last;
      for (size_t l = 1; l < want.size(); ++l) last.push_back(want[l].get());
      const auto in = test::gpt2_decode_inputs(spec, step, last);
      // The GPU's feeds: the host's tensors, except the buffers: its own last presents, donated.
      std::vector<DeviceTensor> first;  // step 0: the junk buffers uploaded
      first.reserve(2);                 // (feeds point into it)
      std::vector<Feed> feeds;
      for (const NamedTensor& t : in) {
        if (t.name.rfind("past_", 0) == 0 && t.name != "past_sequence_length") {
          const size_t l = std::stoul(t.name.substr(5));
          if (step == 0) first.push_back(gpu.to_device(*t.tensor));
          feeds.push_back(Feed{t.name, nullptr, step == 0 ? &first.back() : &got.at(1 + l), true});
        } else {
          feeds.push_back(Feed{t.name, t.tensor.get(), nullptr});
        }
      }
      std::vector<const void*> fed;
      for (const Feed& f : feeds)
        if (f.device) fed.push_back(f.device->data);
      ASSERT_EQ(fed.size(), 2u);
      std::vector<DeviceTensor> out = gpu.run_device(feeds);
      want = cpu.run(feeds_of(in));
      ASSERT_EQ(out.size(), 3u);
      std::vector<std::unique_ptr<HostTensor>> host;
      for (const DeviceTensor& d : out) host.push_back(gpu.to_host(d));
      expect_close(host, want, 1e-4, "outputs");
      // In place: eager runs write the donated feed. With graphs, the capture (step 2, the
      // second run of the single-token shapes) copies the feed into the graph's buffer, which
      // comes back as the present and is fed back from then on.
      if (!graphs || step != 2)
        for (int l = 0; l < 2; ++l) EXPECT_EQ(out[1 + l].data, fed[l]) << "present_" << l;
      got = std::move(out);
    }
    const GraphStats st = gpu.graph_stats();
    EXPECT_EQ(st.refused, "");
    // Graphs: the prompt's shapes run once (eager); single tokens: eager, capture, 5 replays.
    EXPECT_EQ(st.captured, graphs ? 1u : 0u);
    EXPECT_EQ(st.replays, graphs ? 5u : 0u);
  }
}

}  // namespace
}  // namespace tfh::runtime
