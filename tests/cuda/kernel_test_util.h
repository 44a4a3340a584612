// What the CUDA kernel tests share: one-node models run on tfhost's CPU runtime as the reference,
// device buffers of float/float16 values, the comparison, and the fixture.
#pragma once


#include <cuda_runtime_api.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "host/plugin/registry.h"
#include "host/runtime/inputs.h"
#include "host/runtime/kernel_registry.h"
#include "host/runtime/measure.h"
#include "host/runtime/session.h"
#include "host/runtime/tensor_io.h"
#include "support/test_util.h"
#include "ir/ir_test_util.h"
#include "kernels/common/device_info.h"
#include "kernels/cuda/cuda_kernels.h"
#include "tfhost/core.hpp"


namespace tfh::kernels::cuda::kernel_test {

using namespace tfh::ir::test;
using Shape = std::vector<int64_t>;
using Floats = std::vector<float>;
constexpr int F32 = onnx::TensorProto::FLOAT, F16 = onnx::TensorProto::FLOAT16,
              BF16 = onnx::TensorProto::BFLOAT16, I32 = onnx::TensorProto::INT32,
              I64 = onnx::TensorProto::INT64,
              BOOL = onnx::TensorProto::BOOL;

inline int64_t count(const Shape& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

inline Floats random_floats(int64_t n, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  Floats v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}
// The values as the type stores them (float16, bfloat16: rounded), so both engines see the same
// numbers.
inline Floats stored(Floats v, int elem) {
  if (elem == F16)
    for (float& x : v) x = to_float(to_float16(x));
  if (elem == BF16)
    for (float& x : v) x = to_float(to_bfloat16(x));
  return v;
}
// The bits of x as a 16-bit float type stores it.
inline uint16_t bits16(float x, int elem) {
  return elem == BF16 ? to_bfloat16(x).bits : to_float16(x).bits;
}
inline float from_bits16(uint16_t h, int elem) {
  return elem == BF16 ? to_float(BFloat16{h}) : to_float(Float16{h});
}

struct In {
  std::string name;
  Shape dims;
  Floats values;
  int elem = F32;  // F32, F16, BF16, I32, I64 (values then hold the integers) or BOOL (!= 0)
};

// Runs one node on tfhost's CPU runtime; the outputs as floats.
inline std::vector<Floats> cpu_node(const std::string& op, const std::string& domain, int64_t opset,
                             const std::vector<In>& ins, const std::vector<std::string>& outs,
                             const std::function<void(onnx::NodeProto*)>& attrs = {}) {
  onnx::ModelProto m = new_model();
  m.mutable_opset_import(0)->set_version(opset);
  onnx::GraphProto& g = *m.mutable_graph();
  std::vector<std::string> in_names;
  for (const In& in : ins) {
    in_names.push_back(in.name);
    if (!in.name.empty()) *g.add_input() = tensor_info(in.name, in.elem, in.dims);
  }
  onnx::NodeProto* n = add_node(g, op, in_names, outs, "node", domain);
  if (attrs) attrs(n);
  for (const std::string& o : outs)
    if (!o.empty()) {
      auto* vi = g.add_output();
      vi->set_name(o);
    }
  TempDir tmp;
  write_model(m, tmp / "m.onnx");
  auto model = ir::Model::load(tmp / "m.onnx");
  model->infer_shapes();
  const runtime::KernelRegistry kernels;
  runtime::Session s(*model, kernels);
  std::vector<std::unique_ptr<runtime::HostTensor>> held;
  std::vector<std::pair<std::string, const runtime::HostTensor*>> feeds;
  for (const In& in : ins) {
    if (in.name.empty()) continue;
    std::unique_ptr<runtime::HostTensor> t;
    if (in.elem == I32) {
      t = runtime::make_tensor(TFH_TYPE_INT32, in.dims);
      for (size_t i = 0; i < in.values.size(); ++i)
        reinterpret_cast<int32_t*>(t->storage.get())[i] = static_cast<int32_t>(in.values[i]);
    } else {
      t = runtime::make_tensor(TFH_TYPE_FLOAT, in.dims);
      std::memcpy(t->storage.get(), in.values.data(), in.values.size() * 4);
      if (in.elem != F32) t = runtime::convert_tensor(*t, static_cast<TfhDataType>(in.elem));
    }
    feeds.emplace_back(in.name, t.get());
    held.push_back(std::move(t));
  }
  std::vector<Floats> result;
  for (const auto& t : s.run(feeds)) {
    auto f = t->type == TFH_TYPE_FLOAT ? runtime::copy_tensor(*t) : runtime::convert_tensor(*t, TFH_TYPE_FLOAT);
    const float* p = static_cast<const float*>(f->data);
    result.emplace_back(p, p + f->num_elements);
  }
  return result;
}

// A device buffer holding floats as float, float16 or bfloat16.
class Dev {
 public:
  Dev(const Floats& v, int elem) : n_(v.size()), elem_(elem) {
    const size_t bytes = n_ * (elem == F32 ? 4 : 2);
    check(cudaMalloc(&p_, std::max<size_t>(bytes, 1)), "cudaMalloc");
    if (elem != F32) {
      std::vector<uint16_t> h(n_);
      for (size_t i = 0; i < n_; ++i) h[i] = bits16(v[i], elem);
      check(cudaMemcpy(p_, h.data(), bytes, cudaMemcpyHostToDevice), "upload");
    } else {
      check(cudaMemcpy(p_, v.data(), bytes, cudaMemcpyHostToDevice), "upload");
    }
  }
  Dev(size_t n, int elem) : Dev(Floats(n, 0.f), elem) {}
  ~Dev() { cudaFree(p_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  void* get() const { return p_; }
  Floats read() const {
    check(cudaDeviceSynchronize(), "synchronize");
    Floats out(n_);
    if (elem_ != F32) {
      std::vector<uint16_t> h(n_);
      check(cudaMemcpy(h.data(), p_, n_ * 2, cudaMemcpyDeviceToHost), "download");
      for (size_t i = 0; i < n_; ++i) out[i] = from_bits16(h[i], elem_);
    } else {
      check(cudaMemcpy(out.data(), p_, n_ * 4, cudaMemcpyDeviceToHost), "download");
    }
    return out;
  }

 private:
  void* p_ = nullptr;
  size_t n_;
  int elem_;
};

// Programmatic dependent launch on or off while it lives (set_pdl_enabled), then as before.
class ScopedPdl {
 public:
  explicit ScopedPdl(bool on) : before_(pdl_enabled()) { set_pdl_enabled(on); }
  ~ScopedPdl() { set_pdl_enabled(before_); }
  ScopedPdl(const ScopedPdl&) = delete;
  ScopedPdl& operator=(const ScopedPdl&) = delete;

 private:
  bool before_;
};

// A device buffer of raw elements of any trivially copyable type (int64, double, int8, bool as
// uint8_t, ...), for the kernels over types Dev does not hold.
class DevRaw {
 public:
  template <typename T>
  explicit DevRaw(const std::vector<T>& v) : DevRaw(v.data(), v.size() * sizeof(T)) {}
  DevRaw(const void* data, size_t bytes) : bytes_(bytes) {
    check(cudaMalloc(&p_, std::max<size_t>(bytes, 1)), "cudaMalloc");
    if (bytes) check(cudaMemcpy(p_, data, bytes, cudaMemcpyHostToDevice), "upload");
  }
  // `bytes` bytes, each `fill` (0xff: a poison a kernel must overwrite).
  DevRaw(size_t bytes, unsigned char fill) : bytes_(bytes) {
    check(cudaMalloc(&p_, std::max<size_t>(bytes, 1)), "cudaMalloc");
    if (bytes) check(cudaMemset(p_, fill, bytes), "fill");
  }
  ~DevRaw() { cudaFree(p_); }
  DevRaw(const DevRaw&) = delete;
  DevRaw& operator=(const DevRaw&) = delete;
  void* get() const { return p_; }
  template <typename T>
  std::vector<T> read() const {
    check(cudaDeviceSynchronize(), "synchronize");
    std::vector<T> out(bytes_ / sizeof(T));
    if (!out.empty())
      check(cudaMemcpy(out.data(), p_, out.size() * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return out;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_;
};

// A key mask (0/1 values) as device int32.
class DevMask {
 public:
  explicit DevMask(const Floats& mask) {
    std::vector<int32_t> v(mask.begin(), mask.end());
    check(cudaMalloc(&p_, std::max<size_t>(v.size(), 1) * 4), "cudaMalloc");
    check(cudaMemcpy(p_, v.data(), v.size() * 4, cudaMemcpyHostToDevice), "upload");
  }
  ~DevMask() { cudaFree(p_); }
  DevMask(const DevMask&) = delete;
  DevMask& operator=(const DevMask&) = delete;
  const int32_t* get() const { return static_cast<const int32_t*>(p_); }

 private:
  void* p_ = nullptr;
};

inline float max_diff(const Floats& a, const Floats& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    if (std::isnan(d)) return d;  // NaN fails (and must not be overwritten by a later element)
    if (d > m) m = d;
  }
  return m;
}

inline TfhDataType type_of(int elem) {
  return elem == F16 ? TFH_TYPE_FLOAT16 : elem == BF16 ? TFH_TYPE_BFLOAT16 : TFH_TYPE_FLOAT;
}
// A tolerance by precision: float32's, float16's, and for bfloat16 (8 bits of precision where
// float16 keeps 11: a rounding 8 times coarser) 8 times float16's.
inline float by_precision(int elem, float f32, float f16) {
  return elem == F32 ? f32 : elem == F16 ? f16 : 8 * f16;
}
inline float tol(int elem) { return by_precision(elem, 1e-4f, 2e-2f); }
inline std::string name_of(int elem) {
  return elem == F16 ? "float16" : elem == BF16 ? "bfloat16" : "float32";
}

// num_heads, and unidirectional when causal: the attributes of the CPU attention node.
inline std::function<void(onnx::NodeProto*)> attention_attrs(int64_t heads, bool causal) {
  return [heads, causal](onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name("num_heads");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(heads);
    if (causal) {
      a = n->add_attribute();
      a->set_name("unidirectional");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(1);
    }
  };
}


// The kernel tests' fixture: skipped, with the reason, without a CUDA GPU (under the CPU
// emulator, tests/cuda_emu, the emulator is the device).
class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA GPU here (" << describe_devices() << ")";
  }
};

}  // namespace tfh::kernels::cuda::kernel_test
