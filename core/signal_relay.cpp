#include "core/signal_relay.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <pthread.h>

namespace memxx::core {

namespace {

using Handler = void (*)(int);
constexpr int kSignals = 65; // 1..64 on Linux
constexpr std::int64_t kSendAgainNs = 100'000'000;

std::atomic<Handler> g_python[kSignals]; // Python's C-level handler, by signal
std::atomic<int> g_pending{0};           // a signal that came, its Python handler not run yet
std::atomic<std::int64_t> g_sent_ns{0};  // when it came, or was last sent again
std::atomic<pthread_t> g_main{};         // the thread Python runs handlers in

std::int64_t now_ns() noexcept {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

void relay(int signum) {
    const int saved = errno;
    const Handler python = g_python[signum].load(std::memory_order_relaxed);
    if (python != nullptr) {
        python(signum); // trips Python's flag
    }
    g_sent_ns.store(now_ns(), std::memory_order_relaxed);
    g_pending.store(signum, std::memory_order_release);
    errno = saved;
}

// The forking thread is the child's only one, its main thread for Python too.
void reset_in_child() noexcept {
    g_main.store(pthread_self(), std::memory_order_relaxed);
    g_pending.store(0, std::memory_order_relaxed);
}

bool relay_installed(int signum) noexcept {
    struct sigaction current {};
    return sigaction(signum, nullptr, &current) == 0 && (current.sa_flags & SA_SIGINFO) == 0 &&
           current.sa_handler == relay;
}

} // namespace

bool signal_relay_install(int signum) noexcept {
    if (signum <= 0 || signum >= kSignals) {
        return false;
    }
    static const bool fork_handler = pthread_atfork(nullptr, nullptr, reset_in_child) == 0;
    (void)fork_handler;
    struct sigaction current {};
    if (sigaction(signum, nullptr, &current) != 0) {
        return false;
    }
    g_main.store(pthread_self(), std::memory_order_relaxed);
    if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler == SIG_DFL ||
        current.sa_handler == SIG_IGN) {
        return false;
    }
    if (current.sa_handler == relay) {
        return true;
    }
    g_python[signum].store(current.sa_handler, std::memory_order_relaxed);
    struct sigaction ours = current; // Python's flags and mask
    ours.sa_handler = relay;
    return sigaction(signum, &ours, nullptr) == 0;
}

void signal_relay_taken() noexcept { g_pending.store(0, std::memory_order_relaxed); }

void signal_relay_poll() noexcept {
    const int signum = g_pending.load(std::memory_order_acquire);
    if (signum == 0) {
        return;
    }
    const std::int64_t now = now_ns();
    if (now - g_sent_ns.load(std::memory_order_relaxed) < kSendAgainNs) {
        return;
    }
    if (!relay_installed(signum)) { // the program set a handler of its own since: not ours
        g_pending.store(0, std::memory_order_relaxed);
        return;
    }
    g_sent_ns.store(now, std::memory_order_relaxed);
    pthread_kill(g_main.load(std::memory_order_relaxed), signum);
}

} // namespace memxx::core
