// PluginLibrary: one plugin .so opened with Boost.DLL, initialised, and checked against this host's
// ABI before anything else may touch its descriptors.
#include "host/plugin/loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <exception>
#include <sstream>
#include <type_traits>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <boost/filesystem.hpp>

#include "host/plugin/host_api.h"
#include "host/util/error.h"

namespace tfh::plugin {
namespace fs = boost::filesystem;
namespace dll = boost::dll;

struct PluginLibrary::Impl {
  dll::shared_library lib;
};

namespace {

// RTLD_NOW: a plugin with an unresolved symbol fails here, with dlerror's text, rather than at
// its first call. RTLD_LOCAL: two plugins never see each other's symbols.
constexpr auto kLoadMode = dll::load_mode::rtld_now | dll::load_mode::rtld_local;

// Boost.DLL's error code only says "bad file descriptor"; dlerror still holds the real reason
// (missing file, missing dependency, wrong architecture), prefixed with the path we already print.
std::string last_load_error(const std::string& path, const boost::system::error_code& ec) {
  const char* why = dlerror();
  std::string msg = why ? why : ec.message();
  if (msg.rfind(path + ": ", 0) == 0) msg.erase(0, path.size() + 2);
  return msg;
}

std::string abi_range() {
  std::ostringstream os;
  os << TFH_ABI_MIN_SUPPORTED << ".." << TFH_ABI_VERSION;
  return os.str();
}

void check_info(const std::string& path, const TfhPluginInfo* info) {
  TFH_CHECK(info != nullptr, path, ": tfh_plugin_init returned no plugin info");
  const bool has_name = TFH_HAS_FIELD(info, TfhPluginInfo, name) && info->name && *info->name;
  const std::string who = has_name ? std::string(" '") + info->name + "'" : std::string();
  if (info->abi_version > TFH_ABI_VERSION)
    TFH_THROW(path, ": plugin", who, " was built for tfhost plugin ABI ", info->abi_version,
              "; this tfhost supports ABI ", abi_range(),
              " — rebuild it against this SDK or upgrade tfhost");
  if (info->abi_version < TFH_ABI_MIN_SUPPORTED)
    TFH_THROW(path, ": plugin", who, " was built for tfhost plugin ABI ", info->abi_version,
              "; this tfhost supports ABI ", abi_range(),
              " — rebuild it against this SDK");
  // Every version-1 field must be there; later fields are read only after TFH_HAS_FIELD.
  TFH_CHECK(TFH_HAS_FIELD(info, TfhPluginInfo, shutdown), path, ": plugin", who,
            " reports struct_size ", info->struct_size, ", smaller than the ABI ",
            info->abi_version, " TfhPluginInfo (", sizeof(TfhPluginInfo), " bytes)");
  TFH_CHECK(has_name, path, ": plugin has no name (TfhPluginInfo.name is empty)");
}

}  // namespace

PluginLibrary::~PluginLibrary() {
  // shutdown first, while the code is still mapped; impl_ (the library) is unmapped after.
  if (!info_ || !TFH_HAS_FIELD(info_, TfhPluginInfo, shutdown) || !info_->shutdown) return;
  // An exception escaping shutdown breaks the ABI rules, but a destructor is noexcept: letting
  // it through would terminate the host (and lose whatever it was about to save or print).
  std::string failure;
  try {
    info_->shutdown();
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "an exception that is not a std::exception";
  }
  if (failure.empty()) return;
  const std::string msg = path_ + ": plugin" + (name_.empty() ? "" : " '" + name_ + "'") +
                          ": an exception escaped its shutdown (ignored): " + failure;
  host_api()->log(TFH_LOG_WARNING, "loader", msg.c_str());
}

std::shared_ptr<PluginLibrary> PluginLibrary::load(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  boost::system::error_code ec;
  impl->lib.load(fs::path(path), ec, kLoadMode);
  if (ec) TFH_THROW(path, ": cannot load plugin: ", last_load_error(path, ec));
  if (!impl->lib.has(TFH_PLUGIN_INIT_SYMBOL))
    TFH_THROW(path, ": not a tfhost plugin (no symbol ", TFH_PLUGIN_INIT_SYMBOL, ")");
  TfhPluginInitFn init = &impl->lib.get<std::remove_pointer_t<TfhPluginInitFn>>(
      TFH_PLUGIN_INIT_SYMBOL);

  const TfhPluginInfo* info = nullptr;
  TfhStatus* status = nullptr;
  try {
    status = init(host_api(), &info);
  } catch (...) {  // a plugin that breaks the ABI rules; its code stays mapped until we throw
    TFH_THROW(path, ": plugin initialisation failed: an exception escaped tfh_plugin_init");
  }
  if (status) {
    std::string msg = take_status_message(status);
    TFH_THROW(path, ": plugin initialisation failed: ", msg.empty() ? "no message" : msg);
  }

  // From here the plugin is initialised: a rejected one still gets its shutdown call, from the
  // destructor, when `lib` goes out of scope on the throw below.
  auto lib = std::make_shared<PluginLibrary>();
  lib->impl_ = std::move(impl);
  lib->path_ = path;
  lib->info_ = info;
  check_info(path, info);
  lib->name_ = info->name;
  return lib;
}

std::shared_ptr<PluginLibrary> PluginLibrary::builtin(const TfhPluginInfo* info) {
  check_info("<built-in>", info);
  auto lib = std::make_shared<PluginLibrary>();
  lib->path_ = "<built-in>";
  lib->info_ = info;
  lib->name_ = info->name;
  return lib;
}

bool exports_plugin_entry(const std::string& path, std::string* load_error) {
  dll::shared_library probe;
  boost::system::error_code ec;
  probe.load(fs::path(path), ec, kLoadMode);
  if (ec) {
    if (load_error) *load_error = last_load_error(path, ec);
    return false;
  }
  return probe.has(TFH_PLUGIN_INIT_SYMBOL);
}

namespace {

void append_dir(std::vector<std::string>& out, const fs::path& dir) {
  boost::system::error_code ec;
  fs::path canon = fs::weakly_canonical(dir, ec);
  out.push_back((ec ? dir : canon).string());
}

// A tfhost that runs from inside its build tree (or a test binary) sees the build's plugins; an
// installed one sees only <prefix>/lib/tfhost/plugins, never a stale build folder.
bool running_from_build_tree(const fs::path& exe) {
  boost::system::error_code ec;
  fs::path build_root = fs::weakly_canonical(fs::path(TFH_PLUGIN_BUILD_DIR).parent_path(), ec);
  if (ec) return false;
  for (fs::path p = exe.parent_path(); !p.empty(); p = p.parent_path())
    if (p == build_root) return true;
  return false;
}

}  // namespace

std::vector<std::string> default_plugin_search_path() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("TFHOST_PLUGIN_PATH")) {
    std::istringstream is(env);
    for (std::string entry; std::getline(is, entry, ':');)
      if (!entry.empty()) out.push_back(entry);
  }
  boost::system::error_code ec;
  fs::path exe = dll::program_location(ec);
  if (!ec && running_from_build_tree(exe))
    append_dir(out, TFH_PLUGIN_BUILD_DIR);
  else if (!ec)
    append_dir(out, exe.parent_path().parent_path() / TFH_PLUGIN_INSTALL_REL);
  else
    append_dir(out, TFH_PLUGIN_BUILD_DIR);
  return out;
}

std::string find_plugin(const std::string& name, const std::vector<std::string>& search_path) {
  boost::system::error_code ec;
  const bool is_path = name.find('/') != std::string::npos ||
                       (name.size() > 3 && name.compare(name.size() - 3, 3, ".so") == 0);
  if (is_path) return fs::is_regular_file(name, ec) ? name : "";
  for (const auto& dir : search_path) {
    for (const std::string& file : {"lib" + name + ".so", name + ".so"}) {
      fs::path p = fs::path(dir) / file;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
  }
  return "";
}

}  // namespace tfh::plugin
