// PluginLibrary: loading, ABI checks with exact messages, shutdown, search path.
#include "host/plugin/loader.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include <boost/filesystem.hpp>

#include "host/util/error.h"
#include "plugin/plugin_test_util.h"

namespace tfh::plugin {
namespace {
using testing::fixture;
using testing::ShutdownLog;

std::string load_error(const std::string& path) {
  try {
    PluginLibrary::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded without error)";
}

TEST(PluginLoader, LoadsAWellFormedPlugin) {
  auto lib = PluginLibrary::load(fixture("fixture_good"));
  EXPECT_EQ(lib->name(), "fixture_good");
  EXPECT_EQ(lib->path(), fixture("fixture_good"));
  ASSERT_NE(lib->info(), nullptr);
  EXPECT_EQ(lib->info()->abi_version, TFH_ABI_VERSION);
  EXPECT_EQ(lib->info()->n_fusions, 1u);
}

TEST(PluginLoader, RefusesANewerAbiNamingTheFileAndBothVersions) {
  const std::string path = fixture("fixture_future_abi");
  std::ostringstream want;
  want << path << ": plugin 'fixture_future_abi' was built for tfhost plugin ABI "
       << TFH_ABI_VERSION + 1 << "; this tfhost supports ABI " << TFH_ABI_MIN_SUPPORTED << ".."
       << TFH_ABI_VERSION << " — rebuild it against this SDK or upgrade tfhost";
  EXPECT_EQ(load_error(path), want.str());
}

TEST(PluginLoader, RefusesAnAbiOlderThanTheOldestSupported) {
  const std::string path = fixture("fixture_old_abi");
  std::ostringstream want;
  want << path << ": plugin 'fixture_old_abi' was built for tfhost plugin ABI "
       << TFH_ABI_MIN_SUPPORTED - 1 << "; this tfhost supports ABI " << TFH_ABI_MIN_SUPPORTED
       << ".." << TFH_ABI_VERSION << " — rebuild it against this SDK";
  EXPECT_EQ(load_error(path), want.str());
}

TEST(PluginLoader, ARejectedPluginStillGetsItsShutdown) {
  ShutdownLog log;
  load_error(fixture("fixture_future_abi"));
  EXPECT_EQ(log.read(), "fixture_future_abi\n");
}

TEST(PluginLoader, InitFailureCarriesThePluginsMessage) {
  const std::string path = fixture("fixture_init_fails");
  EXPECT_EQ(load_error(path),
            path + ": plugin initialisation failed: fixture_init_fails: needs a device it lacks");
}

TEST(PluginLoader, RefusesMissingInfo) {
  const std::string path = fixture("fixture_null_info");
  EXPECT_EQ(load_error(path), path + ": tfh_plugin_init returned no plugin info");
}

TEST(PluginLoader, RefusesATruncatedInfoStruct) {
  const std::string path = fixture("fixture_truncated");
  std::ostringstream want;
  want << path << ": plugin 'fixture_truncated' reports struct_size "
       << offsetof(TfhPluginInfo, n_fusions) << ", smaller than the ABI " << TFH_ABI_VERSION
       << " TfhPluginInfo (" << sizeof(TfhPluginInfo) << " bytes)";
  EXPECT_EQ(load_error(path), want.str());
}

TEST(PluginLoader, RefusesAnUnnamedPlugin) {
  const std::string path = fixture("fixture_unnamed");
  EXPECT_EQ(load_error(path), path + ": plugin has no name (TfhPluginInfo.name is empty)");
}

TEST(PluginLoader, RefusesALibraryWithoutTheEntryPoint) {
  const std::string path = fixture("fixture_not_a_plugin");
  EXPECT_EQ(load_error(path), path + ": not a tfhost plugin (no symbol tfh_plugin_init)");
}

TEST(PluginLoader, AMissingFileNamesTheFileAndTheReason) {
  const std::string path = std::string(TFH_FIXTURE_PLUGIN_DIR) + "/libno_such_plugin.so";
  const std::string msg = load_error(path);
  EXPECT_EQ(msg.rfind(path + ": cannot load plugin: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

TEST(PluginLoader, ShutdownRunsOnceWhenTheLastReferenceGoes) {
  ShutdownLog log;
  auto lib = PluginLibrary::load(fixture("fixture_good"));
  auto other = lib;
  lib.reset();
  EXPECT_EQ(log.read(), "");
  other.reset();
  EXPECT_EQ(log.read(), "fixture_good\n");
}

TEST(PluginLoader, ANullShutdownIsAllowed) {
  auto lib = PluginLibrary::load(fixture("fixture_no_shutdown"));
  EXPECT_EQ(lib->name(), "fixture_no_shutdown");
  lib.reset();  // must not crash
}

// A shutdown that throws breaks the ABI rules; the destructor (noexcept) must not let it
// terminate the host. Without the guard this test aborts the whole test binary.
TEST(PluginLoader, AThrowingShutdownDoesNotTerminateTheHost) {
  ShutdownLog log;
  auto lib = PluginLibrary::load(fixture("fixture_shutdown_throws"));
  EXPECT_EQ(lib->name(), "fixture_shutdown_throws");
  ::testing::internal::CaptureStderr();
  lib.reset();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log.read(), "fixture_shutdown_throws\n");
  EXPECT_NE(err.find(fixture("fixture_shutdown_throws") +
                     ": plugin 'fixture_shutdown_throws': an exception escaped its shutdown "
                     "(ignored): fixture_shutdown_throws: shutdown failed"),
            std::string::npos)
      << err;
}

TEST(PluginLoader, ProbesForTheEntryPointWithoutInitialising) {
  ShutdownLog log;
  std::string why;
  EXPECT_TRUE(exports_plugin_entry(fixture("fixture_good"), &why));
  EXPECT_FALSE(exports_plugin_entry(fixture("fixture_not_a_plugin"), &why));
  EXPECT_EQ(why, "");
  EXPECT_FALSE(exports_plugin_entry(fixture("no_such_plugin"), &why));
  EXPECT_NE(why, "");
  EXPECT_EQ(log.read(), "");  // nothing was initialised, so nothing shut down
}

TEST(PluginLoader, FindsPluginsByNameOrPath) {
  const std::vector<std::string> path = {"/nonexistent", TFH_FIXTURE_PLUGIN_DIR};
  EXPECT_EQ(find_plugin("fixture_good", path), fixture("fixture_good"));
  EXPECT_EQ(find_plugin("no_such_plugin", path), "");
  EXPECT_EQ(find_plugin(fixture("fixture_dup"), {}), fixture("fixture_dup"));
  EXPECT_EQ(find_plugin("/nonexistent/libx.so", path), "");
}

TEST(PluginLoader, SearchPathStartsWithTheEnvironment) {
  setenv("TFHOST_PLUGIN_PATH", "/opt/a::/opt/b", 1);
  const auto path = default_plugin_search_path();
  unsetenv("TFHOST_PLUGIN_PATH");
  ASSERT_EQ(path.size(), 3u);
  EXPECT_EQ(path[0], "/opt/a");
  EXPECT_EQ(path[1], "/opt/b");
  // This test binary runs from the build tree, so it sees the build's plugin folder.
  const auto build_plugins = boost::filesystem::path(TFH_BINARY_DIR) / "plugins";
  EXPECT_EQ(path[2], boost::filesystem::weakly_canonical(build_plugins).string());
}

}  // namespace
}  // namespace tfh::plugin
