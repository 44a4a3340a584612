// Helpers for the loader/registry tests: fixture paths and the fixtures' shutdown log.
#pragma once

#include <cstdlib>
#include <string>

#include "support/test_util.h"

namespace tfh::plugin::testing {

inline std::string fixture(const std::string& name) {
  return std::string(TFH_FIXTURE_PLUGIN_DIR) + "/lib" + name + ".so";
}

// The fixture plugins append their name to $TFH_FIXTURE_SHUTDOWN_LOG from their shutdown.
class ShutdownLog {
 public:
  ShutdownLog() { setenv("TFH_FIXTURE_SHUTDOWN_LOG", file().c_str(), 1); }
  ~ShutdownLog() { unsetenv("TFH_FIXTURE_SHUTDOWN_LOG"); }
  std::string read() const { return test::file_exists(file()) ? test::read_file(file()) : ""; }

 private:
  std::string file() const { return dir_ / "shutdown.log"; }
  test::TempDir dir_;
};

}  // namespace tfh::plugin::testing
