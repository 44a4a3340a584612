// The reference engine itself: ONNX Runtime must reproduce PyTorch's outputs for every bundled
// export (its test_data_set_*), or the before/after checks of every other test mean nothing.
#include <gtest/gtest.h>

#include "support/ort_reference.h"
#include "support/test_util.h"

namespace tfh::test {
namespace {

class BundledModel : public ::testing::TestWithParam<std::string> {};

TEST_P(BundledModel, OnnxRuntimeReproducesPyTorch) {
  const std::string dir = source_path("models/" + GetParam());
  for (const std::string set : {"test_data_set_0", "test_data_set_1"}) {
    const auto inputs = read_test_data(dir + "/" + set, "input");
    const auto expected = read_test_data(dir + "/" + set, "output");
    ASSERT_FALSE(inputs.empty()) << set;
    ASSERT_FALSE(expected.empty()) << set;
    const auto actual = ort_run(dir + "/model.onnx", inputs);
    const Diff d = compare_outputs(expected, actual);
    ASSERT_TRUE(d.shapes_match) << d.message;
    EXPECT_LT(d.max_abs, 1e-4) << GetParam() << " " << set << ": " << d.where;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, BundledModel,
                         ::testing::Values("bert_tiny_opset14", "bert_tiny_opset17",
                                           "distilbert_tiny_opset14", "roberta_tiny_opset14",
                                           "albert_tiny_opset14", "gpt2past_tiny_opset14",
                                           "gpt2past_tiny_opset14_fmask", "gpt2nopast_tiny_opset14",
                                           "gpt2hf_tiny_opset14_withpast"));

TEST(CompareOutputs, FindsTheLargestDifference) {
  onnx::TensorProto a, b;
  for (auto* t : {&a, &b}) {
    t->set_name("y");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(3);
  }
  for (float v : {1.f, 2.f, 3.f}) a.add_float_data(v);
  for (float v : {1.f, 2.5f, 3.f}) b.add_float_data(v);
  const Diff d = compare_outputs({a}, {b});
  EXPECT_DOUBLE_EQ(d.max_abs, 0.5);
  EXPECT_EQ(d.where, "output 'y' element 1");
  b.set_dims(0, 4);
  b.add_float_data(0);
  EXPECT_FALSE(compare_outputs({a}, {b}).shapes_match);
}

}  // namespace
}  // namespace tfh::test
