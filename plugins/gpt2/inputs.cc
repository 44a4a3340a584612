// gpt2.inputs: dummy inputs for GPT-2 models as batched generation feeds them, whatever the
// layout (convert_to_onnx's past_i [2, B, N, P, d], Hugging Face's past_key_values.i.key/value
// [B, N, P, d], or no past). Roles come from the graph first and the names second:
//   token ids      index the largest embedding table (wte): uniform over the vocabulary
//   position ids   index another table (wpe), or named *position*: derived from the mask the way
//                  generate() does with left padding: cumsum(mask) - 1, 1 where padded
//   attention mask named *mask* (int, float or bool as declared), [B, P + S]: left padding,
//                  row 0 unpadded, the others a random number of leading zeros (the newest token
//                  is always real)
//   past tensors   float, rank 5 ([2, B, N, P, d]) or rank 4 ([B, N, P, d]): N(0, 1)
//   past_sequence_length  (gpt2.shared_kv_cache's models) int32 [1] = P; the past tensors are
//                  then buffers of P + S rows (room for the new tokens), the mask as wide
// Dims the exporter left symbolic take batch_size, sequence_length and past_sequence_length by
// position; fixed dims are kept. Any other input is an error that names it.
#include <algorithm>
#include <cctype>
#include <random>

#include "fusions/fusions.h"

namespace gpt2 {
namespace {

using plugin_common::lower;
using plugin_common::table_rows;

bool is_float(TfhDataType t) {
  return t == TFH_TYPE_FLOAT || t == TFH_TYPE_FLOAT16 || t == TFH_TYPE_BFLOAT16 ||
         t == TFH_TYPE_DOUBLE;
}

}  // namespace

void generate_inputs(tfh::GraphView g, const tfh::ParamsView& p, uint64_t seed,
                     tfh::TensorListView out) {
  const int64_t batch = p.get_int("batch_size"), seq = p.get_int("sequence_length"),
                past = p.get_int("past_sequence_length");
  if (batch <= 0 || seq <= 0 || past < 0)
    tfh::sdk::fail("gpt2.inputs: batch_size and sequence_length must be positive, "
                   "past_sequence_length not negative");
  enum class Role { kIds, kPositions, kMask, kPast, kPastLength };
  std::vector<std::pair<tfh::ValueView, Role>> inputs;
  int64_t vocab = 0;
  for (const tfh::ValueView& v : g.inputs())
    if (!v.constant()) vocab = std::max(vocab, table_rows(v));
  for (const tfh::ValueView& v : g.inputs()) {
    if (v.constant()) continue;
    const std::string name(v.name()), lname = lower(name);
    const int64_t rows = table_rows(v);
    Role r;
    if (name == "past_sequence_length")
      r = Role::kPastLength;
    else if (is_float(v.elem_type()) && (v.rank() == 4 || v.rank() == 5) &&
        lname.find("mask") == std::string::npos)
      r = Role::kPast;
    else if (rows > 0 && rows == vocab)
      r = Role::kIds;
    else if (rows > 0 || lname.find("position") != std::string::npos)
      r = Role::kPositions;
    else if (lname.find("mask") != std::string::npos)
      r = Role::kMask;
    else if (lname.find("input_ids") != std::string::npos)
      r = Role::kIds;
    else
      tfh::sdk::fail("gpt2.inputs: input '" + name +
                     "' is not token ids, position ids, an attention mask or a past tensor (by "
                     "the graph or by its name); use core.inputs or give inputs");
    inputs.emplace_back(v, r);
  }
  // A shared key/value buffer holds the past and the new tokens' rows.
  bool shared_buffer = false;
  for (const auto& [v, r] : inputs) shared_buffer |= r == Role::kPastLength;
  const int64_t past_rows = shared_buffer ? past + seq : past;
  // Shapes: fixed dims kept; symbolic ones by role and position.
  auto dims_of = [&](const tfh::ValueView& v, Role r) {
    std::vector<int64_t> d;
    for (int64_t i = 0; i < v.rank(); ++i) {
      const tfh::Dim dim = v.dim(static_cast<size_t>(i));
      int64_t x = dim.known() ? dim.value : -1;
      if (x < 0) {
        if (r == Role::kPast) {
          const int64_t batch_axis = v.rank() == 5 ? 1 : 0, past_axis = v.rank() - 2;
          x = i == batch_axis ? batch : i == past_axis ? past_rows : -1;
        } else {
          x = i == 0 ? batch : r == Role::kMask ? past + seq : seq;
        }
      }
      if (x < 0)
        tfh::sdk::fail("gpt2.inputs: input '" + std::string(v.name()) + "' dimension " +
                       std::to_string(i) + " is '" + dim.symbol +
                       "': not a batch, sequence or past length at its position");
      d.push_back(x);
    }
    return d;
  };
  // One left-padding pattern for every input: row r has pads[r] leading padded positions of
  // the total past + seq.
  std::mt19937_64 rng(seed);
  const int64_t total = past + seq;
  std::vector<int64_t> pads(static_cast<size_t>(batch), 0);
  for (int64_t r = 1; r < batch; ++r)
    pads[r] = std::uniform_int_distribution<int64_t>(0, total - 1)(rng);
  for (auto& [v, role] : inputs) {
    const std::string name(v.name());
    const std::vector<int64_t> d = dims_of(v, role);
    int64_t n = 1;
    for (int64_t x : d) n *= x;
    std::vector<double> vals(static_cast<size_t>(n), 0.0);
    const int64_t rows = d.empty() ? 1 : d[0], cols = d.size() > 1 ? d[1] : 1;
    switch (role) {
      case Role::kIds: {
        std::uniform_int_distribution<int64_t> tok(0, std::max<int64_t>(vocab, 2) - 1);
        for (double& x : vals) x = static_cast<double>(tok(rng));
        break;
      }
      case Role::kMask:  // [B, total]: the last `cols` positions of each row's pattern
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c)
            vals[r * cols + c] = (total - cols + c) >= pads[std::min(r, batch - 1)] ? 1 : 0;
        break;
      case Role::kPositions:  // cumsum(mask) - 1, 1 on padding; the new tokens' part
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            const int64_t at = total - cols + c, pad = pads[std::min(r, batch - 1)];
            vals[r * cols + c] = at >= pad ? static_cast<double>(at - pad) : 1.0;
          }
        break;
      case Role::kPast: {
        std::normal_distribution<double> nd(0.0, 1.0);
        for (double& x : vals) x = nd(rng);
        break;
      }
      case Role::kPastLength:
        if (n != 1)
          tfh::sdk::fail("gpt2.inputs: past_sequence_length must hold one value, its shape "
                         "makes " + std::to_string(n));
        vals[0] = static_cast<double>(past);
        break;
    }
    out.add(name, plugin_common::filled_tensor(v.elem_type(), d, vals, "gpt2.inputs", name));
  }
}

}  // namespace gpt2
