// External tensor data: checked and memory-mapped at load, written to `<output>.data` at save.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "host/util/file.h"

namespace tfh::ir {

class MappedFile;
class Tensor;

// Where a tensor that is not a main-graph initializer sits, for error messages ("attribute 'value'
// of node 'c'"), built only when asked. `subgraph_initializer`: an initializer of a subgraph of
// the main graph (If/Loop/Scan bodies, at any depth), which a save with external data moves to
// the data file, as ONNX's save_model(save_as_external_data=True) does; attribute tensors stay
// inline there too (its convert_attribute=False default), as do sparse tensors, functions and
// training_info.
struct TensorSite {
  const std::function<std::string()>& where;
  bool subgraph_initializer;
};
using TensorVisitor = std::function<void(onnx::TensorProto&, const TensorSite&)>;

// Calls `fn` for every TensorProto of `m` except the main graph's initializers (which are Tensors
// of the Graph): TENSOR/TENSORS and SPARSE_TENSOR(S) attributes (Constant's `value`, ...), the
// initializers and sparse initializers of subgraphs (If/Loop/Scan bodies, any GRAPH/GRAPHS
// attribute, recursively), the main graph's sparse initializers, the nodes of model-local
// functions, and the graphs of training_info.
void for_each_other_tensor(onnx::ModelProto& m, const TensorVisitor& fn);

// Turns the initializers of one model file into Tensors: checks their data size against dims and
// type, and maps external data (one shared mapping per file) after checking that its location
// stays inside the model's folder and its range inside the file.
class ExternalDataReader {
 public:
  ExternalDataReader(std::string model_path, bool map_data);
  std::unique_ptr<Tensor> make_tensor(std::unique_ptr<onnx::TensorProto> proto);
  // The model's other tensors with external data (see for_each_other_tensor), checked the same
  // way. When mapping, their data is copied into raw_data and the external reference dropped:
  // passes, the runtime and the plugin ABI read attribute tensors from the proto, and a copied
  // attribute could not carry a mapping along. Without mapping, references are kept verbatim.
  void resolve_other_tensors(onnx::ModelProto& m);
  // Every external data file the model references (mapped or not), as absolute, normalised paths:
  // what a save must never overwrite.
  std::vector<std::string> files() const;
  // The model's folder, canonical.
  const std::string& dir();

 private:
  struct Reference {
    std::string location;
    size_t offset = 0, length = SIZE_MAX;
  };
  Reference reference(const onnx::TensorProto& t, const std::string& subject) const;
  size_t element_count(const onnx::TensorProto& t, const std::string& subject) const;
  // The mapping holding the bytes of `t`, after checking them; sets `offset` and `length`.
  std::shared_ptr<MappedFile> map(const onnx::TensorProto& t, const std::string& subject,
                                  size_t nbytes, size_t& offset, size_t& length);
  std::unique_ptr<Tensor> make_external(std::unique_ptr<onnx::TensorProto> proto,
                                        const std::string& subject, size_t nbytes);
  void check_location(const std::string& location, const std::string& subject) const;
  std::string resolve(const std::string& location, const std::string& subject);
  void check_inline_size(const onnx::TensorProto& t, const std::string& subject, size_t n,
                         size_t nbytes) const;

  std::string model_path_;
  bool map_data_;
  std::string dir_;  // the model's folder, canonical; computed on first use
  std::map<std::string, std::shared_ptr<MappedFile>> files_;
  std::set<std::string> unmapped_files_;  // referenced but not mapped (map_data_ false)
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
