// Loads plugin libraries with Boost.DLL and checks them against the host's ABI.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tfhost/abi.h"

namespace tfh::plugin {

// One loaded .so. Every object made from a plugin (registry entries, kernels) holds a
// shared_ptr to it, so the library stays mapped as long as anything can call into it.
class PluginLibrary {
 public:
  ~PluginLibrary();  // calls info->shutdown (if set) before the library is unmapped
  const std::string& path() const { return path_; }
  const TfhPluginInfo* info() const { return info_; }
  const std::string& name() const { return name_; }

  // Loads `path`, calls tfh_plugin_init, checks abi_version/struct_size/name. Throws tfh::Error:
  //   "<path>: plugin 'x' was built for tfhost plugin ABI 3; this tfhost supports ABI 1..1 — ..."
  //   "<path>: not a tfhost plugin (no symbol tfh_plugin_init)"
  //   "<path>: plugin initialisation failed: <the plugin's status message>"
  // A plugin whose init succeeded but that fails a check still gets its shutdown call.
  static std::shared_ptr<PluginLibrary> load(const std::string& path);
  // A built-in plugin compiled into the host (core.*): no library, same descriptor table.
  static std::shared_ptr<PluginLibrary> builtin(const TfhPluginInfo* info);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, name_;
  const TfhPluginInfo* info_ = nullptr;
};

// True when `path` loads and exports tfh_plugin_init (the library is unloaded again; init is not
// called). When it cannot be loaded at all, returns false and sets *load_error to the reason.
bool exports_plugin_entry(const std::string& path, std::string* load_error = nullptr);

// Where plugins are looked for, in order: $TFHOST_PLUGIN_PATH (':'-separated), then the build's
// plugin directory when the running executable lives in the build tree, else the install's
// (<exe>/../lib/tfhost/plugins). Config `plugins: {search: [...]}` entries go before all of these.
// Directories are listed whether or not they exist.
std::vector<std::string> default_plugin_search_path();

// Finds lib<name>.so, then <name>.so, in each directory of the search path; a name containing '/'
// or ending in ".so" is taken as a path. "" if absent.
std::string find_plugin(const std::string& name, const std::vector<std::string>& search_path);

}  // namespace tfh::plugin
