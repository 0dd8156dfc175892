// The one way the three tools write an output file (.dat, .json, reports, plots, graphs,
// snapshots), from C++ and, through the bindings, from Python. Outputs go where others may
// write too (/tmp, a shared project directory), so a path is refused when it is a symbolic
// link, a FIFO, a device or a file owned by another user, and nothing is created or emptied
// before those checks pass. No Python here; any thread may call.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace memxx::mprof {

// what(): "<path>: cannot write: <reason>", one line.
class OutputFileError : public std::runtime_error {
  public:
    OutputFileError(const std::string &path, const std::string &reason)
        : std::runtime_error(path + ": cannot write: " + reason) {}
};

enum class OutputMode { truncate, append };

// Opens `path` for writing (created 0644 if missing, minus the umask) and returns the
// descriptor (O_APPEND, close-on-exec): opened with O_NOFOLLOW | O_NONBLOCK, then checked by
// fstat on the descriptor itself (a regular file we own), and emptied (truncate) only then.
// Throws OutputFileError.
int open_output(const std::string &path, OutputMode mode);

// Throws OutputFileError if `path` exists and is a link, not a regular file, or not ours;
// creates nothing (a check before long work; the writers check again themselves).
void check_output(const std::string &path);

// Writes `data` as the whole new content of `path`: into a fresh file made in the same
// directory with O_CREAT | O_EXCL, renamed over `path` once complete. A reader never sees a
// half-written file. An existing `path` must be a regular file we own (a link there is
// refused); a link planted after the last check is replaced by the rename, never followed.
// Throws OutputFileError.
void write_output(const std::string &path, std::string_view data);

} // namespace memxx::mprof
