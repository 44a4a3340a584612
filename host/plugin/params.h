// Resolved pass parameters: the host side of the opaque TfhParams handle.
// Built from a YAML `with:` map (or CLI flags) and validated against the descriptor's schema.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "tfhost/abi.h"

namespace tfh::plugin {

struct ParamSpec {
  std::string name;
  TfhParamType type = TFH_PARAM_STRING;
  std::optional<std::string> default_yaml;  // nullopt: required
  std::string description;
};

// Copies a descriptor's parameter table (strings copied: the host never keeps plugin pointers
// longer than the library). The table is walked with the stride of params[0].struct_size, not
// sizeof(TfhParamDesc) (sdk/ABI.md); every element must report that size, at least ABI 1's.
std::vector<ParamSpec> copy_param_specs(const TfhParamDesc* params, size_t n);
const char* param_type_name(TfhParamType t);  // "bool", "int", "string list", ...

struct ParamValue {
  TfhParamType type = TFH_PARAM_STRING;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  bool is_list_form = false;  // TFH_PARAM_BOOL_OR_STRING_LIST given as a list
  bool explicitly_set = false;
};

class Params {
 public:
  // Applies defaults and checks every given key against `schema`. `owner` names the pass for
  // messages; `where` is the location prefix ("configs/x.yaml:12:7"; "" for none). A null or
  // absent `with` means no keys. Throws tfh::Error:
  //   "<where>: unknown parameter 'foo' for pass 'bert.gelu' (valid: a, b)"
  //   "<where>: parameter 'n' of pass 'x' expects int, got 'abc'"
  //   "<where>: pass 'x' requires parameter 'n' (int: <description>)"
  //   "pass 'x': the default of parameter 'n' ('abc') is not a valid int (a bug in the plugin ...)"
  // Types: bool takes YAML booleans (true/false/yes/no/on/off); float also takes integers;
  // string takes any scalar; lists take YAML sequences of those scalars; bool-or-string-list
  // takes a bool or a sequence of strings (ParamValue::b is then true for a non-empty list).
  static Params resolve(const std::vector<ParamSpec>& schema, const YAML::Node& with,
                        const std::string& owner, const std::string& where);
  // Same, from "key=value" strings (value parsed as YAML; string parameters taken verbatim), for
  // the CLI.
  static Params resolve(const std::vector<ParamSpec>& schema,
                        const std::map<std::string, std::string>& with, const std::string& owner,
                        const std::string& where);

  const ParamValue* find(const std::string& name) const;
  const std::map<std::string, ParamValue>& values() const { return values_; }
  const TfhParams* c_handle() const { return reinterpret_cast<const TfhParams*>(this); }
  static const Params* from_c(const TfhParams* p) { return reinterpret_cast<const Params*>(p); }

 private:
  std::map<std::string, ParamValue> values_;
};

}  // namespace tfh::plugin
