// gpt2.shared_kv_cache on the bundled GPT-2 (`tfhost optimize --model_type gpt2
// --enable_shared_kv_cache`): what it changes (every Attention shares one past/present buffer, one
// past_sequence_length input, the buffers' sequence dimension made max_sequence_length), and a
// decoding run through the shared model on tfhost's CPU runtime — a prompt, then single tokens,
// each step's present fed back as the next past — against the same steps through the model with
// per-step past/present: equal logits, equal cache rows, and the buffer's rows after the tokens
// so far left as they were.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "host/pipeline/pipeline.h"
#include "host/plugin/registry.h"
#include "host/runtime/kernel_registry.h"
#include "host/runtime/measure.h"
#include "host/runtime/tensor_io.h"
#include "runtime/gpt2_decode.h"
#include "support/test_util.h"

namespace tfh::runtime {
namespace {

using tfh::test::Gpt2DecodeSpec;
using tfh::test::TempDir;

std::string optimized(const TempDir& tmp, bool shared, bool fp16 = false) {
  const std::string out =
      tmp / (std::string(shared ? "shared" : "fused") + (fp16 ? "_fp16" : "") + ".onnx");
  std::vector<std::string> args = {TFH_TFHOST_EXE, "optimize", "--input",
                                   TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14/model.onnx",
                                   "--output", out, "--model_type", "gpt2"};
  if (shared) args.push_back("--enable_shared_kv_cache");
  if (fp16) args.push_back("--float16");
  const auto r = tfh::test::run_command(args, {});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return out;
}

TEST(SharedKvCache, WhatThePassChanges) {
  TempDir tmp;
  const onnx::ModelProto m = tfh::test::read_model_proto(optimized(tmp, true));
  int shared = 0;
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "Attention") continue;
    for (const auto& a : n.attribute())
      if (a.name() == "past_present_share_buffer") shared += a.i() == 1;
    ASSERT_GE(n.input_size(), 7);
    EXPECT_EQ(n.input(6), "past_sequence_length");
  }
  EXPECT_EQ(shared, 2) << "both layers";
  std::map<std::string, const onnx::ValueInfoProto*> io;
  for (const auto& v : m.graph().input()) io[v.name()] = &v;
  for (const auto& v : m.graph().output()) io[v.name()] = &v;
  ASSERT_TRUE(io.count("past_sequence_length"));
  const auto& psl = io["past_sequence_length"]->type().tensor_type();
  EXPECT_EQ(psl.elem_type(), onnx::TensorProto::INT32);
  ASSERT_EQ(psl.shape().dim_size(), 1);
  EXPECT_EQ(psl.shape().dim(0).dim_value(), 1);
  for (const char* v : {"past_0", "past_1", "present_0", "present_1"}) {
    ASSERT_TRUE(io.count(v)) << v;
    EXPECT_EQ(io[v]->type().tensor_type().shape().dim(3).dim_param(), "max_sequence_length") << v;
  }
}

// tfhost generate on the shared model (buffers of prompt + max_new_tokens rows, a fixed-width
// mask, past_sequence_length) picks the tokens the per-step model picks.
TEST(SharedKvCache, GenerateSameTokens) {
  TempDir tmp;
  std::string out[2], err[2];
  for (bool shared : {false, true}) {
    const auto r = tfh::test::run_command({TFH_TFHOST_EXE, "generate", "--model",
                                           optimized(tmp, shared), "--prompt", "5 17 301 9", "-n",
                                           "7", "-b", "2"}, {});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    out[shared] = r.out;
    err[shared] = r.err;
  }
  EXPECT_EQ(out[1], out[0]);
  EXPECT_NE(out[1].find("row 1:"), std::string::npos) << out[1];
  EXPECT_NE(err[1].find("(shared key/value buffers of 11 rows)"), std::string::npos) << err[1];
}

// gpt2.inputs gives the shared model its inputs (buffers of past + new rows, the mask as wide,
// past_sequence_length = the past), so perf and benchmark time it like any other model.
TEST(SharedKvCache, PerfRunsTheSharedModel) {
  TempDir tmp;
  const auto r = tfh::test::run_command(
      {TFH_TFHOST_EXE, "perf", "-m", optimized(tmp, true), "--model_type", "gpt2", "-b", "2", "-s",
       "1", "--past_sequence_length", "8", "--samples", "3", "--warmup", "1",
       "--save_inputs", tmp / "inputs"},
      {});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string json = tfh::test::read_file(tmp / "inputs/inputs.json");
  EXPECT_NE(json.find("\"name\":\"past_0\",\"type\":\"float32\",\"dims\":[2,2,4,9,16]"),
            std::string::npos) << json;
  EXPECT_NE(json.find("\"name\":\"attention_mask\",\"type\":\"int64\",\"dims\":[2,9]"),
            std::string::npos) << json;
  EXPECT_NE(json.find("\"name\":\"past_sequence_length\",\"type\":\"int32\",\"dims\":[1]"),
            std::string::npos) << json;
}

// compare and a config's verify feed the shared model the per-step model's inputs, each past
// widened by the new tokens' rows and past_sequence_length added: same outputs, presents
// included (their shapes too). Float32 exactly; float16 (configs/gpt2_fp16_decode.yaml: the
// float16 pipeline plus the pass) within its tolerance.
TEST(SharedKvCache, CompareAndVerifyFeedTheSharedModel) {
  TempDir tmp;
  const auto cmp = tfh::test::run_command(
      {TFH_TFHOST_EXE, "compare", "--baseline_model",
       TFH_SOURCE_DIR "/models/gpt2past_tiny_opset14/model.onnx", "--optimized_model",
       optimized(tmp, true), "--model_type", "gpt2", "-b", "2", "-s", "3",
       "--past_sequence_length", "5", "--samples", "2"},
      {});
  EXPECT_EQ(cmp.exit_code, 0) << cmp.out << cmp.err;
  EXPECT_NE(cmp.out.find("output present_1: max abs diff"), std::string::npos) << cmp.out;
  EXPECT_NE(cmp.out.find("PASS: 2/2 samples"), std::string::npos) << cmp.out;
  const auto run = tfh::test::run_command(
      {TFH_TFHOST_EXE, "run", TFH_SOURCE_DIR "/configs/gpt2_fp16_decode.yaml", "--set",
       "output=" + (tmp / "fp16_shared.onnx"), "--set", "benchmark=null", "--set",
       "verify.samples=2"},
      {});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("verify: PASS: 2/2 samples"), std::string::npos) << run.out << run.err;
  EXPECT_NE(run.out.find("gpt2.shared_kv_cache: 2 changed"), std::string::npos) << run.out;
}

// After a run whose output took a donated host buffer over, a failing run (past_sequence_length
// too large for the buffer) fails with its own error and leaves the session working; the donor
// is left without data, and a feed may not share a donated feed's bytes.
TEST(SharedKvCache, DonationThenAFailingRun) {
  TempDir tmp;
  plugin::Registry registry;
  pipeline::load_plugins(registry, {}, {TFH_BINARY_DIR "/plugins"});
  auto model = ir::Model::load(optimized(tmp, true));
  const KernelRegistry kernels(registry);
  Session s(static_cast<const ir::Model&>(*model), kernels);
  Gpt2DecodeSpec spec;
  spec.max_length = 12;
  auto donating = [](const std::vector<NamedTensor>& in) {
    std::vector<Feed> f;
    for (const auto& [name, t] : feeds_of(in))
      f.push_back(Feed{name, t, nullptr, name == "past_0" || name == "past_1"});
    return f;
  };
  auto in0 = tfh::test::gpt2_decode_inputs(spec, 0, {});
  const HostTensor* past0 = in0[3].tensor.get();
  ASSERT_EQ(in0[3].name, "past_0");
  const void* bytes = past0->data;
  const auto out = s.run_feeds(donating(in0));
  EXPECT_EQ(out[1]->data, bytes) << "present_0 took the donated bytes";
  EXPECT_EQ(past0->data, nullptr) << "the donor is left without them";
  auto in1 = tfh::test::gpt2_decode_inputs(spec, 0, {});
  for (auto& n : in1)
    if (n.name == "past_sequence_length") *reinterpret_cast<int32_t*>(n.tensor->storage.get()) = 10;
  std::string err;
  try {
    s.run_feeds(donating(in1));
  } catch (const std::exception& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("past_sequence_length 10 + sequence 4 does not fit"), std::string::npos) << err;
  auto in2 = tfh::test::gpt2_decode_inputs(spec, 0, {});
  EXPECT_EQ(s.run_feeds(donating(in2)).size(), 3u);
  // past_1 fed the bytes of the donated past_0 as well: refused.
  auto in3 = tfh::test::gpt2_decode_inputs(spec, 0, {});
  std::vector<Feed> f = donating(in3);
  f[4].host = f[3].host;
  f[4].donate = false;
  err.clear();
  try {
    s.run_feeds(f);
  } catch (const std::exception& e) {
    err = e.what();
  }
  EXPECT_EQ(err, "input 'past_1': the same memory as 'past_0', and that one is donated");
}

// The models compared: float32 (optimize), float16 with float32 I/O (optimize --float16: past
// and present cast around the float16 Attention), float16 I/O (configs/gpt2_fp16.yaml and
// gpt2_fp16_decode.yaml: float16 past/present, int32 inputs).
enum class Precision { Float32, Float16CastIo, Float16Io };

std::string model_for(const TempDir& tmp, Precision p, bool shared) {
  if (p != Precision::Float16Io) return optimized(tmp, shared, p == Precision::Float16CastIo);
  const std::string out = tmp / (shared ? "decode.onnx" : "fp16.onnx");
  const auto r = tfh::test::run_command(
      {TFH_TFHOST_EXE, "run",
       std::string(TFH_SOURCE_DIR "/configs/") + (shared ? "gpt2_fp16_decode.yaml" : "gpt2_fp16.yaml"),
       "--set", "output=" + out, "--set", "verify=null", "--set", "benchmark=null"},
      {});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return out;
}

class SharedKvDecoding : public ::testing::TestWithParam<Precision> {};

// Each step through both models; the shared model's buffers are donated (Session::run_feeds):
// where the past goes straight into Attention its present is the same bytes, updated in place.
TEST_P(SharedKvDecoding, MatchesPerStepPresents) {
  const Precision precision = GetParam();
  TempDir tmp;
  plugin::Registry registry;
  pipeline::load_plugins(registry, {}, {TFH_BINARY_DIR "/plugins"});
  auto plain_model = ir::Model::load(model_for(tmp, precision, false));
  auto shared_model = ir::Model::load(model_for(tmp, precision, true));
  const KernelRegistry kernels(registry);
  for (bool full_width : {false, true}) {
    SCOPED_TRACE(full_width ? "mask [B, M]" : "mask [B, P + S]");
    Session plain(static_cast<const ir::Model&>(*plain_model), kernels);
    Session shared(static_cast<const ir::Model&>(*shared_model), kernels);
    Gpt2DecodeSpec ps, ss;
    ps.fp16 = ss.fp16 = shared_model->graph().find("past_0")->elem_type() == TFH_TYPE_FLOAT16;
    ss.max_length = 12;
    ss.full_width_mask = full_width;
    std::vector<std::unique_ptr<HostTensor>> po, so;
    for (int64_t step = 0; step < 6; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      std::vector<const HostTensor*> plast, slast;
      for (size_t l = 1; l < po.size(); ++l) plast.push_back(po[l].get());
      for (size_t l = 1; l < so.size(); ++l) slast.push_back(so[l].get());
      const auto pin = tfh::test::gpt2_decode_inputs(ps, step, plast);
      const auto sin = tfh::test::gpt2_decode_inputs(ss, step, slast);
      std::vector<std::unique_ptr<HostTensor>> held;  // inputs converted to the models' types
      po = plain.run(feeds_for(*plain_model, feeds_of(pin), held));
      std::vector<Feed> feeds;
      std::vector<const void*> buffers;
      for (const auto& [name, t] : feeds_for(*shared_model, feeds_of(sin), held)) {
        const bool buffer = name == "past_0" || name == "past_1";
        if (buffer) buffers.push_back(t->data);
        feeds.push_back(Feed{name, t, nullptr, buffer});
      }
      so = shared.run_feeds(feeds);
      ASSERT_EQ(so.size(), 3u);
      if (precision != Precision::Float16CastIo)
        for (int l = 0; l < 2; ++l) EXPECT_EQ(so[1 + l]->data, buffers[l]) << "present_" << l << " in place";
      // Both compute in float32 (float16 storage): the same numbers, whatever the precision.
      const Difference d = compare_tensors(*so[0], *po[0], 0, 1e-4);
      EXPECT_TRUE(d.ok()) << "logits: max abs diff " << d.max_abs;
      // Cache rows [0, T) as the per-step present; rows after T untouched (the junk of step 0).
      const int64_t T = po[1]->dims[3], M = ss.max_length, D = ss.head_size;
      for (int l = 1; l <= 2; ++l) {
        ASSERT_EQ(so[l]->dims, (std::vector<int64_t>{2, 2, 4, M, D}));
        const auto sf = convert_tensor(*so[l], TFH_TYPE_FLOAT), pf = convert_tensor(*po[l], TFH_TYPE_FLOAT);
        const float* s = static_cast<const float*>(sf->data);
        const float* p = static_cast<const float*>(pf->data);
        float worst = 0;
        size_t junk_changed = 0;
        for (int64_t h = 0; h < 2 * 2 * 4; ++h)
          for (int64_t r = 0; r < M; ++r)
            for (int64_t c = 0; c < D; ++c) {
              const int64_t i = (h * M + r) * D + c;
              if (r < T)
                worst = std::max(worst, std::fabs(s[i] - p[(h * T + r) * D + c]));
              else
                junk_changed += s[i] != 1e3f + static_cast<float>(i % 7);
            }
        EXPECT_LT(worst, 1e-4) << "present_" << l - 1 << " rows [0, " << T << ")";
        EXPECT_EQ(junk_changed, 0u) << "present_" << l - 1 << " rows after " << T;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, SharedKvDecoding,
                         ::testing::Values(Precision::Float32, Precision::Float16CastIo,
                                           Precision::Float16Io),
                         [](const auto& info) {
                           return info.param == Precision::Float32       ? "float32"
                                  : info.param == Precision::Float16CastIo ? "float16_float32_io"
                                                                          : "float16_io";
                         });

}  // namespace
}  // namespace tfh::runtime
