// The one graph representation of tfhost: loaded once, edited in place by every pass, saved once.
//
// Lossless by construction: a Model keeps the ModelProto it was read from as a "skeleton" (opset
// imports, metadata, doc strings, functions, training info, ...) with the main graph's nodes,
// initializers, inputs, outputs and value_info moved out into Node/Value objects; save() moves them
// back in the same order. Weights are moved (TensorProto pointers released from the protobuf), never
// copied; external data is memory-mapped.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <onnx/onnx_pb.h>

#include "host/ir/shape_inference.h"

namespace tfh::ir {

class Graph;
class Node;
class Value;

// A read-only memory mapping of an external-data file, shared by every tensor that points into it.
class MappedFile;

// An initializer's data. Owns the TensorProto moved out of the model; when the tensor's data lives
// in an external file, the bytes are a view into a shared mapping of that file.
class Tensor {
 public:
  explicit Tensor(std::unique_ptr<onnx::TensorProto> proto);
  Tensor(std::unique_ptr<onnx::TensorProto> proto, std::shared_ptr<MappedFile> mapping,
         size_t offset, size_t length);
  ~Tensor();

  const std::string& name() const { return proto_->name(); }
  int32_t dtype() const { return proto_->data_type(); }
  const std::vector<int64_t>& dims() const { return dims_; }
  size_t num_elements() const;
  size_t nbytes() const;  // num_elements * element size (string tensors: 0; int4: packed)
  // Contiguous little-endian element data. Typed fields (float_data, ...) are converted to raw_data
  // on first access (only then does the saved representation change). Strings: nullptr. Throws
  // tfh::Error for external data that was not loaded (LoadOptions::load_external_data = false).
  const void* data() const;
  void* mutable_data();   // materialises a private copy of mapped external data first
  bool is_external() const { return mapping_ != nullptr; }
  // Data still lives in an external file that was not mapped (load_external_data = false).
  bool is_unloaded_external() const;
  // Gives the memory of the bytes back once nothing will read them again (the runtime packed them
  // into its own layout). Memory-mapped data: its pages are dropped and would fault back in from
  // the file if read. In-memory data: freed; data() then throws, so the model can no longer be
  // saved or run by another session. Only the runtime's owner of a model may ask for this.
  void release_data();
  bool released() const { return released_; }
  onnx::TensorProto& proto() { return *proto_; }
  const onnx::TensorProto& proto() const { return *proto_; }
  // The proto, self-contained (mapped external data is copied into raw_data first).
  std::unique_ptr<onnx::TensorProto> release_proto();

 private:
  std::unique_ptr<onnx::TensorProto> proto_;
  std::vector<int64_t> dims_;
  std::shared_ptr<MappedFile> mapping_;
  size_t offset_ = 0, length_ = 0;
  bool released_ = false;
};

// An edge: a graph input, an initializer, or a node output.
class Value {
 public:
  const std::string& name() const { return name_; }
  Node* producer() const { return producer_; }
  size_t producer_output() const { return producer_output_; }
  // One (node, input slot) entry per use, in no particular order.
  const std::vector<std::pair<Node*, size_t>>& consumers() const { return consumers_; }
  bool is_graph_input() const { return is_graph_input_; }
  bool is_graph_output() const { return is_graph_output_; }
  Tensor* initializer() const { return initializer_.get(); }
  // Defined by a graph.sparse_initializer entry (kept verbatim in the model skeleton).
  bool is_sparse_initializer() const { return is_sparse_initializer_; }
  // Type and shape, as ONNX's ValueInfoProto (kept verbatim from the model when it had one:
  // graph input/output or value_info entry). has_info() is false when nothing is known.
  bool has_info() const { return info_ != nullptr; }
  const onnx::ValueInfoProto& info() const;  // an empty proto when !has_info()
  // Creates an empty one named like the value; a value that is not a graph input/output then
  // gets a graph.value_info entry on save.
  onnx::ValueInfoProto& mutable_info();
  int32_t elem_type() const;             // 0 when unknown (initializers: the tensor's type)
  int64_t rank() const;                  // -1 when unknown (initializers: the tensor's rank)

 private:
  friend class Graph;
  std::string name_;
  Node* producer_ = nullptr;
  size_t producer_output_ = 0;
  std::vector<std::pair<Node*, size_t>> consumers_;
  bool is_graph_input_ = false, is_graph_output_ = false, is_sparse_initializer_ = false;
  bool in_value_info_ = false;  // had (or gained) a graph.value_info entry
  size_t value_info_index_ = SIZE_MAX;  // position in the loaded graph.value_info, for save
  std::unique_ptr<Tensor> initializer_;
  std::unique_ptr<onnx::ValueInfoProto> info_;
  // The graph.output declaration of a value that was declared as a graph input first (a value
  // passed straight through): info_ holds the input's declaration, and save writes this one in
  // the output list, so both keep their own type and doc_string.
  std::unique_ptr<onnx::ValueInfoProto> output_info_;
};

class Node {
 public:
  // The input slot recorded in Value::consumers() for a use through implicit_inputs().
  static constexpr size_t kImplicitSlot = SIZE_MAX;

  const std::string& name() const { return name_; }
  const std::string& op_type() const { return op_type_; }
  const std::string& domain() const { return domain_; }  // "" or "ai.onnx" both mean ONNX
  const std::string& doc_string() const { return doc_string_; }
  const std::vector<Value*>& inputs() const { return inputs_; }   // nullptr = omitted optional
  const std::vector<Value*>& outputs() const { return outputs_; } // nullptr = omitted optional
  // Values from the enclosing graph that subgraph attributes (If/Loop/Scan bodies) read, found
  // when the model is loaded. replace_all_uses/rename_value rewrite the names inside the bodies.
  const std::vector<Value*>& implicit_inputs() const { return implicit_inputs_; }
  const std::vector<onnx::AttributeProto>& attributes() const { return attrs_; }
  const onnx::AttributeProto* attr(const std::string& name) const;
  onnx::AttributeProto& set_attr(const std::string& name);  // found or appended
  bool remove_attr(const std::string& name);
  void set_name(std::string n) { name_ = std::move(n); }

 private:
  friend class Graph;
  std::string name_, op_type_, domain_, doc_string_;
  std::vector<Value*> inputs_, outputs_, implicit_inputs_;
  std::vector<onnx::AttributeProto> attrs_;
  bool removed_ = false;
  // The loaded NodeProto minus inputs/outputs/attributes: keeps field presence and unknown fields.
  std::unique_ptr<onnx::NodeProto> proto_;
  std::list<std::unique_ptr<Node>>::iterator pos_;  // in Graph::nodes_, for O(1) removal
};

// "node 'NAME'", or "unnamed OP node producing 'OUT'" for error messages.
std::string describe(const Node& n);

// The main graph of a model. Node order is the model's order until a pass changes it.
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Nodes in order; a removed node disappears from this list at once (the Node object stays alive
  // until the graph is destroyed, so pointers held by a pass do not dangle). Do not remove nodes
  // while iterating this list.
  const std::list<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  size_t num_nodes() const { return nodes_.size(); }
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  const std::vector<Value*>& initializers() const { return initializers_; }  // in model order
  Value* find(const std::string& name) const;
  const std::string& name() const { return name_; }

  // Edits. Throw tfh::Error (host/util/error.h) on misuse, naming the node/value.
  Value* add_value(const std::string& name);  // a fresh, unproduced value; error if it exists
  Value* get_or_add_value(const std::string& name);
  Node* add_node(const std::string& name, const std::string& op_type, const std::string& domain,
                 const std::vector<Value*>& inputs, const std::vector<Value*>& outputs);
  void remove_node(Node* n);  // detaches inputs and outputs; outputs keep existing, unproduced
  void set_input(Node* n, size_t i, Value* v);
  // Re-points output slot k (growing the list) at v, which must be unproduced (nullptr: omit the
  // output). The old output stays, unproduced.
  void set_output(Node* n, size_t k, Value* v);
  void replace_all_uses(Value* from, Value* to);  // node inputs and graph outputs
  void rename_value(Value* v, const std::string& name);
  Value* add_initializer(std::unique_ptr<Tensor> t);
  void remove_initializer(Value* v);              // the value stays if still used as an input
  void add_graph_input(Value* v);
  void add_graph_output(Value* v);
  void set_graph_output(size_t i, Value* v);
  void remove_graph_input(Value* v);   // every occurrence; the value stays
  void remove_graph_output(Value* v);  // every occurrence; the value stays
  void remove_value(Value* v);  // only for values with no producer, no consumers, no role
  // `prefix` if no value has that name, else `prefix_N`; never returns the same name twice, so
  // several names can be taken before their values are added.
  std::string unique_name(const std::string& prefix);

  // Names defined more than once in the loaded model (two nodes producing one name, or a node
  // output named like a graph input/initializer, or a repeated initializer). Not a load error: both
  // nodes are kept, and the Value's producer is the LAST definition; an earlier duplicate
  // initializer is dropped. validate() reports what is still wrong, so the core pass can repair it.
  const std::vector<std::string>& redefined_names() const { return redefined_; }

  // Kahn's algorithm, stable with respect to the current order. Throws naming a node on a cycle.
  void topological_sort();
  // Checks invariants: every input produced or a graph input/initializer, no name defined twice,
  // no cycle. Throws tfh::Error naming the node/value at fault.
  void validate() const;

 private:
  friend class Model;
  using TensorFactory = std::function<std::unique_ptr<Tensor>(std::unique_ptr<onnx::TensorProto>)>;
  // graph_io.cc: move the main graph's contents out of a GraphProto (load) ...
  void take_from(onnx::GraphProto& g, const std::string& path, const TensorFactory& make_tensor);
  void add_loaded_node(std::unique_ptr<onnx::NodeProto> proto);
  void check_defined(const std::string& path) const;
  // ... and lend them back to it for serialization (save), then take them back again.
  void lend_to(onnx::GraphProto& g);
  void take_back(onnx::GraphProto& g);
  std::vector<onnx::ValueInfoProto*> value_info_to_save() const;
  static bool is_defined(const Value* v);  // produced, graph input or (sparse) initializer
  std::vector<Node*> topo_order() const;  // throws naming a node on a cycle
  void add_use(Value* v, Node* n, size_t slot);
  void drop_use(Value* v, Node* n, size_t slot);
  void drop_producer(Value* v, Node* n);
  void set_implicit_inputs(Node* n);
  Value* check_value(Value* v, const char* what) const;
  Node* check_node(Node* n) const;

  std::string name_;
  std::list<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Node>> removed_nodes_;
  std::unordered_map<std::string, std::unique_ptr<Value>> values_;
  std::vector<Value*> inputs_, outputs_, initializers_;
  // value_info entries that did not attach to a value (no such name, or the name's info came from
  // a graph input/output), with their load position; written back verbatim.
  std::vector<std::pair<size_t, std::unique_ptr<onnx::ValueInfoProto>>> extra_value_info_;
  std::vector<std::unique_ptr<onnx::ValueInfoProto>> lent_infos_;  // temporaries during save
  std::vector<std::string> redefined_;
  std::unordered_set<std::string> generated_names_;  // handed out by unique_name()
  size_t name_counter_ = 0;
};

struct LoadOptions {
  bool load_external_data = true;  // mmap external data (false: keep references only)
};

struct SaveOptions {
  // Write every initializer larger than `external_threshold` bytes to `<output>.data`.
  bool use_external_data = false;
  size_t external_threshold = 1024;
  // Switch to external data automatically when the serialized model would pass 2 GB.
  bool auto_external_above_2gb = true;
};

class Model {
 public:
  // Reads an ONNX file (streamed from disk, no whole-file buffer). Throws tfh::Error naming the
  // file (and the node/tensor) on anything wrong: missing, not a regular file, not ONNX,
  // truncated, bad tensor sizes, external data outside the model's folder, dangling inputs,
  // cycles. External data is resolved wherever ONNX allows it: initializers (mapped), and
  // attribute tensors, subgraph initializers, sparse tensors, functions and training_info (copied
  // into raw_data; see ExternalDataReader::resolve_other_tensors).
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});
  // Writes to a temporary file next to `path` (`<path>.tmp.<pid>`, and `<path>.data.tmp.<pid>`
  // for external data), renamed to `path` only when complete; on failure, or when interrupted by
  // SIGINT/SIGTERM/SIGHUP, nothing at `path` changes and the temporaries are removed. Creates the
  // parent directory. May be called repeatedly; the model stays usable. Refuses (see
  // check_save_path) to write over the loaded model or any file it references. Tensors whose
  // data was not loaded (load_external_data = false) keep their external_data entries verbatim,
  // so such a model can only be saved into its own folder.
  void save(const std::string& path, const SaveOptions& opts = {});
  // Throws the tfh::Error that save(path, opts) would throw because of the output path itself,
  // writing nothing: `path` (or `<path>.data`) exists and is not a regular file; `path` is the
  // loaded model's file or one of the external data files it references; with external data,
  // `<path>.data` is one of those. A caller can refuse a bad output before a long optimization.
  void check_save_path(const std::string& path, const SaveOptions& opts = {}) const;

  Graph& graph() { return graph_; }
  const Graph& graph() const { return graph_; }
  const std::string& path() const { return path_; }
  // Opset of a domain ("" = ONNX), -1 if not imported.
  int64_t opset(const std::string& domain) const;
  void set_opset(const std::string& domain, int64_t version);
  onnx::ModelProto& skeleton() { return skeleton_; }  // everything but the main graph's contents

  // Runs ONNX shape inference (plus the registered contrib-op hooks) and stores the results in
  // value infos. Never fails on an op it does not know; returns the number of values whose info
  // was created or refined. Hooks win over ONNX schemas for the ops they are registered for.
  size_t infer_shapes(const ShapeHooks* hooks = nullptr);

 private:
  std::string loaded_file() const;
  void check_data_path(const std::string& path) const;
  void check_unloaded_references(const std::string& path);

  onnx::ModelProto skeleton_;
  Graph graph_;
  std::string path_;
  std::string dir_;  // the loaded model's folder, canonical ("" when not loaded from a file)
  // Every external data file the loaded model references (absolute, normalised): a save must
  // leave them, and the model file itself, untouched.
  std::vector<std::string> data_files_;
};

}  // namespace tfh::ir
