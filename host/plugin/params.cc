// Params::resolve: a YAML `with:` map (or CLI key=value pairs) checked against a descriptor's
// parameter schema, defaults applied.
#include "host/plugin/params.h"

#include <cstddef>

#include "host/util/error.h"

namespace tfh::plugin {

namespace {

// How a YAML value reads in a message: scalars as written, collections in flow style.
std::string show(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "null";
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

bool scalar_to(const YAML::Node& n, bool& out) {
  return n.IsScalar() && YAML::convert<bool>::decode(n, out);
}
bool scalar_to(const YAML::Node& n, int64_t& out) {
  return n.IsScalar() && YAML::convert<int64_t>::decode(n, out);
}
bool scalar_to(const YAML::Node& n, double& out) {
  return n.IsScalar() && YAML::convert<double>::decode(n, out);
}
bool scalar_to(const YAML::Node& n, std::string& out) {
  if (!n.IsScalar()) return false;
  out = n.Scalar();
  return true;
}

template <typename T>
bool list_to(const YAML::Node& n, std::vector<T>& out) {
  if (!n.IsSequence()) return false;
  out.clear();
  for (const auto& item : n) {
    T v{};
    if (!scalar_to(item, v)) return false;
    out.push_back(std::move(v));
  }
  return true;
}

// Parses `n` as a value of `type` into `out`; false when it has another type.
bool parse(TfhParamType type, const YAML::Node& n, ParamValue& out) {
  out.type = type;
  switch (type) {
    case TFH_PARAM_BOOL:
      return scalar_to(n, out.b);
    case TFH_PARAM_INT:
      return scalar_to(n, out.i);
    case TFH_PARAM_FLOAT:
      return scalar_to(n, out.f);
    case TFH_PARAM_STRING:
      return scalar_to(n, out.s);
    case TFH_PARAM_INT_LIST:
      return list_to(n, out.ints);
    case TFH_PARAM_FLOAT_LIST:
      return list_to(n, out.floats);
    case TFH_PARAM_STRING_LIST:
      return list_to(n, out.strings);
    case TFH_PARAM_BOOL_OR_STRING_LIST:
      if (n.IsSequence()) {
        out.is_list_form = true;
        if (!list_to(n, out.strings)) return false;
        out.b = !out.strings.empty();
        return true;
      }
      out.is_list_form = false;
      return scalar_to(n, out.b);
    default:
      return false;
  }
}

std::string prefix(const std::string& where) { return where.empty() ? "" : where + ": "; }

std::string valid_keys(const std::vector<ParamSpec>& schema) {
  if (schema.empty()) return "this pass takes no parameters";
  std::string s = "valid: ";
  for (size_t i = 0; i < schema.size(); ++i) s += (i ? ", " : "") + schema[i].name;
  return s;
}

const ParamSpec* find_spec(const std::vector<ParamSpec>& schema, const std::string& name) {
  for (const auto& p : schema)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace

std::vector<ParamSpec> copy_param_specs(const TfhParamDesc* params, size_t n) {
  std::vector<ParamSpec> out;
  if (n == 0) return out;
  TFH_CHECK(params, "the descriptor declares ", n, " parameters but no parameter table");
  // Arrays of descriptors are strided by the first element's struct_size (sdk/ABI.md), so a
  // plugin built against a newer, larger TfhParamDesc still lays out a table this host can walk.
  // Every element must report that same size, and no less than ABI 1's; fields beyond an
  // element's struct_size are never read.
  constexpr size_t kAbi1Size = offsetof(TfhParamDesc, description) + sizeof(const char*);
  const size_t stride = params[0].struct_size;
  TFH_CHECK(stride >= kAbi1Size, "parameter #0 reports struct_size ", stride,
            ", smaller than ABI 1's TfhParamDesc (", kAbi1Size,
            "); the parameter table is strided by it");
  TFH_CHECK(stride % alignof(TfhParamDesc) == 0, "parameter #0 reports struct_size ", stride,
            ", not a multiple of ", alignof(TfhParamDesc),
            "; the parameter table is strided by it, so it must be an array element's size");
  const auto* base = reinterpret_cast<const unsigned char*>(params);
  for (size_t i = 0; i < n; ++i) {
    const auto* p = reinterpret_cast<const TfhParamDesc*>(base + i * stride);
    TFH_CHECK(p->struct_size == stride, "parameter #", i, " reports struct_size ", p->struct_size,
              ", but the parameter table is strided by parameter #0's (", stride,
              "): every element of the array must report the same size");
    TFH_CHECK(p->name && *p->name, "parameter #", i, " has no name");
    ParamSpec s;
    s.name = p->name;
    s.type = p->type;
    TFH_CHECK(std::string(param_type_name(s.type)) != "unknown", "parameter '", s.name,
              "' has an unknown type (", s.type, ")");
    if (p->default_value) s.default_yaml = p->default_value;
    if (p->description) s.description = p->description;
    out.push_back(std::move(s));
  }
  return out;
}

const char* param_type_name(TfhParamType t) {
  switch (t) {
    case TFH_PARAM_BOOL:
      return "bool";
    case TFH_PARAM_INT:
      return "int";
    case TFH_PARAM_FLOAT:
      return "float";
    case TFH_PARAM_STRING:
      return "string";
    case TFH_PARAM_INT_LIST:
      return "int list";
    case TFH_PARAM_FLOAT_LIST:
      return "float list";
    case TFH_PARAM_STRING_LIST:
      return "string list";
    case TFH_PARAM_BOOL_OR_STRING_LIST:
      return "bool or string list";
    default:
      return "unknown";
  }
}

Params Params::resolve(const std::vector<ParamSpec>& schema, const YAML::Node& with,
                       const std::string& owner, const std::string& where) {
  const std::string at = prefix(where);
  Params out;
  if (with.IsDefined() && !with.IsNull()) {
    TFH_CHECK(with.IsMap(), at, "the parameters of pass '", owner,
              "' must be a map of name: value, got '", show(with), "'");
    for (const auto& kv : with) {
      std::string key = kv.first.IsScalar() ? kv.first.Scalar() : show(kv.first);
      const ParamSpec* spec = find_spec(schema, key);
      TFH_CHECK(spec, at, "unknown parameter '", key, "' for pass '", owner, "' (",
                valid_keys(schema), ")");
      TFH_CHECK(!out.values_.count(key), at, "parameter '", key, "' of pass '", owner,
                "' is given twice");
      ParamValue v;
      TFH_CHECK(parse(spec->type, kv.second, v), at, "parameter '", key, "' of pass '", owner,
                "' expects ", param_type_name(spec->type), ", got '", show(kv.second), "'");
      v.explicitly_set = true;
      out.values_.emplace(key, std::move(v));
    }
  }
  for (const auto& spec : schema) {
    if (out.values_.count(spec.name)) continue;
    TFH_CHECK(spec.default_yaml, at, "pass '", owner, "' requires parameter '", spec.name, "' (",
              param_type_name(spec.type),
              spec.description.empty() ? std::string() : ": " + spec.description, ")");
    ParamValue v;
    YAML::Node def;
    bool ok = true;
    try {
      def = YAML::Load(*spec.default_yaml);
    } catch (const YAML::Exception&) {
      ok = false;
    }
    // An empty default is meaningful for strings ("") and lists ([] written as "").
    if (ok && def.IsNull() && spec.type == TFH_PARAM_STRING) def = YAML::Node(std::string());
    if (ok && def.IsNull() &&
        (spec.type == TFH_PARAM_INT_LIST || spec.type == TFH_PARAM_FLOAT_LIST ||
         spec.type == TFH_PARAM_STRING_LIST))
      def = YAML::Node(YAML::NodeType::Sequence);
    TFH_CHECK(ok && parse(spec.type, def, v), "pass '", owner, "': the default of parameter '",
              spec.name, "' ('", *spec.default_yaml, "') is not a valid ",
              param_type_name(spec.type), " (a bug in the plugin that declares it)");
    v.explicitly_set = false;
    out.values_.emplace(spec.name, std::move(v));
  }
  return out;
}

Params Params::resolve(const std::vector<ParamSpec>& schema,
                       const std::map<std::string, std::string>& with, const std::string& owner,
                       const std::string& where) {
  const std::string at = prefix(where);
  YAML::Node map(YAML::NodeType::Map);
  for (const auto& [key, text] : with) {
    const ParamSpec* spec = find_spec(schema, key);
    TFH_CHECK(spec, at, "unknown parameter '", key, "' for pass '", owner, "' (",
              valid_keys(schema), ")");
    if (spec->type == TFH_PARAM_STRING) {
      map[key] = text;  // taken verbatim: "a: b" is a string here, not a map
      continue;
    }
    YAML::Node v;
    try {
      v = YAML::Load(text);
    } catch (const YAML::Exception&) {
      TFH_THROW(at, "parameter '", key, "' of pass '", owner, "' expects ",
                param_type_name(spec->type), ", got '", text, "'");
    }
    map[key] = v;
  }
  return resolve(schema, map, owner, where);
}

const ParamValue* Params::find(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

}  // namespace tfh::plugin
