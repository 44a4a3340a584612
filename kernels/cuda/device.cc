#include "kernels/cuda/device.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "kernels/cuda/cuda_kernels.h"

namespace tfh::kernels::cuda {

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  return p;
}
void device_free(void* p) noexcept { cudaFree(p); }

void* stream_create() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  return s;
}
void stream_destroy(void* stream) noexcept {
  if (stream) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
}
void stream_sync(void* stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

void copy_to_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (!bytes) return;
  // From pageable memory cudaMemcpyAsync stages the bytes before returning: src may be reused.
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)),
        "copy to the device");
}
void copy_to_host(void* dst, const void* src, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream)),
        "copy to the host");
}
void copy_on_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)),
        "copy on the device");
}

void fill_zero(void* dst, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemsetAsync(dst, 0, bytes, static_cast<cudaStream_t>(stream)), "cudaMemsetAsync");
}

void* device_alloc_async(size_t bytes, void* stream) {
  // Keep freed memory in the stream-ordered pool (by default it is given back at every sync,
  // and each run would map it again).
  static const bool kept = [] {
    int device = 0;
    cudaMemPool_t pool = nullptr;
    uint64_t keep = UINT64_MAX;
    return cudaGetDevice(&device) == cudaSuccess &&
           cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess &&
           cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) == cudaSuccess;
  }();
  (void)kept;
  void* p = nullptr;
  check(cudaMallocAsync(&p, bytes ? bytes : 1, static_cast<cudaStream_t>(stream)),
        "cudaMallocAsync");
  return p;
}
void device_free_async(void* p, void* stream) noexcept {
  if (p) cudaFreeAsync(p, static_cast<cudaStream_t>(stream));
}

namespace {
struct L2Prefetcher {
  cudaStream_t side = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
  bool pending = false;  // prefetches on `side` not yet joined
  ~L2Prefetcher() {
    // (what it asked for may be freed next: its requests are done before it goes)
    if (side) cudaStreamSynchronize(side);
    if (fork) cudaEventDestroy(fork);
    if (join) cudaEventDestroy(join);
    if (side) cudaStreamDestroy(side);
  }
};
std::atomic<uint64_t> g_l2_prefetch_bytes{0};
}  // namespace

void* l2_prefetcher_create() {
  auto pf = std::make_unique<L2Prefetcher>();
  check(cudaStreamCreateWithFlags(&pf->side, cudaStreamNonBlocking), "cudaStreamCreate (prefetch)");
  // (events for ordering only: a fork and a join, in a capture no nodes of their own)
  check(cudaEventCreateWithFlags(&pf->fork, cudaEventDisableTiming), "cudaEventCreate (prefetch)");
  check(cudaEventCreateWithFlags(&pf->join, cudaEventDisableTiming), "cudaEventCreate (prefetch)");
  return pf.release();
}
void l2_prefetcher_destroy(void* prefetcher) noexcept { delete static_cast<L2Prefetcher*>(prefetcher); }

void l2_prefetch(void* prefetcher, const std::vector<std::pair<const void*, size_t>>& ranges,
                 void* stream) {
  auto* pf = static_cast<L2Prefetcher*>(prefetcher);
  if (ranges.empty()) return;
  // The branch starts here: after `stream`'s work so far.
  check(cudaEventRecord(pf->fork, static_cast<cudaStream_t>(stream)), "cudaEventRecord (prefetch)");
  check(cudaStreamWaitEvent(pf->side, pf->fork, 0), "cudaStreamWaitEvent (prefetch)");
  pf->pending = true;
  L2Ranges r;
  for (const auto& [p, bytes] : ranges) {
    r.data[r.count] = p, r.bytes[r.count] = bytes;
    g_l2_prefetch_bytes += bytes;
    if (++r.count == kMaxL2Ranges) prefetch_l2(r, pf->side), r = L2Ranges{};
  }
  if (r.count) prefetch_l2(r, pf->side);
}

void l2_prefetch_join(void* prefetcher, void* stream) {
  auto* pf = static_cast<L2Prefetcher*>(prefetcher);
  if (!pf || !pf->pending) return;
  check(cudaEventRecord(pf->join, pf->side), "cudaEventRecord (prefetch join)");
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), pf->join, 0),
        "cudaStreamWaitEvent (prefetch join)");
  pf->pending = false;
}

uint64_t l2_prefetch_bytes_asked() { return g_l2_prefetch_bytes.load(); }

void graph_begin(void* stream) {
  // Relaxed: the session's pool may still cudaMalloc a block while a graph is captured (the
  // block then stays the pool's, and the graph's, for the session's life).
  check(cudaStreamBeginCapture(static_cast<cudaStream_t>(stream), cudaStreamCaptureModeRelaxed),
        "cudaStreamBeginCapture");
}
void* graph_end(void* stream, size_t* nodes) {
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &graph), "cudaStreamEndCapture");
  if (nodes && cudaGraphGetNodes(graph, nullptr, nodes) != cudaSuccess) {
    *nodes = 0;  // (a count for reports only)
    cudaGetLastError();
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check(e, "cudaGraphInstantiate");
  return exec;
}
void graph_abort(void* stream) noexcept {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status) == cudaSuccess &&
      status != cudaStreamCaptureStatusNone) {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &graph);
    if (graph) cudaGraphDestroy(graph);
  }
  cudaGetLastError();
}
void graph_launch(void* exec, void* stream) {
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), static_cast<cudaStream_t>(stream)),
        "cudaGraphLaunch");
}
void graph_destroy(void* exec) noexcept {
  if (exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

}  // namespace tfh::kernels::cuda
