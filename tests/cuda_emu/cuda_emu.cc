// The CPU emulator's scheduler and runtime (see cuda_emu.h): a block's threads as Boost.Context
// fibers run round-robin from barrier to barrier; device memory is host memory.
#include "cuda_emu.h"

#include <boost/context/fiber.hpp>
#include <boost/context/preallocated.hpp>
#include <boost/context/stack_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace tfh::emu {
namespace ctx = boost::context;

namespace {

// A kernel's misuse of the device (deadlock, shuffle with missing lanes): ends the launch.
struct Fault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The stacks of the threads' fibers: kernels keep small arrays in registers (on a GPU) and the
// emulator's frames sit under them. Reused from block to block (a block makes its threads anew).
constexpr size_t kStackBytes = 256 * 1024;
struct StackPool {
  std::vector<std::unique_ptr<unsigned char[]>> all;
  std::vector<unsigned char*> free;
  unsigned char* take() {
    if (free.empty()) {
      all.emplace_back(new unsigned char[kStackBytes]);
      return all.back().get();
    }
    unsigned char* p = free.back();
    free.pop_back();
    return p;
  }
};
StackPool& stack_pool() {
  static thread_local StackPool pool;
  return pool;
}
// Boost.Context's allocator for a fiber made on one of those stacks: gives it back to the pool.
struct PoolStack {
  ctx::stack_context allocate() { throw std::logic_error("CUDA emulator: stacks are preallocated"); }
  void deallocate(ctx::stack_context& sc) {
    stack_pool().free.push_back(static_cast<unsigned char*>(sc.sp) - sc.size);
  }
};

// AddressSanitizer must be told of every switch between stacks (the tests build with it).
#if defined(__SANITIZE_ADDRESS__)
struct StackSwitch {
  void* fake = nullptr;
  void start(const void* bottom, size_t size) { __sanitizer_start_switch_fiber(&fake, bottom, size); }
  void start_final(const void* bottom, size_t size) { __sanitizer_start_switch_fiber(nullptr, bottom, size); }
  void finish(const void** bottom = nullptr, size_t* size = nullptr) {
    __sanitizer_finish_switch_fiber(fake, bottom, size);
  }
};
#else
struct StackSwitch {
  void start(const void*, size_t) {}
  void start_final(const void*, size_t) {}
  void finish(const void** = nullptr, size_t* = nullptr) {}
};
#endif
thread_local const void* g_scheduler_stack = nullptr;
thread_local size_t g_scheduler_stack_size = 0;

enum class Wait { Running, Block, Warp, Done };

struct Thread {
  ThreadContext ctx;
  int linear = 0, lane = 0, warp = 0;
  Wait wait = Wait::Running;
  unsigned warp_mask = 0;
  unsigned shuffles = 0;  // this lane's shuffle count: its parity picks the exchange buffer
  int collective = 0;     // what it waits in at Wait::Warp: 1 a shuffle, 2 a warp_gather (mma)
  ctx::fiber fiber;       // resumed by the scheduler
  ctx::fiber scheduler;   // resumed by the thread to wait at a barrier
  const void* stack = nullptr;  // the fiber's stack (its lowest address)
  StackSwitch asan;
};

struct Warp {
  uint64_t slots[2][32] = {};
  uint32_t words[2][32][8] = {};  // warp_gather's, by the same parity as slots
};

struct Block {
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  std::vector<unsigned char> shared;  // dynamic shared memory
  std::string fault;                  // the first thread's failure
};

thread_local Block* g_block = nullptr;
thread_local Thread* g_thread = nullptr;
thread_local cudaError_t g_last_error = cudaSuccess;
thread_local std::string g_last_reason;

Thread& self() {
  if (!g_thread) throw std::logic_error("CUDA emulator: a device function called outside a kernel");
  return *g_thread;
}

// Back to the scheduler until the barrier this thread waits at is released.
void wait_at(Wait w) {
  Thread& t = self();
  t.wait = w;
  t.asan.start(g_scheduler_stack, g_scheduler_stack_size);
  t.scheduler = std::move(t.scheduler).resume();
  t.asan.finish();
  if (!g_block->fault.empty()) throw Fault(g_block->fault);  // another thread failed: unwind
}

void fail(cudaError_t e, std::string why) {
  g_last_error = e;
  g_last_reason = std::move(why);
  std::fprintf(stderr, "CUDA emulator: %s\n", g_last_reason.c_str());
}

std::string hex(unsigned v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

std::string dims(dim3 d) {
  return std::to_string(d.x) + "x" + std::to_string(d.y) + "x" + std::to_string(d.z);
}

// Releases the barriers every waiting thread has reached; false when none can be (deadlock).
bool release(Block& blk) {
  bool released = false;
  const size_t n = blk.threads.size();
  for (size_t w0 = 0; w0 < n; w0 += 32) {
    const size_t w1 = std::min(n, w0 + 32);
    bool any = false, all = true;
    unsigned mask = 0;
    int kinds = 0;
    for (size_t i = w0; i < w1; ++i) {
      const Thread& t = blk.threads[i];
      if (t.wait == Wait::Warp) any = true, mask |= t.warp_mask, kinds |= t.collective;
      else all = false;
    }
    if (!any) continue;
    // Lanes of one warp in different collectives (a shuffle and an mma): undefined on a GPU.
    if (kinds == 3)
      throw Fault("warp " + std::to_string(w0 / 32) + " has lanes in a shuffle and others in a "
                  "tensor-core product at the same time");
    if (!all) {
      // Lanes of the shuffle's mask that are elsewhere: exited, or at another barrier.
      unsigned waiting = 0, needed = mask;
      for (size_t i = w0; i < w1; ++i)
        if (blk.threads[i].wait == Wait::Warp) waiting |= 1u << (i - w0);
      if ((needed & ~waiting) != 0) {
        for (size_t i = w0; i < w1; ++i)
          if ((needed >> (i - w0) & 1u) && blk.threads[i].wait == Wait::Done)
            throw Fault("warp shuffle with mask " + hex(needed) + " in warp " +
                        std::to_string(w0 / 32) + ", whose lane " + std::to_string(i - w0) +
                        " has exited");
        continue;  // the others are at a block barrier: a deadlock unless released below
      }
    }
    if (mask == 0xffffffffu && w1 - w0 < 32)
      throw Fault("full-mask warp shuffle in warp " + std::to_string(w0 / 32) + " of only " +
                  std::to_string(w1 - w0) + " threads");
    for (size_t i = w0; i < w1; ++i)
      if (blk.threads[i].wait == Wait::Warp) blk.threads[i].wait = Wait::Running;
    released = true;
  }
  if (released) return true;
  size_t at_block = 0, done = 0;
  for (const Thread& t : blk.threads) at_block += t.wait == Wait::Block, done += t.wait == Wait::Done;
  if (at_block == 0) return false;
  if (at_block + done < n) return false;
  if (done > 0)
    throw Fault("__syncthreads reached by " + std::to_string(at_block) + " threads of the block after " +
                std::to_string(done) + " others exited");
  for (Thread& t : blk.threads) t.wait = Wait::Running;
  return true;
}

// The static shared variables (TFH_SHARED) the running launch's blocks declared so far.
std::vector<std::pair<unsigned char*, size_t>> g_launch_shared;
void fill_shared(unsigned char* p, size_t bytes) { std::memset(p, 0xff, bytes); }

// Runs one block to the end; throws Fault.
void run_block(Block& blk, dim3 grid, dim3 block, uint3 block_idx, size_t shared_bytes,
               const std::function<void()>& body) {
  const size_t n = size_t(block.x) * block.y * block.z;
  blk.threads.clear();
  blk.threads.resize(n);
  blk.warps.assign((n + 31) / 32, Warp{});
  blk.shared.assign(shared_bytes, 0xff);  // NaN floats (uninitialised shared memory is garbage)
  for (auto [p, bytes] : g_launch_shared) fill_shared(p, bytes);
  blk.fault.clear();
  for (size_t i = 0; i < n; ++i) {
    Thread& t = blk.threads[i];
    t.linear = static_cast<int>(i);
    t.lane = static_cast<int>(i % 32);
    t.warp = static_cast<int>(i / 32);
    t.ctx.thread_idx = {static_cast<unsigned>(i % block.x),
                        static_cast<unsigned>(i / block.x % block.y),
                        static_cast<unsigned>(i / (size_t(block.x) * block.y))};
    t.ctx.block_idx = block_idx;
    t.ctx.block_dim = block;
    t.ctx.grid_dim = grid;
    unsigned char* stack = stack_pool().take();
    t.stack = stack;
    ctx::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = stack + kStackBytes;
    t.fiber = ctx::fiber(std::allocator_arg, ctx::preallocated(sc.sp, sc.size, sc), PoolStack(),
                         [&blk, &t, &body](ctx::fiber&& sched) {
      t.asan.finish(&g_scheduler_stack, &g_scheduler_stack_size);
      t.scheduler = std::move(sched);
      try {
        body();
      } catch (const ctx::detail::forced_unwind&) {
        throw;  // the fiber is being destroyed: let Boost.Context unwind it
      } catch (const std::exception& e) {
        if (blk.fault.empty()) blk.fault = e.what();
      }
      t.wait = Wait::Done;
      t.asan.start_final(g_scheduler_stack, g_scheduler_stack_size);
      return std::move(t.scheduler);
    });
  }
  struct Clear {
    ~Clear() { g_thread = nullptr; }
  } clear;
  // Blocks alternate between running their threads first to last and last to first, so a
  // thread that reads what a lower- or a higher-numbered thread writes in the same barrier
  // interval (a missing barrier) sees the value unwritten in one of the two orders.
  const bool reverse = (block_idx.x + block_idx.y + block_idx.z) % 2 == 1;
  for (;;) {
    bool all_done = true;
    for (size_t k = 0; k < n; ++k) {
      Thread& t = blk.threads[reverse ? n - 1 - k : k];
      if (t.wait == Wait::Running) {
        g_thread = &t;
        StackSwitch to_thread;
        to_thread.start(t.stack, kStackBytes);
        t.fiber = std::move(t.fiber).resume();
        to_thread.finish();
        if (!blk.fault.empty()) throw Fault(blk.fault);
      }
      all_done = all_done && t.wait == Wait::Done;
    }
    if (all_done) break;
    if (!release(blk)) {
      size_t warp = 0, at_block = 0, done = 0;
      for (const Thread& t : blk.threads)
        warp += t.wait == Wait::Warp, at_block += t.wait == Wait::Block, done += t.wait == Wait::Done;
      throw Fault("deadlock in block (" + std::to_string(block_idx.x) + ", " +
                  std::to_string(block_idx.y) + ", " + std::to_string(block_idx.z) + "): " +
                  std::to_string(at_block) + " threads at __syncthreads, " + std::to_string(warp) +
                  " at a warp shuffle, " + std::to_string(done) + " exited");
    }
  }
}

}  // namespace

const ThreadContext& context() { return self().ctx; }

void sync_block() { wait_at(Wait::Block); }

uint64_t warp_exchange(unsigned mask, uint64_t bits, int src_lane) {
  Thread& t = self();
  if (!(mask >> t.lane & 1u)) throw Fault("warp shuffle by a lane outside its own mask");
  // Two buffers: a lane can only write buffer (k + 2) % 2 after every lane passed shuffle k + 1,
  // so after all of them read shuffle k's values.
  Warp& w = g_block->warps[t.warp];
  const unsigned buf = t.shuffles++ & 1u;
  w.slots[buf][t.lane] = bits;
  t.warp_mask = mask;
  t.collective = 1;
  wait_at(Wait::Warp);
  if (!(mask >> src_lane & 1u)) throw Fault("warp shuffle reads lane " + std::to_string(src_lane) +
                                            ", outside the mask");
  return w.slots[buf][src_lane];
}

const uint32_t (*warp_gather(const uint32_t* words, int n))[8] {
  if (n < 0 || n > 8) throw std::logic_error("CUDA emulator: warp_gather of over 8 words");
  Thread& t = self();
  Warp& w = g_block->warps[t.warp];
  const unsigned buf = t.shuffles++ & 1u;  // (the parity rule of warp_exchange)
  std::memcpy(w.words[buf][t.lane], words, sizeof(uint32_t) * static_cast<size_t>(n));
  t.warp_mask = 0xffffffffu;
  t.collective = 2;
  wait_at(Wait::Warp);
  return w.words[buf];
}

namespace {
float half_bits_to_float(uint16_t u, bool bf16) {
  if (bf16) {
    const uint32_t w = uint32_t(u) << 16;
    float f;
    std::memcpy(&f, &w, 4);
    return f;
  }
  __half_raw r;
  r.x = u;
  return __half2float(__half(r));
}
}  // namespace

void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], bool bf16) {
  const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  const uint32_t (*all)[8] = warp_gather(mine, 6);
  // groupID = lane / 4, threadID_in_group = lane % 4. A: register 0 holds A[g][2t, 2t + 1],
  // 1 A[g + 8][2t, 2t + 1], 2 A[g][2t + 8, 2t + 9], 3 A[g + 8][2t + 8, 2t + 9]; B: register 0
  // B[2t, 2t + 1][g], 1 B[2t + 8, 2t + 9][g]; the lower-numbered element in the low half. The
  // accumulator: d0, d1 are C[g][2t, 2t + 1], d2, d3 C[g + 8][2t, 2t + 1].
  auto element = [&](int lane, int reg, int k) {
    return half_bits_to_float(static_cast<uint16_t>(all[lane][reg] >> (16 * (k & 1))), bf16);
  };
  auto A = [&](int r, int k) { return element((r % 8) * 4 + (k % 8) / 2, (r >= 8) + 2 * (k >= 8), k); };
  auto B = [&](int k, int n) { return element(n * 4 + (k % 8) / 2, 4 + (k >= 8), k); };
  const int lane = self().lane, g = lane / 4, t = lane % 4;
  for (int e = 0; e < 4; ++e) {
    const int r = g + 8 * (e / 2), n = 2 * t + (e & 1);
    float s = d[e];
    for (int k = 0; k < 16; ++k) s += A(r, k) * B(k, n);
    d[e] = s;
  }
}

int lane_id() { return self().lane; }

void* dynamic_shared() {
  self();
  return g_block->shared.empty() ? nullptr : g_block->shared.data();
}

std::mutex& launch_mutex() {
  static std::mutex mu;
  return mu;
}

void shared_declared(void* p, size_t bytes) {
  unsigned char* at = static_cast<unsigned char*>(p);
  for (const auto& [q, n] : g_launch_shared)
    if (q == at) return;
  g_launch_shared.emplace_back(at, bytes);
  fill_shared(at, bytes);
}

bool launch_grid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  if (g_thread) throw std::logic_error("CUDA emulator: a launch from inside a kernel");
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
      grid.z > 65535 || threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 ||
      block.z > 64) {
    fail(cudaErrorInvalidConfiguration,
         "invalid configuration: grid " + dims(grid) + ", block " + dims(block));
    return false;
  }
  if (shared_bytes > 48 * 1024) {
    fail(cudaErrorInvalidValue,
         std::to_string(shared_bytes) + " bytes of dynamic shared memory (48 KiB without opting in)");
    return false;
  }
  // One launch at a time in the process: the static __shared__ variables are the block's.
  std::lock_guard<std::mutex> one_at_a_time(launch_mutex());
  g_launch_shared.clear();
  Block blk;
  g_block = &blk;
  try {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) run_block(blk, grid, block, {x, y, z}, shared_bytes, body);
  } catch (const Fault& f) {
    g_block = nullptr;
    fail(cudaErrorLaunchFailure, f.what());
    return false;
  }
  g_block = nullptr;
  return true;
}

// ---- streams and graph capture ---------------------------------------------------------------------

namespace {
// One capture: begun on `origin`; other streams join it by waiting on an event recorded in it
// (a fork) and must be joined back (the origin waiting on an event recorded on them after their
// last operation) before it ends, as CUDA requires. Operations from every stream of the capture
// go into one list, in call order (one valid order of the graph's branches).
struct Capture {
  cudaStream_t origin = nullptr;
  std::vector<std::function<void()>> ops;
  bool invalidated = false;  // a synchronisation while capturing (CUDA invalidates the capture)
  std::map<cudaStream_t, size_t> forked_ops;     // per forked stream: ops.size() after its last
  std::map<cudaStream_t, size_t> forked_joined;  // per forked stream: what the origin waited on
};
std::map<cudaStream_t, std::shared_ptr<Capture>>& captures() {  // every stream in a capture
  static std::map<cudaStream_t, std::shared_ptr<Capture>> m;
  return m;
}
Capture* capture_of(cudaStream_t s) {
  auto it = captures().find(s);
  return it == captures().end() ? nullptr : it->second.get();
}
}  // namespace

bool record(cudaStream_t stream, std::function<void()> op) {
  Capture* c = capture_of(stream);
  if (!c) return false;
  c->ops.push_back(std::move(op));
  if (stream != c->origin) c->forked_ops[stream] = c->ops.size();
  return true;
}

}  // namespace tfh::emu

// The opaque runtime types, as the emulator holds them.
struct CUstream_st {
  unsigned flags = 0;
};
struct CUgraph_st {
  std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> ops;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
  bool recorded = false;  // eagerly, with a time
  // Recorded in a capture: which, on which stream, after how many of its operations.
  std::shared_ptr<tfh::emu::Capture> capture;
  cudaStream_t stream = nullptr;
  size_t ops_at = 0;
};

// ---- the runtime API the kernels and their tests call -------------------------------------------
using tfh::emu::g_last_error;
using tfh::emu::g_last_reason;

namespace {
// `what` on stream `s` when it captures, which the emulator does not record: the error it
// returns (and sets as the last one), else cudaSuccess.
cudaError_t refused_while_capturing(cudaStream_t s, const char* what) {
  if (!tfh::emu::capture_of(s)) return cudaSuccess;
  g_last_reason = std::string(what) + " while capturing (not emulated)";
  return g_last_error = cudaErrorStreamCaptureUnsupported;
}
}  // namespace

extern "C" {

cudaError_t cudaMalloc(void** p, size_t bytes) {
  // 256-byte aligned as CUDA's, but not rounded up: a kernel that reads or writes one element
  // past the buffer meets AddressSanitizer's red zone (on a GPU it would touch the padding).
  *p = nullptr;
  return posix_memalign(p, 256, std::max<size_t>(bytes, 1)) == 0 ? cudaSuccess
                                                                 : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s) {
  // A copy between host and device while capturing is refused and spoils the capture: a replay
  // would read or write the host bytes of the capture's time (tfhost's host memory is pageable,
  // and may be gone), so tfhost must never capture one.
  if (kind != cudaMemcpyDeviceToDevice)
    if (tfh::emu::Capture* c = tfh::emu::capture_of(s)) {
      c->invalidated = true;
      g_last_reason = "a host/device copy on a stream being captured";
      return g_last_error = cudaErrorStreamCaptureUnsupported;
    }
  if (tfh::emu::record(s, [=] { cudaMemcpy(dst, src, bytes, kind); })) return cudaSuccess;
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (tfh::emu::record(s, [=] { cudaMemset(p, value, bytes); })) return cudaSuccess;
  return cudaMemset(p, value, bytes);
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last_error;
  g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_last_error; }
const char* cudaGetErrorString(cudaError_t e) {
  if (e == cudaSuccess) return "no error";
  thread_local std::string s;
  s = "error " + std::to_string(static_cast<int>(e)) + " (emulated): " + g_last_reason;
  return s.c_str();
}
// Work runs when it is queued, so there is nothing to wait for; but a capturing stream must not
// be synchronised (CUDA refuses and invalidates the capture).
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (tfh::emu::Capture* c = tfh::emu::capture_of(s)) {
    c->invalidated = true;
    g_last_reason = "cudaStreamSynchronize on a stream being captured";
    return g_last_error = cudaErrorStreamCaptureUnsupported;
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  for (auto& [s, c] : tfh::emu::captures()) {
    c->invalidated = true;
    g_last_reason = "cudaDeviceSynchronize while a stream is being captured";
    return g_last_error = cudaErrorStreamCaptureUnsupported;
  }
  return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return g_last_error = cudaErrorInvalidDevice;
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "tfhost's CPU emulator");
  p->major = 9, p->minor = 0;
  p->multiProcessorCount = 132;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->sharedMemPerBlock = 48 * 1024;
  p->totalGlobalMem = size_t(1) << 34;
  // (small, so that GEMM tuning's copies of B that overflow L2 are made for the tests' shapes)
  p->l2CacheSize = 1 << 20;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  tfh::emu::captures().erase(s);
  delete s;
  return cudaSuccess;
}

// The stream-ordered allocator: plain allocations (outside a capture; tfhost never allocates
// stream-ordered memory while capturing, and the emulator refuses it rather than record it).
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s) {
  if (const cudaError_t err = refused_while_capturing(s, "cudaMallocAsync")) return err;
  return cudaMalloc(p, bytes);
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (const cudaError_t err = refused_while_capturing(s, "cudaFreeAsync")) return err;
  return cudaFree(p);
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int) {
  static int the_pool;
  *pool = reinterpret_cast<cudaMemPool_t>(&the_pool);
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (tfh::emu::capture_of(s)) {
    g_last_reason = "cudaStreamBeginCapture on a stream already capturing";
    return g_last_error = cudaErrorIllegalState;
  }
  auto c = std::make_shared<tfh::emu::Capture>();
  c->origin = s;
  tfh::emu::captures()[s] = std::move(c);
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  const tfh::emu::Capture* c = tfh::emu::capture_of(s);
  *status = !c ? cudaStreamCaptureStatusNone
               : c->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  *graph = nullptr;
  tfh::emu::Capture* c = tfh::emu::capture_of(s);
  if (!c) {
    g_last_reason = "cudaStreamEndCapture on a stream not capturing";
    return g_last_error = cudaErrorIllegalState;
  }
  if (c->origin != s) {
    g_last_reason = "cudaStreamEndCapture on a stream the capture forked, not on its origin";
    return g_last_error = cudaErrorStreamCaptureUnmatched;
  }
  const bool invalidated = c->invalidated;
  std::string unjoined;
  for (const auto& [f, n] : c->forked_ops)
    if (n > c->forked_joined[f]) unjoined = "a stream forked into the capture has work not joined back";
  auto ops = std::move(c->ops);
  for (auto it = tfh::emu::captures().begin(); it != tfh::emu::captures().end();)
    it = it->second.get() == c ? tfh::emu::captures().erase(it) : std::next(it);
  if (invalidated) {
    g_last_reason = "the capture was invalidated";
    return g_last_error = cudaErrorStreamCaptureInvalidated;
  }
  if (!unjoined.empty()) {
    g_last_reason = unjoined;
    return g_last_error = cudaErrorStreamCaptureUnjoined;
  }
  *graph = new CUgraph_st{std::move(ops)};
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new CUgraphExec_st{graph->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
// Each recorded launch, copy, fill and GEMM is a node (cuBLASLt may make more than one on a GPU).
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (nodes) {
    g_last_reason = "cudaGraphGetNodes with a node array (not emulated)";
    return g_last_error = cudaErrorNotSupported;
  }
  *count = graph->ops.size();
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
// Replays the recorded work in order; the first failed launch ends it with its error.
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (const cudaError_t err = refused_while_capturing(s, "cudaGraphLaunch")) return err;
  for (const auto& op : exec->ops) {
    op();
    if (g_last_error != cudaSuccess) return g_last_error;
  }
  return cudaSuccess;
}

// Events: the host's clock when the stream gets there, which (work running when it is queued)
// is when cudaEventRecord is called. Recorded on a capturing stream, an event is a point of the
// capture (no time): another stream waiting on it joins the capture (a fork), the origin waiting
// on one recorded on a forked stream joins that stream's work so far back.
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  auto in = tfh::emu::captures().find(s);
  if (in != tfh::emu::captures().end()) {
    tfh::emu::Capture& c = *in->second;
    e->capture = in->second, e->stream = s, e->recorded = false;
    e->ops_at = s == c.origin ? c.ops.size() : c.forked_ops[s];
    return cudaSuccess;
  }
  e->capture.reset();
  e->at = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  tfh::emu::Capture* mine = tfh::emu::capture_of(s);
  const bool live = e->capture && tfh::emu::capture_of(e->stream) == e->capture.get();
  if (!live) {  // an eager event (work is done when queued), or one of a capture that ended
    if (mine) {
      g_last_reason = "cudaStreamWaitEvent of a capturing stream on an event from outside the capture";
      return g_last_error = cudaErrorStreamCaptureIsolation;
    }
    return cudaSuccess;
  }
  tfh::emu::Capture& c = *e->capture;
  if (!mine) {  // a fork: s joins the capture
    tfh::emu::captures()[s] = e->capture;
    c.forked_ops[s] = 0;
    return cudaSuccess;
  }
  if (mine != &c) {
    g_last_reason = "cudaStreamWaitEvent across two captures";
    return g_last_error = cudaErrorStreamCaptureIsolation;
  }
  if (s == c.origin && e->stream != c.origin)  // a join
    c.forked_joined[e->stream] = std::max(c.forked_joined[e->stream], e->ops_at);
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e->recorded) {
    g_last_reason = "cudaEventSynchronize on an event never recorded (not emulated)";
    return g_last_error = cudaErrorInvalidResourceHandle;
  }
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  if (!start->recorded || !stop->recorded) {
    g_last_reason = "cudaEventElapsedTime of an event never recorded";
    return g_last_error = cudaErrorInvalidResourceHandle;
  }
  *ms = std::chrono::duration<float, std::milli>(stop->at - start->at).count();
  return cudaSuccess;
}

}  // extern "C"
