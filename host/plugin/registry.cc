// Registry: copies what each plugin's descriptor table contributes into host-owned entries
// (names and schemas copied, descriptor pointers kept next to the library that owns them).
#include "host/plugin/registry.h"

#include <algorithm>
#include <cstddef>
#include <set>

#include <boost/filesystem.hpp>

#include "host/passes/core_plugin.h"
#include "host/plugin/host_api.h"
#include "host/util/error.h"

namespace tfh::plugin {
namespace fs = boost::filesystem;

namespace {

std::string str(const char* s) { return s ? s : ""; }

std::string real_path(const std::string& path) {
  boost::system::error_code ec;
  fs::path p = fs::canonical(path, ec);
  return ec ? path : p.string();
}

// The size of each descriptor as ABI 1 laid it out (its last ABI-1 field's end): a plugin built
// for ABI 1 stays loadable when later ABIs append fields. Newer fields: TFH_HAS_FIELD.
#define TFH_END_OF(T, field) (offsetof(T, field) + sizeof(((T*)nullptr)->field))
constexpr size_t abi1_size(const TfhFusionDesc*) { return TFH_END_OF(TfhFusionDesc, apply); }
constexpr size_t abi1_size(const TfhConverterDesc*) { return TFH_END_OF(TfhConverterDesc, apply); }
constexpr size_t abi1_size(const TfhInputGenDesc*) {
  return TFH_END_OF(TfhInputGenDesc, tolerance_fp16);
}
constexpr size_t abi1_size(const TfhKernelDesc*) { return TFH_END_OF(TfhKernelDesc, destroy); }
constexpr size_t abi1_size(const TfhOpDesc*) { return TFH_END_OF(TfhOpDesc, infer_shapes); }
constexpr size_t abi1_size(const TfhModelTypeDesc*) {
  return TFH_END_OF(TfhModelTypeDesc, input_generator);
}
#undef TFH_END_OF

// The array of descriptors a plugin points at, each checked to be complete for ABI 1 and to be
// non-NULL.
template <typename Desc>
std::vector<const Desc*> descriptors(const PluginLibrary& lib, const char* what, size_t n,
                                     const Desc* const* arr) {
  TFH_CHECK(n == 0 || arr != nullptr, lib.path(), ": plugin '", lib.name(), "' declares ", n, " ",
            what, "s but no array");
  std::vector<const Desc*> out;
  for (size_t i = 0; i < n; ++i) {
    const Desc* d = arr[i];
    TFH_CHECK(d != nullptr, lib.path(), ": plugin '", lib.name(), "': ", what, " #", i, " is NULL");
    TFH_CHECK(d->struct_size >= abi1_size(d), lib.path(), ": plugin '", lib.name(), "': ", what,
              " #", i, " reports struct_size ", d->struct_size, ", smaller than ABI 1's ",
              abi1_size(d));
    out.push_back(d);
  }
  return out;
}

std::string desc_name(const PluginLibrary& lib, const char* what, size_t i, const char* name) {
  TFH_CHECK(name && *name, lib.path(), ": plugin '", lib.name(), "': ", what, " #", i,
            " has no name");
  return name;
}

std::vector<ParamSpec> params_of(const PluginLibrary& lib, const std::string& owner, size_t n,
                                 const TfhParamDesc* params) {
  try {
    return copy_param_specs(params, n);
  } catch (const Error& e) {  // the schema's own message lacks the file and the pass
    TFH_THROW(lib.path(), ": plugin '", lib.name(), "': '", owner, "': ", e.what());
  }
}

// Everything one plugin contributes, validated but not yet visible in the registry.
struct Staged {
  std::vector<PassEntry> passes;
  std::vector<InputGenEntry> inputs;
  std::vector<KernelEntry> kernels;
  std::vector<OpEntry> ops;
  std::vector<ModelTypeEntry> model_types;
};

// Fusions and converters are both passes: the same fields, a different apply.
template <typename Desc>
PassEntry pass_entry(const std::shared_ptr<PluginLibrary>& lib, const char* what, size_t i,
                     const Desc* d) {
  PassEntry e;
  e.name = desc_name(*lib, what, i, d->name);
  TFH_CHECK(d->apply, lib->path(), ": plugin '", lib->name(), "': ", what, " '", e.name,
            "' has no apply");
  e.description = str(d->description);
  e.plugin = lib->name();
  e.params = params_of(*lib, e.name, d->n_params, d->params);
  e.lib = lib;
  return e;
}

InputGenEntry input_entry(const std::shared_ptr<PluginLibrary>& lib, size_t i,
                          const TfhInputGenDesc* d) {
  InputGenEntry e;
  e.name = desc_name(*lib, "input generator", i, d->name);
  TFH_CHECK(d->generate, lib->path(), ": plugin '", lib->name(), "': input generator '", e.name,
            "' has no generate");
  e.description = str(d->description);
  e.plugin = lib->name();
  e.params = params_of(*lib, e.name, d->n_params, d->params);
  e.desc = d;
  e.lib = lib;
  return e;
}

KernelEntry kernel_entry(const std::shared_ptr<PluginLibrary>& lib, const TfhKernelDesc* d) {
  std::string name = d->name && *d->name ? d->name : str(d->domain) + "." + str(d->op_type);
  TFH_CHECK(d->op_type && *d->op_type && d->compute, lib->path(), ": plugin '", lib->name(),
            "': kernel '", name, "' needs an op_type and a compute function");
  return KernelEntry{name, lib->name(), d, lib};
}

OpEntry op_entry(const std::shared_ptr<PluginLibrary>& lib, const TfhOpDesc* d) {
  TFH_CHECK(d->op_type && *d->op_type, lib->path(), ": plugin '", lib->name(),
            "': an op descriptor has no op_type");
  return OpEntry{str(d->domain), d->op_type, lib->name(), d, lib};
}

ModelTypeEntry model_type_entry(const PluginLibrary& lib, size_t i, const TfhModelTypeDesc* d) {
  ModelTypeEntry e;
  e.name = desc_name(lib, "model type", i, d->name);
  TFH_CHECK(d->n_passes == 0 || d->passes, lib.path(), ": plugin '", lib.name(), "': model type '",
            e.name, "' declares passes but no array");
  e.description = str(d->description);
  e.plugin = lib.name();
  for (size_t k = 0; k < d->n_passes; ++k) e.passes.push_back(str(d->passes[k]));
  e.input_generator = str(d->input_generator);
  return e;
}

Staged stage(const std::shared_ptr<PluginLibrary>& lib) {
  // PluginLibrary checked that every ABI-1 field of TfhPluginInfo lies within struct_size.
  const TfhPluginInfo* info = lib->info();
  Staged s;
  auto fusions = descriptors(*lib, "fusion", info->n_fusions, info->fusions);
  for (size_t i = 0; i < fusions.size(); ++i) {
    s.passes.push_back(pass_entry(lib, "fusion", i, fusions[i]));
    s.passes.back().kind = PassKind::Fusion;
    s.passes.back().fusion = fusions[i];
  }
  auto converters = descriptors(*lib, "converter", info->n_converters, info->converters);
  for (size_t i = 0; i < converters.size(); ++i) {
    s.passes.push_back(pass_entry(lib, "converter", i, converters[i]));
    s.passes.back().kind = PassKind::Converter;
    s.passes.back().converter = converters[i];
  }
  auto inputs = descriptors(*lib, "input generator", info->n_input_generators,
                            info->input_generators);
  for (size_t i = 0; i < inputs.size(); ++i) s.inputs.push_back(input_entry(lib, i, inputs[i]));
  for (const auto* d : descriptors(*lib, "kernel", info->n_kernels, info->kernels))
    s.kernels.push_back(kernel_entry(lib, d));
  for (const auto* d : descriptors(*lib, "op", info->n_ops, info->ops))
    s.ops.push_back(op_entry(lib, d));
  auto types = descriptors(*lib, "model type", info->n_model_types, info->model_types);
  for (size_t i = 0; i < types.size(); ++i)
    s.model_types.push_back(model_type_entry(*lib, i, types[i]));
  return s;
}

// A name must be new to the registry and appear once in the plugin being added.
template <typename Entry>
void check_new_names(const std::map<std::string, Entry>& existing, const std::vector<Entry>& added,
                     const char* what, const PluginLibrary& lib) {
  std::set<std::string> seen;
  for (const auto& e : added) {
    auto it = existing.find(e.name);
    if (it != existing.end())
      TFH_THROW(lib.path(), ": ", what, " '", e.name, "' of plugin '", lib.name(),
                "' is already registered by plugin '", it->second.plugin, "'");
    TFH_CHECK(seen.insert(e.name).second, lib.path(), ": plugin '", lib.name(), "' declares ",
              what, " '", e.name, "' twice");
  }
}

template <typename Entry>
void commit(std::map<std::string, Entry>& into, std::vector<Entry>& added) {
  for (auto& e : added) {
    std::string key = e.name;
    into.emplace(std::move(key), std::move(e));
  }
}

}  // namespace

Registry::Registry() { add(PluginLibrary::builtin(passes::core_plugin_info())); }

Registry::~Registry() {
  // Entries (and shape hooks) may hold the last reference to a library; drop them first, then
  // the libraries, newest first, so a plugin never outlives one loaded before it.
  passes_.clear();
  inputs_.clear();
  model_types_.clear();
  kernels_.clear();
  ops_.clear();
  shape_hooks_.clear();
  while (!libs_.empty()) libs_.pop_back();
}

const PluginLibrary* Registry::find_plugin_library(const std::string& name) const {
  for (const auto& l : libs_)
    if (l->name() == name) return l.get();
  return nullptr;
}

void Registry::add(std::shared_ptr<PluginLibrary> lib) {
  TFH_CHECK(lib != nullptr, "Registry::add: no library");
  if (const PluginLibrary* other = find_plugin_library(lib->name()))
    TFH_THROW(lib->path(), ": plugin '", lib->name(), "' is already loaded from ", other->path());
  // Validate everything first so that a rejected plugin leaves the registry unchanged.
  Staged s = stage(lib);
  check_new_names(passes_, s.passes, "pass", *lib);
  check_new_names(inputs_, s.inputs, "input generator", *lib);
  check_new_names(model_types_, s.model_types, "model type", *lib);

  commit(passes_, s.passes);
  commit(inputs_, s.inputs);
  commit(model_types_, s.model_types);
  kernels_.insert(kernels_.end(), s.kernels.begin(), s.kernels.end());
  for (auto& op : s.ops) register_shape_hook(op);
  ops_.insert(ops_.end(), s.ops.begin(), s.ops.end());
  libs_.push_back(std::move(lib));
}

void Registry::register_shape_hook(const OpEntry& op) {
  // Several families introduce the same contrib op (bert and gpt2 both make Attention): the
  // first plugin that describes it supplies its shape inference.
  // The hook points into the plugin; the destructor clears hooks before unloading libraries.
  if (!op.desc->infer_shapes || shape_hooks_.find(op.domain, op.op_type)) return;
  shape_hooks_.add(op.domain, op.op_type, make_shape_hook(op.desc));
}

void Registry::warn(const std::string& msg) {
  warnings_.push_back(msg);
  host_api()->log(TFH_LOG_WARNING, "loader", msg.c_str());
}

void Registry::refuse(const std::string& path, const std::string& reason) {
  refused_.push_back(RefusedPlugin{path, reason});
  warn(path + ": skipped: " + reason);
}

void Registry::load_all(const std::vector<std::string>& search_path) {
  std::set<std::string> seen;  // real paths: a folder listed twice or a symlink loads once
  for (const auto& l : libs_) seen.insert(real_path(l->path()));
  for (const auto& r : refused_) seen.insert(real_path(r.path));  // warned about once
  for (const auto& dir : search_path) {
    boost::system::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string f = it->path().filename().string();
      boost::system::error_code file_ec;  // a dangling symlink must not end the listing
      if (f.size() > 6 && f.rfind("lib", 0) == 0 && f.compare(f.size() - 3, 3, ".so") == 0 &&
          fs::is_regular_file(it->path(), file_ec))
        files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());  // a stable order: the same winner on every run
    for (const auto& p : files) {
      if (!seen.insert(real_path(p.string())).second) continue;
      load_candidate(p.string());
    }
  }
}

// A file found by searching, not named by the user: a stale build, a plugin for a newer ABI or a
// library that is no plugin at all must not take every command down with it, so it is refused
// with one warning and listed by `tfhost plugins`. The same file named in `plugins: {load: }`
// goes through load() and is an error.
void Registry::load_candidate(const std::string& path) {
  // The loader's and add()'s messages start with the path, which the warning already names.
  auto reason_of = [&path](const Error& e) {
    const std::string msg = e.what();
    return msg.rfind(path + ": ", 0) == 0 ? msg.substr(path.size() + 2) : msg;
  };
  std::string why;
  if (!exports_plugin_entry(path, &why)) {
    refuse(path, why.empty() ? std::string("not a tfhost plugin (no symbol ") +
                                   TFH_PLUGIN_INIT_SYMBOL + ")"
                             : "cannot be loaded: " + why);
    return;
  }
  std::shared_ptr<PluginLibrary> lib;
  try {
    lib = PluginLibrary::load(path);
  } catch (const Error& e) {
    refuse(path, reason_of(e));
    return;
  }
  if (const PluginLibrary* first = find_plugin_library(lib->name())) {
    warn(path + ": plugin '" + lib->name() + "' is shadowed by " + first->path());
    return;  // `lib` shuts down and unloads here
  }
  try {
    add(std::move(lib));  // validates everything before it changes the registry
  } catch (const Error& e) {
    refuse(path, reason_of(e));
  }
}

void Registry::load(const std::string& name_or_path, const std::vector<std::string>& search_path) {
  const std::string path = find_plugin(name_or_path, search_path);
  if (path.empty()) {
    std::string dirs;
    for (const auto& d : search_path) dirs += (dirs.empty() ? "" : ":") + d;
    TFH_THROW("plugin '", name_or_path, "' not found (searched: ", dirs.empty() ? "nothing" : dirs,
              ")");
  }
  const std::string real = real_path(path);
  for (const auto& l : libs_)
    if (real_path(l->path()) == real) return;  // already loaded
  add(PluginLibrary::load(path));
}

const PassEntry* Registry::find_pass(const std::string& name) const {
  auto it = passes_.find(name);
  return it == passes_.end() ? nullptr : &it->second;
}

const InputGenEntry* Registry::find_input_generator(const std::string& name) const {
  auto it = inputs_.find(name);
  return it == inputs_.end() ? nullptr : &it->second;
}

const ModelTypeEntry* Registry::find_model_type(const std::string& name) const {
  auto it = model_types_.find(name);
  return it == model_types_.end() ? nullptr : &it->second;
}

namespace {
thread_local const Registry* t_active_registry = nullptr;
struct ScopedActive {
  const Registry* previous;
  explicit ScopedActive(const Registry* r) : previous(t_active_registry) { t_active_registry = r; }
  ~ScopedActive() { t_active_registry = previous; }
};
}  // namespace

const Registry* Registry::active() { return t_active_registry; }

size_t Registry::run_pass(const PassEntry& pass, ir::Model& model, const Params& params) const {
  size_t n_changed = 0;
  std::string failure;
  ScopedShapeHooks hooks(&shape_hooks_);
  ScopedActive active(this);
  try {
    TfhStatus* st = pass.kind == PassKind::Fusion
                        ? pass.fusion->apply(to_c(&model), params.c_handle(), &n_changed)
                        : pass.converter->apply(to_c(&model), params.c_handle(), &n_changed);
    if (st) {
      failure = take_status_message(st);
      if (failure.empty()) failure = "error status without a message";
    }
  } catch (const std::exception& e) {  // only host code (built-ins) should throw here
    failure = e.what();
  } catch (...) {
    failure = "an exception escaped the pass";
  }
  // The pass may have edited the graph outside the host table (built-ins do) or partly before
  // failing: no cached view or node index of this model outlives the call.
  invalidate_views(&model);
  if (!failure.empty())
    TFH_THROW("pass '", pass.name, "' (plugin '", pass.plugin, "') failed: ", failure);
  return n_changed;
}

}  // namespace tfh::plugin
