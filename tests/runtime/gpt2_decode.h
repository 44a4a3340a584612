// Decoding inputs (fixed tokens, no sampling) for the bundled GPT-2 (convert_to_onnx's layout: input_ids,
// position_ids, attention_mask over past + new, past_i [2, B, N, P, D]), for a model with
// per-step past/present tensors or with one shared key/value buffer per layer
// (gpt2.shared_kv_cache: past_i [2, B, N, M, D] plus past_sequence_length). Step 0 is a prompt of
// `prompt` tokens per row, row 1 left-padded by one; every later step adds one token. The token
// ids are fixed (not sampled) so that two models can be fed the same steps.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "host/runtime/inputs.h"
#include "host/runtime/session.h"
#include "host/runtime/measure.h"

namespace tfh::test {

using runtime::convert_tensor;
using runtime::copy_tensor;
using runtime::HostTensor;
using runtime::make_tensor;
using runtime::NamedTensor;

struct Gpt2DecodeSpec {
  int64_t batch = 2, prompt = 4, heads = 4, head_size = 16, layers = 2;
  int64_t max_length = 0;    // M of the shared buffer; 0: the model has per-step past/present
  bool full_width_mask = false;  // shared: the mask is [B, M] (fixed width), else [B, P + S]
  bool fp16 = false;             // the past is float16 (a model converted with --float16)
};

inline std::unique_ptr<HostTensor> int64s(const std::vector<int64_t>& dims,
                                          const std::vector<int64_t>& v) {
  auto t = make_tensor(TFH_TYPE_INT64, dims);
  std::memcpy(t->storage.get(), v.data(), v.size() * sizeof(int64_t));
  return t;
}

// The inputs of step `step` (P = the tokens before it). `past`: the previous step's presents
// (per layer), or null at step 0 (then zeros of length 0, or a shared buffer of junk).
inline std::vector<NamedTensor> gpt2_decode_inputs(const Gpt2DecodeSpec& c, int64_t step,
                                                   const std::vector<const HostTensor*>& past) {
  const int64_t B = c.batch, S = step == 0 ? c.prompt : 1, P = step == 0 ? 0 : c.prompt + step - 1;
  const int64_t T = P + S, W = c.max_length && c.full_width_mask ? c.max_length : T;
  std::vector<int64_t> ids, pos, mask(B * W, 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t pad = b == 1 ? 1 : 0;  // row 1: its first position is padding
    for (int64_t s = 0; s < S; ++s) {
      ids.push_back((37 * (b + 1) + 11 * (P + s) + 5) % 1000);
      pos.push_back(std::max<int64_t>(P + s - pad, 0));
    }
    for (int64_t j = pad; j < T; ++j) mask[b * W + j] = 1;
  }
  std::vector<NamedTensor> in;
  in.push_back({"input_ids", int64s({B, S}, ids)});
  in.push_back({"position_ids", int64s({B, S}, pos)});
  in.push_back({"attention_mask", int64s({B, W}, mask)});
  for (int64_t l = 0; l < c.layers; ++l) {
    if (step > 0) {
      in.push_back({"past_" + std::to_string(l), copy_tensor(*past.at(l))});
      continue;
    }
    const int64_t rows = c.max_length;  // 0 rows without a shared buffer
    auto t = make_tensor(TFH_TYPE_FLOAT, {2, B, c.heads, rows, c.head_size});
    float* p = reinterpret_cast<float*>(t->storage.get());
    for (size_t i = 0; i < t->num_elements; ++i) p[i] = 1e3f + static_cast<float>(i % 7);  // junk
    in.push_back({"past_" + std::to_string(l), c.fp16 ? convert_tensor(*t, TFH_TYPE_FLOAT16) : std::move(t)});
  }
  if (c.max_length) {
    auto t = make_tensor(TFH_TYPE_INT32, {1});
    *reinterpret_cast<int32_t*>(t->storage.get()) = static_cast<int32_t>(P);
    in.push_back({"past_sequence_length", std::move(t)});
  }
  return in;
}

}  // namespace tfh::test
