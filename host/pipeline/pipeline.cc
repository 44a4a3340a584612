#include "host/pipeline/pipeline.h"

#include <chrono>
#include <map>
#include <filesystem>
#include <sstream>

#include "host/pipeline/suggest.h"
#include "host/util/error.h"
#include "kernels/common/device_info.h"

namespace tfh::pipeline {
namespace {

namespace fs = std::filesystem;

template <typename Map>
std::vector<std::string> keys_of(const Map& m) {
  std::vector<std::string> out;
  for (const auto& kv : m) out.push_back(kv.first);
  return out;
}

// `with` plus each shared parameter the pass declares and `with` leaves unset. A copy: the
// config's tree is not changed, so the dry-run shows what the user wrote.
YAML::Node with_shared(const plugin::PassEntry& pass, const YAML::Node& with,
                       const SharedParams& shared) {
  YAML::Node out = with && with.IsMap() ? YAML::Clone(with) : YAML::Node(YAML::NodeType::Map);
  for (const auto& spec : pass.params) {
    auto it = shared.find(spec.name);
    if (it != shared.end() && !out[spec.name]) out[spec.name] = it->second;
  }
  return out;
}

// The input generator verify would use: its own `inputs:`, else the model type's default.
const plugin::InputGenEntry* verify_generator(const Config& c, const plugin::Registry& r) {
  const VerifySection& v = *c.verify;
  std::string name = v.inputs;
  Where where = v.inputs_where;
  if (name.empty()) {
    const plugin::ModelTypeEntry* type =
        c.model.family.empty() ? nullptr : r.find_model_type(c.model.family);
    TFH_CHECK(type && !type->input_generator.empty(), v.where,
              ": 'verify' needs 'inputs: <generator>' (or a model.family whose plugin has a "
              "default input generator)");
    name = type->input_generator;
  }
  const plugin::InputGenEntry* gen = r.find_input_generator(name);
  if (!gen) {
    const auto names = keys_of(r.input_generators());
    TFH_THROW(where, ": unknown input generator '", name, "' (available: ", join_names(names), ")",
              did_you_mean(name, names));
  }
  return gen;
}

// The resolved verify/benchmark sections (generator and parameters checked in full).
void plan_runtime_sections(const Config& c, const plugin::Registry& r, Plan& plan) {
  if (c.verify) {
    VerifyPlan v;
    v.generator = verify_generator(c, r);
    v.params = plugin::Params::resolve(v.generator->params, c.verify->with, v.generator->name,
                                       c.verify->with_where);
    v.samples = c.verify->samples;
    v.seed = c.verify->seed;
    v.tolerance_fp32 = c.verify->tolerance_fp32;
    v.tolerance_fp16 = c.verify->tolerance_fp16;
    plan.verify = std::move(v);
  }
  if (c.benchmark) {
    plan.benchmark = *c.benchmark;
    if (plan.verify) {
      plan.benchmark_inputs = plan.verify->generator;
    } else {
      const plugin::ModelTypeEntry* type =
          c.model.family.empty() ? nullptr : r.find_model_type(c.model.family);
      std::string name =
          type && !type->input_generator.empty() ? type->input_generator : "core.inputs";
      plan.benchmark_inputs = r.find_input_generator(name);
      TFH_CHECK(plan.benchmark_inputs, c.benchmark->where, ": input generator '", name,
                "' is not provided by any loaded plugin");
    }
  }
}

bool exists_as_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

}  // namespace

void check_device(Device device, const Where& where, const std::string& instead) {
  if (device != Device::Cuda) return;
  TFH_CHECK(kernels::built_with_cuda(), where,
            " is not available: this tfhost was built without CUDA; ", instead);
  TFH_CHECK(kernels::cuda_device_count() > 0, where,
            " is not available: no CUDA GPU is present (", kernels::describe_devices(), "); ",
            instead);
}

void load_plugins(plugin::Registry& registry, const PluginsSection& plugins,
                  const std::vector<std::string>& front) {
  std::vector<std::string> search = front;
  for (const auto& e : plugins.search) search.push_back(e.value);
  for (const auto& d : plugin::default_plugin_search_path()) search.push_back(d);
  if (plugins.load.empty()) {
    registry.load_all(search);
    return;
  }
  for (const auto& e : plugins.load) {
    try {
      registry.load(e.value, search);
    } catch (const Error& err) {
      TFH_THROW(e.where, ": ", err.what());
    }
  }
}

const plugin::ModelTypeEntry& find_model_type(const plugin::Registry& registry,
                                              const std::string& name, const Where& where) {
  if (const auto* t = registry.find_model_type(name)) return *t;
  const auto names = keys_of(registry.model_types());
  TFH_THROW(where, ": unknown model type '", name, "' (available: ", join_names(names), ")",
            did_you_mean(name, names));
}

const plugin::PassEntry& find_pass(const plugin::Registry& registry, const std::string& name,
                                   const Where& where) {
  if (const auto* p = registry.find_pass(name)) return *p;
  const auto names = keys_of(registry.passes());
  TFH_THROW(where, ": unknown pass '", name, "' (available: ", join_names(names), ")",
            did_you_mean(name, names));
}

PlannedPass plan_pass(const plugin::Registry& registry, const std::string& name,
                      const YAML::Node& with, const SharedParams& shared, const std::string& origin,
                      const Where& where, const Where& with_where) {
  const plugin::PassEntry& pass = find_pass(registry, name, where);
  PlannedPass p;
  p.entry = &pass;
  p.params = plugin::Params::resolve(pass.params, with_shared(pass, with, shared), pass.name,
                                     with_where.empty() ? where : with_where);
  p.origin = origin;
  p.where = where;
  return p;
}

std::vector<PlannedPass> plan_preset(const plugin::Registry& registry, const std::string& type,
                                     const SharedParams& shared, const Where& where) {
  const plugin::ModelTypeEntry& t = find_model_type(registry, type, where);
  std::vector<PlannedPass> out;
  for (const auto& name : t.passes) {
    // A preset naming a pass nobody registered is the plugin's bug; say whose.
    TFH_CHECK(registry.find_pass(name), where, ": model type '", type, "' (plugin '", t.plugin,
              "') lists pass '", name, "', which no loaded plugin provides");
    out.push_back(plan_pass(registry, name, YAML::Node(YAML::NodeType::Map), shared,
                            "preset " + type, where));
  }
  return out;
}

std::vector<PlannedPass> plan_opt_level(const plugin::Registry& registry, int level,
                                        const std::string& model_type, const SharedParams& shared,
                                        const Where& where) {
  TFH_CHECK(level == 0 || level == 1 || level == 2 || level == 99, where,
            ": opt_level must be 0, 1, 2 or 99, not ", level);
  static const char* const kLevel1[] = {
      "core.repair_duplicate_definitions", "core.remove_identity", "core.constant_folding",
      "core.eliminate_dead_nodes", "core.remove_unused_initializers", "core.topological_sort"};
  static const char* const kLevel2[] = {
      "core.shape_inference", "core.layer_norm", "core.skip_layer_norm", "core.gelu",
      "core.fast_gelu", "core.bias_gelu", "core.eliminate_dead_nodes",
      "core.remove_unused_initializers", "core.topological_sort"};
  static const char* const kAfterPreset[] = {"core.constant_folding", "core.eliminate_dead_nodes",
                                             "core.remove_unused_initializers"};
  std::vector<PlannedPass> out;
  auto add = [&](const auto& names, const std::string& origin) {
    for (const char* name : names)
      out.push_back(plan_pass(registry, name, YAML::Node(YAML::NodeType::Map), shared, origin, where));
  };
  const bool family = !model_type.empty() && model_type != "core";
  if (level == 0) return out;
  if (level == 99 && family) {
    for (auto& p : plan_preset(registry, model_type, shared, where)) {
      p.origin = "level 99 (preset " + model_type + ")";
      out.push_back(std::move(p));
    }
    // Folding after the family's passes (their patterns are written against the export as
    // it is), then the cleanup that follows it.
    add(kAfterPreset, "level 99 (constant folding)");
    return out;
  }
  add(kLevel1, "level 1 (cleanup, constant folding)");
  if (level >= 2) add(kLevel2, "level 2 (family-independent fusions)");
  return out;
}

std::string describe_levels(const std::vector<PlannedPass>& passes,
                            const std::vector<PassResult>& results) {
  std::vector<std::pair<std::string, std::map<std::string, size_t>>> levels;
  for (size_t i = 0; i < passes.size() && i < results.size(); ++i) {
    const std::string& origin = passes[i].origin;
    if (origin.rfind("level ", 0) != 0) continue;
    if (levels.empty() || levels.back().first != origin) levels.push_back({origin, {}});
    // Shape inference only records types: not an edit worth reporting.
    if (results[i].changed && passes[i].entry->name != "core.shape_inference")
      levels.back().second[passes[i].entry->name] += results[i].changed;
  }
  std::string text;
  for (const auto& [origin, changed] : levels) {
    text += "opt_" + origin + ": ";
    if (changed.empty()) text += "no change";
    bool first = true;
    for (const auto& [name, n] : changed) {
      text += (first ? "" : ", ") + name + " " + std::to_string(n);
      first = false;
    }
    text += "\n";
  }
  return text;
}

void check_output_path(const std::string& input, const std::string& output, const Where& where) {
  std::error_code ec;
  const std::string at = where.empty() ? "" : where + ": ";
  TFH_CHECK(!fs::is_directory(output, ec), at, "output '", output,
            "' is a directory; give a file name");
  bool same = fs::weakly_canonical(input, ec) == fs::weakly_canonical(output, ec);
  if (!same && fs::exists(input, ec) && fs::exists(output, ec))
    same = fs::equivalent(input, output, ec);  // a hard link to the input
  TFH_CHECK(!same, at, "output '", output, "' is the input model; tfhost never overwrites its ",
            "input, choose another output path");
}

Plan make_plan(const Config& c, const plugin::Registry& registry) {
  Plan plan;
  plan.input = c.model.path;
  plan.output = c.output;
  plan.device = c.device;
  check_device(c.device, c.device_where + ": 'device: cuda'", "use 'device: cpu' or 'auto'");
  plan.save.use_external_data = c.save.use_external_data_format;
  if (!c.model.family.empty()) find_model_type(registry, c.model.family, c.model.family_where);

  SharedParams shared;
  if (c.model.num_heads > 0) shared["num_heads"] = YAML::Node(c.model.num_heads);
  if (c.model.hidden_size > 0) shared["hidden_size"] = YAML::Node(c.model.hidden_size);
  if (!c.model.family.empty()) shared["model_type"] = YAML::Node(c.model.family);
  for (const Step& s : c.steps) {
    if (s.kind == Step::Kind::OptLevel) {
      for (auto& p : plan_opt_level(registry, std::stoi(s.name), c.model.family, shared, s.where))
        plan.passes.push_back(std::move(p));
    } else if (s.kind == Step::Kind::Preset) {
      for (auto& p : plan_preset(registry, s.name, shared, s.where))
        plan.passes.push_back(std::move(p));
    } else {
      plan.passes.push_back(plan_pass(registry, s.name, s.with, shared, "", s.where, s.with_where));
    }
  }
  plan_runtime_sections(c, registry, plan);
  TFH_CHECK(exists_as_file(plan.input), c.model.path_where, ": model file '", plan.input,
            "' does not exist");
  check_output_path(plan.input, plan.output, c.output_where);
  return plan;
}

std::vector<PassResult> run_passes(const std::vector<PlannedPass>& passes,
                                   const plugin::Registry& registry, ir::Model& model,
                                   const Progress& progress) {
  std::vector<PassResult> results;
  for (size_t i = 0; i < passes.size(); ++i) {
    const PlannedPass& p = passes[i];
    PassResult r;
    r.name = p.entry->name;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      r.changed = registry.run_pass(*p.entry, model, p.params);
    } catch (const Error& e) {  // say which step of which config (or which input) it was
      if (p.where.empty()) throw;
      TFH_THROW(p.where, ": ", e.what());
    }
    if (r.changed > 0) {
      try {
        model.graph().validate();
      } catch (const Error& e) {
        TFH_THROW("pass '", p.entry->name, "' (plugin '", p.entry->plugin,
                  "') left an invalid graph: ", e.what());
      }
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress) progress(i, passes.size(), r);
    results.push_back(r);
  }
  return results;
}

namespace {

template <typename T>
std::string yaml_list(const std::vector<T>& xs) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < xs.size(); ++i) os << (i ? ", " : "") << xs[i];
  os << "]";
  return os.str();
}

}  // namespace

std::string format_param(const plugin::ParamValue& v) {
  std::ostringstream os;
  if (v.type == TFH_PARAM_INT) os << v.i;
  if (v.type == TFH_PARAM_FLOAT) os << v.f;
  if (v.type == TFH_PARAM_STRING) os << v.s;
  if (v.type == TFH_PARAM_INT_LIST) os << yaml_list(v.ints);
  if (v.type == TFH_PARAM_FLOAT_LIST) os << yaml_list(v.floats);
  if (v.type == TFH_PARAM_STRING_LIST ||
      (v.type == TFH_PARAM_BOOL_OR_STRING_LIST && v.is_list_form))
    os << yaml_list(v.strings);
  if (v.type == TFH_PARAM_BOOL || (v.type == TFH_PARAM_BOOL_OR_STRING_LIST && !v.is_list_form))
    os << (v.b ? "true" : "false");
  return os.str();
}

std::string format_params(const plugin::Params& params) {
  std::string out;
  for (const auto& kv : params.values())
    out += (out.empty() ? "" : ", ") + kv.first + ": " + format_param(kv.second);
  return "{" + out + "}";
}

void print_plan(const Config& c, const Plan& plan, const plugin::Registry& registry,
                std::ostream& os) {
  os << "config:   " << c.file << "\n";
  os << "model:    " << plan.input;
  if (!c.model.family.empty()) os << " (family " << c.model.family << ")";
  os << "\n";
  os << "output:   " << plan.output
     << (plan.save.use_external_data ? " (weights in external data)" : "") << "\n";
  os << "device:   " << device_name(plan.device) << " (available: " << kernels::describe_devices()
     << ")\n";
  os << "plugins:  ";
  const char* sep = "";
  for (const auto& lib : registry.plugins()) {
    os << sep << lib->name() << " " << (lib->info() ? lib->info()->version : "?")
       << (lib->path().empty() || lib->path()[0] == '<' ? " (built in)" : " (" + lib->path() + ")");
    sep = ", ";
  }
  os << "\n";
  os << "pipeline: " << plan.passes.size() << (plan.passes.size() == 1 ? " pass" : " passes")
     << "\n";
  for (size_t i = 0; i < plan.passes.size(); ++i) {
    const PlannedPass& p = plan.passes[i];
    os << "  " << i + 1 << ". " << p.entry->name << " " << format_params(p.params);
    if (!p.origin.empty()) os << "  (" << p.origin << ")";
    os << "\n";
  }
}

}  // namespace tfh::pipeline
