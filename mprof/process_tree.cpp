#include "mprof/process_tree.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace memxx::mprof {

namespace {

// Reads a small /proc file into `buffer` (NUL-terminated); returns the byte count or -1.
ssize_t read_small_file(const char* path, char* buffer, size_t size) noexcept {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    const ssize_t n = read(fd, buffer, size - 1);
    close(fd);
    if (n < 0) {
        return -1;
    }
    buffer[n] = '\0';
    return n;
}

std::string read_whole_file(const std::string& path) {
    std::string text;
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return text;
    }
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        text.append(chunk, static_cast<size_t>(n));
    }
    close(fd);
    return text;
}

// The state letter and parent pid from /proc/<pid>/stat; the command name may hold ')' and
// spaces, so parse after the last ')'.
bool read_stat(int pid, char& state, int& ppid) noexcept {
    char path[64];
    char text[1024];
    std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_small_file(path, text, sizeof(text)) <= 0) {
        return false;
    }
    const char* close_paren = std::strrchr(text, ')');
    if (close_paren == nullptr) {
        return false;
    }
    return std::sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2;
}

bool children_files_exist() {
    static const bool exist = access("/proc/self/task", F_OK) == 0 && [] {
        char path[64];
        std::snprintf(path, sizeof(path), "/proc/%d/task/%d/children", getpid(), getpid());
        return access(path, R_OK) == 0;
    }();
    return exist;
}

// Direct children from /proc/<pid>/task/<tid>/children (every thread can be a parent).
void append_children_from_task_files(int pid, std::vector<int>& out) {
    char dir_path[64];
    std::snprintf(dir_path, sizeof(dir_path), "/proc/%d/task", pid);
    DIR* dir = opendir(dir_path);
    if (dir == nullptr) {
        return;
    }
    while (const dirent* entry = readdir(dir)) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') {
            continue;
        }
        const std::string text =
            read_whole_file(std::string(dir_path) + "/" + entry->d_name + "/children");
        const char* p = text.c_str();
        char* end = nullptr;
        for (long child = std::strtol(p, &end, 10); end != p; child = std::strtol(p, &end, 10)) {
            out.push_back(static_cast<int>(child));
            p = end;
        }
    }
    closedir(dir);
}

// Fallback without CONFIG_PROC_CHILDREN: one scan of /proc for parent pids.
std::vector<int> descendants_by_scan(int pid) {
    std::vector<std::pair<int, int>> parent_of;
    DIR* dir = opendir("/proc");
    if (dir == nullptr) {
        return {};
    }
    while (const dirent* entry = readdir(dir)) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') {
            continue;
        }
        const int candidate = std::atoi(entry->d_name);
        char state = 0;
        int ppid = 0;
        if (read_stat(candidate, state, ppid) && state != 'Z') {
            parent_of.emplace_back(candidate, ppid);
        }
    }
    closedir(dir);
    std::vector<int> out;
    std::vector<int> frontier{pid};
    while (!frontier.empty()) {
        const int parent = frontier.back();
        frontier.pop_back();
        for (const auto& [child, ppid] : parent_of) {
            if (ppid == parent) {
                out.push_back(child);
                frontier.push_back(child);
            }
        }
    }
    return out;
}

} // namespace

std::int64_t rss_bytes(int pid) noexcept {
    char path[64];
    char text[256];
    std::snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    if (read_small_file(path, text, sizeof(text)) <= 0) {
        return -1;
    }
    // statm: size resident shared text lib data dt, in pages.
    char* end = nullptr;
    std::strtoll(text, &end, 10);
    const long long resident = std::strtoll(end, nullptr, 10);
    static const long page_size = sysconf(_SC_PAGESIZE);
    return static_cast<std::int64_t>(resident) * page_size;
}

std::int64_t memory_bytes(int pid, MemoryMetric metric) noexcept {
    if (metric == MemoryMetric::rss) {
        return rss_bytes(pid);
    }
    char path[64];
    char text[4096];
    std::snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
    if (read_small_file(path, text, sizeof(text)) < 0) {
        return -1;
    }
    long long kib = 0;
    for (const char* line = text; line != nullptr && *line != '\0';) {
        long long value = 0;
        if (metric == MemoryMetric::pss && std::sscanf(line, "Pss: %lld kB", &value) == 1) {
            kib += value;
        } else if (metric == MemoryMetric::uss &&
                   (std::sscanf(line, "Private_Clean: %lld kB", &value) == 1 ||
                    std::sscanf(line, "Private_Dirty: %lld kB", &value) == 1)) {
            kib += value;
        }
        line = std::strchr(line, '\n');
        line = line != nullptr ? line + 1 : nullptr;
    }
    return static_cast<std::int64_t>(kib) * 1024;
}

bool process_running(int pid) noexcept {
    char state = 0;
    int ppid = 0;
    return read_stat(pid, state, ppid) && state != 'Z' && state != 'X';
}

std::vector<int> descendants(int pid) {
    if (!children_files_exist()) {
        return descendants_by_scan(pid);
    }
    std::vector<int> out;
    append_children_from_task_files(pid, out);
    for (size_t i = 0; i < out.size(); ++i) {
        append_children_from_task_files(out[i], out);
    }
    return out;
}

std::string command_line(int pid) {
    std::string text = read_whole_file("/proc/" + std::to_string(pid) + "/cmdline");
    while (!text.empty() && text.back() == '\0') {
        text.pop_back();
    }
    for (char& c : text) {
        if (c == '\0') {
            c = ' ';
        }
    }
    return text;
}

bool read_tree_memory(int pid, MemoryMetric metric, bool with_descendants, TreeMemory& out) {
    out.own = memory_bytes(pid, metric);
    out.descendants_total = 0;
    out.descendants.clear();
    if (out.own <= 0) {
        return false;
    }
    if (with_descendants) {
        for (const int child : descendants(pid)) {
            const std::int64_t bytes = memory_bytes(child, metric);
            if (bytes > 0) {
                out.descendants_total += bytes;
                out.descendants.emplace_back(child, bytes);
            }
        }
    }
    return true;
}

} // namespace memxx::mprof
