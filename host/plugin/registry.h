// Every contribution of every loaded plugin (and of the built-in core plugin), by name.
// Unloading happens in reverse load order when the registry is destroyed.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/ir/graph.h"
#include "host/plugin/loader.h"
#include "host/plugin/params.h"

namespace tfh::plugin {

enum class PassKind { Fusion, Converter };

struct PassEntry {
  std::string name, description, plugin;
  PassKind kind = PassKind::Fusion;
  std::vector<ParamSpec> params;
  const TfhFusionDesc* fusion = nullptr;        // kind == Fusion
  const TfhConverterDesc* converter = nullptr;  // kind == Converter
  std::shared_ptr<PluginLibrary> lib;
};

struct InputGenEntry {
  std::string name, description, plugin;
  std::vector<ParamSpec> params;
  const TfhInputGenDesc* desc = nullptr;
  std::shared_ptr<PluginLibrary> lib;
};

struct KernelEntry {
  std::string name, plugin;
  const TfhKernelDesc* desc = nullptr;
  std::shared_ptr<PluginLibrary> lib;
};

struct OpEntry {
  std::string domain, op_type, plugin;
  const TfhOpDesc* desc = nullptr;
  std::shared_ptr<PluginLibrary> lib;
};

struct ModelTypeEntry {
  std::string name, description, plugin;
  std::vector<std::string> passes;
  std::string input_generator;
};

// A file found while searching for plugins that was not loaded, and why (one line, without the
// path).
struct RefusedPlugin {
  std::string path, reason;
};

class Registry {
 public:
  Registry();   // registers the built-in core plugin
  ~Registry();  // drops entries, then unloads libraries in reverse load order
  Registry(const Registry&) = delete;  // one owner decides the unload order
  Registry& operator=(const Registry&) = delete;

  // Adds every contribution; a name already registered is an error naming both plugins.
  void add(std::shared_ptr<PluginLibrary> lib);
  // Loads and adds each plugin found in `search_path` (lib*.so files), each real path once,
  // folders in order and files by name. A file that cannot be loaded, is not a tfhost plugin or
  // fails a check (a newer ABI, a failed init, a bad descriptor, a name clash) is refused: one
  // warning, recorded in refused(), and the search goes on. A plugin whose name is already
  // loaded is shadowed (warning, first one wins).
  void load_all(const std::vector<std::string>& search_path);
  // Loads one plugin by name or path (see find_plugin); a library already loaded is not reloaded.
  // Asked for by name, a plugin that fails is an error, never a warning.
  void load(const std::string& name_or_path, const std::vector<std::string>& search_path);

  const std::vector<std::shared_ptr<PluginLibrary>>& plugins() const { return libs_; }
  const PluginLibrary* find_plugin_library(const std::string& plugin_name) const;
  const PassEntry* find_pass(const std::string& name) const;
  const InputGenEntry* find_input_generator(const std::string& name) const;
  const ModelTypeEntry* find_model_type(const std::string& name) const;
  const std::map<std::string, PassEntry>& passes() const { return passes_; }
  const std::map<std::string, InputGenEntry>& input_generators() const { return inputs_; }
  const std::map<std::string, ModelTypeEntry>& model_types() const { return model_types_; }
  const std::vector<KernelEntry>& kernels() const { return kernels_; }
  const std::vector<OpEntry>& ops() const { return ops_; }
  // Shape inference for the ops plugins introduce (TfhOpDesc), for ir::Model::infer_shapes.
  const ir::ShapeHooks& shape_hooks() const { return shape_hooks_; }
  // Files load_all found and refused, in the order found.
  const std::vector<RefusedPlugin>& refused() const { return refused_; }
  // Warnings raised while loading (shadowed and refused plugins), also sent to the log.
  const std::vector<std::string>& warnings() const { return warnings_; }

  // Runs one pass on `model`. A status returned (or an exception escaping a built-in) becomes a
  // tfh::Error "pass 'x' (plugin 'y') failed: <message>". Returns the pass's n_changed.
  size_t run_pass(const PassEntry& pass, ir::Model& model, const Params& params) const;
  // The registry whose run_pass is running on this thread (null outside a pass): how a built-in
  // pass that runs the model (core.float16's auto_block) finds input generators and kernels.
  static const Registry* active();

 private:
  std::vector<std::shared_ptr<PluginLibrary>> libs_;
  std::map<std::string, PassEntry> passes_;
  std::map<std::string, InputGenEntry> inputs_;
  std::map<std::string, ModelTypeEntry> model_types_;
  std::vector<KernelEntry> kernels_;
  std::vector<OpEntry> ops_;
  ir::ShapeHooks shape_hooks_;
  std::vector<RefusedPlugin> refused_;
  std::vector<std::string> warnings_;

  void load_candidate(const std::string& path);
  void refuse(const std::string& path, const std::string& reason);
  void register_shape_hook(const OpEntry& op);
  void warn(const std::string& msg);
};

}  // namespace tfh::plugin
