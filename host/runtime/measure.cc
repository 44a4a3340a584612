#include "host/runtime/measure.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "host/runtime/tensor_io.h"
#include "host/util/error.h"
#include "tfhost/core.hpp"

namespace tfh::runtime {
namespace {

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double pos = p / 100.0 * (sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}


}  // namespace

Latency time_runs(Session& s, const std::vector<std::pair<std::string, const HostTensor*>>& feeds,
                  int warmup, int samples) {
  return time_calls([&] { s.run(feeds); }, warmup, samples);
}

Latency time_calls(const std::function<void()>& once, int warmup, int samples) {
  for (int i = 0; i < warmup; ++i) once();
  std::vector<double> ms;
  ms.reserve(samples);
  for (int i = 0; i < samples; ++i) {
    const auto a = std::chrono::steady_clock::now();
    once();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  Latency l;
  l.samples = samples;
  if (ms.empty()) return l;
  l.mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  std::sort(ms.begin(), ms.end());
  l.p50 = percentile(ms, 50);
  l.p75 = percentile(ms, 75);
  l.p90 = percentile(ms, 90);
  l.p95 = percentile(ms, 95);
  l.p99 = percentile(ms, 99);
  return l;
}

std::unique_ptr<HostTensor> convert_tensor(const HostTensor& t, TfhDataType type) {
  auto out = make_tensor(type, t.dims);
  unsigned char* p = out->storage.get();
  for (size_t i = 0; i < t.num_elements; ++i) {
    const double v = element_as_double(t, i);
    switch (type) {
      case TFH_TYPE_FLOAT: { const float f = static_cast<float>(v); std::memcpy(p + 4 * i, &f, 4); break; }
      case TFH_TYPE_DOUBLE: std::memcpy(p + 8 * i, &v, 8); break;
      case TFH_TYPE_INT32: { const int32_t k = static_cast<int32_t>(v); std::memcpy(p + 4 * i, &k, 4); break; }
      case TFH_TYPE_INT64: { const int64_t k = static_cast<int64_t>(v); std::memcpy(p + 8 * i, &k, 8); break; }
      case TFH_TYPE_BOOL: case TFH_TYPE_UINT8: p[i] = v != 0; break;
      case TFH_TYPE_FLOAT16: { const uint16_t h = to_float16(static_cast<float>(v)).bits; std::memcpy(p + 2 * i, &h, 2); break; }
      case TFH_TYPE_BFLOAT16: {
        const uint16_t h = to_bfloat16(static_cast<float>(v)).bits;
        std::memcpy(p + 2 * i, &h, 2);
        break;
      }
      default: TFH_THROW("cannot convert a tensor to ", data_type_name(type));
    }
  }
  return out;
}

bool OutputComparison::add_sample(const std::vector<const ir::Value*>& want_names,
                                  const std::vector<std::unique_ptr<HostTensor>>& want,
                                  const std::vector<const ir::Value*>& got_names,
                                  const std::vector<std::unique_ptr<HostTensor>>& got) {
  bool ok = true;
  for (size_t k = 0; k < want.size(); ++k) {
    const std::string& name = want_names[k]->name();
    size_t j = k;
    auto it = std::find_if(got_names.begin(), got_names.end(),
                           [&](const ir::Value* v) { return v->name() == name; });
    if (it != got_names.end()) j = static_cast<size_t>(it - got_names.begin());
    else if (k >= got.size()) TFH_THROW("output '", name, "' has no counterpart in the other model");
    const HostTensor& w = *want[k];
    const HostTensor& o = *got[j];
    if (w.dims != o.dims)
      TFH_THROW("output '", name, "': shape ", describe_tensor(o), " against ", describe_tensor(w));
    if (outputs_.size() <= k) outputs_.push_back({name});
    OutputAgreement& st = outputs_[k];
    for (size_t i = 0; i < w.num_elements; ++i) {
      const double a = element_as_double(w, i), b = element_as_double(o, i);
      if (std::isnan(a) || std::isnan(b)) {
        if (std::isnan(a) != std::isnan(b)) ok = false;
        continue;
      }
      const double d = std::fabs(a - b);
      st.max_abs = std::max(st.max_abs, d);
      if (d > atol_ + rtol_ * std::fabs(a)) ok = false;
    }
    const bool is_float = w.type == TFH_TYPE_FLOAT || w.type == TFH_TYPE_FLOAT16 ||
                          w.type == TFH_TYPE_BFLOAT16 || w.type == TFH_TYPE_DOUBLE;
    std::string lname = name;
    for (char& c : lname) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool named_scores = lname.find("logit") != std::string::npos ||
                              lname.find("score") != std::string::npos ||
                              lname.find("prob") != std::string::npos;
    if (is_float && named_scores && w.dims.size() >= 2 && w.dims.back() > 1) {
      st.scores = true;
      const size_t cols = static_cast<size_t>(w.dims.back());
      for (size_t r = 0; r < w.num_elements / cols; ++r) {
        size_t aw = 0, ao = 0;
        for (size_t c = 1; c < cols; ++c) {
          if (element_as_double(w, r * cols + c) > element_as_double(w, r * cols + aw)) aw = c;
          if (element_as_double(o, r * cols + c) > element_as_double(o, r * cols + ao)) ao = c;
        }
        ++st.rows;
        st.top1_same += aw == ao;
      }
    }
  }
  ++samples_;
  passed_ += ok;
  return ok;
}

bool shared_buffer_input(const ir::Value& v) {
  if (!v.has_info() || !v.info().type().tensor_type().has_shape()) return false;
  const auto& shape = v.info().type().tensor_type().shape();
  return shape.dim_size() >= 2 &&
         shape.dim(shape.dim_size() - 2).dim_param() == "max_sequence_length";
}

namespace {

// `t` [.., P, D] as a buffer [.., P + extra, D]: its rows, then `extra` zero rows.
std::unique_ptr<HostTensor> with_free_rows(const HostTensor& t, int64_t extra) {
  std::vector<int64_t> dims = t.dims;
  const size_t r = dims.size();
  const int64_t rows = dims[r - 2];
  dims[r - 2] += extra;
  auto out = make_tensor(t.type, dims);
  const size_t row_bytes = t.num_elements && rows ? t.nbytes / (t.num_elements / dims[r - 1]) : 0;
  const size_t from = static_cast<size_t>(rows) * row_bytes,
               to = static_cast<size_t>(rows + extra) * row_bytes;
  const size_t blocks = to ? out->nbytes / to : 0;
  auto* dst = static_cast<unsigned char*>(const_cast<void*>(out->data));
  const auto* src = static_cast<const unsigned char*>(t.data);
  for (size_t b = 0; b < blocks; ++b) {
    if (from) std::memcpy(dst + b * to, src + b * from, from);
    std::memset(dst + b * to + from, 0, to - from);
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, const HostTensor*>> feeds_for(
    const ir::Model& model, const std::vector<std::pair<std::string, const HostTensor*>>& inputs,
    std::vector<std::unique_ptr<HostTensor>>& held) {
  // A model with one key/value buffer for past and present fed inputs made for the model with
  // per-step past/present: each past of P rows becomes a buffer of P + S rows (S: the new
  // tokens, input_ids' second dimension; the new rows zero), and past_sequence_length is P.
  // The presents then come out as the per-step model's, shapes included.
  const ir::Value* length = model.graph().find("past_sequence_length");
  bool length_given = false;
  int64_t new_tokens = -1;
  for (const auto& [name, t] : inputs) {
    length_given |= name == "past_sequence_length";
    if (name == "input_ids" && t->dims.size() == 2) new_tokens = t->dims[1];
  }
  const bool adapt = length && length->is_graph_input() && !length_given;
  int64_t past = -1;
  std::vector<std::pair<std::string, const HostTensor*>> out;
  for (const auto& [name, t] : inputs) {
    const ir::Value* v = model.graph().find(name);
    TFH_CHECK(v && v->is_graph_input(), model.path(), ": has no input '", name, "'");
    const HostTensor* fed = t;
    if (adapt && shared_buffer_input(*v) && t->dims.size() >= 2) {
      TFH_CHECK(new_tokens >= 0, model.path(), ": input '", name, "' is a shared key/value "
                "buffer, and there is no input_ids [batch, sequence] to size it by");
      const int64_t p = t->dims[t->dims.size() - 2];
      TFH_CHECK(past < 0 || past == p, model.path(), ": past inputs of ", past, " and ", p,
                " rows");
      past = p;
      held.push_back(with_free_rows(*t, new_tokens));
      fed = held.back().get();
    }
    const auto want = static_cast<TfhDataType>(v->elem_type());
    if (want && want != fed->type) {
      held.push_back(convert_tensor(*fed, want));
      fed = held.back().get();
    }
    out.emplace_back(name, fed);
  }
  if (adapt) {
    TFH_CHECK(past >= 0, model.path(), ": input 'past_sequence_length' has nothing to count "
              "(no input is a shared key/value buffer)");
    held.push_back(make_tensor(TFH_TYPE_INT32, {1}));
    *static_cast<int32_t*>(const_cast<void*>(held.back()->data)) = static_cast<int32_t>(past);
    out.emplace_back("past_sequence_length", held.back().get());
  }
  return out;
}

int32_t reduced_precision(const ir::Model& m) {
  int32_t found = 0;
  auto see = [&](const std::vector<ir::Value*>& values) {
    for (const ir::Value* v : values) {
      if (v->elem_type() == onnx::TensorProto::BFLOAT16) found = onnx::TensorProto::BFLOAT16;
      if (v->elem_type() == onnx::TensorProto::FLOAT16 && !found) found = onnx::TensorProto::FLOAT16;
    }
  };
  see(m.graph().initializers());
  see(m.graph().inputs());
  see(m.graph().outputs());
  return found;
}

}  // namespace tfh::runtime
