// tfh::Error: the one exception type inside the host. Its message is a complete, one-line,
// user-facing sentence that names the file and the node, tensor or key at fault. The CLI prints
// it as "tfhost: error: <message>" and exits non-zero. Never thrown across the plugin ABI.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace tfh {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// throw tfh::Error(tfh::detail::concat(...)) in one call: TFH_THROW(path, ": node '", n, "' ...")
#define TFH_THROW(...) throw ::tfh::Error(::tfh::detail::concat(__VA_ARGS__))
#define TFH_CHECK(cond, ...)   \
  do {                         \
    if (!(cond)) TFH_THROW(__VA_ARGS__); \
  } while (0)

}  // namespace tfh
