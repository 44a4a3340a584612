// bert.inputs: dummy inputs for BERT-family models, unfused or fused, whatever the inputs are
// called (PyTorch's input_ids/attention_mask/token_type_ids, tf2onnx's input_ids:0, input_mask:0,
// segment_ids:0, ...). Each input's role comes from the graph first and its name second:
//   token ids     indexes the largest embedding table (a Gather, or EmbedLayerNormalization
//                 input 0): uniform over the vocabulary except the padding id, which fills the
//                 padded positions (RoBERTa's padding id is read from its input_ids != pad test)
//   segment ids   indexes a small table (<= 16 rows) or is EmbedLayerNormalization input 1:
//                 0, then 1 from a random split point, 0 on padding
//   attention mask  a name with "mask", or the mask input of Attention/EmbedLayerNormalization:
//                 the first row all ones, the others right-padded to a random length >= 1
//   position ids  0, 1, 2, ... (a name with "position")
// Each in the element type the model declares (int32, int64, float or bool); dims named by the
// exporter take batch_size / sequence_length, fixed dims are kept. Any other input is an error
// that names it.
#include <algorithm>
#include <cctype>
#include <random>

#include "fusions/fusions.h"

namespace bert {
namespace {

enum class Role { kIds, kSegment, kMask, kPosition, kUnknown };

using plugin_common::lower;
using plugin_common::table_rows;

// The mask input of a fused op, or a value feeding one through a Cast.
bool feeds_mask_slot(const tfh::ValueView& v, int depth = 0) {
  if (!v || depth > 2) return false;
  for (const tfh::Use& u : v.consumers()) {
    const tfh::NodeView n = u.node;
    if ((n.is("Attention", "com.microsoft") && u.input == 3) ||
        (n.is("EmbedLayerNormalization", "com.microsoft") && u.input == 7))
      return true;
    if ((n.is("Cast") || n.is("ReduceSum")) && feeds_mask_slot(n.output(0), depth + 1)) return true;
  }
  return false;
}

// RoBERTa computes position ids from Not(Equal(input_ids, pad)) (input_ids.ne(pad)).
std::optional<int64_t> padding_id(const tfh::ValueView& ids) {
  for (const tfh::Use& u : ids.consumers())
    if (u.node.is("Equal"))
      if (const tfh::TensorView c = u.node.input(1 - u.input).constant(); c && c.size() == 1)
        return static_cast<int64_t>(*c.at(0));
  return std::nullopt;
}

Role role_of(const tfh::ValueView& v, int64_t vocab_rows) {
  const std::string name = lower(v.name());
  const int64_t rows = table_rows(v);
  if (rows > 0 && rows == vocab_rows) return Role::kIds;
  if (rows > 0 && rows <= 16) return Role::kSegment;
  if (feeds_mask_slot(v) || name.find("mask") != std::string::npos) return Role::kMask;
  if (name.find("position") != std::string::npos) return Role::kPosition;
  if (name.find("token_type") != std::string::npos || name.find("segment") != std::string::npos)
    return Role::kSegment;
  if (name.find("input_ids") != std::string::npos) return Role::kIds;
  return Role::kUnknown;
}

}  // namespace

void generate_inputs(tfh::GraphView g, const tfh::ParamsView& p, uint64_t seed,
                     tfh::TensorListView out) {
  const int64_t batch = p.get_int("batch_size"), seq = p.get_int("sequence_length");
  if (batch <= 0 || seq <= 0) tfh::sdk::fail("bert.inputs: batch_size and sequence_length must be positive");
  std::vector<tfh::ValueView> inputs;
  for (const tfh::ValueView& v : g.inputs())
    if (!v.constant()) inputs.push_back(v);
  int64_t vocab = 0;
  for (const tfh::ValueView& v : inputs) vocab = std::max(vocab, table_rows(v));

  // Shapes first: every input is [batch, sequence] (fixed dims kept), and all must agree.
  int64_t rows = -1, cols = -1;
  std::vector<std::vector<int64_t>> dims(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const tfh::ValueView& v = inputs[i];
    const std::string name(v.name());
    if (v.rank() != 2)
      tfh::sdk::fail("bert.inputs: input '" + name + "' has rank " + std::to_string(v.rank()) +
                     "; BERT-family inputs are [batch, sequence]");
    dims[i] = {v.dim(0).known() ? v.dim(0).value : batch, v.dim(1).known() ? v.dim(1).value : seq};
    if (rows >= 0 && (dims[i][0] != rows || dims[i][1] != cols))
      tfh::sdk::fail("bert.inputs: input '" + name + "' is fixed to a shape the others do not have");
    rows = dims[i][0];
    cols = dims[i][1];
  }
  // One padding pattern shared by all inputs: row r keeps lengths[r] tokens.
  std::mt19937_64 rng(seed);
  std::vector<int64_t> lengths(static_cast<size_t>(std::max<int64_t>(rows, 0)), cols);
  for (int64_t r = 1; r < rows; ++r)
    lengths[r] = std::uniform_int_distribution<int64_t>(1, cols)(rng);

  for (size_t i = 0; i < inputs.size(); ++i) {
    const tfh::ValueView& v = inputs[i];
    const std::string name(v.name());
    std::vector<double> vals(static_cast<size_t>(rows * cols), 0.0);
    switch (role_of(v, vocab)) {
      case Role::kIds: {
        const int64_t n = std::max<int64_t>(vocab, 2);
        const int64_t pad = padding_id(v).value_or(0);
        std::uniform_int_distribution<int64_t> tok(0, n - 1);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            int64_t t = pad;
            while (c < lengths[r] && t == pad) t = tok(rng);
            vals[r * cols + c] = t;
          }
        break;
      }
      case Role::kSegment:
        if (table_rows(v) == 1) break;  // a one-row type table: all zeros
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t split = std::uniform_int_distribution<int64_t>(0, lengths[r])(rng);
          for (int64_t c = split; c < lengths[r]; ++c) vals[r * cols + c] = 1;
        }
        break;
      case Role::kMask:
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < lengths[r]; ++c) vals[r * cols + c] = 1;
        break;
      case Role::kPosition:
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) vals[r * cols + c] = c;
        break;
      case Role::kUnknown:
        tfh::sdk::fail("bert.inputs: input '" + name +
                       "' is not token ids, segment ids, an attention mask or position ids "
                       "(by the graph or by its name); use core.inputs or give inputs");
    }
    out.add(name, plugin_common::filled_tensor(v.elem_type(), dims[i], vals, "bert.inputs", name));
  }
}

}  // namespace bert
