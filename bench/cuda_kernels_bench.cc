// Times tfhost's CUDA kernels (kernels/cuda) on the shapes of one BERT-base layer (batch B,
// sequence S, fp16) and of a GPT-2 decoding step (batch B, past P), with CUDA events: per kernel,
// the median over --iterations replays of a CUDA graph of 20 launches after warm-up (the host's
// launch cost left out; operands L2-warm), and their sum per layer. Before the CUDA
// runtime runs whole models, this is the floor a fused layer can reach with these kernels; it
// runs from scripts/gpu-check.sh.
//
//   build/bin/tfh_bench_cuda_kernels [--batch B] [--sequence S] [--past P] [--iterations N]
//                                    [--warmup W]     (untimed runs before each timing; 5)
//                                    [--runs_per_graph R]  (runs per timed graph; 20; 0: eager)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/common/device_info.h"
#include "kernels/cuda/cuda_kernels.h"

using namespace tfh::kernels::cuda;

namespace {

struct Buf {
  void* p = nullptr;
  explicit Buf(size_t bytes) {
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    check(cudaMemset(p, 0, bytes), "cudaMemset");
  }
  ~Buf() { cudaFree(p); }
};

int warmup = 5;  // untimed runs before each timing

// Runs of f per timing (--runs_per_graph): captured back to back into one CUDA graph, whose
// replay is timed, so that the host's launch cost (several microseconds a launch on a slow host,
// more than a small kernel takes) stays out and what the GPU does is measured, as the models'
// replayed graphs run. 0: each run launched and timed eagerly, its launch included.
int runs_per_graph = 20;

// Median milliseconds of one run of f on stream s, over `iters` timings (each of a replayed graph
// of runs_per_graph runs; where f cannot be captured, of one eager run, launch included).
double time_ms(const std::function<void()>& f, int iters, cudaStream_t s) {
  // (at least one eager run before a capture: GEMM tuning and module loads cannot happen in one)
  for (int i = 0; i < std::max(warmup, runs_per_graph > 0 ? 1 : 0); ++i) f();
  check(cudaStreamSynchronize(s), "warm-up");
  cudaGraphExec_t exec = nullptr;
  cudaGraph_t graph = nullptr;
  if (runs_per_graph > 0 && cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess) {
    for (int r = 0; r < runs_per_graph; ++r) f();
    if (cudaStreamEndCapture(s, &graph) != cudaSuccess || !graph ||
        cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess)
      exec = nullptr;
    if (graph) cudaGraphDestroy(graph);
  }
  cudaGetLastError();  // (a launch refused under capture: timed eagerly below)
  const int per = exec ? runs_per_graph : 1;
  auto once = [&] {
    if (exec) check(cudaGraphLaunch(exec, s), "graph launch");
    else f();
  };
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(a, s);
    once();
    cudaEventRecord(b, s);
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t / static_cast<float>(per));
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  if (exec) cudaGraphExecDestroy(exec);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t B = 1, S = 128, P = 128;
  int iters = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const long long v = std::atoll(argv[i + 1]);
    if (k == "--batch") B = v;
    else if (k == "--sequence") S = v;
    else if (k == "--past") P = v;
    else if (k == "--iterations") iters = static_cast<int>(v);
    else if (k == "--warmup") warmup = static_cast<int>(v);
    else if (k == "--runs_per_graph") runs_per_graph = static_cast<int>(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (tfh::kernels::cuda_device_count() == 0) {
    std::printf("no CUDA GPU: %s\n", tfh::kernels::describe_devices().c_str());
    return 2;
  }
  std::printf("device: %s\n", tfh::kernels::describe_devices().c_str());
  const TfhDataType h = TFH_TYPE_FLOAT16;
  const int64_t H = 768, N = 12, D = 64, I = 3072;
  cudaStream_t s;
  check(cudaStreamCreate(&s), "stream");
  LtGemm gemm(LtGemm::Tuning::On);          // tuned (the runtime's with TFH_CUDA_GEMM_TUNING=on)
  LtGemm first(LtGemm::Tuning::Off);        // cuBLASLt's heuristic's first pick, for comparison
  Buf ws(LtGemm::kWorkspaceBytes);
  // One GEMM of the layers below timed with both (after `gemm` tuned its shape), and what tuning
  // chose: "gemm <name> MxNxK: first <ms>, tuned <ms> (algorithm i of n)".
  auto gemm_pair = [&](const char* name, int64_t m, int64_t n, int64_t k, const void* a,
                       const void* b, bool bt, void* c, Epilogue e, const void* bias) {
    auto with = [&](LtGemm& g) {
      return time_ms([&] {
        g.run(TFH_TYPE_FLOAT16, m, n, k, a, b, bt, c, e, bias, ws.p, LtGemm::kWorkspaceBytes, s);
      }, iters, s);
    };
    const double tuned_ms = with(gemm), first_ms = with(first);
    std::string choice = "not tuned";
    for (const GemmTuning& t : gemm.tuned())
      if (t.m == m && t.n == n && t.k == k && t.epilogue == e && t.b_transposed == bt)
        choice = (t.chose_skinny() ? std::string("tfhost's few-row kernel")
                                   : "algorithm " + std::to_string(t.chosen)) +
                 " of " + std::to_string(t.offered) + " offered" +
                 (t.skinny ? " (the last tfhost's)" : "") + ", " + std::to_string(t.ran) + " ran";
    char shape[64];
    std::snprintf(shape, sizeof shape, "%lldx%lldx%lld", static_cast<long long>(m),
                  static_cast<long long>(n), static_cast<long long>(k));
    // tfhost's few-row kernel alone, where it takes the product (decoding), tuned or not.
    char skinny[48] = "";
    if (skinny_gemm_fits(TFH_TYPE_FLOAT16, m, n, k, b, bt, 1))
      std::snprintf(skinny, sizeof skinny, ", few-row kernel %8.4f ms",
                    time_ms([&] { skinny_gemm(TFH_TYPE_FLOAT16, m, n, k, a, b, c, e, bias, s); },
                            iters, s));
    std::printf("  gemm %-10s %-16s first %8.4f ms, tuned %8.4f ms%s (%s)\n", name, shape,
                first_ms, tuned_ms, skinny, choice.c_str());
  };
  try {
    // ---- BERT-base layer, fp16: QKV GEMM, attention, output GEMM, SkipLN, FFN (GEMM+GELU, GEMM), SkipLN
    const int64_t M = B * S;
    Buf x(M * H * 2), qkv(M * 3 * H * 2), ctx(M * H * 2), y(M * H * 2), ff(M * I * 2),
        wqkv(H * 3 * H * 2), wo(H * H * 2), w1(H * I * 2), w2(I * H * 2), bias(I * 2),
        gamma(H * 2), kv(2 * B * N * (S + P) * D * 2);
    struct Row {
      const char* name;
      double ms;
    };
    std::vector<Row> rows;
    auto t = [&](const char* name, const std::function<void()>& f) {
      rows.push_back({name, time_ms(f, iters, s)});
    };
    // One transformer layer over `m` token rows: its six kernels timed, printed, summed.
    auto layer = [&](const char* title, int64_t m, const char* attn_name,
                     const std::function<void()>& attn, float eps) {
      rows.clear();
      t("QKV GEMM + bias", [&] {
        gemm.run(h, m, 3 * H, H, x.p, wqkv.p, false, qkv.p, Epilogue::Bias, bias.p, ws.p,
                 LtGemm::kWorkspaceBytes, s);
      });
      t(attn_name, attn);
      t("output GEMM + bias", [&] {
        gemm.run(h, m, H, H, ctx.p, wo.p, false, y.p, Epilogue::Bias, bias.p, ws.p,
                 LtGemm::kWorkspaceBytes, s);
      });
      t("SkipLayerNorm", [&] {
        layer_norm(h, y.p, x.p, nullptr, gamma.p, gamma.p, eps, y.p, nullptr, m, H, s);
      });
      t("FFN1 GEMM + bias + GELU", [&] {
        gemm.run(h, m, I, H, y.p, w1.p, false, ff.p, Epilogue::BiasGelu, bias.p, ws.p,
                 LtGemm::kWorkspaceBytes, s);
      });
      t("FFN2 GEMM + bias", [&] {
        gemm.run(h, m, H, I, ff.p, w2.p, false, x.p, Epilogue::Bias, bias.p, ws.p,
                 LtGemm::kWorkspaceBytes, s);
      });
      t("SkipLayerNorm", [&] {
        layer_norm(h, x.p, y.p, nullptr, gamma.p, gamma.p, eps, x.p, nullptr, m, H, s);
      });
      std::printf("%s (median of %d):\n", title, iters);
      double total = 0;
      for (const Row& r : rows) {
        std::printf("  %-28s %8.4f ms\n", r.name, r.ms);
        total += r.ms;
      }
      return total;
    };

    // ---- BERT-base layer, fp16, over B x S tokens
    AttentionArgs a;
    a.type = h;
    a.q = qkv.p;
    a.q_token_stride = 3 * H;
    a.k = kv.p;
    a.v = static_cast<char*>(kv.p) + B * N * S * D * 2;
    a.out = ctx.p;
    a.batch = B, a.heads = N, a.seq = S, a.total = S, a.head_size = D;
    char title[160];
    std::snprintf(title, sizeof title, "BERT-base layer, fp16, batch %lld, sequence %lld",
                  static_cast<long long>(B), static_cast<long long>(S));
    const double bert = layer(title, M, "attention (fused, S x S)", [&] { attention(a, s); }, 1e-12f);
    std::printf("  %-28s %8.4f ms  (x12 layers: %.3f ms, kernels only, no launch gaps)\n",
                "layer", bert, 12 * bert);
    // Each GEMM of the layer with cuBLASLt's first pick and as tuned (M x N x K).
    gemm_pair("QKV", M, 3 * H, H, x.p, wqkv.p, false, qkv.p, Epilogue::Bias, bias.p);
    gemm_pair("output", M, H, H, ctx.p, wo.p, false, y.p, Epilogue::Bias, bias.p);
    gemm_pair("FFN1+GELU", M, I, H, y.p, w1.p, false, ff.p, Epilogue::BiasGelu, bias.p);
    gemm_pair("FFN2", M, H, I, ff.p, w2.p, false, x.p, Epilogue::Bias, bias.p);
    {  // the prefill attention kernels on this shape (Auto: tensor cores for fp16, else by size)
      AttentionArgs t = a, w = a, tc = a;
      t.algo = AttentionArgs::Algo::Tiled;
      w.algo = AttentionArgs::Algo::PerQueryWarp;
      tc.algo = AttentionArgs::Algo::TensorCores;
      std::printf("  %-28s %8.4f ms\n", "attention, tiled", time_ms([&] { attention(t, s); }, iters, s));
      std::printf("  %-28s %8.4f ms\n", "attention, warp per query",
                  time_ms([&] { attention(w, s); }, iters, s));
      std::printf("  %-28s %8.4f ms\n", "attention, tensor cores",
                  time_ms([&] { attention(tc, s); }, iters, s));
      for (int w : {1, 2, 4}) {  // the warps-per-block choice (the default: 4)
        AttentionArgs tw = tc;
        tw.mma_warps = w;
        char name[48];
        std::snprintf(name, sizeof name, "  tensor cores, %d warp%s/block", w, w > 1 ? "s" : "");
        std::printf("  %-28s %8.4f ms\n", name, time_ms([&] { attention(tw, s); }, iters, s));
      }
      // As BERT's Attention runs it: K and V read where the QKV GEMM left them (token strides).
      AttentionArgs in_place = tc;
      in_place.k = static_cast<const char*>(qkv.p) + H * 2;
      in_place.v = static_cast<const char*>(qkv.p) + 2 * H * 2;
      in_place.kv_token_stride = 3 * H, in_place.kv_head_stride = D;
      in_place.kv_batch_stride = S * 3 * H;
      std::printf("  %-28s %8.4f ms\n", "attention, tensor cores, QKV",
                  time_ms([&] { attention(in_place, s); }, iters, s));
      // The same hidden size as heads of 128 (the tiled kernel then splits each query over two
      // threads, docs/PERFORMANCE.md): both kernels again.
      if ((N * D) % 128 == 0) {
        t.heads = w.heads = N * D / 128;
        t.head_size = w.head_size = 128;
        std::printf("  %-28s %8.4f ms\n", "attention D=128, tiled",
                    time_ms([&] { attention(t, s); }, iters, s));
        std::printf("  %-28s %8.4f ms\n", "attention D=128, warp/query",
                    time_ms([&] { attention(w, s); }, iters, s));
        tc.heads = N * D / 128, tc.head_size = 128;
        std::printf("  %-28s %8.4f ms\n", "attention D=128, tensor cores",
                    time_ms([&] { attention(tc, s); }, iters, s));
      }
    }

    // ---- GPT-2 decode step, fp16: 12 layers over B tokens (decode attention over P + 1) and
    // the LM head (50257 x 768).
    const int64_t V = 50257;
    Buf lm(V * H * 2), logits(B * V * 2), kv2(2 * B * N * (P + 1) * D * 2);
    AttentionArgs d = a;
    d.seq = 1;
    d.total = P + 1;
    d.k = kv2.p;
    d.v = static_cast<char*>(kv2.p) + B * N * (P + 1) * D * 2;
    d.causal = true;
    std::snprintf(title, sizeof title, "GPT-2 decode step, fp16, batch %lld, past %lld",
                  static_cast<long long>(B), static_cast<long long>(P));
    const double gpt2 = layer(title, B, "decode attention", [&] { decode_attention(d, s); }, 1e-5f);
    const double head = time_ms([&] {
      gemm.run(h, B, V, H, x.p, lm.p, true, logits.p, Epilogue::None, nullptr, ws.p,
               LtGemm::kWorkspaceBytes, s);
    }, iters, s);
    std::printf("  %-28s %8.4f ms\n", "LM head GEMM (50257)", head);
    gemm_pair("QKV", B, 3 * H, H, x.p, wqkv.p, false, qkv.p, Epilogue::Bias, bias.p);
    gemm_pair("output", B, H, H, ctx.p, wo.p, false, y.p, Epilogue::Bias, bias.p);
    gemm_pair("FFN1+GELU", B, I, H, y.p, w1.p, false, ff.p, Epilogue::BiasGelu, bias.p);
    gemm_pair("FFN2", B, H, I, ff.p, w2.p, false, x.p, Epilogue::Bias, bias.p);
    gemm_pair("LM head", B, V, H, x.p, lm.p, true, logits.p, Epilogue::None, nullptr);
    {  // the decode kernels on this shape (decode_attention's Auto: vectorised, where it runs)
      Buf split_ws(static_cast<size_t>(decode_split_workspace(B, N, P + 1, D)) * sizeof(float));
      AttentionArgs sk = d, blk = d, vec = d;
      sk.algo = AttentionArgs::Algo::SplitKeys;
      sk.workspace = static_cast<float*>(split_ws.p);
      blk.algo = AttentionArgs::Algo::DecodeBlock;
      vec.algo = AttentionArgs::Algo::DecodeVector;
      std::printf("  %-28s %8.4f ms\n", "decode, one block per head",
                  time_ms([&] { decode_attention(blk, s); }, iters, s));
      std::printf("  %-28s %8.4f ms\n", "decode, vectorised",
                  time_ms([&] { decode_attention(vec, s); }, iters, s));
      for (int threads : {256, 512}) {  // (more rows in flight: fewer trips; the default is 128)
        if ((threads * 8 + 32 + P + 1) * 4 > 48 * 1024) continue;  // (the scores do not fit)
        AttentionArgs wide = vec;
        wide.decode_threads = threads;
        char what[64];
        std::snprintf(what, sizeof what, "decode, vectorised, %d thr", threads);
        std::printf("  %-28s %8.4f ms\n", what, time_ms([&] { decode_attention(wide, s); }, iters, s));
      }
      std::printf("  %-28s %8.4f ms\n", "decode, split keys",
                  time_ms([&] { decode_attention(sk, s); }, iters, s));
    }
    // The new key/value row, per layer: a per-step present (the past copied in front of it), or
    // one shared buffer (gpt2.shared_kv_cache: the row written in place, P read on the device).
    Buf past(2 * B * N * P * D * 2), plen(sizeof(int32_t));
    const int32_t p32 = static_cast<int32_t>(P);
    check(cudaMemcpy(plen.p, &p32, sizeof p32, cudaMemcpyHostToDevice), "cudaMemcpy");
    const double copy_kv = time_ms([&] {
      split_kv_into_present(h, qkv.p, past.p, kv2.p, B, 1, P, N, D, s);
    }, iters, s);
    const double in_place = time_ms([&] {
      append_kv_to_cache(h, qkv.p, kv2.p, B, 1, P + 1, static_cast<const int32_t*>(plen.p), N, D, s);
    }, iters, s);
    std::printf("  %-28s %8.4f ms\n", "present = past ++ new row", copy_kv);
    std::printf("  %-28s %8.4f ms\n", "new row in a shared buffer", in_place);
    std::printf("  %-28s %8.4f ms  (12 layers + LM head, kernels only)\n", "step",
                12 * gpt2 + head);
    std::printf("  %-28s %8.4f ms  (step + 12 presents copied)\n", "step, per-step presents",
                12 * (gpt2 + copy_kv) + head);
    std::printf("  %-28s %8.4f ms  (step + 12 rows in place)\n", "step, shared cache",
                12 * (gpt2 + in_place) + head);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  cudaStreamDestroy(s);
  return 0;
}
