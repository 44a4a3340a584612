// Files to remove if the process is interrupted: the temporary files of an atomic save, which a
// Ctrl-C (or a `kill`) in the middle of writing a large model would otherwise leave behind, since
// no destructor runs when a signal kills the process.
#pragma once

#include <string>

namespace tfh {

// Lists `path` for removal on SIGINT, SIGTERM or SIGHUP for as long as it lives (or until
// release()). While any path is listed, a handler is installed for those signals that the process
// does not ignore; the handler unlinks every listed path, puts back the disposition the signal had
// before (the default, for tfhost: the process then dies of the signal, status 128+N) and raises it
// again. The handler only reads a fixed array of paths and calls unlink, so it is
// async-signal-safe. At most 16 paths of up to 4095 bytes are listed at once; a path beyond that is
// not listed (the interrupted save then leaves it, as it did before), never an error.
class RemoveOnSignal {
 public:
  explicit RemoveOnSignal(const std::string& path);
  ~RemoveOnSignal() { release(); }
  RemoveOnSignal(const RemoveOnSignal&) = delete;
  RemoveOnSignal& operator=(const RemoveOnSignal&) = delete;

  // Stops listing the path (it was renamed into place, or removed); the last release puts the
  // previous signal dispositions back.
  void release();
  bool listed() const { return slot_ >= 0; }

 private:
  int slot_ = -1;
};

}  // namespace tfh
