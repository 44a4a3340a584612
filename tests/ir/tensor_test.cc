// Tensor: element counts, byte sizes, and typed fields converted to raw bytes per ONNX's rules.
#include <cstring>

#include "host/ir/dtype.h"
#include "ir_test_util.h"

namespace tfh::ir::test {
namespace {

std::unique_ptr<Tensor> typed(int32_t dtype, std::vector<int64_t> dims,
                              std::function<void(onnx::TensorProto&)> fill) {
  auto p = std::make_unique<onnx::TensorProto>();
  p->set_name("t");
  p->set_data_type(dtype);
  for (int64_t d : dims) p->add_dims(d);
  fill(*p);
  return std::make_unique<Tensor>(std::move(p));
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  std::vector<T> out(t.nbytes() / sizeof(T));
  std::memcpy(out.data(), t.data(), t.nbytes());
  return out;
}

TEST(Tensor, SizesAndCounts) {
  auto scalar = typed(onnx::TensorProto::DOUBLE, {}, [](auto& p) { p.add_double_data(2.5); });
  EXPECT_EQ(scalar->num_elements(), 1u);
  EXPECT_EQ(scalar->nbytes(), 8u);
  auto empty = typed(onnx::TensorProto::FLOAT, {3, 0}, [](auto&) {});
  EXPECT_EQ(empty->num_elements(), 0u);
  EXPECT_EQ(empty->nbytes(), 0u);
  auto strings = typed(onnx::TensorProto::STRING, {2}, [](auto& p) {
    p.add_string_data("a");
    p.add_string_data("b");
  });
  EXPECT_EQ(strings->nbytes(), 0u);
  EXPECT_EQ(strings->data(), nullptr);
  auto int4 = typed(22, {5}, [](auto& p) { p.set_raw_data(std::string(3, '\x11')); });  // INT4
  EXPECT_EQ(int4->nbytes(), 3u);
  EXPECT_EQ(dtype_bytes(onnx::TensorProto::BFLOAT16, 3), 6u);
  EXPECT_EQ(dtype_bytes(onnx::TensorProto::STRING, 3), SIZE_MAX);
}

TEST(Tensor, TypedFieldsBecomeRawBytes) {
  auto f = typed(onnx::TensorProto::FLOAT, {2}, [](auto& p) {
    p.add_float_data(1.5f);
    p.add_float_data(-2.f);
  });
  EXPECT_EQ(values<float>(*f), (std::vector<float>{1.5f, -2.f}));
  EXPECT_TRUE(f->proto().has_raw_data());
  EXPECT_EQ(f->proto().float_data_size(), 0);  // converted once, on first access

  auto h = typed(onnx::TensorProto::FLOAT16, {2}, [](auto& p) {
    p.add_int32_data(0x3c00);  // 1.0
    p.add_int32_data(0xc000);  // -2.0
  });
  EXPECT_EQ(values<uint16_t>(*h), (std::vector<uint16_t>{0x3c00, 0xc000}));

  auto b = typed(onnx::TensorProto::BOOL, {3}, [](auto& p) {
    for (int v : {1, 0, 1}) p.add_int32_data(v);
  });
  EXPECT_EQ(values<uint8_t>(*b), (std::vector<uint8_t>{1, 0, 1}));

  auto i8 = typed(onnx::TensorProto::INT8, {2}, [](auto& p) {
    p.add_int32_data(-1);
    p.add_int32_data(5);
  });
  EXPECT_EQ(values<int8_t>(*i8), (std::vector<int8_t>{-1, 5}));

  auto i64 = typed(onnx::TensorProto::INT64, {2}, [](auto& p) {
    p.add_int64_data(-7);
    p.add_int64_data(int64_t{1} << 40);
  });
  EXPECT_EQ(values<int64_t>(*i64), (std::vector<int64_t>{-7, int64_t{1} << 40}));

  auto u32 = typed(onnx::TensorProto::UINT32, {2}, [](auto& p) {
    p.add_uint64_data(4000000000u);
    p.add_uint64_data(3);
  });
  EXPECT_EQ(values<uint32_t>(*u32), (std::vector<uint32_t>{4000000000u, 3}));

  auto u64 =
      typed(onnx::TensorProto::UINT64, {1}, [](auto& p) { p.add_uint64_data(~uint64_t{0}); });
  EXPECT_EQ(values<uint64_t>(*u64), (std::vector<uint64_t>{~uint64_t{0}}));

  auto c64 = typed(onnx::TensorProto::COMPLEX64, {1}, [](auto& p) {
    p.add_float_data(1.f);
    p.add_float_data(2.f);
  });
  EXPECT_EQ(values<float>(*c64), (std::vector<float>{1.f, 2.f}));
}

TEST(Tensor, MutableDataAndRelease) {
  auto t =
      std::make_unique<Tensor>(std::make_unique<onnx::TensorProto>(float_tensor("w", {2}, {1, 2})));
  static_cast<float*>(t->mutable_data())[1] = 9.f;
  EXPECT_EQ(values<float>(*t), (std::vector<float>{1.f, 9.f}));
  auto p = t->release_proto();
  EXPECT_EQ(p->name(), "w");
  EXPECT_EQ(p->raw_data().size(), 8u);
}

TEST(Tensor, MalformedTypedDataThrows) {
  auto t = typed(onnx::TensorProto::FLOAT, {3}, [](auto& p) { p.add_float_data(1.f); });
  EXPECT_NE(error_of([&] { t->data(); }).find("tensor 't'"), std::string::npos);
}

}  // namespace
}  // namespace tfh::ir::test
