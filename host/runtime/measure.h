// What the measuring commands share: timing a session (latency percentiles) and comparing two
// models' outputs sample by sample (max difference, allclose pass rate, top-1 agreement).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/runtime/session.h"
#include "host/runtime/tensor_io.h"

namespace tfh::runtime {

struct Latency {
  double mean = 0, p50 = 0, p75 = 0, p90 = 0, p95 = 0, p99 = 0;  // milliseconds
  int samples = 0;
};

// `warmup` untimed runs, then `samples` timed ones.
Latency time_runs(Session& s, const std::vector<std::pair<std::string, const HostTensor*>>& feeds,
                  int warmup, int samples);
// The same for any call (a run with IO binding, which also waits for the GPU).
Latency time_calls(const std::function<void()>& once, int warmup, int samples);

// FLOAT16 or BFLOAT16 when the model holds such weights or takes/returns such tensors (a
// converted model; bfloat16 wins, being the less precise), else 0: what compare and verify
// choose their tolerances by.
int32_t reduced_precision(const ir::Model& m);

// A copy of `t` in element type `type` (int64 ids -> int32, float -> float16, ...).
std::unique_ptr<HostTensor> convert_tensor(const HostTensor& t, TfhDataType type);

struct OutputAgreement {
  std::string name;
  double max_abs = 0;  // over every sample
  bool scores = false;  // logits/scores/probs (float, last axis > 1): top-1 is measured
  size_t rows = 0, top1_same = 0;
};

// Accumulates the comparison of a baseline's outputs with another model's, sample by sample.
class OutputComparison {
 public:
  OutputComparison(double rtol, double atol) : rtol_(rtol), atol_(atol) {}
  // `want`/`got` in the order of `want_names`/`got_names` (each session's outputs); outputs are
  // matched by name, else by position. Returns whether every element is within tolerance.
  // Throws tfh::Error when an output is missing or its shape differs.
  bool add_sample(const std::vector<const ir::Value*>& want_names,
                  const std::vector<std::unique_ptr<HostTensor>>& want,
                  const std::vector<const ir::Value*>& got_names,
                  const std::vector<std::unique_ptr<HostTensor>>& got);
  const std::vector<OutputAgreement>& outputs() const { return outputs_; }
  int samples() const { return samples_; }
  int passed() const { return passed_; }
  bool all_passed() const { return samples_ > 0 && passed_ == samples_; }

 private:
  double rtol_, atol_;
  std::vector<OutputAgreement> outputs_;
  int samples_ = 0, passed_ = 0;
};

// Whether graph input `v` is a key/value buffer shared by past and present: its second-to-last
// dimension is the symbol max_sequence_length (gpt2.shared_kv_cache's models).
bool shared_buffer_input(const ir::Value& v);

// Feeds for `model` from `inputs` made for another model: the same values converted to the types
// `model` declares for its inputs. `held` keeps the converted tensors alive. Throws naming an
// input `model` lacks.
std::vector<std::pair<std::string, const HostTensor*>> feeds_for(
    const ir::Model& model, const std::vector<std::pair<std::string, const HostTensor*>>& inputs,
    std::vector<std::unique_ptr<HostTensor>>& held);

}  // namespace tfh::runtime
