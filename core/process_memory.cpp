#include "core/process_memory.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/types.h>
#include <unistd.h>

#include <mimalloc.h>

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

bool for_each_anonymous_mapping(AnonymousMappingVisitor visit, void *context) noexcept {
    const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    // The whole file first: the visitor may map or unmap, which would shift a file read in parts.
    std::size_t size = 0;
    std::size_t capacity = 256 * 1024;
    char *text = static_cast<char *>(mi_malloc(capacity));
    while (text != nullptr) {
        const ssize_t n = read(fd, text + size, capacity - size - 1);
        if (n <= 0) {
            break;
        }
        size += static_cast<std::size_t>(n);
        if (capacity - size - 1 == 0) {
            capacity *= 2;
            text = static_cast<char *>(mi_realloc(text, capacity));
        }
    }
    close(fd);
    if (text == nullptr) {
        return false;
    }
    text[size] = '\0';
    // glibc 2.42+ on Linux 6.13+ guards a thread's stack with a guard region inside the mapping
    // (MADV_GUARD_INSTALL), not with a mapping of no access below it: /proc/self/pagemap marks
    // such a first page (PM_GUARD_REGION, bit 58), and the stack is told by it.
    const int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    const auto starts_with_guard = [pagemap](std::uintptr_t begin) {
        static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
        std::uint64_t entry = 0;
        const auto at = static_cast<off_t>(begin / page * sizeof entry);
        return pagemap >= 0 && pread(pagemap, &entry, sizeof entry, at) == sizeof entry &&
               (entry >> 58 & 1) != 0;
    };
    std::uintptr_t previous_end = 0;
    bool previous_no_access = false;
    bool previous_file = false;
    for (char *line = text; *line != '\0';) {
        char *next = std::strchr(line, '\n');
        if (next != nullptr) {
            *next = '\0';
        }
        // begin-end perms offset dev inode [path]
        char *cursor = nullptr;
        const auto begin = static_cast<std::uintptr_t>(std::strtoull(line, &cursor, 16));
        const auto end = static_cast<std::uintptr_t>(std::strtoull(cursor + 1, &cursor, 16));
        const char *perms = cursor + 1;
        char *field = cursor + 6; // offset
        std::strtoull(field, &field, 16);
        while (*field == ' ') {
            ++field;
        }
        while (*field != ' ' && *field != '\0') { // dev
            ++field;
        }
        const unsigned long long inode = std::strtoull(field, &field, 10);
        while (*field == ' ') {
            ++field;
        }
        MappingBelow below = previous_end != begin  ? MappingBelow::other
                             : previous_no_access ? MappingBelow::no_access
                             : previous_file      ? MappingBelow::file
                                                  : MappingBelow::other;
        const bool anonymous = inode == 0 && *field == '\0';
        if (std::strncmp(perms, "rw-p", 4) == 0 && anonymous) {
            if (below == MappingBelow::other && starts_with_guard(begin)) {
                below = MappingBelow::no_access;
            }
            visit(begin, end, below, context);
        }
        previous_end = end;
        previous_no_access = std::strncmp(perms, "---p", 4) == 0;
        // A .bss split in several mappings (part of it protected or advised) is still a file's.
        previous_file = inode != 0 || (anonymous && below == MappingBelow::file);
        if (next == nullptr) {
            break;
        }
        line = next + 1;
    }
    mi_free(text);
    if (pagemap >= 0) {
        close(pagemap);
    }
    return true;
}

} // namespace memxx::core
