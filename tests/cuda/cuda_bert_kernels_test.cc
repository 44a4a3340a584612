// The bert plugin's own CUDA kernel (plugins/bert/kernels/embed_layer_norm_cuda.cu, built into
// this test as into the plugin) against tfhost's CPU EmbedLayerNormalization: float32 and
// float16 tables, int32 and int64 ids, with and without segments, position ids ([B, S] or
// [1, S]), beta, the mask index and the embedding sum. Skipped without a GPU; run on the CPU
// emulator by tfh_cuda_emu_tests.
#include "cuda/kernel_test_util.h"
#include "kernels/embed_layer_norm_cuda.h"

namespace tfh::kernels::cuda {
namespace {

using namespace kernel_test;

// int32 values on the device, as int32 or widened to int64.
class DevIds {
 public:
  DevIds(const Floats& v, bool wide) {
    const size_t n = std::max<size_t>(v.size(), 1);
    check(cudaMalloc(&p_, n * 8), "cudaMalloc");
    if (wide) {
      std::vector<int64_t> h(v.begin(), v.end());
      check(cudaMemcpy(p_, h.data(), h.size() * 8, cudaMemcpyHostToDevice), "upload");
    } else {
      std::vector<int32_t> h(v.begin(), v.end());
      check(cudaMemcpy(p_, h.data(), h.size() * 4, cudaMemcpyHostToDevice), "upload");
    }
  }
  ~DevIds() { cudaFree(p_); }
  DevIds(const DevIds&) = delete;
  DevIds& operator=(const DevIds&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

Floats random_ids(int64_t n, int64_t rows, std::mt19937& rng) {
  std::uniform_int_distribution<int64_t> u(0, rows - 1);
  Floats v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(u(rng));
  return v;
}

TEST_F(CudaKernels, BertEmbedLayerNormAgainstCpu) {
  struct Case {
    int64_t B, S, H;
    bool segments, beta, mask;
    int positions;  // 0: none (0..S-1), 1: [B, S], 2: [1, S]
  };
  for (int elem : {F32, F16, BF16})
    for (bool wide : {false, true})
      for (const Case& c : {Case{2, 16, 64, true, true, true, 0}, Case{1, 1, 1, false, false, false, 0},
                            Case{3, 5, 33, true, false, true, 1}, Case{2, 7, 300, false, true, false, 2},
                            Case{1, 4, 1000, true, true, true, 1}}) {
        SCOPED_TRACE(name_of(elem) + (wide ? " int64" : " int32") + " B" + std::to_string(c.B) +
                     " S" + std::to_string(c.S) + " H" + std::to_string(c.H) +
                     (c.segments ? " segments" : "") + (c.beta ? " beta" : "") +
                     (c.mask ? " mask" : "") + " positions " + std::to_string(c.positions));
        std::mt19937 rng(static_cast<unsigned>(c.B * 100 + c.S * 10 + c.H));
        const int64_t V = 50, P = c.S + 3, G = 2, n = c.B * c.S;
        const Floats ids = random_ids(n, V, rng), seg_ids = random_ids(n, G, rng),
                     pos_ids = random_ids(c.positions == 2 ? c.S : n, P, rng),
                     word = stored(random_floats(V * c.H, rng), elem),
                     pos = stored(random_floats(P * c.H, rng), elem),
                     seg = stored(random_floats(G * c.H, rng), elem),
                     gamma = stored(random_floats(c.H, rng), elem),
                     beta = stored(random_floats(c.H, rng), elem);
        Floats mask(static_cast<size_t>(n), 1.f);
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t s = c.S - b; s < c.S; ++s) mask[b * c.S + s] = 0;
        const Shape pos_dims = c.positions == 2 ? Shape{1, c.S} : Shape{c.B, c.S};
        const auto want = cpu_node(
            "EmbedLayerNormalization", "com.microsoft", 17,
            {{"ids", {c.B, c.S}, ids, I32},
             {c.segments ? "seg_ids" : "", {c.B, c.S}, seg_ids, I32},
             {"word", {V, c.H}, word, elem},
             {"pos", {P, c.H}, pos, elem},
             {c.segments ? "seg" : "", {G, c.H}, seg, elem},
             {"gamma", {c.H}, gamma, elem},
             {c.beta ? "beta" : "", {c.H}, beta, elem},
             {c.mask ? "mask" : "", {c.B, c.S}, mask, I32},
             {c.positions ? "pos_ids" : "", pos_dims, pos_ids, I32}},
            {"y", "mask_index", "sum"}, [](onnx::NodeProto* node) {
              auto* a = node->add_attribute();
              a->set_name("epsilon");
              a->set_type(onnx::AttributeProto::FLOAT);
              a->set_f(1e-5f);
            });
        DevIds dids(ids, wide), dseg_ids(seg_ids, wide), dpos_ids(pos_ids, wide);
        DevMask dmask(mask), dmask_index(Floats(static_cast<size_t>(c.B), -1.f));
        Dev dword(word, elem), dpos(pos, elem), dseg(seg, elem), dgamma(gamma, elem),
            dbeta(beta, elem), dy(n * c.H, elem), dsum(n * c.H, elem);
        bert::cuda::EmbedArgs a;
        a.type = type_of(elem);
        a.id_type = wide ? TFH_TYPE_INT64 : TFH_TYPE_INT32;
        a.input_ids = dids.get();
        a.segment_ids = c.segments ? dseg_ids.get() : nullptr;
        a.position_ids = c.positions ? dpos_ids.get() : nullptr;
        a.position_broadcast = c.positions == 2;
        a.word = dword.get(), a.position = dpos.get();
        a.segment = c.segments ? dseg.get() : nullptr;
        a.gamma = dgamma.get();
        a.beta = c.beta ? dbeta.get() : nullptr;
        a.mask = c.mask ? dmask.get() : nullptr;
        a.out = dy.get();
        a.mask_index = const_cast<int32_t*>(dmask_index.get());
        a.sum = dsum.get();
        a.batch = c.B, a.seq = c.S, a.hidden = c.H;
        a.word_rows = V, a.position_rows = P, a.segment_rows = G;
        a.epsilon = 1e-5f;
        const std::string err = bert::cuda::embed_layer_norm(a, nullptr);
        ASSERT_EQ(err, "");
        EXPECT_LT(max_diff(dy.read(), want[0]), tol(elem) * (elem == F32 ? 10.f : 1.f));
        EXPECT_LT(max_diff(dsum.read(), want[2]), tol(elem));
        std::vector<int32_t> mask_index(static_cast<size_t>(c.B));
        check(cudaMemcpy(mask_index.data(), dmask_index.get(), mask_index.size() * 4,
                         cudaMemcpyDeviceToHost),
              "download");
        for (int64_t b = 0; b < c.B; ++b)
          EXPECT_EQ(static_cast<float>(mask_index[b]), want[1][b]) << "mask index of row " << b;
      }
}

}  // namespace
}  // namespace tfh::kernels::cuda
