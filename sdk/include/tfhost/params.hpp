// tfhost SDK, C++ layer: typed access to a pass's resolved parameters (the YAML `with:` keys).
//
// The host has already applied the descriptor's defaults and checked every type, so a getter
// fails only when the plugin asks for a name or type its own descriptor does not declare.
#pragma once

#include <string>
#include <vector>

#include "tfhost/core.hpp"

namespace tfh {

// The value of a TFH_PARAM_BOOL_OR_STRING_LIST parameter: `true`/`false`, or a list of names.
struct BoolOrList {
  bool enabled = false;            // the bool, or "the list is not empty"
  std::vector<std::string> names;  // empty for the bool form
};

class ParamsView {
 public:
  ParamsView() = default;
  explicit ParamsView(const TfhParams* p) : p_(p) {}
  const TfhParams* handle() const { return p_; }

  bool get_bool(const std::string& name) const {
    int32_t v = 0;
    check(api().get_bool(p_, name.c_str(), &v));
    return v != 0;
  }
  int64_t get_int(const std::string& name) const {
    int64_t v = 0;
    check(api().get_int(p_, name.c_str(), &v));
    return v;
  }
  double get_float(const std::string& name) const {
    double v = 0;
    check(api().get_float(p_, name.c_str(), &v));
    return v;
  }
  std::string get_string(const std::string& name) const {
    const char* s = nullptr;
    check(api().get_string(p_, name.c_str(), &s));
    return s ? s : "";
  }
  std::vector<int64_t> get_ints(const std::string& name) const {
    const int64_t* p = nullptr;
    size_t n = 0;
    check(api().get_ints(p_, name.c_str(), &p, &n));
    return std::vector<int64_t>(p, p + n);
  }
  std::vector<double> get_floats(const std::string& name) const {
    const double* p = nullptr;
    size_t n = 0;
    check(api().get_floats(p_, name.c_str(), &p, &n));
    return std::vector<double>(p, p + n);
  }
  std::vector<std::string> get_strings(const std::string& name) const {
    size_t n = 0;
    check(api().get_num_strings(p_, name.c_str(), &n));
    std::vector<std::string> v;
    for (size_t i = 0; i < n; ++i) {
      const char* s = nullptr;
      check(api().get_string_at(p_, name.c_str(), i, &s));
      v.emplace_back(s ? s : "");
    }
    return v;
  }
  BoolOrList get_bool_or_list(const std::string& name) const {
    return BoolOrList{get_bool(name), get_strings(name)};
  }
  // True when the user set `name` (rather than the descriptor's default applying).
  bool has(const std::string& name) const { return api().has(p_, name.c_str()) != 0; }

 private:
  static const TfhParamsApi& api() { return *host().params; }
  const TfhParams* p_ = nullptr;
};

}  // namespace tfh
