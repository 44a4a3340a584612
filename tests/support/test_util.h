// Helpers shared by every test folder: repository paths, temporary folders, running a command,
// reading ONNX test-data sets.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

namespace tfh::test {

// Absolute path of a file in the source tree / build tree.
std::string source_path(const std::string& rel);
std::string binary_path(const std::string& rel);

// A fresh folder under the build tree's test_tmp/, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string out, err;
};
// Runs argv[0] (no shell) with extra environment entries "K=V"; captures stdout and stderr.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env = {});

std::string read_file(const std::string& path);  // throws std::runtime_error if unreadable
void write_file(const std::string& path, const std::string& bytes);
bool file_exists(const std::string& path);
std::vector<std::string> list_dir(const std::string& path);  // names, sorted

onnx::ModelProto read_model_proto(const std::string& path);
void write_model_proto(const onnx::ModelProto& m, const std::string& path);

// A folder `dir` holding the test-data sets (the subfolders) of the model folder `src`, for
// `tfhost check dir` once a model.onnx is written there; returns `dir`.
std::string copy_test_data_sets(const std::string& src, const std::string& dir);

// Reads <dir>/<prefix>_0.pb, _1.pb, ... (ONNX test-data layout) until one is missing.
std::vector<onnx::TensorProto> read_test_data(const std::string& dir, const std::string& prefix);

// The inputs `tfhost perf --save_inputs DIR` wrote (DIR/inputs.json + .bin files), as integers
// (float values truncated): for tests of dummy-input generators.
struct SavedInput {
  std::string name, type;
  std::vector<int64_t> dims;
  std::vector<int64_t> values;
};
std::vector<SavedInput> saved_inputs(const std::string& dir);

// An environment variable set (or unset) while it lives, then as it was.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::string name) : name_(std::move(name)) {
    if (const char* v = std::getenv(name_.c_str())) saved_ = v, had_ = true;
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), saved_.c_str(), 1);
    else unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  void set(const std::string& value) { setenv(name_.c_str(), value.c_str(), 1); }
  void unset() { unsetenv(name_.c_str()); }

 private:
  std::string name_, saved_;
  bool had_ = false;
};

}  // namespace tfh::test
