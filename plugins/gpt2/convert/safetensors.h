// A reader for the safetensors format (Hugging Face's weight files): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {...}}, then the tensors' bytes. The file is memory-mapped; every entry is checked against the
// file before it is handed out (offsets inside the data, size = elements x dtype size).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gpt2 {

struct SafeTensor {
  std::string dtype;            // "F32", "F16", "BF16", "F64", "I64", "I32", ...
  std::vector<int64_t> shape;
  const unsigned char* data = nullptr;
  size_t nbytes = 0;
  size_t num_elements() const;
};

class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::string& path);  // throws tfh::sdk::Error naming the file
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

  const SafeTensor* find(const std::string& name) const;  // null when absent
  // The tensor as float32 values (F32, F16 and BF16 are converted); throws naming it otherwise.
  std::vector<float> floats(const std::string& name, const std::vector<int64_t>& want_shape) const;
  const std::string& path() const { return path_; }

 private:
  void parse_header();  // fills tensors_ from the mapped file; throws naming the file
  std::string path_;
  void* base_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, SafeTensor> tensors_;
};

}  // namespace gpt2
