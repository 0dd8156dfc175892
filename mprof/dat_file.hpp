// The .dat file: memory_profiler's text format, written line by line and read back.
//
//   CMDLINE <command line>
//   MEM <MiB %.6f> <unix time %.4f>
//   CHLD <pid> <MiB %.6f> <unix time %.4f>
//   FUNC <module.qualname> <MiB %.4f> <t %.4f> <MiB %.4f> <t %.4f> <stack level>
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "mprof/profile_data.hpp"

namespace memxx::mprof {

// A file that cannot be read as a profile; what() is one line naming the file and the line.
class ProfileFileError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Appends records with one write(2) per call and no user-space buffer, so a crash or a kill
// of either process loses no record already written, and the target's own FUNC lines
// (appended through another descriptor with O_APPEND) interleave only at line boundaries.
class DatWriter {
  public:
    enum class Mode { truncate, append };
    // Opens `path` (created if missing); throws ProfileFileError if it cannot be opened.
    explicit DatWriter(const std::string& path, Mode mode = Mode::truncate);
    ~DatWriter();
    DatWriter(const DatWriter&) = delete;
    DatWriter& operator=(const DatWriter&) = delete;

    // Newlines in the command line become spaces: the format has one record per line.
    void write_cmdline(const std::string& cmdline);
    // One MEM line, then one CHLD line per child, in a single write.
    void write_sample(const MemorySample& memory,
                      const std::vector<std::pair<int, MemorySample>>& children);
    void write_function(const FunctionSpan& span);
    void close() noexcept;

  private:
    void write_all(const std::string& text);
    int fd_ = -1;
    std::string path_;
};

// Formats records exactly as memory_profiler does: the one formatter of .dat lines (the writer,
// the JSON converter, and from Python memory_usage(stream=...), FUNC spans and --timestamp).
std::string format_mem_line(const MemorySample& sample);
std::string format_child_line(const std::string& child, const MemorySample& sample);
std::string format_function_line(const FunctionSpan& span);

// Receives a profile's records in file order; the reader keeps none of them, so what a
// consumer keeps is all the memory reading costs (a .dat of any size streams through).
class RecordSink {
  public:
    virtual ~RecordSink() = default;
    // The command line read so far: called again when an older mprof's continues on next lines.
    virtual void on_cmdline(const std::string& cmdline) = 0;
    virtual void on_memory(const MemorySample& sample) = 0;
    virtual void on_child(const std::string& child, const MemorySample& sample) = 0;
    virtual void on_function(const FunctionSpan& span) = 0;
};

// Parses .dat text handed over in pieces of any size (a line may span pieces). Blank lines are
// skipped; a line that is not a record, or a truncated last line, throws
// ProfileFileError("<source>: line N: ..."), as does a line longer than max_line_bytes.
class DatParser {
  public:
    static constexpr size_t max_line_bytes = 16u << 20;
    DatParser(std::string source, RecordSink& sink);
    void feed(const char* data, size_t size);
    void finish(); // the end of the text: a last line without its newline is truncated
  private:
    void parse_line(std::string& line, bool has_newline);
    std::string source_;
    RecordSink& sink_;
    std::string pending_; // the start of a line whose newline has not arrived yet
    long line_number_ = 0;
    std::string cmdline_;
    bool previous_was_cmdline_ = false;
    bool memory_seen_ = false;
};

// Parses a whole .dat text into a Profile.
Profile parse_dat(const std::string& text, const std::string& source);

// Streams the records of a .dat file, or of a .json file written by profile_to_json
// (recognised by its first '{'; JSON is read whole), into `sink`.
void read_records(const std::string& path, RecordSink& sink);

// Reads a .dat or .json profile whole.
Profile read_profile(const std::string& path);

// The same series as JSON: {"cmdline", "memory": [[MiB, t], ...], "children": {pid: [[MiB, t]]},
// "functions": [{"name", "mem_start", "time_start", "mem_end", "time_end", "level"}]}.
std::string profile_to_json(const Profile& profile, int indent = 1);
Profile profile_from_json(const std::string& text, const std::string& source);

} // namespace memxx::mprof
