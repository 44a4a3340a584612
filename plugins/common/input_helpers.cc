// Helpers of the family plugins' dummy-input generators (bert.inputs, gpt2.inputs).
#include <algorithm>
#include <cctype>

#include "common_fusions.h"

namespace plugin_common {

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

int64_t table_rows(const tfh::ValueView& v, int depth) {
  if (!v || depth > 4) return 0;
  int64_t best = 0;
  for (const tfh::Use& u : v.consumers()) {
    const tfh::NodeView n = u.node;
    if (n.is("Gather") && u.input == 1) {
      if (const tfh::TensorView t = n.input(0).constant(); t && t.rank() >= 1)
        best = std::max(best, t.dims()[0]);
    } else if (n.is("EmbedLayerNormalization", "com.microsoft") &&
               (u.input == 0 || u.input == 1 || u.input == 8)) {
      // word_embedding is input 2, position_embedding 3, segment_embedding 4
      const size_t table = u.input == 0 ? 2 : u.input == 1 ? 4 : 3;
      if (const tfh::TensorView t = n.input(table).constant(); t && t.rank() >= 1)
        best = std::max(best, t.dims()[0]);
    } else if (u.input == 0 && (n.is("Cast") || n.is("Reshape") || n.is("Unsqueeze") ||
                                n.is("Squeeze") || n.is("Expand") || n.is("Flatten"))) {
      best = std::max(best, table_rows(n.output(0), depth + 1));
    }
  }
  return best;
}

tfh::Tensor filled_tensor(TfhDataType type, const std::vector<int64_t>& dims,
                          const std::vector<double>& values, const std::string& who,
                          const std::string& name) {
  tfh::Tensor t(type, dims);
  void* raw = t.mutable_raw();
  for (size_t i = 0; i < values.size(); ++i) {
    const double x = values[i];
    switch (type) {
      case TFH_TYPE_INT64: static_cast<int64_t*>(raw)[i] = static_cast<int64_t>(x); break;
      case TFH_TYPE_INT32: static_cast<int32_t*>(raw)[i] = static_cast<int32_t>(x); break;
      case TFH_TYPE_FLOAT: static_cast<float*>(raw)[i] = static_cast<float>(x); break;
      case TFH_TYPE_DOUBLE: static_cast<double*>(raw)[i] = x; break;
      case TFH_TYPE_FLOAT16:
        static_cast<tfh::Float16*>(raw)[i] = tfh::to_float16(static_cast<float>(x));
        break;
      case TFH_TYPE_BFLOAT16:
        static_cast<tfh::BFloat16*>(raw)[i] = tfh::to_bfloat16(static_cast<float>(x));
        break;
      case TFH_TYPE_BOOL: static_cast<uint8_t*>(raw)[i] = x != 0; break;
      default:
        tfh::sdk::fail(who + ": input '" + name + "' has element type " + std::to_string(type) +
                       ", which dummy inputs do not support");
    }
  }
  return t;
}

}  // namespace plugin_common
