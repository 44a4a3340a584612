#include "host/runtime/session.h"

#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "host/plugin/host_api.h"
#include "host/util/error.h"
#include "kernels/common/device_info.h"
#ifdef TFH_HAVE_CUDA
#include "kernels/cuda/device.h"
#endif

namespace tfh::runtime {
namespace {

using plugin::AlignedBuffer;
using plugin::aligned_zeroed;

constexpr size_t kAlign = 64;
size_t round_up(size_t n) { return (std::max<size_t>(n, 1) + kAlign - 1) / kAlign * kAlign; }

// Activation buffers: best fit among free blocks (no more than twice the request, so one large
// block is not spent on a small tensor), a new block otherwise. Blocks are kept across runs.
void* host_block(size_t n) {
  void* raw = std::aligned_alloc(kAlign, n);
  if (!raw) throw std::bad_alloc();
  return raw;
}
void free_host_block(void* p) { std::free(p); }

class BufferPool {
 public:
  // Host memory by default; a CUDA session's second pool hands out device memory.
  explicit BufferPool(void* (*alloc)(size_t) = host_block, void (*release)(void*) = free_host_block)
      : alloc_(alloc), free_(release) {}
  ~BufferPool() {
    for (void* b : blocks_) free_(b);
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  void* acquire(size_t bytes) {
    size_t n = round_up(bytes);
    void* p = nullptr;
    auto it = free_blocks_.lower_bound(n);
    if (it != free_blocks_.end() && it->first <= 2 * n + 4096) {
      p = it->second;
      free_blocks_.erase(it);
    } else {
      void* raw = alloc_(n);
      blocks_.push_back(raw);
      size_of_[raw] = n;
      total_ += n;
      p = raw;
    }
    in_use_ += size_of_[p];
    peak_ = std::max(peak_, in_use_);
    return p;
  }
  void release(void* p) {
    if (!p) return;
    size_t n = size_of_.at(p);
    in_use_ -= n;
    free_blocks_.emplace(n, p);
  }
  void start_run() { peak_ = in_use_; }
  size_t total() const { return total_; }
  size_t peak() const { return peak_; }

 private:
  void* (*alloc_)(size_t);
  void (*free_)(void*);
  std::multimap<size_t, void*> free_blocks_;
  std::vector<void*> blocks_;
  std::unordered_map<void*, size_t> size_of_;
  size_t total_ = 0, in_use_ = 0, peak_ = 0;
};

enum class SlotKind { Activation, Constant, Input };

struct Slot {
  const ir::Value* value = nullptr;
  SlotKind kind = SlotKind::Activation;
  HostTensor view;                          // Constant: a view of the initializer / folded result
  std::unique_ptr<HostTensor> folded;       // Constant computed at plan time
  bool graph_output = false;
  bool has_default = false;                 // Input backed by an initializer (`view`)
};

struct Step {
  const ir::Node* node = nullptr;
  const KernelCandidate* kernel = nullptr;
  void* state = nullptr;
  // The other matching kernels, best first, for a kernel that hands a case on
  // (run_next_kernel); their states are created on first use.
  std::vector<const KernelCandidate*> next;
  std::vector<void*> next_states;
  std::vector<int> in, out;     // slot per input/output; -1 = omitted
  std::vector<int> free_after;  // activation slots whose last reader is this step
  bool on_cuda = false;         // the kernel runs on the CUDA device (its tensors are device memory)
  bool shape_math = false;      // CUDA sessions: shape arithmetic, kept on the host
  uint64_t host_inputs = 0;     // a device kernel's inputs read on the host (bit i: input i)
  std::string cpu_reason;       // CUDA sessions, a host step: what the CUDA kernels said
  // CUDA sessions, host kernels that never read input 0's bytes: a view op (Reshape, Squeeze,
  // Unsqueeze, Flatten, Identity: the output is input 0's bytes under new dims) and Shape/Size.
  // A device input 0 then stays where it is; a view's output is made on the same side.
  enum class Passthrough : uint8_t { None, View, DimsOnly } passthrough = Passthrough::None;
  // tfhost's own CPU kernel of a view op (any session): its output may read a feed's bytes
  // where they are (Impl::borrowed), since the kernel never writes them.
  bool view_op = false;
};

void view_of(HostTensor& h, const ir::Tensor& t) {
  h.set_shape(t.dtype(), t.dims());
  h.data = t.data();
}

std::string node_label(const ir::Node& n) {
  return describe(n) + " (" + (n.domain().empty() ? "" : n.domain() + ".") + n.op_type() + ")";
}

// Why a run could not be captured into a CUDA graph (the session then runs eagerly).
// `shapes_only`: these input shapes alone (a shape-arithmetic value a GPU kernel reads, too
// large to keep on the GPU); other shapes may still be captured.
struct GraphRefused : std::runtime_error {
  explicit GraphRefused(const std::string& why, bool shapes_only = false)
      : std::runtime_error(why), shapes_only(shapes_only) {}
  bool shapes_only;
};

}  // namespace

bool foldable(const ir::Node& n) {
  const std::string& op = n.op_type();
  return op.rfind("Random", 0) != 0 && op != "Bernoulli" && op != "Multinomial" &&
         op != "Dropout" && op.rfind("Sequence", 0) != 0 && op != "SplitToSequence";
}

std::unique_ptr<HostTensor> make_tensor(TfhDataType type, std::vector<int64_t> dims) {
  auto t = std::make_unique<HostTensor>();
  t->set_shape(type, std::move(dims));
  t->storage = aligned_zeroed(t->nbytes);
  t->data = t->storage.get();
  t->writable = true;
  return t;
}

namespace {
#ifdef TFH_HAVE_CUDA
// The weight prefetch ahead (TFH_CUDA_PREFETCH_WEIGHTS=MiB): constants from this size on.
constexpr size_t kMinPrefetchBytes = size_t(64) << 10;
// The window in bytes; 0 (unset, "off" or 0) without. A note says when it is on (once).
uint64_t prefetch_window_from_environment() {
  const char* v = std::getenv("TFH_CUDA_PREFETCH_WEIGHTS");
  const std::string value = v ? v : "";
  if (value.empty() || value == "off" || value == "0") return 0;
  char* end = nullptr;
  const unsigned long long mib = std::strtoull(value.c_str(), &end, 10);
  if (!end || *end || value[0] == '-' || mib == 0 || mib > 4096)
    TFH_THROW("TFH_CUDA_PREFETCH_WEIGHTS: expected a size in MiB from 1 to 4096, or off; got '",
              value, "'");
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    std::fprintf(stderr,
                 "tfhost: note: TFH_CUDA_PREFETCH_WEIGHTS=%s: each step's weights are asked into "
                 "L2 up to %llu MiB ahead, beside the model's kernels\n",
                 value.c_str(), mib);
  }
  return mib << 20;
}
#endif

// A tensor for a kernel to fill: the bytes are not zeroed first.
std::unique_ptr<HostTensor> make_output_tensor(TfhDataType type, std::vector<int64_t> dims) {
  auto t = std::make_unique<HostTensor>();
  t->set_shape(type, std::move(dims));
  t->storage = plugin::aligned_uninit(t->nbytes);
  t->data = t->storage.get();
  t->writable = true;
  return t;
}
}  // namespace

std::unique_ptr<HostTensor> copy_tensor(const HostTensor& src) {
  auto t = make_tensor(src.type, src.dims);
  if (src.nbytes && src.data) std::memcpy(t->storage.get(), src.data, src.nbytes);
  return t;
}

struct Session::Impl {
  const ir::Model& model;
  SessionOptions opts;
  std::vector<Slot> slots;
  std::unordered_map<const ir::Value*, int> slot_of;
  std::vector<Step> steps;
  BufferPool pool;
  // CUDA sessions: the stream every device kernel runs on, the device activation pool, which
  // slots hold device memory in this run, and each constant's device copy (made on first use,
  // kept for the session's life).
  bool cuda = false;
  void* stream = nullptr;
  std::shared_ptr<void> stream_owner;  // owns `stream`; DeviceTensors handed out hold it too
  std::unique_ptr<BufferPool> dev_pool;
  std::vector<char> on_dev;
  std::vector<HostTensor> dev_const;
  // TFH_CUDA_PREFETCH_WEIGHTS (MiB; 0: off): each step's weights are asked into L2 while the steps
  // before it run, up to this many bytes ahead, on a stream beside `stream` (kernels/cuda/device.h).
  uint64_t prefetch_window = 0;
  std::shared_ptr<void> prefetcher;
  // Per step, the weights it reads whole and their bytes: planned once, at the start of the run
  // after the first whole one (which uploads the constants).
  std::vector<std::vector<std::pair<const void*, size_t>>> prefetch_ranges;
  std::vector<uint64_t> prefetch_bytes;
  bool prefetch_planned = false, prefetch_constants_uploaded = false;
  void plan_prefetch();
  void prefetch_weights_ahead(size_t i, size_t& next, uint64_t& window);
  // Per run, per slot: a copy of the value on the other side (device for a host value, host for
  // a device one), made for its first reader there and shared by the rest; gone with the value.
  std::vector<HostTensor> mirror;
  std::vector<char> mirrored;
  // CUDA graphs, one per set of input shapes: the fixed device buffers the inputs are copied
  // into, the executable graph once captured, and where it leaves the outputs.
  struct Graph {  // made the second time its shapes come (the first run was eager)
    void* exec = nullptr;
    bool refused = false;  // these shapes could not be captured: they run eagerly (no buffers)
    std::map<int, HostTensor> inputs;  // slot -> its device buffer
    std::map<int, std::shared_ptr<void>> input_memory;  // owns each input buffer
    std::vector<HostTensor> outputs;   // per graph output: its device bytes (pool blocks)
    std::vector<int> output_alias;     // per graph output: the input slot whose buffer it is, or -1
    ~Graph();
  };
  std::map<std::vector<int64_t>, std::unique_ptr<Graph>> graphs;
  std::set<std::vector<int64_t>> seen_once;  // shapes run once, without a graph yet
  static constexpr size_t kMaxGraphs = 16, kMaxSeen = 256;
  bool capturing = false;
  DeviceTraffic traffic;  // of the last run
  // Shape arithmetic (values the CPU computes from input shapes and constants alone, `shape_value`
  // per slot) that a GPU kernel reads: each distinct value is uploaded once and kept for the
  // session's life, so runs with the same shapes read the same device copy, without a copy
  // mid-run, and a CUDA graph can read it at every replay. Values of at most
  // kMaxShapeUploadBytes, kShapeUploadBudget bytes in all (a session seeing many shapes: up to
  // kMaxSeen shape sets); past that, values are copied per run (and a graph that would need one
  // is refused).
  struct ShapeUpload {
    HostTensor host;                  // its type and dims, and `bytes` as its data
    std::vector<unsigned char> bytes;
    HostTensor dev;
  };
  std::vector<char> shape_value;
  std::vector<char> feed_view;  // per slot: a graph input, or a view of one's bytes
  std::map<int, std::vector<std::unique_ptr<ShapeUpload>>> shape_uploads;
  static constexpr size_t kMaxShapeUploadBytes = size_t(1) << 20, kShapeUploadBudget = size_t(64) << 20;
  size_t shape_upload_bytes = 0;
  const HostTensor* shape_upload(int k, const HostTensor& t);
  GraphStats graph_stats;
  std::vector<char> replayed;  // output slots whose bytes are a graph's, not the pool's
  // Per run: the tensor each slot currently holds (activations point into the pool).
  std::vector<HostTensor> act;
  std::vector<const HostTensor*> live;
  std::vector<std::unique_ptr<HostTensor>> owned_outputs;  // graph outputs produced this run
  std::vector<bool> donated;  // activations whose buffer an output took over this run
  // Per run: activations that are a view op's read-only alias of a feed's bytes (or of another
  // such alias), never the pool's: never given back to it, never handed over to a kernel that
  // may write its output.
  std::vector<char> borrowed;
  // Per run: the owner of each donated device feed's memory (Feed::donate), and per output slot
  // the input slot whose donated buffer it took over (-1: none).
  std::vector<std::shared_ptr<void>> feed_memory;
  std::vector<HostTensor*> host_donor;  // a donated host feed, whose bytes an output may take
  std::vector<int> aliases_feed;
  bool donatable(int k) const { return feed_memory[k] || host_donor[k]; }
  // Sequence values of this run, per slot (is_seq marks which slots hold one now).
  std::vector<std::vector<std::unique_ptr<HostTensor>>> seqs;
  std::vector<bool> is_seq;
  // Constant inputs the kernels copied into their own layout (at create), folded nodes, and
  // what was given back.
  std::vector<std::pair<const ir::Node*, size_t>> consumed;
  std::set<const ir::Node*> folded_nodes;
  size_t released = 0;
  std::map<const ir::Value*, size_t> consumed_count;

  // Called as each kernel is created, so the original and its packed copy coexist for one weight
  // at a time (not the whole model): once every reader of an initializer has consumed it (and it
  // is not a graph output), its bytes are given back. Only reachable through the non-const
  // constructor, with release_consumed_constants.
  void release_if_consumed(const ir::Node* node, size_t i) {
    if (i >= node->inputs().size() || !node->inputs()[i]) return;
    const ir::Value* v = node->inputs()[i];
    if (!v->initializer() || v->is_graph_output() || v->initializer()->released()) return;
    if (++consumed_count[v] < v->consumers().size()) return;
    released += v->initializer()->nbytes();
    const_cast<ir::Tensor*>(v->initializer())->release_data();
    auto it = slot_of.find(v);
    if (it != slot_of.end()) slots[it->second].view.data = nullptr;
    malloc_trim(0);  // freed protobuf strings go back to the system, not just to malloc
  }
  size_t last_peak = 0;

  Impl(const ir::Model& m, SessionOptions o) : model(m), opts(o) {}
  ~Impl() {
    for (Step& s : steps) destroy_states(s);
#ifdef TFH_HAVE_CUDA
    graphs.clear();
    prefetcher.reset();  // (waits for its requests: they read the constants freed below)
    for (HostTensor& t : dev_const)
      if (t.data) kernels::cuda::device_free(const_cast<void*>(t.data));
    for (auto& [k, uploads] : shape_uploads)
      for (auto& u : uploads)
        if (u->dev.data) kernels::cuda::device_free(const_cast<void*>(u->dev.data));
    dev_pool.reset();
#endif
  }
  // The pool a slot's buffer belongs to in this run.
  BufferPool& pool_of(int slot) { return cuda && on_dev[slot] ? *dev_pool : pool; }
  // Gives back a device graph output's buffer once it has been copied out (not a graph input's,
  // nor bytes a replayed graph owns).
  void release_slot(int k) {
    if (act[k].data && slots[k].kind == SlotKind::Activation && !replayed[k] && !donated[k] &&
        !borrowed[k] && aliases_feed[k] < 0)
      pool_of(k).release(const_cast<void*>(act[k].data));
    act[k].data = nullptr;
    on_dev[k] = 0;
    replayed[k] = 0;
  }
  void release_mirror(int k) {
    if (!mirrored[k]) return;
    // The copy lives on the other side of the value.
    (on_dev[k] ? pool : *dev_pool).release(const_cast<void*>(mirror[k].data));
    mirror[k].data = nullptr;
    mirrored[k] = 0;
  }
  // After a run that failed: every buffer back, nothing left bound.
  void abandon_run() {
    for (size_t i = 0; i < slots.size(); ++i) {
      const int k = static_cast<int>(i);
      if (cuda) release_mirror(k);
      if (slots[k].kind == SlotKind::Activation && act[k].data && !donated[k] && !borrowed[k] &&
          !(cuda && replayed[k]) && aliases_feed[k] < 0)
        pool_of(k).release(const_cast<void*>(act[k].data));
      act[k].data = nullptr;
      if (cuda) on_dev[k] = replayed[k] = 0;
      donated[k] = false;
      borrowed[k] = 0;
      aliases_feed[k] = -1;
      feed_memory[k] = nullptr;
      host_donor[k] = nullptr;
      seqs[k].clear();
      is_seq[k] = false;
    }
    std::fill(owned_outputs.begin(), owned_outputs.end(), nullptr);
  }
  // The graph for this run's input shapes (made on first sight); null once the cache is full.
  Graph* graph_for(const std::vector<std::pair<int, const Feed*>>& bound);
  DeviceTensor new_device_tensor(TfhDataType type, const std::vector<int64_t>& dims);
  // One run (Session::run and run_device): outputs to `host_out`, or with outputs_on_device
  // to `dev_out`.
  void run(Session& self, const std::vector<Feed>& feeds, bool outputs_on_device,
           std::vector<std::unique_ptr<HostTensor>>* host_out, std::vector<DeviceTensor>* dev_out);
  // Each feed's slot, after checking names, types, shapes and that every required input is fed.
  std::vector<std::pair<int, const Feed*>> check_feeds(const Session& self,
                                                       const std::vector<Feed>& feeds) const;
  void run_steps(Session& self, std::chrono::steady_clock::time_point run_start);
  void collect_outputs(Session& self, bool outputs_on_device,
                       std::vector<std::unique_ptr<HostTensor>>* host_out,
                       std::vector<DeviceTensor>* dev_out);
  // A constant's device copy (uploaded once).
  const HostTensor* device_constant(int k, const HostTensor& host);
  static void destroy_states(Step& s) {
    if (s.state && s.kernel->desc->destroy) s.kernel->desc->destroy(s.state);
    s.state = nullptr;
    for (size_t i = 0; i < s.next.size(); ++i)
      if (s.next_states[i] && s.next[i]->desc->destroy) s.next[i]->desc->destroy(s.next_states[i]);
    s.next_states.assign(s.next.size(), nullptr);
  }

  int slot(const ir::Value* v) {
    auto it = slot_of.find(v);
    if (it != slot_of.end()) return it->second;
    Slot s;
    s.value = v;
    s.graph_output = v->is_graph_output();
    if (v->initializer()) {
      // A graph input with an initializer is a default the caller may override: an Input (never
      // folded through), whose view is used when no feed is given.
      s.kind = v->is_graph_input() ? SlotKind::Input : SlotKind::Constant;
      s.has_default = v->is_graph_input();
      view_of(s.view, *v->initializer());
    } else if (v->is_graph_input()) {
      s.kind = SlotKind::Input;
    }
    slots.push_back(std::move(s));
    slot_of[v] = static_cast<int>(slots.size() - 1);
    return static_cast<int>(slots.size() - 1);
  }

  void execute(Step& step, bool folding);
};

// What a kernel sees while one step runs.
class StepContext : public plugin::KernelContext {
 public:
  StepContext(Session::Impl& s, Step& step, bool folding)
      : s_(s), step_(step), folding_(folding), on_device_(step.on_cuda),
        allocated_(step.out.size(), false) {}

  const ir::Node* node() const override { return step_.node; }
  size_t num_inputs() const override { return step_.in.size(); }
  const HostTensor* input(size_t i) const override {
    if (i < staged_.size()) return staged_[i];
    return i < step_.in.size() && step_.in[i] >= 0 ? s_.live[step_.in[i]] : nullptr;
  }
  // CUDA sessions: every input where the step's kernel runs. A device step reads host values
  // through device copies (constants: the session's cached one; others: a pooled buffer for this
  // step); a host step reads device values through host copies.
  void stage_inputs();
  // Gives back what this step borrowed (device scratch, staged copies, omitted outputs).
  void release_borrowed();
  size_t num_outputs() const override { return step_.out.size(); }
  bool output_used(size_t i) const override {
    if (i >= step_.out.size() || step_.out[i] < 0) return false;
    const Slot& sl = s_.slots[step_.out[i]];
    return sl.graph_output || !sl.value->consumers().empty();
  }
  HostTensor* allocate_output(size_t i, TfhDataType type, std::vector<int64_t> dims) override {
    if (i >= step_.out.size())
      TFH_THROW("output ", i, " requested, the node has ", step_.out.size());
    if (allocated_[i]) TFH_THROW("output ", i, " allocated twice");
    allocated_[i] = true;
    const int slot = step_.out[i];
    if (on_device_ && !folding_) {
      // Device memory from the device pool; an omitted output's goes back after the step, a
      // graph output's is copied to the host when the run ends.
      HostTensor* h = nullptr;
      if (slot < 0) {
        borrowed_.push_back(std::make_unique<HostTensor>());
        h = borrowed_.back().get();
      } else {
        h = &s_.act[slot];
      }
      h->set_shape(type, std::move(dims));
      h->data = s_.dev_pool->acquire(h->nbytes);
      h->writable = true;
      if (slot < 0) {
        dev_borrowed_.push_back(const_cast<void*>(h->data));
      } else {
        s_.on_dev[slot] = 1;
        s_.live[slot] = h;
      }
      return h;
    }
    if (slot < 0 || folding_ || s_.slots[slot].graph_output) {
      // Omitted outputs get a throwaway tensor; folded constants and graph outputs own theirs.
      auto t = make_output_tensor(type, std::move(dims));
      HostTensor* raw = t.get();
      if (slot < 0)
        throwaway_.push_back(std::move(t));
      else if (folding_)
        s_.slots[slot].folded = std::move(t);
      else
        s_.owned_outputs[slot] = std::move(t);
      if (slot >= 0) s_.live[slot] = raw;
      return raw;
    }
    HostTensor& h = s_.act[slot];
    h.set_shape(type, std::move(dims));
    h.data = s_.pool.acquire(h.nbytes);
    h.writable = true;
    if (s_.cuda) s_.on_dev[slot] = 0;
    s_.live[slot] = &h;
    return &h;
  }
  HostTensor* output_from_input(size_t i, size_t j, std::vector<int64_t> dims) override {
    const HostTensor* in = input(j);
    if (!in) TFH_THROW("output_from_input: input ", j, " is missing");
    const int out_slot = i < step_.out.size() ? step_.out[i] : -1;
    const int in_slot = step_.in[j];
    const bool last_reader = std::find(step_.free_after.begin(), step_.free_after.end(), in_slot) !=
                             step_.free_after.end();
    // Hand the buffer over: an activation read by nobody after this node, into an output that is
    // itself a pooled activation (not a graph output, not a folded constant).
    // (In a CUDA session only the slot's own buffer, where the step runs, can be handed over:
    // not a staged copy, not a graph output the run ends by downloading.)
    const bool own_buffer = !s_.cuda || (in == s_.live[in_slot] && bool(s_.on_dev[in_slot]) == on_device_);
    // Or a device feed the caller donated (Feed::donate), read by this node alone: its memory
    // becomes the output, which may be a graph output (run_device returns it without a copy).
    const Slot& in_sl = s_.slots[in_slot];
    // (Into a graph output only: an activation would go back to the pool, which never had it.)
    const bool donated_feed = in_sl.kind == SlotKind::Input && s_.donatable(in_slot) &&
                              in_sl.value->consumers().size() == 1 && !in_sl.graph_output &&
                              out_slot >= 0 && s_.slots[out_slot].graph_output;
    // Output i as input j's bytes under `dims`, writable or not.
    auto alias = [&](bool writable) -> HostTensor* {
      HostTensor& h = s_.act[out_slot];
      h.set_shape(in->type, std::move(dims));
      if (h.nbytes != in->nbytes) TFH_THROW("output_from_input: byte counts differ");
      allocated_[i] = true;
      h.data = in->data;
      h.writable = writable;
      if (s_.cuda) s_.on_dev[out_slot] = s_.on_dev[in_slot];
      s_.live[out_slot] = &h;
      return &h;
    };
    if (!folding_ && out_slot >= 0 && !allocated_[i] && own_buffer && !s_.donated[in_slot] &&
        !s_.borrowed[in_slot] &&
        ((last_reader && in_sl.kind == SlotKind::Activation && !s_.slots[out_slot].graph_output) ||
         donated_feed)) {
      HostTensor* h = alias(/*writable=*/true);
      s_.donated[in_slot] = true;  // released through the output now, not the input
      if (donated_feed) s_.aliases_feed[out_slot] = in_slot;
      return h;
    }
    // A view op over a feed (or over such a view): its output reads the feed's bytes where they
    // are, read-only (a Reshape of input_ids costs no copy, and no node in a CUDA graph).
    if (step_.view_op && !folding_ && out_slot >= 0 && !allocated_[i] && own_buffer &&
        !s_.slots[out_slot].graph_output &&
        (in_sl.kind == SlotKind::Input || s_.borrowed[in_slot])) {
      HostTensor* h = alias(/*writable=*/false);
      s_.borrowed[out_slot] = 1;
      return h;
    }
    HostTensor* out = allocate_output(i, in->type, std::move(dims));
    if (out->nbytes != in->nbytes) TFH_THROW("output_from_input: byte counts differ");
#ifdef TFH_HAVE_CUDA
    if (on_device_ && !folding_) {
      kernels::cuda::copy_on_device(const_cast<void*>(out->data), in->data, in->nbytes, s_.stream);
      return out;
    }
#endif
    if (in->nbytes) std::memcpy(const_cast<void*>(out->data), in->data, in->nbytes);
    return out;
  }
  int64_t input_sequence_length(size_t i) const override {
    if (i >= step_.in.size() || step_.in[i] < 0 || !s_.is_seq[step_.in[i]]) return -1;
    return static_cast<int64_t>(s_.seqs[step_.in[i]].size());
  }
  const HostTensor* input_sequence_at(size_t i, size_t k) const override {
    if (input_sequence_length(i) < 0) return nullptr;
    const auto& seq = s_.seqs[step_.in[i]];
    return k < seq.size() ? seq[k].get() : nullptr;
  }
  void output_sequence_begin(size_t i) override {
    if (i >= step_.out.size()) TFH_THROW("output ", i, " requested, the node has ", step_.out.size());
    const int slot = step_.out[i];
    if (slot < 0) return;
    if (folding_ || s_.slots[slot].graph_output)
      TFH_THROW("sequence values cannot be graph outputs or constants here");
    allocated_[i] = true;
    s_.seqs[slot].clear();
    s_.is_seq[slot] = true;
  }
  HostTensor* output_sequence_append(size_t i, TfhDataType type, std::vector<int64_t> dims) override {
    const int slot = i < step_.out.size() ? step_.out[i] : -1;
    auto t = make_tensor(type, std::move(dims));
    HostTensor* raw = t.get();
    if (slot < 0) {
      throwaway_.push_back(std::move(t));
      return raw;
    }
    if (!s_.is_seq[slot]) TFH_THROW("output ", i, " is not a sequence (call begin first)");
    s_.seqs[slot].push_back(std::move(t));
    return raw;
  }
  void* scratch(size_t bytes) override {
    if (on_device_ && !folding_) {  // device scratch, not zeroed
      dev_borrowed_.push_back(s_.dev_pool->acquire(bytes));
      return dev_borrowed_.back();
    }
    scratch_.push_back(aligned_zeroed(bytes));
    return scratch_.back().get();
  }
  int num_threads() const override {
    return s_.opts.threads > 0 ? s_.opts.threads : omp_get_max_threads();
  }
  bool allocated(size_t i) const { return allocated_[i]; }
  void run_next_kernel() override {
    if (level_ >= step_.next.size())
      TFH_THROW(node_label(*step_.node), ": no other kernel matches this node to hand it to");
    const KernelCandidate* k = step_.next[level_];
    void*& state = step_.next_states[level_];
    const char* name = k->desc->name ? k->desc->name : "?";
    if (!state && k->desc->create) {
      TfhStatus* st = k->desc->create(plugin::to_c(const_cast<ir::Node*>(step_.node)), &state);
      if (st)
        TFH_THROW(node_label(*step_.node), ": cannot create kernel '", name,
                  "': ", plugin::take_status_message(st));
    }
    ++level_;
    TfhStatus* st = k->desc->compute(state, c_handle(), step_.on_cuda ? s_.stream : nullptr);
    --level_;
    if (st) TFH_THROW(node_label(*step_.node), ": kernel '", name, "': ", plugin::take_status_message(st));
  }

 private:
  size_t level_ = 0;  // how many kernels down the chain run_next_kernel has gone
  Session::Impl& s_;
  Step& step_;
  bool folding_;
  bool on_device_;  // where outputs and scratch go: the kernel's device, or a view's input's
  std::vector<bool> allocated_;
  std::vector<AlignedBuffer> scratch_;
  std::vector<std::unique_ptr<HostTensor>> throwaway_;
  std::vector<const HostTensor*> staged_;      // CUDA sessions: the inputs as the kernel sees them
  std::vector<void*> dev_borrowed_;
  std::vector<std::unique_ptr<HostTensor>> borrowed_;
};

void StepContext::stage_inputs() {
#ifdef TFH_HAVE_CUDA
  staged_.assign(step_.in.size(), nullptr);
  bool downloaded = false;
  for (size_t i = 0; i < step_.in.size(); ++i) {
    const int k = step_.in[i];
    const HostTensor* t = k >= 0 ? s_.live[k] : nullptr;
    if (i == 0 && t && s_.on_dev[k] && step_.passthrough != Step::Passthrough::None) {
      staged_[i] = t;  // the host kernel reads its dims only, or hands its bytes on
      if (step_.passthrough == Step::Passthrough::View) on_device_ = true;
      continue;
    }
    // Where the kernel reads this input: its device, or the host for a device kernel's host input.
    const bool want_dev = step_.on_cuda && !(i < 64 && (step_.host_inputs >> i) & 1);
    if (!t || bool(s_.on_dev[k]) == want_dev) {
      staged_[i] = t;
      continue;
    }
    // Constants, and an input's initializer default when the run did not feed it: uploaded once.
    const bool default_used = s_.slots[k].has_default && t == &s_.slots[k].view;
    if (want_dev && (s_.slots[k].kind == SlotKind::Constant || default_used)) {
      if (s_.capturing && !s_.dev_const[k].data)
        throw GraphRefused(node_label(*step_.node) + ": constant '" + s_.slots[k].value->name() +
                           "' was not on the GPU before the capture");
      staged_[i] = s_.device_constant(k, *t);
      continue;
    }
    if (want_dev && s_.shape_value[k]) {
      if (const HostTensor* up = s_.shape_upload(k, *t)) {
        staged_[i] = up;
        continue;
      }
    }
    if (!s_.mirrored[k]) {
      // A graph replays device work only: a value crossing sides mid-run cannot be in one. (A
      // shape value that shape_upload declined is too large for these shapes only.)
      if (s_.capturing)
        throw GraphRefused(node_label(*step_.node) + " reads '" + s_.slots[k].value->name() +
                               "' on the " + (want_dev ? "GPU" : "CPU") + ", made on the " +
                               (want_dev ? "CPU" : "GPU"),
                           want_dev && s_.shape_value[k]);
      HostTensor& c = s_.mirror[k];
      c.set_shape(t->type, t->dims);
      c.data = (want_dev ? *s_.dev_pool : s_.pool).acquire(t->nbytes);
      s_.mirrored[k] = 1;  // from here on the run's end gives it back, whatever happens
      // (A feed, or a view of one, read on the other side is the run's edge, not traffic.)
      if (!s_.feed_view[k]) s_.traffic.bytes += t->nbytes;
      if (!s_.feed_view[k] && s_.traffic.copies++ == 0)
        s_.traffic.first = node_label(*step_.node) + " reads '" + s_.slots[k].value->name() +
                           "' on the " + (want_dev ? "GPU" : "CPU") + ", made on the " +
                           (want_dev ? "CPU" : "GPU");
      if (want_dev) {
        kernels::cuda::copy_to_device(const_cast<void*>(c.data), t->data, t->nbytes, s_.stream);
      } else {
        kernels::cuda::copy_to_host(const_cast<void*>(c.data), t->data, t->nbytes, s_.stream);
        downloaded = true;
      }
    }
    staged_[i] = &s_.mirror[k];
  }
  if (downloaded) kernels::cuda::stream_sync(s_.stream);  // the host kernel reads them now
#endif
}

void StepContext::release_borrowed() {
  // Device memory goes back in stream order: a later kernel that reuses it runs after this one.
  if (s_.dev_pool)
    for (void* p : dev_borrowed_) s_.dev_pool->release(p);
  dev_borrowed_.clear();
}

const HostTensor* Session::Impl::device_constant(int k, const HostTensor& host) {
  HostTensor& d = dev_const[k];
#ifdef TFH_HAVE_CUDA
  if (!d.data) {
    d.set_shape(host.type, host.dims);
    void* p = kernels::cuda::device_alloc(host.nbytes);
    try {
      kernels::cuda::copy_to_device(p, host.data, host.nbytes, stream);
      kernels::cuda::stream_sync(stream);  // the host bytes may be released after planning
    } catch (...) {
      kernels::cuda::device_free(p);
      throw;
    }
    d.data = p;
  }
#else
  (void)k;
  (void)host;
#endif
  return &d;
}

const HostTensor* Session::Impl::shape_upload(int k, const HostTensor& t) {
#ifdef TFH_HAVE_CUDA
  if (t.nbytes > kMaxShapeUploadBytes) return nullptr;
  auto& uploads = shape_uploads[k];
  for (const auto& u : uploads)
    if (u->host.type == t.type && u->host.dims == t.dims &&
        (t.nbytes == 0 || std::memcmp(u->bytes.data(), t.data, t.nbytes) == 0))
      return &u->dev;
  // A new value: not while capturing (the copy would be captured from bytes that may change),
  // and not past the budget (the caller copies it for this run, as any other crossing value).
  if (capturing || shape_upload_bytes + t.nbytes > kShapeUploadBudget) return nullptr;
  auto u = std::make_unique<ShapeUpload>();
  u->bytes.assign(static_cast<const unsigned char*>(t.data),
                  static_cast<const unsigned char*>(t.data) + t.nbytes);
  u->host.set_shape(t.type, t.dims);
  u->host.data = u->bytes.data();
  u->dev.set_shape(t.type, t.dims);
  void* p = kernels::cuda::device_alloc(t.nbytes);
  try {  // in stream order, from bytes the entry keeps: no wait
    kernels::cuda::copy_to_device(p, u->bytes.data(), t.nbytes, stream);
  } catch (...) {
    kernels::cuda::device_free(p);
    throw;
  }
  u->dev.data = p;
  uploads.push_back(std::move(u));  // owned (and freed) by the session from here on
  shape_upload_bytes += t.nbytes;
  return &uploads.back()->dev;
#else
  (void)k;
  (void)t;
  return nullptr;
#endif
}

void Session::Impl::execute(Step& step, bool folding) {
  StepContext ctx(*this, step, folding);
  struct Release {
    StepContext& c;
    ~Release() { c.release_borrowed(); }
  } release{ctx};  // first: what staging borrows goes back if it throws
  if (cuda && !folding) ctx.stage_inputs();
  TfhStatus* st = step.kernel->desc->compute(step.state, ctx.c_handle(),
                                             step.on_cuda && !folding ? stream : nullptr);
  if (st) {
    std::string msg = plugin::take_status_message(st);
    TFH_THROW(node_label(*step.node), ": ", msg.empty() ? "kernel failed" : msg);
  }
  for (size_t i = 0; i < step.out.size(); ++i)
    if (step.out[i] >= 0 && !ctx.allocated(i) && ctx.output_used(i))
      TFH_THROW(node_label(*step.node), ": kernel '",
                step.kernel->desc->name ? step.kernel->desc->name : "?",
                "' did not produce output ", i, " ('", slots[step.out[i]].value->name(), "')");
}

Session::Session(ir::Model& model, const KernelRegistry& kernels, SessionOptions opts)
    : Session(static_cast<const ir::Model&>(model), kernels, opts, /*may_release=*/true) {}

Session::Session(const ir::Model& model, const KernelRegistry& kernels, SessionOptions opts)
    : Session(model, kernels, opts, /*may_release=*/false) {}

Session::Session(const ir::Model& model, const KernelRegistry& kernels, SessionOptions opts,
                 bool may_release)
    : impl_(std::make_unique<Impl>(model, opts)) {
  if (!may_release) opts.release_consumed_constants = false;  // a const model is not ours
  Impl& s = *impl_;
  const ir::Graph& g = model.graph();
  if (opts.device == TFH_DEVICE_CUDA) {
#ifdef TFH_HAVE_CUDA
    TFH_CHECK(kernels::cuda_device_count() > 0, "device cuda: no CUDA GPU is present (",
              kernels::describe_devices(), ")");
    s.cuda = true;
    s.stream_owner = std::shared_ptr<void>(kernels::cuda::stream_create(),
                                           [](void* p) { kernels::cuda::stream_destroy(p); });
    s.stream = s.stream_owner.get();
    s.dev_pool = std::make_unique<BufferPool>(kernels::cuda::device_alloc, [](void* p) {
      kernels::cuda::device_free(p);
    });
    s.prefetch_window = prefetch_window_from_environment();
    if (s.prefetch_window)
      s.prefetcher = std::shared_ptr<void>(kernels::cuda::l2_prefetcher_create(),
                                           [](void* p) { kernels::cuda::l2_prefetcher_destroy(p); });
#else
    TFH_THROW("device cuda: this tfhost was built without CUDA");
#endif
  } else if (opts.device != TFH_DEVICE_CPU) {
    TFH_THROW("unknown device ", opts.device);
  }
  // Values computed from constants alone (folded at plan time, on the CPU, whatever the device).
  std::set<const ir::Value*> constant, shape_values;
  for (const ir::Value* v : g.initializers())
    if (!v->is_graph_input()) constant.insert(v);
  for (const ir::Value* v : g.inputs()) {
    s.slot(v);
    if (!v->initializer()) inputs_.push_back(v);
  }
  for (const ir::Value* v : g.outputs()) outputs_.push_back(v);

  // Steps in graph order (the graph is topologically sorted on load and by every pass).
  for (const auto& up : g.nodes()) {
    const ir::Node& n = *up;
    if (opts.node_filter && !opts.node_filter(n)) continue;
    Step step;
    step.node = &n;
    std::string why;
    bool from_constants = foldable(n) && n.implicit_inputs().empty();
    for (const ir::Value* v : n.inputs()) from_constants = from_constants && (!v || constant.count(v));
    if (from_constants)
      for (const ir::Value* v : n.outputs())
        if (v) constant.insert(v);
    // Shape arithmetic (Shape/Size, and nodes computing from their results and constants alone)
    // stays on the CPU: its values are a few integers that host kernels read, and moving them to
    // the GPU and back would cost a wait per node (and keep the run out of a CUDA graph).
    const bool is_onnx = n.domain().empty() || n.domain() == "ai.onnx";
    bool shape_math = is_onnx && (n.op_type() == "Shape" || n.op_type() == "Size");
    if (!shape_math) {
      bool any = false, rest_constant = true;
      for (const ir::Value* v : n.inputs()) {
        if (!v) continue;
        if (shape_values.count(v)) any = true;
        else if (!constant.count(v)) rest_constant = false;
      }
      shape_math = any && rest_constant;
    }
    if (shape_math)
      for (const ir::Value* v : n.outputs())
        if (v) shape_values.insert(v);
    // A CUDA session runs a node on the GPU when a CUDA kernel takes it, on the CPU otherwise
    // (shape arithmetic, ops without a CUDA kernel), with copies where values change sides.
    std::vector<const KernelCandidate*> matching;
    if (s.cuda && !from_constants && !shape_math)
      matching = kernels.candidates(model, n, TFH_DEVICE_CUDA, &why);
    step.shape_math = s.cuda && (shape_math || from_constants);
    if (matching.empty()) {
      if (s.cuda && !from_constants && !shape_math)
        step.cpu_reason = why.empty() ? "no CUDA kernel for " + n.op_type() : why;
      matching = kernels.candidates(model, n, TFH_DEVICE_CPU, &why);
    }
    if (matching.empty()) TFH_THROW(node_label(n), ": ", why);
    step.on_cuda = matching.front()->desc->device == TFH_DEVICE_CUDA;
    step.kernel = matching.front();
    const std::string& op = n.op_type();
    const bool view = is_onnx && (op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" ||
                                  op == "Flatten" || op == "Identity");
    step.view_op = view && std::string(step.kernel->desc->name) == "tfhost.cpu." + op;
    if (s.cuda && !step.on_cuda && view)
      step.passthrough = Step::Passthrough::View;
    else if (s.cuda && !step.on_cuda && is_onnx && (op == "Shape" || op == "Size"))
      step.passthrough = Step::Passthrough::DimsOnly;
    step.next.assign(matching.begin() + 1, matching.end());
    step.next_states.assign(step.next.size(), nullptr);
    for (const ir::Value* v : n.inputs()) step.in.push_back(v ? s.slot(v) : -1);
    if (!n.implicit_inputs().empty())
      TFH_THROW(node_label(n), ": subgraphs (If/Loop/Scan) are not supported by the runtime yet");
    for (const ir::Value* v : n.outputs()) step.out.push_back(v ? s.slot(v) : -1);
    if (step.kernel->desc->create) {
      plugin::ConsumedInputs collect;
      TfhStatus* st = step.kernel->desc->create(plugin::to_c(const_cast<ir::Node*>(&n)), &step.state);
      if (st && step.on_cuda) {
        // A CUDA kernel that refuses the node (an attribute it does not implement): the CPU's.
        step.cpu_reason = plugin::take_status_message(st);
        step.state = nullptr;
        matching = kernels.candidates(model, n, TFH_DEVICE_CPU, &why);
        if (matching.empty()) TFH_THROW(node_label(n), ": ", why);
        step.kernel = matching.front();
        step.next.assign(matching.begin() + 1, matching.end());
        step.next_states.assign(step.next.size(), nullptr);
        step.on_cuda = false;
        st = step.kernel->desc->create
                 ? step.kernel->desc->create(plugin::to_c(const_cast<ir::Node*>(&n)), &step.state)
                 : nullptr;
      }
      if (st) TFH_THROW(node_label(n), ": cannot create kernel: ", plugin::take_status_message(st));
      // Only what the kernel says about its own node counts, once per input.
      std::set<size_t> said;
      // (A step with kernels behind it keeps its constants: one of those may be created later,
      // at run time, and read them.)
      for (const auto& [node, i] : collect.items())
        if (node == &n && step.next.empty() && said.insert(i).second) {
          s.consumed.emplace_back(node, i);
          if (opts.release_consumed_constants) s.release_if_consumed(node, i);
        }
    }
    if (step.on_cuda) {
      // Inputs are staged for the chosen kernel's host_inputs: a kernel it may hand the node on
      // to (run_next_kernel) must read them from the same sides.
      step.host_inputs = step.kernel->host_inputs;
      std::vector<const KernelCandidate*> same_sides;
      for (const KernelCandidate* c : step.next)
        if (c->host_inputs == step.host_inputs) same_sides.push_back(c);
      step.next = same_sides;
      step.next_states.assign(step.next.size(), nullptr);
    }
    s.steps.push_back(std::move(step));
  }
  for (const ir::Value* v : g.outputs())
    if (!s.slot_of.count(v)) s.slot(v);
  for (const ir::Value* v : g.outputs()) s.slots[s.slot_of[v]].graph_output = true;

  s.act.resize(s.slots.size());
  s.live.assign(s.slots.size(), nullptr);
  s.owned_outputs.resize(s.slots.size());
  s.donated.assign(s.slots.size(), false);
  s.borrowed.assign(s.slots.size(), 0);
  s.feed_memory.assign(s.slots.size(), nullptr);
  s.host_donor.assign(s.slots.size(), nullptr);
  s.aliases_feed.assign(s.slots.size(), -1);
  s.seqs.resize(s.slots.size());
  s.is_seq.assign(s.slots.size(), false);
  s.on_dev.assign(s.slots.size(), 0);
  s.dev_const.resize(s.slots.size());
  s.mirror.resize(s.slots.size());
  s.mirrored.assign(s.slots.size(), 0);
  s.replayed.assign(s.slots.size(), 0);
  s.shape_value.assign(s.slots.size(), 0);
  s.feed_view.assign(s.slots.size(), 0);
  for (size_t k = 0; k < s.slots.size(); ++k) s.feed_view[k] = s.slots[k].kind == SlotKind::Input;
  for (const Step& step : s.steps)
    if (step.passthrough == Step::Passthrough::View && !step.in.empty() && step.in[0] >= 0 &&
        !step.out.empty() && step.out[0] >= 0)
      s.feed_view[step.out[0]] = s.feed_view[step.in[0]];
  for (const ir::Value* v : shape_values)
    if (s.slot_of.count(v)) s.shape_value[s.slot_of.at(v)] = 1;
  for (size_t i = 0; i < s.slots.size(); ++i)
    if (s.slots[i].kind == SlotKind::Constant) s.live[i] = &s.slots[i].view;

  // Fold steps whose inputs are all constants (Constant nodes, shape arithmetic on weights).
  std::vector<Step> remaining;
  for (Step& step : s.steps) {
    bool all_const = foldable(*step.node);
    for (int in : step.in)
      if (in >= 0 && s.slots[in].kind != SlotKind::Constant) all_const = false;
    if (all_const) {
      s.execute(step, /*folding=*/true);
      for (int out : step.out) {
        if (out < 0 || !s.slots[out].folded) continue;
        s.slots[out].kind = SlotKind::Constant;
        s.live[out] = s.slots[out].folded.get();
      }
      Impl::destroy_states(step);
      s.folded_nodes.insert(step.node);
    } else {
      remaining.push_back(std::move(step));
    }
  }
  s.steps = std::move(remaining);

  // Lifetimes: an activation is released after its last reader (or at once, if nobody reads it).
  std::vector<int> last(s.slots.size(), -1);
  for (size_t i = 0; i < s.steps.size(); ++i) {
    for (int in : s.steps[i].in)
      if (in >= 0) last[in] = static_cast<int>(i);
    for (int out : s.steps[i].out)
      if (out >= 0 && last[out] < static_cast<int>(i)) last[out] = static_cast<int>(i);
  }
  for (size_t k = 0; k < s.slots.size(); ++k)
    if (s.slots[k].kind == SlotKind::Activation && !s.slots[k].graph_output && last[k] >= 0)
      s.steps[last[k]].free_after.push_back(static_cast<int>(k));
}

Session::~Session() = default;

HostTensor DeviceTensor::view() const {
  HostTensor h;
  h.set_shape(type, dims);
  h.data = data;
  return h;
}

Session::Impl::Graph::~Graph() {
#ifdef TFH_HAVE_CUDA
  kernels::cuda::graph_destroy(exec);
#endif
}

Session::Impl::Graph* Session::Impl::graph_for(const std::vector<std::pair<int, const Feed*>>& bound) {
  std::vector<int64_t> key;
  std::vector<std::pair<int, const Feed*>> sorted = bound;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  for (const auto& [k, f] : sorted) {
    const TfhDataType t = f->device ? f->device->type : f->host->type;
    const std::vector<int64_t>& d = f->device ? f->device->dims : f->host->dims;
    key.push_back(k);
    key.push_back(f->donate);  // a donated feed's buffer may become an output inside the graph
    key.push_back(t);
    key.push_back(static_cast<int64_t>(d.size()));
    key.insert(key.end(), d.begin(), d.end());
  }
  auto it = graphs.find(key);
  if (it != graphs.end()) return it->second->refused ? nullptr : it->second.get();
  // Shapes seen once run eagerly without a graph (the warm-up: constants uploaded, GEMMs
  // planned, the pool grown); a graph, with its own input buffers, is made when they come again.
  if (seen_once.insert(key).second) {
    if (seen_once.size() > kMaxSeen) seen_once.clear();  // (bounded: each shape new, say)
    return nullptr;
  }
  // Many shapes: those beyond run eagerly. (Refused shapes count: they are bounded too.)
  if (graphs.size() >= kMaxGraphs) return nullptr;
  auto g = std::make_unique<Graph>();
#ifdef TFH_HAVE_CUDA
  for (const auto& [k, f] : sorted) {
    HostTensor& t = g->inputs[k];
    t.set_shape(f->device ? f->device->type : f->host->type,
                f->device ? f->device->dims : f->host->dims);
    // Shared: an output that took a donated input's buffer over hands it to the caller, and may
    // outlive the graph. Stream-ordered, as every DeviceTensor's memory.
    void* p = kernels::cuda::device_alloc_async(t.nbytes, stream);
    std::shared_ptr<void> keep = stream_owner;
    g->input_memory[k] =
        std::shared_ptr<void>(p, [keep](void* q) { kernels::cuda::device_free_async(q, keep.get()); });
    t.data = p;
  }
#endif
  Graph* raw = g.get();
  graphs.emplace(std::move(key), std::move(g));
  return raw;
}

DeviceTensor Session::Impl::new_device_tensor(TfhDataType type, const std::vector<int64_t>& dims) {
  DeviceTensor d;
  HostTensor shape;
  shape.set_shape(type, dims);
  d.type = type;
  d.dims = dims;
  d.nbytes = shape.nbytes;
#ifdef TFH_HAVE_CUDA
  void* p = kernels::cuda::device_alloc_async(d.nbytes, stream);
  std::shared_ptr<void> keep = stream_owner;  // the stream outlives every tensor freed on it
  d.memory = std::shared_ptr<void>(p, [keep](void* q) { kernels::cuda::device_free_async(q, keep.get()); });
  d.data = p;
#else
  TFH_THROW("device tensors need a CUDA build");
#endif
  return d;
}

std::vector<std::pair<int, const Feed*>> Session::Impl::check_feeds(
    const Session& self, const std::vector<Feed>& feeds) const {
  const Impl& s = *this;
  std::vector<std::pair<int, const Feed*>> bound;
  for (const Feed& f : feeds) {
    const std::string& name = f.name;
    const ir::Value* v = s.model.graph().find(name);
    if (!v || !v->is_graph_input()) TFH_THROW("input '", name, "': the model has no such input");
    if (f.device && f.host) TFH_THROW("input '", name, "': given both on the host and the device");
    for (const auto& [k, other] : bound)
      if (other->name == name) TFH_THROW("input '", name, "': given twice");
    if (f.device && !s.cuda)
      TFH_THROW("input '", name, "': a device tensor, and this session runs on the CPU");
    if (f.donate && f.device && !f.device->memory)
      TFH_THROW("input '", name, "': a donated device tensor must own its memory");
    if (f.donate && f.host && (!f.host->storage || f.host->storage.get() != f.host->data))
      TFH_THROW("input '", name, "': a donated host tensor must own its bytes");
    // A donated feed's bytes may change during the run: no other feed may read them.
    const void* bytes = f.device ? f.device->data : f.host ? f.host->data : nullptr;
    for (const auto& [k, other] : bound) {
      const void* other_bytes = other->device ? other->device->data : other->host->data;
      if ((f.donate || other->donate) && bytes && bytes == other_bytes)
        TFH_THROW("input '", name, "': the same memory as '", other->name, "', and ",
                  f.donate ? "this one" : "that one", " is donated");
    }
    if (!f.device && (!f.host || (!f.host->data && f.host->nbytes)))
      TFH_THROW("input '", name, "': no data");
    if (f.device && !f.device->data && f.device->nbytes) TFH_THROW("input '", name, "': no data");
    const TfhDataType type = f.device ? f.device->type : f.host->type;
    const std::vector<int64_t>& dims = f.device ? f.device->dims : f.host->dims;
    // CUDA kernels read a device feed in place, and an element at an address that is not a
    // multiple of its size is a "misaligned address" fault there (a host CPU would not mind).
    const size_t elem = plugin::elem_bits(type) / 8;
    if (f.device && f.device->data && elem > 1 &&
        reinterpret_cast<uintptr_t>(f.device->data) % elem != 0)
      TFH_THROW("input '", name, "': a device tensor at an address that is not a multiple of its ",
                "element size (", elem, " bytes): CUDA kernels cannot read it there");
    const int32_t want = v->elem_type();
    if (want && want != type)
      TFH_THROW("input '", name, "': element type ", type, " given, the model wants ", want);
    if (v->has_info() && v->info().type().tensor_type().has_shape()) {
      const auto& shape = v->info().type().tensor_type().shape();
      if (shape.dim_size() != static_cast<int>(dims.size()))
        TFH_THROW("input '", name, "': rank ", dims.size(), " given, the model wants ",
                  shape.dim_size());
      for (int d = 0; d < shape.dim_size(); ++d)
        if (shape.dim(d).has_dim_value() && shape.dim(d).dim_value() != dims[d])
          TFH_THROW("input '", name, "': dimension ", d, " is ", dims[d], ", the model wants ",
                    shape.dim(d).dim_value());
    }
    bound.emplace_back(s.slot_of.at(v), &f);
  }
  // Every required input fed (checked before a graph is made for these shapes).
  std::set<int> fed;
  for (const auto& [k, f] : bound) fed.insert(k);
  for (const ir::Value* v : self.inputs_)
    if (!fed.count(s.slot_of.at(v))) TFH_THROW("input '", v->name(), "' was not given");
  return bound;
}

#ifdef TFH_HAVE_CUDA
// Before step i runs: asks L2 for the weights of the steps after it (from `next` on, which
// advances) while they fit `prefetch_window` bytes beyond step i (`window`: asked for and not yet
// run). A step whose weights alone exceed the window (an LM head) is passed over.
void Session::Impl::prefetch_weights_ahead(size_t i, size_t& next, uint64_t& window) {
  const auto& ranges = prefetch_ranges;
  const auto& bytes = prefetch_bytes;
  if (next <= i) {
    next = i + 1;
    window = 0;
  } else if (bytes[i] <= prefetch_window) {
    window -= bytes[i];  // (step i was asked for before: it runs now; a larger one never was)
  }
  std::vector<std::pair<const void*, size_t>> ask;
  for (; next < steps.size(); ++next) {
    if (bytes[next] > prefetch_window) continue;
    if (window + bytes[next] > prefetch_window) break;
    window += bytes[next];
    ask.insert(ask.end(), ranges[next].begin(), ranges[next].end());
  }
  kernels::cuda::l2_prefetch(prefetcher.get(), ask, stream);
}

// The weights each step reads whole (products and attention's QKV weights on the device, from
// 64 KiB), for the prefetch ahead.
void Session::Impl::plan_prefetch() {
  static const std::set<std::string> kReadWhole = {"MatMul", "Gemm", "GemmFastGelu", "FusedMatMul",
                                                   "Attention"};
  prefetch_ranges.assign(steps.size(), {});
  prefetch_bytes.assign(steps.size(), 0);
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    if (!step.on_cuda || !kReadWhole.count(step.node->op_type())) continue;
    for (int k : step.in)
      if (k >= 0 && slots[k].kind == SlotKind::Constant && dev_const[k].data &&
          dev_const[k].nbytes >= kMinPrefetchBytes) {
        prefetch_ranges[i].emplace_back(dev_const[k].data, dev_const[k].nbytes);
        prefetch_bytes[i] += dev_const[k].nbytes;
      }
  }
  prefetch_planned = true;
}
#endif

// Every step of the plan, in order; each activation goes back to its pool after its last reader.
void Session::Impl::run_steps(Session& self, std::chrono::steady_clock::time_point run_start) {
  Impl& s = *this;
#ifdef TFH_HAVE_CUDA
  size_t prefetch_next = 0;
  uint64_t prefetch_window_used = 0;
  const bool prefetch = s.prefetcher && s.prefetch_constants_uploaded;
  if (prefetch && !s.prefetch_planned) s.plan_prefetch();
#endif
  for (size_t i = 0; i < s.steps.size(); ++i) {
    Step& step = s.steps[i];
#ifdef TFH_HAVE_CUDA
    if (prefetch) s.prefetch_weights_ahead(i, prefetch_next, prefetch_window_used);
#endif
    auto t0 = std::chrono::steady_clock::now();
    s.execute(step, /*folding=*/false);
#ifdef TFH_HAVE_CUDA
    if (s.opts.profile && step.on_cuda) kernels::cuda::stream_sync(s.stream);  // its real time
#endif
    if (s.opts.profile) {
      using ms = std::chrono::duration<double, std::milli>;
      self.node_times_.push_back({step.node, ms(t0 - run_start).count(),
                                  ms(std::chrono::steady_clock::now() - t0).count()});
    }
    for (int k : step.free_after) {
      if (s.is_seq[k]) {
        s.seqs[k].clear();
        s.is_seq[k] = false;
      }
      if (s.cuda) s.release_mirror(k);
      if (!s.donated[k] && !s.borrowed[k]) s.pool_of(k).release(const_cast<void*>(s.act[k].data));
      s.donated[k] = false;
      s.borrowed[k] = 0;
      s.act[k].data = nullptr;
      if (s.cuda) s.on_dev[k] = 0;
      s.live[k] = nullptr;
    }
  }
#ifdef TFH_HAVE_CUDA
  if (s.prefetcher) {
    kernels::cuda::l2_prefetch_join(s.prefetcher.get(), s.stream);
    s.prefetch_constants_uploaded = true;  // (every step has run once)
  }
#endif
}

// The run's outputs: to the caller's device tensors, or to the host (device values copied back
// after the stream's work); device buffers go back to the pool.
void Session::Impl::collect_outputs(Session& self, bool outputs_on_device,
                                    std::vector<std::unique_ptr<HostTensor>>* host_out,
                                    std::vector<DeviceTensor>* dev_out) {
  Impl& s = *this;
  (void)outputs_on_device;
  (void)dev_out;  // (used only in CUDA builds)
  try {
#ifdef TFH_HAVE_CUDA
    if (s.cuda) {
      for (size_t k = 0; k < s.slots.size(); ++k) s.release_mirror(static_cast<int>(k));
      if (outputs_on_device) {
        // Each output into a tensor of the caller's (a copy: the pool's blocks stay the pool's),
        // except one that took a donated feed's buffer over: that buffer, shared.
        for (const ir::Value* v : self.outputs_) {
          const int k = s.slot_of.at(v);
          const HostTensor* t = s.live[k];
          if (!t) TFH_THROW("output '", v->name(), "' was not produced");
          if (s.aliases_feed[k] >= 0 && s.feed_memory[s.aliases_feed[k]]) {
            DeviceTensor d;
            d.type = t->type, d.dims = t->dims, d.nbytes = t->nbytes;
            d.data = const_cast<void*>(t->data);
            d.memory = s.feed_memory[s.aliases_feed[k]];
            dev_out->push_back(std::move(d));
            continue;
          }
          DeviceTensor d = s.new_device_tensor(t->type, t->dims);
          if (s.on_dev[k])
            kernels::cuda::copy_on_device(d.data, t->data, d.nbytes, s.stream);
          else
            kernels::cuda::copy_to_device(d.data, t->data, d.nbytes, s.stream);
          dev_out->push_back(std::move(d));
        }
        for (const ir::Value* v : self.outputs_) {
          const int k = s.slot_of.at(v);
          if (s.on_dev[k]) s.release_slot(k);
          s.owned_outputs[k] = nullptr;
        }
        return;
      }
      // Graph outputs made on the device come back to the host here, after the stream's work.
      std::vector<std::pair<int, HostTensor*>> pending;
      for (const ir::Value* v : self.outputs_) {
        const int k = s.slot_of.at(v);
        if (s.on_dev[k] && s.live[k] && !s.owned_outputs[k]) {
          auto t = make_output_tensor(s.live[k]->type, s.live[k]->dims);
          kernels::cuda::copy_to_host(const_cast<void*>(t->data), s.live[k]->data, t->nbytes, s.stream);
          pending.emplace_back(k, t.get());
          s.owned_outputs[k] = std::move(t);
        }
      }
      kernels::cuda::stream_sync(s.stream);
      for (const auto& [k, t] : pending) {
        s.release_slot(k);
        s.live[k] = t;
      }
    }
#endif
  } catch (...) {
    s.abandon_run();
    throw;
  }
  for (const ir::Value* v : self.outputs_) {
    int k = s.slot_of.at(v);
    HostTensor* donor = s.aliases_feed[k] >= 0 ? s.host_donor[s.aliases_feed[k]] : nullptr;
    if (donor && s.live[k] && s.live[k]->data == donor->data) {
      // A donated host feed's bytes, taken over: they move into the output.
      auto t = std::make_unique<HostTensor>();
      t->set_shape(s.live[k]->type, s.live[k]->dims);
      t->storage = std::move(donor->storage);
      t->data = t->storage.get();
      t->writable = true;
      donor->data = nullptr;
      s.act[k].data = nullptr;  // the caller's now, not the session's
      host_out->push_back(std::move(t));
    } else if (s.owned_outputs[k]) {
      host_out->push_back(std::move(s.owned_outputs[k]));
    } else if (s.live[k]) {  // a graph input, initializer or folded constant passed through
      host_out->push_back(copy_tensor(*s.live[k]));
    } else {
      TFH_THROW("output '", v->name(), "' was not produced");
    }
  }
}

void Session::Impl::run(Session& self, const std::vector<Feed>& feeds, bool outputs_on_device,
                        std::vector<std::unique_ptr<HostTensor>>* host_out,
                        std::vector<DeviceTensor>* dev_out) {
  Impl& s = *this;
  if (s.opts.threads > 0) omp_set_num_threads(s.opts.threads);
  // Every feed is checked before any is bound; whatever a run binds is unbound when it ends, by
  // any path, so no caller's tensor outlives the run inside the session.
  const std::vector<std::pair<int, const Feed*>> bound = check_feeds(self, feeds);
  struct Unbind {
    Impl& s;
    ~Unbind() {
      for (size_t k = 0; k < s.slots.size(); ++k) {
        if (s.slots[k].kind != SlotKind::Constant) {
          s.live[k] = nullptr;
          if (s.cuda && s.slots[k].kind == SlotKind::Input) s.on_dev[k] = 0;
        }
        // An output that took a donated feed's bytes over holds none of the pool's.
        if (s.aliases_feed[k] >= 0) s.act[k].data = nullptr;
        s.feed_memory[k] = nullptr;
        s.host_donor[k] = nullptr;
        s.aliases_feed[k] = -1;
        s.donated[k] = false;  // (a donated feed's slot; activations are reset as they go)
        s.borrowed[k] = 0;
      }
    }
  } unbind{s};

  // A CUDA graph for these shapes (captured on their second run, replayed after that).
  Graph* g = nullptr;
  if (s.cuda && s.opts.cuda_graph && !s.opts.profile && !s.graph_stats.refused_for_good)
    g = s.graph_for(bound);
  // A graph that hands a donated input's buffer out as an output writes that buffer on every
  // run: when the caller still holds an earlier output made of it and feeds something else,
  // copying the feed in would overwrite what the caller holds, so this run is eager instead.
  if (g)
    for (const auto& [k, f] : bound)
      if (f->donate && (!f->device || f->device->data != g->inputs.at(k).data) &&
          g->input_memory.at(k).use_count() > 1)
        g = nullptr;
  std::vector<HostTensor> device_feeds(bound.size());
  for (size_t i = 0; i < bound.size(); ++i) {
    const auto& [k, f] = bound[i];
#ifdef TFH_HAVE_CUDA
    if (g) {  // into the graph's own input buffer, whichever side the feed is on
      HostTensor& b = g->inputs.at(k);
      if (f->device && f->device->data != b.data)
        kernels::cuda::copy_on_device(const_cast<void*>(b.data), f->device->data, b.nbytes, s.stream);
      else if (!f->device)
        kernels::cuda::copy_to_device(const_cast<void*>(b.data), f->host->data, b.nbytes, s.stream);
      s.live[k] = &b;
      s.on_dev[k] = 1;
      if (f->donate) s.feed_memory[k] = g->input_memory.at(k);
      continue;
    }
#endif
    if (f->device) {
      device_feeds[i] = f->device->view();
      s.live[k] = &device_feeds[i];
      s.on_dev[k] = 1;
      if (f->donate) s.feed_memory[k] = f->device->memory;
    } else {
      s.live[k] = f->host;
      if (f->donate) s.host_donor[k] = const_cast<HostTensor*>(f->host);
    }
  }
  for (size_t k = 0; k < s.slots.size(); ++k)
    if (s.slots[k].has_default && !s.live[k]) s.live[k] = &s.slots[k].view;
  for (const ir::Value* v : self.inputs_)
    if (!s.live[s.slot_of.at(v)]) TFH_THROW("input '", v->name(), "' was not given");

  s.pool.start_run();
  self.node_times_.clear();
  const auto run_start = std::chrono::steady_clock::now();
  s.traffic = DeviceTraffic{};
  const bool replay = g && g->exec;
  const bool capture = g && !g->exec;
  (void)capture;  // (used only in CUDA builds)
  try {
#ifdef TFH_HAVE_CUDA
    if (replay) {
      kernels::cuda::graph_launch(g->exec, s.stream);
      ++s.graph_stats.replays;
      for (size_t i = 0; i < self.outputs_.size(); ++i) {
        const int k = s.slot_of.at(self.outputs_[i]);
        s.act[k].set_shape(g->outputs[i].type, g->outputs[i].dims);
        s.act[k].data = g->outputs[i].data;
        s.live[k] = &s.act[k];
        s.on_dev[k] = s.replayed[k] = 1;
        s.aliases_feed[k] = g->output_alias[i];
      }
    }
    if (capture) {
      kernels::cuda::graph_begin(s.stream);
      s.capturing = true;
    }
#endif
    if (!replay) s.run_steps(self, run_start);
#ifdef TFH_HAVE_CUDA
    if (capture) {
      // The outputs must be device values the graph writes (not host ones, which a replay
      // would not recompute).
      for (const ir::Value* v : self.outputs_) {
        const int k = s.slot_of.at(v);
        if (!s.on_dev[k] || s.slots[k].kind != SlotKind::Activation || s.owned_outputs[k])
          throw GraphRefused("output '" + v->name() + "' is made on the CPU");
      }
      s.capturing = false;
      g->exec = kernels::cuda::graph_end(s.stream, &s.graph_stats.nodes);
      g->outputs.resize(self.outputs_.size());
      g->output_alias.assign(self.outputs_.size(), -1);
      for (size_t i = 0; i < self.outputs_.size(); ++i) {
        const int k = s.slot_of.at(self.outputs_[i]);
        const HostTensor* t = s.live[k];
        g->outputs[i].set_shape(t->type, t->dims);
        g->outputs[i].data = t->data;
        g->output_alias[i] = s.aliases_feed[k];
      }
      kernels::cuda::graph_launch(g->exec, s.stream);  // capturing ran nothing: this run's work
      ++s.graph_stats.captured;
    }
#endif
  } catch (const std::exception& e) {
#ifdef TFH_HAVE_CUDA
    // Not capturable (a value crossing sides, or CUDA refusing an operation while capturing):
    // remember why, and run these inputs eagerly, and every later run (or, when only these
    // shapes are at fault, every later run of them). Any other error while capturing (a library
    // call that fails under capture without saying so, or the run's own error): these inputs run
    // again eagerly; if that works these shapes stay eager, if not its error goes to the caller.
    const std::string why = e.what();
    const auto* graph_refused = dynamic_cast<const GraphRefused*>(&e);
    const bool refused = graph_refused || why.find("captur") != std::string::npos;
    const bool shapes_only = graph_refused && graph_refused->shapes_only;
    if (capture) {
      kernels::cuda::graph_abort(s.stream);
      s.capturing = false;
      if (g->exec) {
        kernels::cuda::graph_destroy(g->exec);
        g->exec = nullptr;
      }
    }
    if (capture && refused) {
      s.abandon_run();
      if (shapes_only) {  // these shapes run eagerly from now on; the graph's buffers go
        if (s.graph_stats.refused.empty()) s.graph_stats.refused = why;
        ++s.graph_stats.refused_shapes;
        g->refused = true;
        g->inputs.clear();
        g->input_memory.clear();
      } else {
        s.graph_stats.refused = why.empty() ? "a CUDA graph could not be captured" : why;
        s.graph_stats.refused_for_good = true;
        s.graphs.clear();
        s.seen_once.clear();
      }
      for (size_t k = 0; k < s.slots.size(); ++k)
        if (s.slots[k].kind != SlotKind::Constant) s.live[k] = nullptr;
      run(self, feeds, outputs_on_device, host_out, dev_out);
      return;
    }
    if (capture) {
      s.abandon_run();
      for (size_t k = 0; k < s.slots.size(); ++k)
        if (s.slots[k].kind != SlotKind::Constant) s.live[k] = nullptr;
      g->refused = true;  // graph_for passes these shapes by: eager
      try {
        run(self, feeds, outputs_on_device, host_out, dev_out);
      } catch (...) {
        g->refused = false;  // the run's own error: a later run of these shapes captures again
        throw;
      }
      if (s.graph_stats.refused.empty()) s.graph_stats.refused = "capturing failed: " + why;
      ++s.graph_stats.refused_shapes;
      g->inputs.clear();
      g->input_memory.clear();
      return;
    }
#endif
    s.abandon_run();
    throw;
  }
  s.last_peak = s.pool.peak();
  collect_outputs(self, outputs_on_device, host_out, dev_out);
}

std::vector<std::unique_ptr<HostTensor>> Session::run(
    const std::vector<std::pair<std::string, const HostTensor*>>& feeds) {
  std::vector<Feed> f;
  f.reserve(feeds.size());
  for (const auto& [name, t] : feeds) f.push_back(Feed{name, t, nullptr});
  std::vector<std::unique_ptr<HostTensor>> out;
  impl_->run(*this, f, /*outputs_on_device=*/false, &out, nullptr);
  return out;
}

std::vector<std::unique_ptr<HostTensor>> Session::run_feeds(const std::vector<Feed>& feeds) {
  std::vector<std::unique_ptr<HostTensor>> out;
  impl_->run(*this, feeds, /*outputs_on_device=*/false, &out, nullptr);
  return out;
}

std::vector<DeviceTensor> Session::run_device(const std::vector<Feed>& feeds) {
  TFH_CHECK(impl_->cuda, "run_device: this session runs on the CPU (IO binding needs device cuda)");
  std::vector<DeviceTensor> out;
  impl_->run(*this, feeds, /*outputs_on_device=*/true, nullptr, &out);
  return out;
}

DeviceTensor Session::to_device(const HostTensor& t) {
  TFH_CHECK(impl_->cuda, "to_device: this session runs on the CPU");
  DeviceTensor d = impl_->new_device_tensor(t.type, t.dims);
#ifdef TFH_HAVE_CUDA
  kernels::cuda::copy_to_device(d.data, t.data, d.nbytes, impl_->stream);
#endif
  return d;
}

std::unique_ptr<HostTensor> Session::to_host(const DeviceTensor& t) {
  TFH_CHECK(impl_->cuda, "to_host: this session runs on the CPU");
  auto h = make_output_tensor(t.type, t.dims);
#ifdef TFH_HAVE_CUDA
  kernels::cuda::copy_to_host(const_cast<void*>(h->data), t.data, t.nbytes, impl_->stream);
  kernels::cuda::stream_sync(impl_->stream);
#endif
  return h;
}

void Session::synchronize() {
#ifdef TFH_HAVE_CUDA
  if (impl_->cuda) kernels::cuda::stream_sync(impl_->stream);
#endif
}

GraphStats Session::graph_stats() const { return impl_->graph_stats; }

std::string GraphStats::refusal_text() const {
  if (refused.empty()) return "";
  if (refused_for_good) return "not capturable: " + refused;
  return std::to_string(refused_shapes) + " input shape set" + (refused_shapes == 1 ? "" : "s") +
         " not capturable: " + refused;
}
DeviceTraffic Session::device_traffic() const { return impl_->traffic; }

size_t Session::pool_bytes() const { return impl_->pool.total(); }
size_t Session::released_bytes() const { return impl_->released; }
size_t Session::last_peak_bytes() const { return impl_->last_peak; }

const HostTensor* Session::constant(const ir::Value* v) const {
  auto it = impl_->slot_of.find(v);
  if (it == impl_->slot_of.end()) return nullptr;
  const Slot& s = impl_->slots[it->second];
  if (s.kind != SlotKind::Constant) return nullptr;
  return s.folded ? s.folded.get() : &s.view;
}

std::vector<std::pair<const ir::Node*, std::string>> Session::kernel_choices() const {
  std::vector<std::pair<const ir::Node*, std::string>> out;
  for (const Step& s : impl_->steps) out.emplace_back(s.node, s.kernel->origin);
  return out;
}

std::vector<std::pair<const ir::Node*, std::string>> Session::kernel_names() const {
  std::vector<std::pair<const ir::Node*, std::string>> out;
  for (const Step& s : impl_->steps) {
    std::string name = s.kernel->desc->name ? s.kernel->desc->name : "?";
    if (!s.next.empty()) name += " (then " + std::string(s.next.front()->desc->name ? s.next.front()->desc->name : "?") + ")";
    out.emplace_back(s.node, name);
  }
  return out;
}

std::vector<Session::Placement> Session::placements() const {
  std::vector<Placement> out;
  for (const Step& s : impl_->steps) {
    using W = Placement::Where;
    W where = W::Cpu;
    if (s.on_cuda) where = W::Gpu;
    else if (s.shape_math) where = W::ShapeArithmetic;
    else if (s.passthrough == Step::Passthrough::View) where = W::View;
    out.push_back({where, s.node, where == W::Cpu ? s.cpu_reason : std::string()});
  }
  return out;
}

}  // namespace tfh::runtime
