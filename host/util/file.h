// Small POSIX file helpers shared by model I/O: an owning file descriptor and error text.
#pragma once

#include <cstddef>
#include <string>

#include <sys/types.h>

namespace tfh {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { int fd = fd_; fd_ = -1; return fd; }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// strerror(err) as a std::string.
std::string errno_text(int err);

// What a file that is not a regular file is, for error messages: "a directory", "a FIFO (named
// pipe)", "a character device", ... from stat's st_mode.
std::string file_type_text(mode_t mode);

// Writes all `n` bytes (retrying short writes and EINTR); throws tfh::Error naming `path`.
void write_all(int fd, const void* data, size_t n, const std::string& path);

}  // namespace tfh
