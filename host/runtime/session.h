// runtime::Session: plans a model once (node order, one kernel per node, constants evaluated,
// value lifetimes) and runs it many times. Activations live in a pool of buffers that is reused
// across nodes (a buffer returns to the pool after its value's last reader) and across runs; shapes
// are whatever the inputs of a run make them (symbolic dims bound per run).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/ir/graph.h"
#include "host/plugin/host_tensor.h"
#include "host/runtime/kernel_registry.h"

namespace tfh::runtime {

using plugin::HostTensor;

// Whether a node whose inputs are all constants may be computed once, ahead of any run: not
// random ops, and not ops that make sequence values (those live only inside a run). The session
// folds such nodes at plan time; core.constant_folding stores them in the model.
bool foldable(const ir::Node& n);

// A tensor that owns its bytes (inputs given to run(), outputs returned from it).
std::unique_ptr<HostTensor> make_tensor(TfhDataType type, std::vector<int64_t> dims);
// An owned copy of `t`.
std::unique_ptr<HostTensor> copy_tensor(const HostTensor& t);

struct SessionOptions {
  int threads = 0;  // 0: every core OpenMP sees
  TfhDevice device = TFH_DEVICE_CPU;
  bool profile = false;  // record per-node times (node_times())
  // Give back the memory of initializers that every reader has copied into its own layout
  // (packed GEMM weights, TfhKernelApi::constant_input_consumed). The model can then not be saved
  // or planned again: only for a caller that loaded the model just to run it.
  bool release_consumed_constants = false;
  // Plan only the nodes this accepts (null: all). With a filter that accepts only nodes whose
  // inputs are constants, the session is a constant evaluator: every accepted node is computed
  // at plan time and constant() hands out the results (core.constant_folding).
  std::function<bool(const ir::Node&)> node_filter;
  // CUDA sessions: run repeated shapes as CUDA graphs. The first run with a set of input shapes
  // runs eagerly (uploading constants, planning GEMMs, growing the pool), the second captures the
  // device work into a graph and launches it, later ones only copy the inputs in and replay it.
  // A model that moves values between host and device mid-run cannot be captured: the session
  // then runs eagerly and graph_stats().refused says which node made it so (see GraphStats for
  // refusals of one set of shapes only). Ignored with `profile` (per-node times need eager runs).
  bool cuda_graph = false;
};

// A tensor in a CUDA session's device memory (IO binding): `data` is a device pointer. The
// memory goes back, stream-ordered, when the last copy of `memory` goes; it may outlive the
// session. view() describes it as a HostTensor that does not own its bytes (data is still a
// device pointer: never read it on the host).
struct DeviceTensor {
  TfhDataType type = TFH_TYPE_UNDEFINED;
  std::vector<int64_t> dims;
  size_t nbytes = 0;
  void* data = nullptr;
  std::shared_ptr<void> memory;
  HostTensor view() const;
};

// One input of a run: a host tensor, or a DeviceTensor of the same (CUDA) session (one made by
// another session is written on that session's stream, which this one does not wait for).
// `donate`: the run may write into the feed's memory and return it as an output, without a
// copy, where a kernel updates its input in place (Attention's key/value buffer shared by past
// and present takes the past's buffer). A device feed's memory is then shared by that output
// (and holds the output afterwards). A host feed must own its bytes (make_tensor): when a host
// output takes them they move into it and the feed is left without data. No other feed may
// share a donated feed's memory. With CUDA graphs the feed is copied into
// the graph's own buffer unless it already is that buffer (the output of the last run with
// these shapes), and the output is the graph's buffer: feeding it back costs no copy.
struct Feed {
  std::string name;
  const HostTensor* host = nullptr;
  const DeviceTensor* device = nullptr;
  bool donate = false;
};

// What a session with options.cuda_graph did: graphs captured, runs that replayed one, and why a
// capture was refused (the first reason; empty while none was). A refusal is for good when the
// model itself crosses between CPU and GPU mid-run (every shape would); it holds for one set of
// input shapes when only those shapes need something a graph cannot hold (a shape-arithmetic
// value too large to keep on the GPU, say, or any other error while capturing after which the
// same run succeeds eagerly): `refused_shapes` counts those, which run eagerly while other shapes
// keep their graphs.
struct GraphStats {
  size_t captured = 0, replays = 0;
  size_t nodes = 0;  // operations (kernels, copies, fills) in the graph captured last
  std::string refused;
  bool refused_for_good = false;
  size_t refused_shapes = 0;
  // "" without a refusal, else "not capturable: <why>" or "<n> input shape set(s) not
  // capturable: <why>" (for the CLI's reports).
  std::string refusal_text() const;
};

// What a CUDA session's last run copied between the CPU and the GPU mid-run (not the feeds and
// outputs at its edges): values made on one side and read on the other, each counted once per
// run, their bytes, and the first of them described. Shape arithmetic the GPU reads is uploaded once per
// distinct value and not counted; a replayed CUDA graph copies nothing.
struct DeviceTraffic {
  size_t copies = 0, bytes = 0;
  std::string first;
};

struct NodeTime {
  const ir::Node* node;
  double start_ms;  // from the start of the run
  double ms;
};

class Session {
 public:
  // `model` and `kernels` (with the plugins behind them) must outlive the session, and the model
  // stay unchanged while it exists. Throws tfh::Error naming the node when no kernel can run it
  // or a kernel cannot be created. This overload never releases the model's memory.
  Session(const ir::Model& model, const KernelRegistry& kernels, SessionOptions opts = {});
  // The same; with options.release_consumed_constants the model's packed weights are freed.
  Session(ir::Model& model, const KernelRegistry& kernels, SessionOptions opts);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Graph inputs that need a value (initializers listed as inputs have a default).
  const std::vector<const ir::Value*>& inputs() const { return inputs_; }
  const std::vector<const ir::Value*>& outputs() const { return outputs_; }

  // Runs once. `feeds`: name -> tensor for every required input (others may be given to override
  // an initializer-backed input). Returns the graph outputs, in order. Throws tfh::Error naming the
  // input or node at fault.
  std::vector<std::unique_ptr<HostTensor>> run(
      const std::vector<std::pair<std::string, const HostTensor*>>& feeds);
  // The same with Feeds: device tensors and donated inputs too.
  std::vector<std::unique_ptr<HostTensor>> run_feeds(const std::vector<Feed>& feeds);

  // IO binding (CUDA sessions): inputs that may already be device memory, outputs left on the
  // device (no copy to the host, no wait for the GPU: the work is queued on the session's
  // stream, which orders every later run, to_device and to_host after it).
  std::vector<DeviceTensor> run_device(const std::vector<Feed>& feeds);
  // A device copy of `t` (stream-ordered; `t` may be reused when this returns, which holds for
  // pageable memory such as every HostTensor tfhost makes; page-locked memory would be read later).
  DeviceTensor to_device(const HostTensor& t);
  // A host copy of `t`, after the work queued before it (waits for the GPU).
  std::unique_ptr<HostTensor> to_host(const DeviceTensor& t);
  // Waits until the GPU has done the work queued so far (a no-op on the CPU).
  void synchronize();
  GraphStats graph_stats() const;
  DeviceTraffic device_traffic() const;

  // The value's tensor when it is a constant of the plan (an initializer, or the output of a node
  // computed at plan time because its inputs are all constants); null otherwise.
  const HostTensor* constant(const ir::Value* v) const;

  // Bytes of initializers given back (release_consumed_constants).
  size_t released_bytes() const;
  // Bytes held by the activation pool (what the plan needs at its peak, for the largest run so
  // far) and the peak of bytes in use by live activations during the last run.
  size_t pool_bytes() const;
  size_t last_peak_bytes() const;
  // Per-node times of the last run, in execution order (empty unless options.profile).
  const std::vector<NodeTime>& node_times() const { return node_times_; }
  // "tfhost" or the plugin name of the kernel chosen for each node, in execution order.
  std::vector<std::pair<const ir::Node*, std::string>> kernel_choices() const;
  // The kernel each step runs, by name, with the one it may hand a case to: "a (then b)".
  std::vector<std::pair<const ir::Node*, std::string>> kernel_names() const;
  // Where each step runs, in execution order: on a CUDA session the GPU; the CPU for shape
  // arithmetic (values from input shapes and constants alone, kept on the host); a view (Reshape,
  // Squeeze, Unsqueeze, Flatten, Identity: new dims over its input's bytes, on the input's side);
  // or the CPU because no CUDA kernel takes the node (`why`: what the CUDA kernels said, if one
  // was asked). Every step is Cpu on a CPU session.
  struct Placement {
    enum class Where { Gpu, ShapeArithmetic, View, Cpu } where;
    const ir::Node* node;
    std::string why;
  };
  std::vector<Placement> placements() const;

  struct Impl;  // session.cc

 private:
  Session(const ir::Model& model, const KernelRegistry& kernels, SessionOptions opts,
          bool may_release);
  std::unique_ptr<Impl> impl_;
  std::vector<const ir::Value*> inputs_, outputs_;
  std::vector<NodeTime> node_times_;
};

}  // namespace tfh::runtime
