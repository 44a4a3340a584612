// A read-only memory mapping of a whole file (external tensor data), shared by every tensor that
// points into it. The mapping keeps the file's inode alive, so a file replaced on disk by a rename
// does not disturb tensors that still read from it; one truncated in place would (SIGBUS), which
// is why Model::save never writes over a file the loaded model references.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tfh::ir {

class MappedFile {
 public:
  // Throws tfh::Error naming `path` when the file cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tfh::ir
