// External tensor data: checked and memory-mapped at load, written to `<output>.data` at save.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <onnx/onnx_pb.h>

#include "host/util/file.h"

namespace tfh::ir {

class MappedFile;
class Tensor;

// Turns the initializers of one model file into Tensors: checks their data size against dims and
// type, and maps external data (one shared mapping per file) after checking that its location
// stays inside the model's folder and its range inside the file.
class ExternalDataReader {
 public:
  ExternalDataReader(std::string model_path, bool map_data);
  std::unique_ptr<Tensor> make_tensor(std::unique_ptr<onnx::TensorProto> proto);

 private:
  std::unique_ptr<Tensor> make_external(std::unique_ptr<onnx::TensorProto> proto, size_t nbytes);
  std::string resolve(const std::string& location, const std::string& tensor);
  void check_inline_size(const onnx::TensorProto& t, size_t n, size_t nbytes) const;

  std::string model_path_;
  bool map_data_;
  std::string dir_;  // the model's folder, canonical; computed on first use
  std::map<std::string, std::shared_ptr<MappedFile>> files_;
};

// Appends tensor data to a new external data file at aligned offsets. The file is created on the
// first append (under a temporary name the caller renames).
class ExternalDataWriter {
 public:
  explicit ExternalDataWriter(std::string path) : path_(std::move(path)) {}
  size_t append(const void* data, size_t n);  // returns the offset written at
  bool used() const { return size_ > 0; }
  void finish();  // flushes to disk and closes; throws tfh::Error naming the file

 private:
  std::string path_;
  UniqueFd fd_;
  size_t size_ = 0;
};

}  // namespace tfh::ir
