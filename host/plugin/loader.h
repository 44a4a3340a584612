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

  // Loads `path`, calls tfh_plugin_init, checks abi_version/struct_size. Throws tfh::Error:
  //   "<path>: plugin 'x' was built for tfhost plugin ABI 3, this tfhost supports 1..1"
  //   "<path>: not a tfhost plugin (no symbol tfh_plugin_init)"
  static std::shared_ptr<PluginLibrary> load(const std::string& path);
  // A built-in plugin compiled into the host (core.*): no library, same descriptor table.
  static std::shared_ptr<PluginLibrary> builtin(const TfhPluginInfo* info);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, name_;
  const TfhPluginInfo* info_ = nullptr;
};

// Where plugins are looked for, in order: explicit config `plugins: {search: [...]}` entries,
// $TFHOST_PLUGIN_PATH (':'-separated), then the build's and the install's plugin directories.
std::vector<std::string> default_plugin_search_path();

// Finds lib<name>.so / lib tfh_<name>.so ... in the search path; "" if absent.
std::string find_plugin(const std::string& name, const std::vector<std::string>& search_path);

}  // namespace tfh::plugin
