// core.inputs: dummy inputs for any transformer-shaped model, found from the graph alone.
//
// Symbolic dims are bound by their names: "batch*" -> batch size; "*past*" (without '+') -> past
// length; "total*" or "past...+..." -> past + sequence; "seq*"/"*len*" -> sequence. The inputs of
// past key/values (names starting with "past") take the past length on their length axis whatever
// the exporter called it. Values by input name:
//   input_ids       uniform in [0, vocab), vocab = rows of the embedding table it indexes
//   attention_mask  ones; rows after the first get random right padding of the new tokens
//   token_type_ids  0 then 1 from a random split point (when the type table has 2+ rows)
//   position_ids    past + 0, 1, 2, ...
//   past_* / other float inputs: normal(0, 1); other integer inputs: 0; bool: true
#include "host/passes/core_inputs.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <random>

#include "host/plugin/host_api.h"
#include "host/plugin/host_tensor.h"
#include "host/util/error.h"
#include "tfhost/core.hpp"

namespace tfh::passes {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// The rows of the Gather table that `v` indexes, following shape-preserving ops; 0 if none.
int64_t table_rows(const ir::Value* v, int depth = 0) {
  if (!v || depth > 4) return 0;
  for (const auto& [node, slot] : v->consumers()) {
    if (node->op_type() == "Gather" && slot == 1 && node->inputs()[0] &&
        node->inputs()[0]->initializer()) {
      const auto& d = node->inputs()[0]->initializer()->dims();
      if (!d.empty()) return d[0];
    }
    static const char* const kPass[] = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten",
                                        "Identity", "Expand"};
    for (const char* op : kPass)
      if (node->op_type() == op && slot == 0)
        if (int64_t r = table_rows(node->outputs()[0], depth + 1)) return r;
  }
  return 0;
}

}  // namespace

std::vector<DummyInput> core_inputs(const ir::Model& model, const InputSizes& sizes,
                                    uint64_t seed) {
  TFH_CHECK(sizes.batch > 0 && sizes.sequence > 0 && sizes.past >= 0,
            "dummy inputs: batch and sequence must be positive, past non-negative");
  const int64_t total = sizes.past + sizes.sequence;
  std::mt19937_64 rng(seed);
  std::vector<DummyInput> out;
  const ir::Graph& g = model.graph();
  for (const ir::Value* v : g.inputs()) {
    if (v->initializer()) continue;
    const std::string name = v->name(), lname = lower(name);
    const bool is_past = lname.rfind("past", 0) == 0;
    TFH_CHECK(v->has_info() && v->info().type().has_tensor_type(), "input '", name,
              "' has no tensor type: cannot make a dummy value for it");
    const auto& tt = v->info().type().tensor_type();
    TFH_CHECK(tt.has_shape(), "input '", name, "' has no shape: cannot make a dummy value for it");
    std::vector<int64_t> dims;
    for (int k = 0; k < tt.shape().dim_size(); ++k) {
      const auto& d = tt.shape().dim(k);
      if (d.has_dim_value()) {
        dims.push_back(d.dim_value());
        continue;
      }
      const std::string p = lower(d.dim_param());
      int64_t value = -1;
      if (has(p, "batch")) value = sizes.batch;
      else if (is_past && (has(p, "seq") || has(p, "len") || has(p, "past"))) value = sizes.past;
      else if (has(p, "total") || (has(p, "past") && has(p, "+"))) value = total;
      else if (has(p, "past")) value = sizes.past;
      else if (has(p, "seq") || has(p, "len")) value = sizes.sequence;
      TFH_CHECK(value >= 0, "input '", name, "' dimension ", k, " is '", d.dim_param(),
                "': not a batch, sequence, past or total length by its name");
      dims.push_back(value);
    }
    auto t = std::make_unique<plugin::HostTensor>();
    const auto type = static_cast<TfhDataType>(tt.elem_type());
    t->set_shape(type, dims);
    TFH_CHECK(plugin::elem_bits(type) >= 8, "input '", name, "': element type ", type,
              " is not supported for dummy inputs");
    t->storage = plugin::aligned_zeroed(t->nbytes);
    t->data = t->storage.get();
    t->writable = true;
    const int64_t n = static_cast<int64_t>(t->num_elements);
    const int64_t cols = dims.empty() ? 1 : dims.back();
    const int64_t rows = cols ? n / cols : 0;
    std::vector<double> vals(n, 0.0);
    if (lname == "input_ids" || lname == "decoder_input_ids") {
      int64_t vocab = table_rows(v);
      if (vocab <= 0) vocab = 2;
      std::uniform_int_distribution<int64_t> dist(0, vocab - 1);
      for (auto& x : vals) x = static_cast<double>(dist(rng));
    } else if (has(lname, "attention_mask") || lname == "input_mask") {
      // The first row is all ones; others keep at least one new token, padded on the right.
      for (int64_t r = 0; r < rows; ++r) {
        int64_t keep = cols;
        const int64_t first_new = cols - std::min<int64_t>(cols, sizes.sequence);
        if (r > 0 && cols > first_new + 1) {
          std::uniform_int_distribution<int64_t> dist(first_new + 1, cols);
          keep = dist(rng);
        }
        for (int64_t c = 0; c < keep; ++c) vals[r * cols + c] = 1;
      }
    } else if (lname == "token_type_ids" || lname == "segment_ids") {
      if (table_rows(v) >= 2 && cols > 1) {
        for (int64_t r = 0; r < rows; ++r) {
          std::uniform_int_distribution<int64_t> dist(1, cols - 1);
          for (int64_t c = dist(rng); c < cols; ++c) vals[r * cols + c] = 1;
        }
      }
    } else if (lname == "position_ids") {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) vals[r * cols + c] = static_cast<double>(sizes.past + c);
    } else if (type == TFH_TYPE_FLOAT || type == TFH_TYPE_FLOAT16 || type == TFH_TYPE_DOUBLE ||
               type == TFH_TYPE_BFLOAT16) {
      std::normal_distribution<double> dist(0.0, 1.0);
      for (auto& x : vals) x = dist(rng);
    } else if (type == TFH_TYPE_BOOL) {
      std::fill(vals.begin(), vals.end(), 1.0);
    }
    // Store in the input's type.
    unsigned char* p = t->storage.get();
    for (int64_t i = 0; i < n; ++i) {
      const double x = vals[i];
      switch (type) {
        case TFH_TYPE_FLOAT: { float f = static_cast<float>(x); std::memcpy(p + 4 * i, &f, 4); break; }
        case TFH_TYPE_DOUBLE: std::memcpy(p + 8 * i, &x, 8); break;
        case TFH_TYPE_INT64: { int64_t k = static_cast<int64_t>(x); std::memcpy(p + 8 * i, &k, 8); break; }
        case TFH_TYPE_INT32: { int32_t k = static_cast<int32_t>(x); std::memcpy(p + 4 * i, &k, 4); break; }
        case TFH_TYPE_BOOL: case TFH_TYPE_UINT8: p[i] = x != 0; break;
        case TFH_TYPE_INT8: p[i] = static_cast<unsigned char>(static_cast<int8_t>(x)); break;
        case TFH_TYPE_BFLOAT16: {
          const uint16_t h = to_bfloat16(static_cast<float>(x)).bits;
          std::memcpy(p + 2 * i, &h, 2);
          break;
        }
        case TFH_TYPE_FLOAT16: {
          const uint16_t h = to_float16(static_cast<float>(x)).bits;
          std::memcpy(p + 2 * i, &h, 2);
          break;
        }
        default:
          TFH_THROW("input '", name, "': element type ", type, " is not supported for dummy inputs");
      }
    }
    out.push_back({name, std::move(t)});
  }
  return out;
}

}  // namespace tfh::passes
