#include "host/util/signal_cleanup.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include <signal.h>
#include <unistd.h>

namespace tfh {
namespace {

constexpr int kSlots = 16;
constexpr size_t kMaxPath = 4096;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
constexpr int kNumSignals = sizeof(kSignals) / sizeof(kSignals[0]);

// A slot is claimed by one thread (kBusy), filled, and only then published (kListed): the handler
// never reads a path being written.
enum SlotState : int { kFree, kBusy, kListed };
struct Slot {
  std::atomic<int> state{kFree};
  char path[kMaxPath];
};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler reads slot states");

Slot g_slots[kSlots];

// Installing and removing the handler; never taken by the handler itself.
std::mutex g_mutex;
int g_listed = 0;
struct sigaction g_previous[kNumSignals];
bool g_installed[kNumSignals];

extern "C" void remove_listed_files(int sig) {
  const int saved_errno = errno;  // a previous handler may return into the interrupted code
  for (Slot& s : g_slots)
    if (s.state.load(std::memory_order_acquire) == kListed) ::unlink(s.path);
  for (int i = 0; i < kNumSignals; ++i)
    if (kSignals[i] == sig) ::sigaction(sig, &g_previous[i], nullptr);
  // Blocked while this handler runs: delivered, with the disposition just restored, on return.
  ::raise(sig);
  errno = saved_errno;
}

void install() {
  for (int i = 0; i < kNumSignals; ++i) {
    g_installed[i] = false;
    if (::sigaction(kSignals[i], nullptr, &g_previous[i]) != 0) continue;
    // An ignored signal (nohup, a background job's SIGINT) must stay ignored.
    if (!(g_previous[i].sa_flags & SA_SIGINFO) && g_previous[i].sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = remove_listed_files;
    sigemptyset(&sa.sa_mask);
    for (int s : kSignals) sigaddset(&sa.sa_mask, s);  // one cleanup at a time
    sa.sa_flags = SA_RESTART;
    g_installed[i] = ::sigaction(kSignals[i], &sa, nullptr) == 0;
  }
}

void uninstall() {
  for (int i = 0; i < kNumSignals; ++i) {
    if (!g_installed[i]) continue;
    struct sigaction current {};
    // Somebody installed their own handler meanwhile: theirs stays.
    if (::sigaction(kSignals[i], nullptr, &current) == 0 &&
        !(current.sa_flags & SA_SIGINFO) && current.sa_handler == remove_listed_files)
      ::sigaction(kSignals[i], &g_previous[i], nullptr);
    g_installed[i] = false;
  }
}

}  // namespace

RemoveOnSignal::RemoveOnSignal(const std::string& path) {
  if (path.empty() || path.size() >= kMaxPath) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kBusy)) continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      if (g_listed++ == 0) install();
    }
    g_slots[i].state.store(kListed, std::memory_order_release);
    slot_ = i;
    return;
  }
}

void RemoveOnSignal::release() {
  if (slot_ < 0) return;
  g_slots[slot_].state.store(kFree, std::memory_order_release);
  slot_ = -1;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (--g_listed == 0) uninstall();
}

}  // namespace tfh
