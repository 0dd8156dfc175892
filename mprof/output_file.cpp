#include "mprof/output_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace memxx::mprof {

namespace {

constexpr const char *symlink_reason = "is a symbolic link (refused: it could point anywhere)";
constexpr const char *not_regular_reason = "not a regular file; refusing to write to it";
constexpr const char *other_user_reason = "owned by another user; refusing to write to it";

// Why a file we see through `info` must not be written, or nullptr.
const char *refusal(const struct stat &info) {
    if (S_ISLNK(info.st_mode)) {
        return symlink_reason;
    }
    if (!S_ISREG(info.st_mode)) {
        return not_regular_reason;
    }
    if (info.st_uid != geteuid()) {
        return other_user_reason;
    }
    return nullptr;
}

// Throws if `path` exists and is not a regular file of ours (lstat: a link is not followed).
void check_existing(const std::string &path) {
    struct stat info{};
    if (lstat(path.c_str(), &info) != 0) {
        if (errno == ENOENT) {
            return;
        }
        throw OutputFileError(path, std::strerror(errno));
    }
    if (const char *why = refusal(info)) {
        throw OutputFileError(path, why);
    }
}

void write_all(int fd, std::string_view data, const std::string &path) {
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw OutputFileError(path, std::strerror(errno));
        }
        done += static_cast<size_t>(n);
    }
}

std::string directory_of(const std::string &path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) {
        return "";
    }
    return path.substr(0, slash + 1);
}

// A new, empty file next to `path` that nobody else had: O_CREAT | O_EXCL with a random name.
int create_sibling(const std::string &path, std::string &created) {
    std::random_device entropy;
    const std::string prefix = directory_of(path) + ".memxx-";
    for (int attempt = 0; attempt < 100; ++attempt) {
        char suffix[17];
        std::snprintf(suffix, sizeof(suffix), "%08x%08x", entropy(), entropy());
        created = prefix + suffix + ".tmp";
        const int fd =
            ::open(created.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            return fd;
        }
        if (errno != EEXIST) {
            throw OutputFileError(path, std::strerror(errno));
        }
    }
    throw OutputFileError(path, "no unused temporary name in its directory");
}

} // namespace

int open_output(const std::string &path, OutputMode mode) {
    // O_NONBLOCK: opening a FIFO nobody reads fails (ENXIO) instead of waiting forever.
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
               0644);
    if (fd < 0) {
        const int error = errno;
        if (error == ELOOP) {
            throw OutputFileError(path, symlink_reason);
        }
        if (error == ENXIO) { // a FIFO nobody reads or a device without a driver
            throw OutputFileError(path, not_regular_reason);
        }
        throw OutputFileError(path, std::strerror(error));
    }
    struct stat info{};
    const char *why = fstat(fd, &info) != 0 ? not_regular_reason : refusal(info);
    if (why == nullptr) {
        fcntl(fd, F_SETFL, O_APPEND);
        if (mode == OutputMode::truncate && ftruncate(fd, 0) != 0) {
            why = std::strerror(errno);
        }
    }
    if (why != nullptr) {
        const std::string reason = why;
        ::close(fd);
        throw OutputFileError(path, reason);
    }
    return fd;
}

void check_output(const std::string &path) { check_existing(path); }

void write_output(const std::string &path, std::string_view data) {
    check_existing(path);
    std::string temporary;
    const int fd = create_sibling(path, temporary);
    bool open = true;
    try {
        write_all(fd, data, path);
        open = false;
        if (::close(fd) != 0) {
            throw OutputFileError(path, std::strerror(errno));
        }
        // Checked again just before the rename: a file put there meanwhile must be ours too.
        // rename() replaces a link planted since then without following it.
        check_existing(path);
        if (::rename(temporary.c_str(), path.c_str()) != 0) {
            throw OutputFileError(path, std::strerror(errno));
        }
    } catch (...) {
        if (open) {
            ::close(fd);
        }
        ::unlink(temporary.c_str());
        throw;
    }
}

} // namespace memxx::mprof
