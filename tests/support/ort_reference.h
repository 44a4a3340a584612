// ONNX Runtime (CPU, onnxruntime-node from tools/ort, installed by scripts/setup.sh) as the
// reference engine: tests run a model before and after a pass, or an optimized model, through it
// and compare outputs. A missing install is a test failure, never a skip.
#pragma once

#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

namespace tfh::test {

// Runs `model_path` with `inputs` (matched to graph inputs by TensorProto name) and returns the
// outputs in graph-output order, each named. Throws std::runtime_error with ONNX Runtime's message.
// `opt_level`: ORT graph optimization level ("disabled" by default: the model as written).
std::vector<onnx::TensorProto> ort_run(const std::string& model_path,
                                       const std::vector<onnx::TensorProto>& inputs,
                                       const std::string& opt_level = "disabled");

struct Diff {
  double max_abs = 0;      // largest |a - b| over all elements of all outputs
  std::string where;       // "output 'logits' element 17" for the largest one
  bool shapes_match = true;
  std::string message;     // empty when shapes and types match
};
// Compares two output lists element-wise (float16/float/double/int/bool).
Diff compare_outputs(const std::vector<onnx::TensorProto>& a, const std::vector<onnx::TensorProto>& b);

// Elements of a tensor as doubles (typed fields or raw_data).
std::vector<double> tensor_values(const onnx::TensorProto& t);

}  // namespace tfh::test
