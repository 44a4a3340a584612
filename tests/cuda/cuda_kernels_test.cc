// tfhost's CUDA kernels (kernels/cuda) against its CPU kernels for the same op: each case runs a
// one-node model through the CPU runtime and the CUDA launcher on the same inputs, in float32 and
// float16, on the usual transformer shapes and awkward ones (odd widths, single rows, widths below
// and above a block). Skipped, with the reason, when this machine has no CUDA GPU; the same file
// also builds into tfh_cuda_emu_tests, where the kernels run on the CPU emulator (tests/cuda_emu).
#include "cuda/kernel_test_util.h"

namespace tfh::kernels::cuda {
namespace {

using namespace kernel_test;

// Rows x width cases: BERT-base rows, an odd width, one row, a width past two blocks.
const std::vector<std::pair<int64_t, int64_t>> kRowShapes = {{256, 768}, {3, 33}, {1, 1}, {5, 1000}};

TEST_F(CudaKernels, SkipLayerNormWithBiasAndSumAgainstCpu) {
  // (And rows held in 2, 8 and 16 registers per thread, and one too long for registers.)
  auto shapes = kRowShapes;
  shapes.insert(shapes.end(), {{2, 300}, {2, 2000}, {2, 4000}, {2, 4200}});
  for (int elem : {F32, F16, BF16})
    for (auto [rows, cols] : shapes) {
      SCOPED_TRACE(name_of(elem) + " " + std::to_string(rows) + "x" + std::to_string(cols));
      std::mt19937 rng(static_cast<unsigned>(rows + cols));
      const Floats x = stored(random_floats(rows * cols, rng), elem),
                   skip = stored(random_floats(rows * cols, rng), elem),
                   gamma = stored(random_floats(cols, rng), elem),
                   beta = stored(random_floats(cols, rng), elem),
                   bias = stored(random_floats(cols, rng), elem);
      const auto want = cpu_node(
          "SkipLayerNormalization", "com.microsoft", 17,
          {{"x", {1, rows, cols}, x, elem}, {"skip", {1, rows, cols}, skip, elem},
           {"gamma", {cols}, gamma, elem}, {"beta", {cols}, beta, elem},
           {"bias", {cols}, bias, elem}},
          {"y", "", "", "sum"}, [](onnx::NodeProto* n) {
            auto* a = n->add_attribute();
            a->set_name("epsilon");
            a->set_type(onnx::AttributeProto::FLOAT);
            a->set_f(1e-5f);
          });
      Dev dx(x, elem), ds(skip, elem), dg(gamma, elem), db(beta, elem), dbias(bias, elem),
          dy(x.size(), elem), dsum(x.size(), elem);
      layer_norm(type_of(elem), dx.get(), ds.get(), dbias.get(), dg.get(), db.get(), 1e-5f,
                 dy.get(), dsum.get(), rows, cols, nullptr);
      EXPECT_LT(max_diff(dy.read(), want[0]), tol(elem));
      EXPECT_LT(max_diff(dsum.read(), want[1]), tol(elem));
    }
}

TEST_F(CudaKernels, GeluFamilyAgainstCpu) {
  for (int elem : {F32, F16, BF16})
    for (auto [rows, cols] : kRowShapes)
      for (const char* op : {"Gelu", "FastGelu", "BiasGelu"}) {
        SCOPED_TRACE(std::string(op) + " " + name_of(elem) + " " + std::to_string(rows) + "x" +
                     std::to_string(cols));
        std::mt19937 rng(static_cast<unsigned>(rows * 7 + cols));
        const Floats x = stored(random_floats(rows * cols, rng, -4.f, 4.f), elem),
                     bias = stored(random_floats(cols, rng), elem);
        const bool with_bias = std::string(op) != "Gelu";
        std::vector<In> ins = {{"x", {rows, cols}, x, elem}};
        if (with_bias) ins.push_back({"bias", {cols}, bias, elem});
        const auto want = cpu_node(op, "com.microsoft", 17, ins, {"y"});
        Dev dx(x, elem), db(bias, elem), dy(x.size(), elem);
        gelu(type_of(elem), std::string(op) == "FastGelu" ? GeluKind::Tanh : GeluKind::Erf,
             dx.get(), with_bias ? db.get() : nullptr, dy.get(), rows, cols, nullptr);
        EXPECT_LT(max_diff(dy.read(), want[0]), by_precision(elem, 1e-4f, 3e-2f));
      }
}

TEST_F(CudaKernels, SoftmaxAndCastAgainstCpu) {
  for (int elem : {F32, F16, BF16})
    for (auto [rows, cols] : kRowShapes) {
      SCOPED_TRACE(name_of(elem) + " " + std::to_string(rows) + "x" + std::to_string(cols));
      std::mt19937 rng(static_cast<unsigned>(rows * 3 + cols));
      const Floats x = stored(random_floats(rows * cols, rng, -8.f, 8.f), elem);
      const auto want = cpu_node("Softmax", "", 13, {{"x", {rows, cols}, x, elem}}, {"y"});
      Dev dx(x, elem), dy(x.size(), elem);
      softmax(type_of(elem), dx.get(), dy.get(), rows, cols, nullptr);
      EXPECT_LT(max_diff(dy.read(), want[0]), by_precision(elem, 1e-6f, 2e-3f));
    }
  std::mt19937 rng(3);
  const Floats x = random_floats(1001, rng, -70000.f, 70000.f);  // past float16's range too
  const auto want = cpu_node("Cast", "", 13, {{"x", {1001}, x, F32}}, {"y"}, [](onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name("to");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(F16);
  });
  Dev dx(x, F32), dy(x.size(), F16), back(x.size(), F32);
  cast(TFH_TYPE_FLOAT, TFH_TYPE_FLOAT16, dx.get(), dy.get(), 1001, nullptr);
  cast(TFH_TYPE_FLOAT16, TFH_TYPE_FLOAT, dy.get(), back.get(), 1001, nullptr);
  const Floats got = dy.read(), round_trip = back.read();
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i], want[0][i]) << x[i];  // the same rounding, inf beyond 65504 included
    EXPECT_EQ(round_trip[i], got[i]);
  }
}


// Attention shapes: batch, new queries, keys (past + new), heads, head size, causal.
struct AttentionCase {
  int64_t B, S, T, N, D;
  bool causal;
};

void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << "B " << c.B << ", S " << c.S << ", T " << c.T << ", N " << c.N << ", D " << c.D
      << (c.causal ? ", causal" : "");
}

// The fused attention kernels against the CPU MultiHeadAttention (key/value already split into
// heads, [B, N, T, D], or a past and new ones) with a raw key padding mask: every kernel, in
// float32, float16 and bfloat16, one shape per test (so that ctest runs them in parallel).
class CudaAttention : public CudaKernels, public ::testing::WithParamInterface<AttentionCase> {};

TEST_P(CudaAttention, EveryKernelAgainstCpu) {
  const AttentionCase& c = GetParam();
  for (int elem : {F32, F16, BF16}) {
    SCOPED_TRACE(name_of(elem) + " B" + std::to_string(c.B) + " S" + std::to_string(c.S) +
                 " T" + std::to_string(c.T) + " N" + std::to_string(c.N) + " D" +
                 std::to_string(c.D) + (c.causal ? " causal" : ""));
    std::mt19937 rng(static_cast<unsigned>(c.S * 31 + c.T));
    const Floats q = stored(random_floats(c.B * c.S * c.N * c.D, rng), elem),
                 k = stored(random_floats(c.B * c.N * c.T * c.D, rng), elem),
                 v = stored(random_floats(c.B * c.N * c.T * c.D, rng), elem);
    Floats mask(static_cast<size_t>(c.B * c.T), 1.f);
    for (int64_t b = 1; b < c.B; ++b)  // right padding on later rows, at least one key kept
      for (int64_t t = std::max<int64_t>(1, c.T - 3 * b); t < c.T; ++t) mask[b * c.T + t] = 0;
    // The kernels put query i at position T - S + i (the keys are past ++ new), as Attention
    // with a past does; the CPU's MultiHeadAttention does so with past_key/past_value, so with
    // S < T the first T - S keys go there and the last S as the new [B, S, N * D] ones.
    std::vector<In> ins = {{"q", {c.B, c.S, c.N * c.D}, q, elem}};
    const int64_t P = c.T - c.S;
    if (P == 0) {
      ins.push_back({"k", {c.B, c.N, c.T, c.D}, k, elem});
      ins.push_back({"v", {c.B, c.N, c.T, c.D}, v, elem});
    } else {
      Floats pk, pv, nk(static_cast<size_t>(c.B * c.S * c.N * c.D)), nv(nk.size());
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t n = 0; n < c.N; ++n)
          for (int64_t t = 0; t < c.T; ++t)
            for (int64_t d = 0; d < c.D; ++d) {
              const int64_t from = ((b * c.N + n) * c.T + t) * c.D + d;
              if (t < P) {
                pk.push_back(k[from]), pv.push_back(v[from]);
              } else {
                const int64_t to = ((b * c.S + t - P) * c.N + n) * c.D + d;
                nk[to] = k[from], nv[to] = v[from];
              }
            }
      ins.push_back({"k", {c.B, c.S, c.N * c.D}, nk, elem});
      ins.push_back({"v", {c.B, c.S, c.N * c.D}, nv, elem});
      ins.push_back({"", {}, {}, F32});  // bias
      ins.push_back({"mask", {c.B, c.T}, mask, I32});
      ins.push_back({"", {}, {}, F32});  // attention bias
      ins.push_back({"past_k", {c.B, c.N, P, c.D}, pk, elem});
      ins.push_back({"past_v", {c.B, c.N, P, c.D}, pv, elem});
    }
    if (P == 0) {
      ins.push_back({"", {}, {}, F32});
      ins.push_back({"mask", {c.B, c.T}, mask, I32});
    }
    const auto want = cpu_node("MultiHeadAttention", "com.microsoft", 17, ins, {"y"},
                               attention_attrs(c.N, c.causal));
    DevMask dmask(mask);
    Dev dq(q, elem), dk(k, elem), dv(v, elem), dy(q.size(), elem);
    AttentionArgs a;
    a.type = type_of(elem);
    a.q = dq.get();
    a.q_token_stride = c.N * c.D;
    a.k = dk.get();
    a.v = dv.get();
    a.out = dy.get();
    a.mask = dmask.get();
    a.mask_kind = MaskKind::Raw2D;
    a.batch = c.B, a.heads = c.N, a.seq = c.S, a.total = c.T, a.head_size = c.D;
    a.causal = c.causal;
    // Every kernel on `args`: both prefill ones (Auto picks by size) and, with one new token,
    // both decode ones (one block per head; split keys, flash-decoding), each with its output
    // and workspace poisoned first.
    const Floats split_ws(static_cast<size_t>(decode_split_workspace(c.B, c.N, c.T + 3, c.D)), 0.f);
    Dev ws(split_ws, F32);
    using Algo = AttentionArgs::Algo;
    auto every_kernel = [&](AttentionArgs args, Dev& y, const std::string& layout,
                            const std::function<void()>& before_each = {},
                            bool aligned_rows = true) {
      args.out = y.get();
      args.workspace = static_cast<float*>(ws.get());
      // (The tensor-core kernel: float16 and bfloat16, head sizes 32, 64 and 128.)
      // (The vectorised decode kernel: head sizes 32, 64 and 128, up to ~11,000 keys.)
      const bool mma = elem != F32 && (c.D == 32 || c.D == 64 || c.D == 128);
      const bool vec = (c.D == 32 || c.D == 64 || c.D == 128) && args.total < 10000 && aligned_rows;
      for (Algo algo : {Algo::Tiled, Algo::PerQueryWarp, Algo::TensorCores, Algo::Auto,
                        Algo::DecodeBlock, Algo::DecodeVector, Algo::SplitKeys}) {
        const bool decode = algo == Algo::Auto || algo == Algo::SplitKeys ||
                            algo == Algo::DecodeBlock || algo == Algo::DecodeVector;
        if (decode && c.S != 1) continue;
        if ((algo == Algo::TensorCores && !mma) || (algo == Algo::DecodeVector && !vec)) continue;
        SCOPED_TRACE(layout + (algo == Algo::Tiled          ? "tiled"
                               : algo == Algo::PerQueryWarp ? "warp per query"
                               : algo == Algo::TensorCores  ? "tensor cores"
                               : algo == Algo::Auto         ? "decode"
                               : algo == Algo::DecodeBlock  ? "decode, block per head"
                               : algo == Algo::DecodeVector ? "decode, vectorised"
                                                            : "decode, split keys"));
        args.algo = algo;
        // The tensor-core kernel with 1, 2 and 4 warps per block (the default: 4); the vectorised
        // decode kernel with 128, 256 and 512 threads per block (where the scores fit).
        std::vector<int> variants{0};
        if (algo == Algo::TensorCores) variants = {1, 2, 4};
        if (algo == Algo::DecodeVector) {
          variants.clear();
          const int64_t vec = elem == F32 ? 4 : 8;
          for (int threads : {128, 256, 512})
            if ((threads * vec + 32 + args.total) * 4 <= 48 * 1024) variants.push_back(threads);
        }
        for (int variant : variants) {
          const bool warps = algo == Algo::TensorCores;
          SCOPED_TRACE(variant ? std::to_string(variant) + (warps ? " warps" : " threads") +
                                     " per block"
                               : std::string());
          (warps ? args.mma_warps : args.decode_threads) = variant;
          check(cudaMemset(ws.get(), 0xff, split_ws.size() * 4), "poison");
          check(cudaMemset(y.get(), 0xff, q.size() * (elem == F32 ? 4 : 2)), "poison");
          if (before_each) before_each();
          if (decode)
            decode_attention(args, nullptr);
          else
            attention(args, nullptr);
          EXPECT_LT(max_diff(y.read(), want[0]), by_precision(elem, 1e-4f, 2e-2f));
        }
      }
    };
    every_kernel(a, dy, "");
    // The same keys and values in a buffer shared by past and present (M = T + 3 rows per
    // head, junk after T) with the past length T - S read on the device: the same output from
    // every kernel.
    const int64_t M = c.T + 3;
    Floats kb(static_cast<size_t>(c.B * c.N * M * c.D), 9.f), vb(kb.size(), -9.f);
    for (int64_t h = 0; h < c.B * c.N; ++h)
      for (int64_t e = 0; e < c.T * c.D; ++e) {
        kb[h * M * c.D + e] = k[h * c.T * c.D + e];
        vb[h * M * c.D + e] = v[h * c.T * c.D + e];
      }
    Dev dkb(kb, elem), dvb(vb, elem), dy3(q.size(), elem);
    DevMask past_len(Floats{static_cast<float>(c.T - c.S)});
    AttentionArgs sh = a;
    sh.k = dkb.get(), sh.v = dvb.get();
    sh.total = sh.cache_rows = M;
    sh.past_len = past_len.get();
    sh.mask_width = c.T;
    every_kernel(sh, dy3, "shared buffer, ");
    // Decoding: the new token's key and value rows (row T - 1) given apart, in packed QKV form
    // [B, 3, N, D], and written into the buffer by the kernels themselves (the row is junk
    // before each kernel runs, and holds the new key and value after).
    if (c.S == 1) {
      const int64_t ND = c.N * c.D, row = c.T - 1;
      Floats fresh(static_cast<size_t>(c.B * 3 * ND), 5.f);
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t n = 0; n < c.N; ++n)
          for (int64_t d = 0; d < c.D; ++d) {
            const int64_t from = ((b * c.N + n) * c.T + row) * c.D + d;
            fresh[b * 3 * ND + ND + n * c.D + d] = k[from];
            fresh[b * 3 * ND + 2 * ND + n * c.D + d] = v[from];
          }
      Dev dfresh(fresh, elem);
      const size_t es = elem == F32 ? 4 : 2, part = static_cast<size_t>(ND) * es;
      AttentionArgs app = sh;
      app.new_k = static_cast<const char*>(dfresh.get()) + part;
      app.new_v = static_cast<const char*>(dfresh.get()) + 2 * part;
      app.new_token_stride = 3 * ND;
      auto junk_row = [&] {
        for (int64_t h = 0; h < c.B * c.N; ++h) {
          const size_t at = static_cast<size_t>((h * M + row) * c.D) * es;
          check(cudaMemset(static_cast<char*>(dkb.get()) + at, 0x7f, c.D * es), "junk");
          check(cudaMemset(static_cast<char*>(dvb.get()) + at, 0x7f, c.D * es), "junk");
        }
      };
      every_kernel(app, dy3, "shared buffer, new row by the kernel, ", junk_row);
      const Floats kafter = dkb.read(), vafter = dvb.read();
      for (int64_t h = 0; h < c.B * c.N; ++h)
        for (int64_t d = 0; d < c.D; ++d) {
          ASSERT_EQ(kafter[(h * M + row) * c.D + d], kb[(h * M + row) * c.D + d]) << "head " << h;
          ASSERT_EQ(vafter[(h * M + row) * c.D + d], vb[(h * M + row) * c.D + d]) << "head " << h;
        }
    }
    // The same keys and values read in place from packed QKV rows [B, T, 3, N, D] (what the
    // QKV GEMM leaves; no cache kept), the query part junk: strides instead of a copy.
    const int64_t ND = c.N * c.D;
    Floats packed(static_cast<size_t>(c.B * c.T * 3 * ND), 7.f);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t t = 0; t < c.T; ++t)
          for (int64_t d = 0; d < c.D; ++d) {
            const int64_t from = ((b * c.N + n) * c.T + t) * c.D + d,
                          to = (b * c.T + t) * 3 * ND + n * c.D + d;
            packed[to + ND] = k[from], packed[to + 2 * ND] = v[from];
          }
    Dev dpacked(packed, elem), dy4(q.size(), elem);
    const size_t part = static_cast<size_t>(ND) * (elem == F32 ? 4 : 2);
    AttentionArgs tok = a;
    tok.k = static_cast<const char*>(dpacked.get()) + part;
    tok.v = static_cast<const char*>(dpacked.get()) + 2 * part;
    tok.kv_token_stride = 3 * ND, tok.kv_head_stride = c.D, tok.kv_batch_stride = c.T * 3 * ND;
    every_kernel(tok, dy4, "token strides, ");
    // The same rows one element off 16-byte alignment: the kernels that read 16 bytes at a time
    // read them element by element (Auto), or refuse (DecodeVector, not run here).
    Floats shifted(packed.size() + 1, 7.f);
    std::copy(packed.begin(), packed.end(), shifted.begin() + 1);
    Dev dshifted(shifted, elem);
    const size_t es = elem == F32 ? 4 : 2;
    AttentionArgs off = tok;
    off.k = static_cast<const char*>(dshifted.get()) + es + part;
    off.v = static_cast<const char*>(dshifted.get()) + es + 2 * part;
    every_kernel(off, dy4, "token strides, misaligned rows, ", {}, false);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttention,
    // (BERT-base's heads, 4 of its 12: the emulator's time)
    ::testing::Values(AttentionCase{2, 128, 128, 4, 64, false}, AttentionCase{1, 7, 7, 2, 32, true},
                      AttentionCase{3, 1, 129, 4, 64, false}, AttentionCase{2, 65, 65, 1, 128, true},
                      AttentionCase{1, 1, 1, 1, 64, false}, AttentionCase{2, 8, 8, 4, 16, true},
                      AttentionCase{1, 5, 5, 3, 48, false}, AttentionCase{1, 1, 300, 2, 80, true},
                      // (a shared buffer of 67: an empty chunk)
                      AttentionCase{2, 1, 64, 2, 64, true},
                      // (scores over 48 KiB: decode falls back to the prefill kernels)
                      AttentionCase{1, 1, 12300, 1, 32, true},
                      // (head size read at run time, two threads per query, a part tile)
                      AttentionCase{1, 70, 70, 2, 112, false},
                      // (a past before 37 new queries: a part 16-query warp, a part 64-key
                      // tile, the causal diagonal inside a tile)
                      AttentionCase{2, 37, 100, 3, 64, true},
                      AttentionCase{1, 150, 150, 2, 32, true},
                      AttentionCase{1, 20, 20, 3, 128, false}),
    [](const ::testing::TestParamInfo<AttentionCase>& i) {
      const AttentionCase& c = i.param;
      return "B" + std::to_string(c.B) + "_S" + std::to_string(c.S) + "_T" + std::to_string(c.T) +
             "_N" + std::to_string(c.N) + "_D" + std::to_string(c.D) +
             (c.causal ? "_causal" : "");
    });

// The vectorised decode kernel's block size: 128 threads unless asked (decode_threads) or wide
// (TFH_CUDA_DECODE_ATTENTION=wide) with fewer blocks than SMs, then the fewest that read every
// key in one trip (float16, head size 64: 8 lanes a row, 4 rows a trip per group).
TEST_F(CudaKernels, DecodeVectorThreadsGrowWithTheKeysWhenWide) {
  AttentionArgs a;
  a.type = TFH_TYPE_FLOAT16;
  a.batch = 1, a.heads = 12, a.seq = 1, a.head_size = 64;
  a.total = 129;  // GPT-2's step at past 128
  EXPECT_EQ(decode_vector_threads(a, false, 132), 128);
  EXPECT_EQ(decode_vector_threads(a, true, 132), 512);  // 256 threads read 128 keys a trip
  a.total = 128;
  EXPECT_EQ(decode_vector_threads(a, true, 132), 256);
  a.total = 64;
  EXPECT_EQ(decode_vector_threads(a, true, 132), 128);
  a.total = 5000;  // no trip covers them: 512, the most
  EXPECT_EQ(decode_vector_threads(a, true, 132), 512);
  a.total = 9000;  // 512 threads' partial outputs and the scores would overflow 48 KiB
  EXPECT_EQ(decode_vector_threads(a, true, 132), 256);
  a.total = 129, a.batch = 11;  // 132 blocks: every SM has one
  EXPECT_EQ(decode_vector_threads(a, true, 132), 128);
  a.decode_threads = 256;  // asked: kept
  EXPECT_EQ(decode_vector_threads(a, false, 132), 256);
}

TEST_F(CudaKernels, BadArgumentsAreClearErrors) {
  AttentionArgs a;
  try {
    attention(a, nullptr);
    FAIL() << "no error";
  } catch (const CudaError& e) {
    EXPECT_NE(std::string(e.what()).find("attention: null tensor"), std::string::npos) << e.what();
  }
  // One float32 query over one key, head size 32, with `algo` (and `threads` for the decode
  // kernel): the error's text must hold `want`.
  auto refused = [](AttentionArgs::Algo algo, int threads, const std::string& want) {
    Dev x(Floats(64, 0.5f), F32), y(Floats(64, 0.f), F32);
    AttentionArgs f;
    f.q = f.k = f.v = x.get();
    f.out = y.get();
    f.q_token_stride = 32;
    f.batch = f.heads = f.seq = f.total = 1, f.head_size = 32;
    f.algo = algo;
    f.decode_threads = threads;
    try {
      if (algo == AttentionArgs::Algo::TensorCores) attention(f, nullptr);
      else decode_attention(f, nullptr);
      ADD_FAILURE() << "no error for " << want;
    } catch (const CudaError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  // the tensor-core kernel asked for float32 (it takes float16 and bfloat16)
  refused(AttentionArgs::Algo::TensorCores, 0, "tensor-core kernel takes float16 or bfloat16");
  // the vectorised decode kernel asked for a block size it has no build of
  refused(AttentionArgs::Algo::DecodeVector, 384, "decode_threads is 128, 256 or 512");
  // A kernel's fault surfaces at a later call: the error says so, and how to find the kernel.
  try {
    check(cudaErrorIllegalAddress, "layer_norm");
    FAIL() << "no error";
  } catch (const CudaError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind("layer_norm: ", 0), 0u) << m;
    EXPECT_NE(m.find("may come from an earlier kernel; CUDA_LAUNCH_BLOCKING=1"), std::string::npos) << m;
  }
  try {
    check(cudaErrorInvalidConfiguration, "gelu");  // a launch's own error: no such note
    FAIL() << "no error";
  } catch (const CudaError& e) {
    EXPECT_EQ(std::string(e.what()).find("CUDA_LAUNCH_BLOCKING"), std::string::npos) << e.what();
  }
  try {
    softmax(TFH_TYPE_DOUBLE, nullptr, nullptr, 1, 1, nullptr);
    FAIL() << "no error";
  } catch (const CudaError& e) {
    EXPECT_NE(std::string(e.what()).find("only float, float16 and bfloat16"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tfh::kernels::cuda
