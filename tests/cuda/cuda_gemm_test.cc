// What of the CUDA runtime needs NVIDIA's libraries beyond the kernels, against the CPU: the
// cuBLASLt GEMM, com.microsoft.Attention end to end (its QKV GEMM included) and whole models on a
// CUDA session. Skipped, with the reason, when this machine has no CUDA GPU.
#include <cstdlib>
#include <set>

#include "cuda/kernel_test_util.h"
#include "host/pipeline/pipeline.h"
#include "kernels/cuda/device.h"

namespace tfh::kernels::cuda {
namespace {

using namespace kernel_test;

#ifdef TFH_CUDA_EMULATED
// The emulated cuBLASLt's offered algorithms for one test, the previous ones back after it.
struct EmulatedGemmAlgorithms {
  std::vector<emu::EmuGemmAlgo> saved = emu::gemm_algorithms();
  explicit EmulatedGemmAlgorithms(std::vector<emu::EmuGemmAlgo> algos) {
    emu::set_gemm_algorithms(std::move(algos));
  }
  ~EmulatedGemmAlgorithms() { emu::set_gemm_algorithms(saved); }
  EmulatedGemmAlgorithms(const EmulatedGemmAlgorithms&) = delete;
  EmulatedGemmAlgorithms& operator=(const EmulatedGemmAlgorithms&) = delete;
};
// Products run with each offered algorithm since `before` (a copy of gemm_algorithms()).
std::vector<size_t> runs_since(const std::vector<emu::EmuGemmAlgo>& before) {
  std::vector<size_t> d;
  const std::vector<emu::EmuGemmAlgo> now = emu::gemm_algorithms();
  for (size_t i = 0; i < now.size(); ++i) d.push_back(now[i].runs - before[i].runs);
  return d;
}
#endif

// A float16 product's operands (A [m, k], W [k, n] within +-0.1) and the CPU's MatMul of them.
struct F16Product {
  Floats a, w, want;
};
F16Product f16_product(int64_t m, int64_t k, int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  F16Product p;
  p.a = stored(random_floats(m * k, rng), F16);
  p.w = stored(random_floats(k * n, rng, -0.1f, 0.1f), F16);
  p.want = cpu_node("MatMul", "", 13, {{"a", {m, k}, p.a, F16}, {"w", {k, n}, p.w, F16}}, {"y"})[0];
  return p;
}

// W [k, n] row-major as W^T [n, k].
Floats transposed(const Floats& w, int64_t k, int64_t n) {
  Floats wt(w.size());
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j) wt[j * k + i] = w[i * n + j];
  return wt;
}

TEST_F(CudaKernels, LtGemmWithBiasAndTransposedWeightsAgainstCpu) {
  LtGemm gemm;
  void* ws = nullptr;
  check(cudaMalloc(&ws, LtGemm::kWorkspaceBytes), "workspace");
  for (int elem : {F32, F16, BF16})
    for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{128, 768, 3072}, {3, 17, 5},
                           {1, 768, 768}, {7, 64, 2304}}) {
      SCOPED_TRACE(name_of(elem) + " " + std::to_string(m) + "x" + std::to_string(k) + "x" +
                   std::to_string(n));
      std::mt19937 rng(static_cast<unsigned>(m + k + n));
      const Floats a = stored(random_floats(m * k, rng), elem),
                   w = stored(random_floats(k * n, rng, -0.1f, 0.1f), elem),
                   bias = stored(random_floats(n, rng), elem);
      // CPU: Gemm with C = bias; transB = 1 with W transposed on the host.
      const Floats wt = transposed(w, k, n);
      const auto want = cpu_node("Gemm", "", 13,
                                 {{"a", {m, k}, a, elem}, {"w", {k, n}, w, elem},
                                  {"bias", {n}, bias, elem}},
                                 {"y"});
      Dev da(a, elem), dw(w, elem), dwt(wt, elem), db(bias, elem), dy(m * n, elem),
          dy2(m * n, elem);
      gemm.run(type_of(elem), m, n, k, da.get(), dw.get(), false, dy.get(), Epilogue::Bias,
               db.get(), ws, LtGemm::kWorkspaceBytes, nullptr);
      gemm.run(type_of(elem), m, n, k, da.get(), dwt.get(), true, dy2.get(), Epilogue::Bias,
               db.get(), ws, LtGemm::kWorkspaceBytes, nullptr);
      const float t = by_precision(elem, 1e-3f, 5e-2f);
      EXPECT_LT(max_diff(dy.read(), want[0]), t);
      EXPECT_LT(max_diff(dy2.read(), want[0]), t);
    }
  EXPECT_EQ(gemm.cached_plans(), 24u);  // one immutable plan per shape, type, layout and bias
  cudaFree(ws);
}

// A caller's device tensors (IO binding) need not be 256-byte aligned, as cudaMalloc's are: a plan
// is chosen for the alignment its pointers have (cuBLASLt's heuristic otherwise assumes 256 bytes,
// and its algorithm may fail or fault on a less aligned buffer).
TEST_F(CudaKernels, LtGemmOnBuffersLessAlignedThanCudaMallocs) {
  LtGemm gemm;
  const DevRaw workspace(LtGemm::kWorkspaceBytes, 0);
  void* ws = workspace.get();
  const int64_t m = 33, k = 64, n = 40;
  for (int elem : {F32, F16, BF16}) {
    SCOPED_TRACE(name_of(elem));
    const size_t size = elem == F32 ? 4 : 2;
    std::mt19937 rng(7);
    const Floats a = stored(random_floats(m * k, rng), elem),
                 w = stored(random_floats(k * n, rng, -0.1f, 0.1f), elem);
    const auto want =
        cpu_node("MatMul", "", 13, {{"a", {m, k}, a, elem}, {"w", {k, n}, w, elem}}, {"y"});
    // Each operand `skip` elements into its buffer: 1 (2 or 4 bytes), 8 (16 or 32), 4 (8 or 16).
    auto padded = [](const Floats& v, size_t skip) {
      Floats out(skip, 0.f);
      out.insert(out.end(), v.begin(), v.end());
      return out;
    };
    auto at = [size](const Dev& d, size_t skip) {
      return static_cast<void*>(static_cast<char*>(d.get()) + skip * size);
    };
    Dev da(padded(a, 1), elem), dw(padded(w, 8), elem), dy(4 + m * n, elem);
    Dev aligned_a(a, elem), aligned_w(w, elem), aligned_y(m * n, elem);
    gemm.run(type_of(elem), m, n, k, aligned_a.get(), aligned_w.get(), false, aligned_y.get(),
             Epilogue::None, nullptr, ws, LtGemm::kWorkspaceBytes, nullptr);
    gemm.run(type_of(elem), m, n, k, at(da, 1), at(dw, 8), false, at(dy, 4), Epilogue::None,
             nullptr, ws, LtGemm::kWorkspaceBytes, nullptr);
    const Floats y = dy.read();
    const float t = by_precision(elem, 1e-3f, 5e-2f);
    EXPECT_LT(max_diff(Floats(y.begin() + 4, y.end()), want[0]), t);
    EXPECT_LT(max_diff(aligned_y.read(), want[0]), t);
  }
  EXPECT_EQ(gemm.cached_plans(), 6u);  // per type: the aligned pointers' plan and the others'
}

// tfhost's few-row product (decoding's GEMMs, which LtGemm's tuning times next to cuBLASLt's
// algorithms) against the CPU's MatMul / Gemm / GemmFastGelu: 1 to 4 rows, every epilogue,
// awkward K and N (one column group, K = 1, N not a multiple of the block's columns) and GPT-2's
// shapes, and a product wide enough for the 64-column blocks; what it does not take is refused.
TEST_F(CudaKernels, SkinnyGemmAgainstCpu) {
  struct Case {
    int64_t m, k, n;
  };
  for (int elem : {F16, BF16})
    for (const Case& c : {Case{1, 1, 8}, Case{2, 7, 24}, Case{3, 130, 776}, Case{4, 300, 264},
                          Case{1, 768, 2304}, Case{2, 3, 16904}})
      for (Epilogue e : {Epilogue::None, Epilogue::Bias, Epilogue::Gelu, Epilogue::BiasGelu}) {
        if (c.n > 10000 && e != Epilogue::BiasGelu) continue;  // (the wide blocks: once)
        SCOPED_TRACE(name_of(elem) + " " + std::to_string(c.m) + "x" + std::to_string(c.k) +
                     "x" + std::to_string(c.n) + " epilogue " + std::to_string(static_cast<int>(e)));
        std::mt19937 rng(static_cast<unsigned>(c.m * 31 + c.k + c.n));
        const Floats a = stored(random_floats(c.m * c.k, rng), elem),
                     w = stored(random_floats(c.k * c.n, rng, -0.1f, 0.1f), elem),
                     bias = stored(random_floats(c.n, rng), elem);
        const bool with_bias = e == Epilogue::Bias || e == Epilogue::BiasGelu;
        const bool gelu = e == Epilogue::Gelu || e == Epilogue::BiasGelu;
        std::vector<In> ins = {{"a", {c.m, c.k}, a, elem}, {"w", {c.k, c.n}, w, elem}};
        if (with_bias) ins.push_back({"bias", {c.n}, bias, elem});
        const auto want = gelu        ? cpu_node("GemmFastGelu", "com.microsoft", 1, ins, {"y"})
                          : with_bias ? cpu_node("Gemm", "", 13, ins, {"y"})
                                      : cpu_node("MatMul", "", 13, ins, {"y"});
        Dev da(a, elem), dw(w, elem), db(bias, elem);
        // NaN bytes: every element of C written; one more row, which must stay untouched.
        const DevRaw dy(static_cast<size_t>((c.m + 1) * c.n * 2), 0xff);
        ASSERT_TRUE(skinny_gemm_fits(type_of(elem), c.m, c.n, c.k, dw.get(), false, 1));
        skinny_gemm(type_of(elem), c.m, c.n, c.k, da.get(), dw.get(), dy.get(), e,
                    with_bias ? db.get() : nullptr, nullptr);
        const std::vector<uint16_t> bits = dy.read<uint16_t>();
        Floats got;
        for (int64_t i = 0; i < c.m * c.n; ++i) got.push_back(from_bits16(bits[i], elem));
        EXPECT_LT(max_diff(got, want[0]), by_precision(elem, 1e-3f, 1e-2f));
        EXPECT_EQ(std::count(bits.begin() + c.m * c.n, bits.end(), uint16_t{0xffff}), c.n)
            << "the row after C's written";
      }
  // What it does not take: too many rows, N not a multiple of 8, B transposed or misaligned,
  // float32, a batch; skinny_gemm itself says so.
  const DevRaw b(size_t(4096), 0);
  EXPECT_TRUE(skinny_gemm_fits(TFH_TYPE_FLOAT16, 4, 64, 16, b.get(), false, 1));
  EXPECT_FALSE(skinny_gemm_fits(TFH_TYPE_FLOAT16, 5, 64, 16, b.get(), false, 1));
  EXPECT_FALSE(skinny_gemm_fits(TFH_TYPE_FLOAT16, 0, 64, 16, b.get(), false, 1));
  EXPECT_FALSE(skinny_gemm_fits(TFH_TYPE_FLOAT16, 1, 60, 16, b.get(), false, 1));
  EXPECT_FALSE(skinny_gemm_fits(TFH_TYPE_FLOAT16, 1, 64, 16, b.get(), true, 1));
  EXPECT_FALSE(skinny_gemm_fits(TFH_TYPE_FLOAT16, 1, 64, 16, static_cast<char*>(b.get()) + 8, false, 1));
  EXPECT_FALSE(skinny_gemm_fits(TFH_TYPE_FLOAT, 1, 64, 16, b.get(), false, 1));
  EXPECT_FALSE(skinny_gemm_fits(TFH_TYPE_BFLOAT16, 1, 64, 16, b.get(), false, 2));
  try {
    skinny_gemm(TFH_TYPE_FLOAT16, 5, 64, 16, b.get(), b.get(), b.get(), Epilogue::None, nullptr,
                nullptr);
    ADD_FAILURE() << "5 rows taken";
  } catch (const CudaError& err) {
    EXPECT_NE(std::string(err.what()).find("5x16 @ 16x64"), std::string::npos) << err.what();
  }
}

// Tuning: each product shape met outside a capture runs every algorithm cuBLASLt offers for it and
// keeps the fastest (the heuristic's first unless another is >3 % faster), which later products
// run; a plan for the same shape with another bias reuses that choice; a plan made while a graph
// is captured keeps the heuristic's first and is replaced by a tuned one when next called outside
// a capture; off tunes nothing. Every result is the CPU's. On the emulator the offered algorithms
// are set (one 2 ms slower, one failing, one 0.5 ms slower) and count their products, so which
// one is kept and run is known; on a GPU only that it is no slower than the heuristic's first as
// timed.
TEST_F(CudaKernels, LtGemmTuningKeepsTheFastestOfferedAlgorithm) {
#ifdef TFH_CUDA_EMULATED
  const EmulatedGemmAlgorithms algos({{2000, false}, {0, false}, {0, true}, {500, false}});
#endif
  const DevRaw workspace(LtGemm::kWorkspaceBytes, 0);
  void* ws = workspace.get();
  const int64_t m = 24, k = 40, n = 56;
  std::mt19937 rng(11);
  const Floats a = stored(random_floats(m * k, rng), F16),
               w = stored(random_floats(k * n, rng, -0.1f, 0.1f), F16),
               b1 = stored(random_floats(n, rng), F16), b2 = stored(random_floats(n, rng), F16);
  auto want = [&](const Floats& bias, int64_t rows) {
    return cpu_node("Gemm", "", 13,
                    {{"a", {rows, k}, Floats(a.begin(), a.begin() + rows * k), F16},
                     {"w", {k, n}, w, F16}, {"bias", {n}, bias, F16}},
                    {"y"})[0];
  };
  Dev da(a, F16), dw(w, F16), db1(b1, F16), db2(b2, F16), dy(m * n, F16);
  const float t = by_precision(F16, 1e-3f, 5e-2f);
  auto product = [&](LtGemm& g, int64_t rows, const Dev& bias, void* stream = nullptr) {
    g.run(TFH_TYPE_FLOAT16, rows, n, k, da.get(), dw.get(), false, dy.get(), Epilogue::Bias,
          bias.get(), ws, LtGemm::kWorkspaceBytes, static_cast<cudaStream_t>(stream));
  };
  auto result = [&](int64_t rows) {
    Floats y = dy.read();
    y.resize(rows * n);
    return y;
  };

  LtGemm tuned(LtGemm::Tuning::On);
  EXPECT_TRUE(tuned.tuning_enabled());
  product(tuned, m, db1);
  EXPECT_LT(max_diff(result(m), want(b1, m)), t);
  std::vector<GemmTuning> rec = tuned.tuned();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].m, m);
  EXPECT_EQ(rec[0].n, n);
  EXPECT_EQ(rec[0].k, k);
  EXPECT_EQ(rec[0].epilogue, Epilogue::Bias);
  EXPECT_GE(rec[0].offered, 1);
  EXPECT_LE(rec[0].ran, rec[0].offered);
  EXPECT_LT(rec[0].chosen, rec[0].offered);
  if (rec[0].offered > 1) {
    EXPECT_GT(rec[0].first_us, 0);
    EXPECT_LE(rec[0].chosen_us, rec[0].first_us);
  }
#ifdef TFH_CUDA_EMULATED
  EXPECT_EQ(rec[0].offered, 4);
  EXPECT_EQ(rec[0].ran, 3);  // the failing one dropped
  EXPECT_EQ(rec[0].chosen, 1);
  EXPECT_GE(rec[0].first_us, 2000);
  EXPECT_LT(rec[0].chosen_us, rec[0].first_us - 1000);
#endif

  // The same shape with the other bias: a plan of its own, the algorithm kept, no new tuning.
#ifdef TFH_CUDA_EMULATED
  std::vector<emu::EmuGemmAlgo> before = emu::gemm_algorithms();
#endif
  product(tuned, m, db2);
  EXPECT_LT(max_diff(result(m), want(b2, m)), t);
  EXPECT_EQ(tuned.cached_plans(), 2u);
  EXPECT_EQ(tuned.tuned().size(), 1u);
#ifdef TFH_CUDA_EMULATED
  EXPECT_EQ(runs_since(before), (std::vector<size_t>{0, 1, 0, 0}));  // the kept one, once
#endif

  // A new shape (fewer rows) first met while a graph is captured: the heuristic's first then
  // (nothing may wait inside a capture), the replay right; the same call again outside a capture
  // (same bias: the same plan key), tuned and from then on the kept algorithm.
  void* stream = stream_create();
  graph_begin(stream);
  product(tuned, m - 8, db1, stream);
  void* graph = graph_end(stream);
  EXPECT_EQ(tuned.tuned().size(), 1u);
  fill_zero(dy.get(), m * n * 2, stream);
#ifdef TFH_CUDA_EMULATED
  before = emu::gemm_algorithms();
#endif
  graph_launch(graph, stream);
  stream_sync(stream);
  EXPECT_LT(max_diff(result(m - 8), want(b1, m - 8)), t);
#ifdef TFH_CUDA_EMULATED
  EXPECT_EQ(runs_since(before), (std::vector<size_t>{1, 0, 0, 0}));  // the heuristic's first
#endif
  product(tuned, m - 8, db1);
  EXPECT_LT(max_diff(result(m - 8), want(b1, m - 8)), t);
  EXPECT_EQ(tuned.cached_plans(), 3u);
  rec = tuned.tuned();
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_EQ(rec[1].m, m - 8);
#ifdef TFH_CUDA_EMULATED
  EXPECT_EQ(rec[1].chosen, 1);
  before = emu::gemm_algorithms();
  product(tuned, m - 8, db1);
  EXPECT_EQ(runs_since(before), (std::vector<size_t>{0, 1, 0, 0}));
#endif
  // The graph captured before still replays its own (untuned) plan, right.
  check(cudaDeviceSynchronize(), "synchronize");
  fill_zero(dy.get(), m * n * 2, stream);
  graph_launch(graph, stream);
  stream_sync(stream);
  EXPECT_LT(max_diff(result(m - 8), want(b1, m - 8)), t);
  graph_destroy(graph);
  stream_destroy(stream);

  // Off: the heuristic's first, nothing timed.
  LtGemm plain(LtGemm::Tuning::Off);
  EXPECT_FALSE(plain.tuning_enabled());
#ifdef TFH_CUDA_EMULATED
  before = emu::gemm_algorithms();
#endif
  product(plain, m, db1);
  EXPECT_LT(max_diff(result(m), want(b1, m)), t);
  EXPECT_TRUE(plain.tuned().empty());
#ifdef TFH_CUDA_EMULATED
  EXPECT_EQ(runs_since(before), (std::vector<size_t>{1, 0, 0, 0}));
#endif
}

// Tuning offers tfhost's few-row kernel as one more candidate where a product fits it (2 rows
// here), and keeps it when it is the fastest: later products of the shape run it and no cuBLASLt
// algorithm. On the emulator cuBLASLt's two algorithms are made 150 ms slow, so the kernel is
// known to win; on a GPU, that it was offered, and whichever was kept gives the CPU's result.
// A product it does not take (transposed weights) is tuned over cuBLASLt's algorithms alone.
TEST_F(CudaKernels, LtGemmTuningOffersTheFewRowKernel) {
#ifdef TFH_CUDA_EMULATED
  const EmulatedGemmAlgorithms algos({{150000, false}, {150000, false}});
#endif
  const DevRaw workspace(LtGemm::kWorkspaceBytes, 0);
  const int64_t m = 2, k = 40, n = 56;
  std::mt19937 rng(5);
  const Floats a = stored(random_floats(m * k, rng), F16),
               w = stored(random_floats(k * n, rng, -0.1f, 0.1f), F16),
               bias = stored(random_floats(n, rng), F16);
  const Floats wt = transposed(w, k, n);
  const auto want = cpu_node("GemmFastGelu", "com.microsoft", 1,
                             {{"a", {m, k}, a, F16}, {"w", {k, n}, w, F16}, {"bias", {n}, bias, F16}},
                             {"y"})[0];
  Dev da(a, F16), dw(w, F16), dwt(wt, F16), db(bias, F16), dy(m * n, F16), dy2(m * n, F16);
  LtGemm gemm(LtGemm::Tuning::On);
  auto product = [&](const Dev& weights, bool transposed, const Dev& out) {
    gemm.run(TFH_TYPE_FLOAT16, m, n, k, da.get(), weights.get(), transposed, out.get(),
             Epilogue::BiasGelu, db.get(), workspace.get(), LtGemm::kWorkspaceBytes, nullptr);
  };
  product(dw, false, dy);
  EXPECT_LT(max_diff(dy.read(), want), 1e-2f);
  std::vector<GemmTuning> rec = gemm.tuned();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_TRUE(rec[0].skinny);
  EXPECT_GE(rec[0].offered, 2);
  EXPECT_GT(rec[0].first_us, 0);
  EXPECT_LE(rec[0].chosen_us, rec[0].first_us);
#ifdef TFH_CUDA_EMULATED
  EXPECT_EQ(rec[0].offered, 3);
  EXPECT_EQ(rec[0].ran, 3);
  EXPECT_TRUE(rec[0].chose_skinny());
  EXPECT_LT(rec[0].chosen_us, 100000);
  const std::vector<emu::EmuGemmAlgo> before = emu::gemm_algorithms();
#endif
  product(dw, false, dy);  // the kept choice
  EXPECT_LT(max_diff(dy.read(), want), 1e-2f);
#ifdef TFH_CUDA_EMULATED
  EXPECT_EQ(runs_since(before), (std::vector<size_t>{0, 0}));  // no cuBLASLt algorithm
#endif
  product(dwt, true, dy2);  // transposed: not the kernel's
  EXPECT_LT(max_diff(dy2.read(), want), 1e-2f);
  rec = gemm.tuned();
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_FALSE(rec[1].skinny);
  EXPECT_FALSE(rec[1].chose_skinny());
#ifdef TFH_CUDA_EMULATED
  EXPECT_EQ(rec[1].offered, 2);
#endif
}

// Tuning is off unless asked (TFH_CUDA_GEMM_TUNING=on or l2 for the environment's LtGemm; off
// or unset: the heuristic's picks; anything else an error naming the variable). Tuned, a plain
// product's candidates are timed on copies of its B that overflow L2, not on B (a model reads
// its weights from memory); l2 times them on B itself. On the emulator (1 MiB of L2) each
// algorithm records the addresses its products read as B.
TEST_F(CudaKernels, LtGemmTuningIsOffUnlessAskedAndReadsCopiesOfTheWeights) {
  test::ScopedEnv env("TFH_CUDA_GEMM_TUNING");
  env.unset();
  EXPECT_FALSE(LtGemm().tuning_enabled());
  env.set("off");
  EXPECT_FALSE(LtGemm().tuning_enabled());
  env.set("on");
  EXPECT_TRUE(LtGemm().tuning_enabled());
  env.set("sometimes");
  try {
    LtGemm bad;
    ADD_FAILURE() << "TFH_CUDA_GEMM_TUNING=sometimes accepted";
  } catch (const CudaError& e) {
    EXPECT_NE(std::string(e.what()).find("TFH_CUDA_GEMM_TUNING"), std::string::npos) << e.what();
  }

#ifdef TFH_CUDA_EMULATED
  const EmulatedGemmAlgorithms algos({{0, false}, {0, false}});
#endif
  const DevRaw workspace(LtGemm::kWorkspaceBytes, 0);
  const int64_t m = 8, k = 64, n = 48;  // B: 6 KB, far under L2
  const F16Product p = f16_product(m, k, n, 9);
  const Floats& want = p.want;
  Dev da(p.a, F16), dw(p.w, F16), dy(m * n, F16);
  for (const char* mode : {"on", "l2"}) {
    SCOPED_TRACE(mode);
    env.set(mode);
    LtGemm gemm;
    ASSERT_TRUE(gemm.tuning_enabled());
#ifdef TFH_CUDA_EMULATED
    emu::set_gemm_algorithms({{0, false}, {0, false}});  // (nothing recorded yet)
#endif
    gemm.run(TFH_TYPE_FLOAT16, m, n, k, da.get(), dw.get(), false, dy.get(), Epilogue::None,
             nullptr, workspace.get(), LtGemm::kWorkspaceBytes, nullptr);
    EXPECT_LT(max_diff(dy.read(), want), 1e-2f);
    ASSERT_EQ(gemm.tuned().size(), 1u);
    EXPECT_EQ(gemm.tuned()[0].ran, gemm.tuned()[0].offered);
#ifdef TFH_CUDA_EMULATED
    for (const emu::EmuGemmAlgo& x : emu::gemm_algorithms()) {
      if (std::string(mode) == "l2") {
        EXPECT_EQ(x.weights, (std::set<const void*>{dw.get()}));
      } else {  // timed on copies (how many of them: by the emulator's speed); B by the product
        std::set<const void*> copies = x.weights;
        copies.erase(dw.get());
        EXPECT_GE(copies.size(), 1u);
      }
    }
#endif
  }
}

// TFH_CUDA_GEMM_SPLIT_K limits the split-K reduction schemes the heuristic may pick: any (unset),
// inplace (no separate reduction kernel), off; anything else is an error naming the variable.
// The products stay right either way.
TEST_F(CudaKernels, GemmSplitKSchemesComeFromTheEnvironment) {
  test::ScopedEnv env("TFH_CUDA_GEMM_SPLIT_K");
  env.set("sometimes");
  try {
    LtGemm bad(LtGemm::Tuning::Off);
    ADD_FAILURE() << "TFH_CUDA_GEMM_SPLIT_K=sometimes accepted";
  } catch (const CudaError& e) {
    EXPECT_NE(std::string(e.what()).find("TFH_CUDA_GEMM_SPLIT_K"), std::string::npos) << e.what();
  }
  const DevRaw workspace(LtGemm::kWorkspaceBytes, 0);
  const int64_t m = 1, k = 96, n = 40;  // a decoding step's one row
  const F16Product p = f16_product(m, k, n, 11);
  const Floats& want = p.want;
  Dev da(p.a, F16), dw(p.w, F16), dy(m * n, F16);
  // (cublasLtReductionScheme_t: NONE 0, INPLACE 1, COMPUTE_TYPE 2, OUTPUT_TYPE 4; MASK 7: all)
  for (auto [value, mask] : {std::pair<const char*, uint32_t>{nullptr, 7u}, {"any", 7u},
                             {"inplace", 1u}, {"off", 0u}}) {
    SCOPED_TRACE(value ? value : "unset");
    if (value) env.set(value);
    else env.unset();
    LtGemm gemm(LtGemm::Tuning::Off);
    gemm.run(TFH_TYPE_FLOAT16, m, n, k, da.get(), dw.get(), false, dy.get(), Epilogue::None,
             nullptr, workspace.get(), LtGemm::kWorkspaceBytes, nullptr);
    EXPECT_LT(max_diff(dy.read(), want), 1e-2f);
#ifdef TFH_CUDA_EMULATED
    EXPECT_EQ(emu::heuristic_reduction_schemes(), mask);
#else
    (void)mask;
#endif
  }
}

// TFH_CUDA_FEW_ROW_GEMM=always: products of 1 to 4 float16 rows run tfhost's few-row kernel,
// untimed, instead of cuBLASLt's pick (none of the emulated cuBLASLt's algorithms runs them);
// 8 rows still go to cuBLASLt; unset, 1 row goes to cuBLASLt too. The same results each way.
TEST_F(CudaKernels, FewRowKernelRunsEveryFewRowProductWhenAsked) {
  test::ScopedEnv env("TFH_CUDA_FEW_ROW_GEMM");
  const DevRaw workspace(LtGemm::kWorkspaceBytes, 0);
  const int64_t k = 96, n = 40;
  for (const char* value : {"always", ""}) {
    for (int64_t m : {1, 8}) {
      SCOPED_TRACE(std::string(value) + " m " + std::to_string(m));
      if (*value) env.set(value);
      else env.unset();
      const F16Product p = f16_product(m, k, n, 13);
      const Floats& want = p.want;
      Dev da(p.a, F16), dw(p.w, F16), dy(m * n, F16);
      LtGemm gemm(LtGemm::Tuning::Off);
#ifdef TFH_CUDA_EMULATED
      const std::vector<emu::EmuGemmAlgo> before = emu::gemm_algorithms();
#endif
      gemm.run(TFH_TYPE_FLOAT16, m, n, k, da.get(), dw.get(), false, dy.get(), Epilogue::None,
               nullptr, workspace.get(), LtGemm::kWorkspaceBytes, nullptr);
      EXPECT_LT(max_diff(dy.read(), want), 1e-2f);
#ifdef TFH_CUDA_EMULATED
      const bool few_row = *value && m <= kSkinnyMaxRows;
      EXPECT_EQ(runs_since(before)[0], few_row ? 0u : 1u);
#endif
    }
  }
}

// The weight prefetch's branch: asked while a stream is captured, its kernel goes into the graph
// beside the stream's work, and the capture ends only once the branch is joined back (CUDA
// refuses an unjoined one, and so does the emulator). Eagerly it runs at once.
TEST_F(CudaKernels, L2PrefetchIsABranchJoinedBeforeTheCaptureEnds) {
  void* stream = stream_create();
  void* pf = l2_prefetcher_create();
  const DevRaw weights(300 * 1024, 1);
  const std::vector<std::pair<const void*, size_t>> ranges = {{weights.get(), 300 * 1024}};
  const uint64_t before = l2_prefetch_bytes_asked();
  l2_prefetch(pf, ranges, stream);  // eager
  l2_prefetch_join(pf, stream);
  stream_sync(stream);
  EXPECT_EQ(l2_prefetch_bytes_asked() - before, 300u * 1024u);
  graph_begin(stream);
  l2_prefetch(pf, ranges, stream);
  EXPECT_THROW(graph_end(stream), CudaError);  // not joined
  graph_abort(stream);
  graph_begin(stream);
  fill_zero(weights.get(), 16, stream);
  l2_prefetch(pf, ranges, stream);
  l2_prefetch_join(pf, stream);
  size_t nodes = 0;
  void* exec = graph_end(stream, &nodes);
  EXPECT_EQ(nodes, 2u);  // the fill and the prefetch
  graph_launch(exec, stream);
  stream_sync(stream);
  const std::vector<uint8_t> after = weights.read<uint8_t>();
  EXPECT_EQ(after[0], 0u);  // the graph's fill ran, the prefetch changed nothing
  EXPECT_EQ(after[16], 1u);
  graph_destroy(exec);
  l2_prefetcher_destroy(pf);
  stream_destroy(stream);
}

// com.microsoft.Attention end to end on the device (QKV GEMM + bias, present = past ++ new, fused
// or decode attention) against the CPU kernel: BERT-like (mask, no past), GPT-2-like prompt
// (causal, no past) and decode steps (causal, one token over a past), awkward sizes included;
// every mask format (raw [B, T], end positions [B], ends and starts [2B], raw [B, S, T]) and an
// additive attention bias.
void attention_op_against_cpu() {
  struct Case {
    int64_t B, S, P, N, D;
    bool causal, masked;
    MaskKind format = MaskKind::Raw2D;
    bool bias = false;
    int64_t neg_inf_keys = 0;  // an attention bias of -inf over row 0's first keys
  };
  LtGemm gemm;
  void* ws = nullptr;
  check(cudaMalloc(&ws, LtGemm::kWorkspaceBytes), "workspace");
  for (int elem : {F32, F16, BF16})
    for (const Case& c : {Case{2, 128, 0, 12, 64, false, true}, Case{1, 9, 0, 2, 32, true, false},
                          Case{2, 1, 128, 12, 64, true, true}, Case{3, 1, 5, 4, 32, true, false},
                          Case{1, 3, 4, 2, 64, true, true}, Case{2, 8, 4, 4, 16, true, true},
                          Case{2, 16, 0, 4, 32, false, true, MaskKind::Ends},
                          Case{3, 16, 0, 4, 32, false, true, MaskKind::EndsStarts},
                          // left padding + causal: query 0 of rows 1, 2 sees only masked keys
                          Case{3, 8, 0, 2, 32, true, true, MaskKind::EndsStarts},
                          Case{2, 8, 0, 2, 64, false, true, MaskKind::Raw3D},
                          Case{2, 1, 20, 4, 64, true, true, MaskKind::Ends},
                          Case{2, 8, 0, 4, 32, false, false, MaskKind::Raw2D, true},
                          Case{1, 1, 6, 2, 32, true, true, MaskKind::Raw2D, true},
                          // (-inf over the first 70 keys: whole key tiles without a finite
                          // score, where an online softmax's running max is still -inf)
                          Case{2, 80, 0, 2, 64, false, false, MaskKind::Raw2D, true, 70}}) {
      const int64_t H = c.N * c.D, T = c.P + c.S;
      SCOPED_TRACE(name_of(elem) + " B" + std::to_string(c.B) + " S" + std::to_string(c.S) +
                   " P" + std::to_string(c.P) + " N" + std::to_string(c.N) + " D" +
                   std::to_string(c.D));
      std::mt19937 rng(static_cast<unsigned>(c.S * 7 + c.P * 3 + c.N));
      const Floats x = stored(random_floats(c.B * c.S * H, rng), elem),
                   w = stored(random_floats(H * 3 * H, rng, -0.1f, 0.1f), elem),
                   bias = stored(random_floats(3 * H, rng, -0.1f, 0.1f), elem),
                   past = stored(random_floats(2 * c.B * c.N * c.P * c.D, rng), elem);
      Floats mask;
      Shape mask_dims;
      switch (c.format) {
        case MaskKind::Ends:  // row b keeps its first T - 2b keys
          mask_dims = {c.B};
          for (int64_t b = 0; b < c.B; ++b) mask.push_back(static_cast<float>(T - 2 * b));
          break;
        case MaskKind::EndsStarts:  // and drops its first b keys
          mask_dims = {2 * c.B};
          for (int64_t b = 0; b < c.B; ++b) mask.push_back(static_cast<float>(T - b));
          for (int64_t b = 0; b < c.B; ++b) mask.push_back(static_cast<float>(b));
          break;
        case MaskKind::Raw3D:  // query s of row b does not see key (s + b) % T
          mask_dims = {c.B, c.S, T};
          mask.assign(static_cast<size_t>(c.B * c.S * T), 1.f);
          for (int64_t b = 0; b < c.B; ++b)
            for (int64_t s = 0; s < c.S; ++s) mask[(b * c.S + s) * T + (s + b) % T] = 0;
          break;
        default:
          mask_dims = {c.B, T};
          mask.assign(static_cast<size_t>(c.B * T), 1.f);
          for (int64_t b = 1; b < c.B; ++b)
            for (int64_t t = T - 2 * b; t < T; ++t) mask[b * T + t] = 0;
      }
      Floats attn_bias = stored(random_floats(c.B * c.N * c.S * T, rng, -2.f, 2.f), elem);
      for (int64_t i = 0; i < c.N * c.S; ++i)
        for (int64_t t = 0; t < c.neg_inf_keys; ++t) attn_bias[i * T + t] = -INFINITY;
      std::vector<In> ins = {{"x", {c.B, c.S, H}, x, elem}, {"w", {H, 3 * H}, w, elem},
                             {"bias", {3 * H}, bias, elem},
                             {c.masked ? "mask" : "", mask_dims, mask, I32}};
      ins.push_back({c.P > 0 ? "past" : "", {2, c.B, c.N, c.P, c.D}, past, elem});
      if (c.bias) ins.push_back({"attn_bias", {c.B, c.N, c.S, T}, attn_bias, elem});
      const auto want = cpu_node("Attention", "com.microsoft", 17, ins, {"y", "present"},
                                 attention_attrs(c.N, c.causal));
      DevMask dmask(mask);
      Dev dattn_bias(attn_bias, elem);
      Dev dx(x, elem), dw(w, elem), db(bias, elem), dpast(past, elem),
          dpresent(2 * c.B * c.N * T * c.D, elem), dy(x.size(), elem),
          dqkv(c.B * c.S * 3 * H, elem);
      AttentionOpArgs a;
      a.type = type_of(elem);
      a.x = dx.get(), a.weights = dw.get(), a.bias = db.get();
      a.mask = c.masked ? dmask.get() : nullptr;
      a.mask_kind = c.format;
      if (c.bias) {
        a.attention_bias = dattn_bias.get();
        a.bias_head_stride = c.S * T;
        a.bias_batch_stride = c.N * c.S * T;
      }
      a.past = c.P > 0 ? dpast.get() : nullptr;
      a.present = dpresent.get(), a.out = dy.get(), a.qkv_scratch = dqkv.get();
      a.batch = c.B, a.seq = c.S, a.past_len = c.P, a.hidden = H, a.heads = c.N, a.head_size = c.D;
      a.unidirectional = c.causal;
      attention_op(gemm, a, ws, LtGemm::kWorkspaceBytes, nullptr);
      const float t = by_precision(elem, 1e-3f, 3e-2f);
      EXPECT_LT(max_diff(dy.read(), want[0]), t);
      EXPECT_LT(max_diff(dpresent.read(), want[1]), t);
    }
  cudaFree(ws);
}
TEST_F(CudaKernels, AttentionOpWithPastAndMaskAgainstCpu) { attention_op_against_cpu(); }

// The same with programmatic dependent launch (TFH_CUDA_PDL=on): the attention kernels may start
// while the QKV product before them finishes, and must wait for it before reading Q, K and V.
// The emulator runs every launch to its end, so there this is the test above again: it runs on
// a GPU.
TEST_F(CudaKernels, AttentionOpUnderPdlAgainstCpu) {
#ifdef TFH_CUDA_EMULATED
  GTEST_SKIP() << "programmatic dependent launch means nothing in the emulator (each launch runs "
                  "to its end before the next)";
#endif
  const ScopedPdl pdl(true);
  attention_op_against_cpu();
}

}  // namespace
}  // namespace tfh::kernels::cuda

namespace tfh::kernels::cuda {
namespace {

// Whole models on a CUDA session (CUDA kernels where they exist and accept the node, the CPU for
// the rest, with the copies between) against the CPU session: fused BERT and GPT-2 with past in
// float32 and float16, and both unfused.
// (model, model type, precision: float32, float16 or bfloat16)
class CudaSessions
    : public ::testing::TestWithParam<std::tuple<const char*, const char*, const char*>> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA GPU here (" << describe_devices() << ")";
  }
};

TEST_P(CudaSessions, FusedModelMatchesTheCpu) {
  const auto [model, type, precision] = GetParam();
  const bool fp16 = precision == std::string("float16");
  const bool bf16 = precision == std::string("bfloat16");
  TempDir tmp;
  const std::string out = tmp / "fused.onnx", exported = std::string(TFH_SOURCE_DIR "/models/") +
                                                         model + "/model.onnx";
  std::vector<std::string> args = {TFH_TFHOST_EXE, "optimize", "--input", exported,
                                    "--output", out, "--model_type", type};
  if (fp16) args.push_back("--float16");
  if (bf16) {  // no CLI flag: a config (the family's preset, then core.bfloat16)
    test::write_file(tmp / "bf16.yaml",
                     "version: 1\nmodel: {path: " + exported + ", family: " + type +
                         "}\noutput: " + out + "\npipeline:\n  - preset: " + type +
                         "\n  - pass: core.bfloat16\n    with: {keep_io_types: true}\n");
    args = {TFH_TFHOST_EXE, "run", tmp / "bf16.yaml"};
  }
  const auto r = test::run_command(args, {});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto m = ir::Model::load(out);
  m->infer_shapes();
  plugin::Registry registry;  // the plugins' kernels too (bert's CUDA EmbedLayerNormalization)
  pipeline::load_plugins(registry, {}, {TFH_TEST_PLUGIN_DIR});
  const runtime::KernelRegistry kernels(registry);
  runtime::SessionOptions cpu_opts, gpu_opts;
  gpu_opts.device = TFH_DEVICE_CUDA;
  runtime::Session cpu(static_cast<const ir::Model&>(*m), kernels, cpu_opts),
      gpu(static_cast<const ir::Model&>(*m), kernels, gpu_opts);
  size_t on_gpu = 0;
  for (const auto& [node, name] : gpu.kernel_names()) on_gpu += name.find("tfhost.cuda.") == 0;
  EXPECT_GT(on_gpu, 4u) << "the fused ops should run on the GPU";
  for (const auto& p : gpu.placements())  // but for shape arithmetic and views, all of it
    EXPECT_NE(p.where, runtime::Session::Placement::Where::Cpu)
        << p.node->op_type() << " node '" << p.node->name() << "' runs on the CPU: " << p.why;
  runtime::InputRequest req;
  req.batch = 2;
  req.sequence = 8;
  req.past = std::string(model).find("gpt2") != std::string::npos ? 4 : 0;
  const auto inputs = runtime::make_inputs(registry, runtime::pick_generator(registry, "", "core"), *m, req);
  const auto want = cpu.run(runtime::feeds_of(inputs));
  // Twice (pooled buffers and cached constants reused), then with programmatic dependent launch
  // (on a GPU the LayerNorm, GELU and attention kernels then start early and wait for the
  // product before them; in the emulator the same launches).
  for (int rep = 0; rep < 3; ++rep) {
    const ScopedPdl pdl(rep == 2);
    const auto got = gpu.run(runtime::feeds_of(inputs));
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      // bfloat16: 8 bits of precision where float16 keeps 11; the emulator's largest difference
      // is 0.023 (an ulp or three of bfloat16 at these magnitudes), the GPU sums in its own order.
      const double atol = fp16 ? 3e-2 : bf16 ? 1e-1 : 1e-3;
      const runtime::Difference d = runtime::compare_tensors(*got[i], *want[i], 0, atol);
      EXPECT_TRUE(d.ok()) << "output " << i << ": max abs diff " << d.max_abs;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, CudaSessions,
    ::testing::Values(std::make_tuple("bert_tiny_opset14", "bert", "float32"),
                      std::make_tuple("bert_tiny_opset14", "bert", "float16"),
                      std::make_tuple("bert_tiny_opset14", "bert", "bfloat16"),
                      std::make_tuple("gpt2past_tiny_opset14", "gpt2", "float32"),
                      std::make_tuple("gpt2past_tiny_opset14", "gpt2", "float16"),
                      std::make_tuple("gpt2past_tiny_opset14", "gpt2", "bfloat16"),
                      // Hugging Face's past layout: MultiHeadAttention with past_key/past_value.
                      std::make_tuple("gpt2hf_tiny_opset14_withpast", "gpt2", "float32"),
                      std::make_tuple("gpt2hf_tiny_opset14_withpast", "gpt2", "float16"),
                      std::make_tuple("gpt2hf_tiny_opset14_withpast", "gpt2", "bfloat16"),
                      // Without past, and with a float mask.
                      std::make_tuple("gpt2nopast_tiny_opset14", "gpt2", "float16"),
                      std::make_tuple("gpt2past_tiny_opset14_fmask", "gpt2", "float16"),
                      // Unfused (core cleanup only): what CUDA kernels refuse runs on the CPU.
                      std::make_tuple("bert_tiny_opset14", "core", "float32"),
                      std::make_tuple("gpt2past_tiny_opset14", "core", "float32")));


// Unfused exports (no optimize step) run wholly on the GPU: shape arithmetic stays on the CPU and
// is uploaded once per distinct value, views cost nothing, every other node has a CUDA kernel.
// So nothing crosses sides mid-run and the second run with the same shapes is captured as a CUDA
// graph, whose replays (with new input values too) match the CPU.
class UnfusedOnTheGpu : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA GPU here (" << describe_devices() << ")";
  }
};

TEST_P(UnfusedOnTheGpu, CapturedAndReplayedLikeTheCpu) {
  const std::string model = GetParam();
  const plugin::Registry registry;
  auto m = ir::Model::load(std::string(TFH_SOURCE_DIR "/models/") + model + "/model.onnx");
  m->infer_shapes(&registry.shape_hooks());
  const runtime::KernelRegistry kernels;
  runtime::SessionOptions cpu_opts, gpu_opts;
  gpu_opts.device = TFH_DEVICE_CUDA;
  gpu_opts.cuda_graph = true;
  runtime::Session cpu(static_cast<const ir::Model&>(*m), kernels, cpu_opts),
      gpu(static_cast<const ir::Model&>(*m), kernels, gpu_opts);
  size_t on_gpu = 0;
  for (const auto& p : gpu.placements()) {
    using W = runtime::Session::Placement::Where;
    on_gpu += p.where == W::Gpu;
    EXPECT_NE(p.where, W::Cpu) << p.node->op_type() << " node '" << p.node->name() << "' runs on the CPU: " << p.why;
  }
  EXPECT_GT(on_gpu, 50u);
  runtime::InputRequest req;
  req.batch = 2;
  req.sequence = 8;
  req.past = model.find("past") != std::string::npos ? 4 : 0;
  const auto& gen = runtime::pick_generator(registry, "", "core");
  for (unsigned seed : {0u, 0u, 0u, 1u}) {  // eager, captured, replayed, replayed with new values
    SCOPED_TRACE("seed " + std::to_string(seed));
    req.seed = seed;
    const auto inputs = runtime::make_inputs(registry, gen, *m, req);
    const auto want = cpu.run(runtime::feeds_of(inputs));
    const auto got = gpu.run(runtime::feeds_of(inputs));
    EXPECT_EQ(gpu.device_traffic().copies, 0u) << gpu.device_traffic().first;
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const runtime::Difference d = runtime::compare_tensors(*got[i], *want[i], 0, 1e-3);
      EXPECT_TRUE(d.ok()) << "output " << i << ": max abs diff " << d.max_abs;
    }
  }
  const runtime::GraphStats g = gpu.graph_stats();
  EXPECT_EQ(g.refused, "");
  EXPECT_EQ(g.captured, 1u);
  EXPECT_EQ(g.replays, 2u);
}

INSTANTIATE_TEST_SUITE_P(Exports, UnfusedOnTheGpu,
                         ::testing::Values("bert_tiny_opset14", "bert_tiny_opset17",
                                           "albert_tiny_opset14", "gpt2past_tiny_opset14",
                                           "gpt2nopast_tiny_opset14",
                                           "gpt2hf_tiny_opset14_withpast",
                                           "roberta_tiny_opset14", "distilbert_tiny_opset14"));

}  // namespace
}  // namespace tfh::kernels::cuda
