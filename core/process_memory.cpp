#include "core/process_memory.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/types.h>
#include <unistd.h>

namespace memxx::core {

namespace {

std::int64_t resident_from_statm(int fd) noexcept {
    char text[128];
    const ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    if (n <= 0) {
        return -1;
    }
    text[n] = '\0';
    // statm: size resident shared text lib data dt, in pages.
    char *end = nullptr;
    std::strtoll(text, &end, 10);
    const long long resident = std::strtoll(end, nullptr, 10);
    return static_cast<std::int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

} // namespace

std::int64_t current_rss_bytes() noexcept {
    // /proc/self is resolved when the file is opened: after a fork the child must reopen it.
    static std::mutex open_lock;
    static std::atomic<int> statm_fd{-1};
    static std::atomic<pid_t> statm_pid{0};
    const pid_t pid = getpid();
    int fd = statm_fd.load(std::memory_order_acquire);
    if (fd < 0 || statm_pid.load(std::memory_order_acquire) != pid) {
        std::lock_guard<std::mutex> guard(open_lock);
        fd = statm_fd.load(std::memory_order_acquire);
        if (fd < 0 || statm_pid.load(std::memory_order_acquire) != pid) {
            const int opened = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
            if (opened < 0) {
                return -1;
            }
            if (fd >= 0) {
                close(fd);
            }
            fd = opened;
            statm_pid.store(pid, std::memory_order_release);
            statm_fd.store(fd, std::memory_order_release);
        }
    }
    return resident_from_statm(fd);
}

std::int64_t peak_rss_bytes() noexcept {
    const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    char text[4096];
    const ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    text[n] = '\0';
    const char *field = std::strstr(text, "VmHWM:");
    if (field == nullptr) {
        return -1;
    }
    return std::strtoll(field + 6, nullptr, 10) * 1024; // "VmHWM:   123456 kB"
}

bool restart_peak_rss() noexcept {
    const int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    const bool done = write(fd, "5", 1) == 1;
    close(fd);
    return done;
}

} // namespace memxx::core
