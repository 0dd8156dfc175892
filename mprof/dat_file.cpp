#include "mprof/dat_file.hpp"

#include "mprof/output_file.hpp"

#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

namespace memxx::mprof {

namespace {

std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

std::string format(const char *fmt, ...) {
    char buffer[512];
    va_list args;
    va_start(args, fmt);
    const int n = std::vsnprintf(buffer, sizeof(buffer), fmt, args);
    va_end(args);
    if (n < static_cast<int>(sizeof(buffer))) {
        return std::string(buffer, static_cast<size_t>(n > 0 ? n : 0));
    }
    std::string big(static_cast<size_t>(n) + 1, '\0');
    va_start(args, fmt);
    std::vsnprintf(big.data(), big.size(), fmt, args);
    va_end(args);
    big.pop_back();
    return big;
}

bool parse_number(const char *text, size_t size, double &value) {
    if (size == 0) {
        return false;
    }
    char *end = nullptr;
    errno = 0;
    value = std::strtod(text, &end);
    return errno == 0 && end == text + size && std::isfinite(value);
}

std::string shorten(const std::string &line) {
    std::string shown;
    for (char c : line.substr(0, 40)) {
        shown += (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
                     ? '?'
                     : c;
    }
    return line.size() > 40 ? shown + "..." : shown;
}

} // namespace

std::string format_mem_line(const MemorySample &sample) {
    return format("MEM %.6f %.4f\n", sample.mib, sample.time);
}

std::string format_child_line(const std::string &child, const MemorySample &sample) {
    return format("CHLD %s %.6f %.4f\n", child.c_str(), sample.mib, sample.time);
}

std::string format_function_line(const FunctionSpan &span) {
    return format("FUNC %s %.4f %.4f %.4f %.4f %d\n", span.name.c_str(), span.mem_start,
                  span.time_start, span.mem_end, span.time_end, span.level);
}

DatWriter::DatWriter(const std::string &path, Mode mode) : path_(path) {
    // A profile is written where others may write too (/tmp, a shared project dir): the one
    // output opener refuses links, FIFOs, devices and other users' files.
    try {
        fd_ = open_output(path, mode == Mode::truncate ? OutputMode::truncate : OutputMode::append);
    } catch (const OutputFileError &e) {
        throw ProfileFileError(e.what());
    }
}

DatWriter::~DatWriter() { close(); }

void DatWriter::close() noexcept {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

void DatWriter::write_all(const std::string &text) {
    size_t done = 0;
    while (done < text.size() && fd_ >= 0) {
        const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            const int error = errno;
            // A full disk (ENOSPC, EFBIG) can take part of a record first: cut it off, so the
            // file ends with the last complete record and stays readable.
            struct stat info{};
            if (done > 0 && fstat(fd_, &info) == 0 && info.st_size >= static_cast<off_t>(done)) {
                (void)!ftruncate(fd_, info.st_size - static_cast<off_t>(done));
            }
            throw ProfileFileError(path_ + ": write failed: " + std::strerror(error));
        }
        done += static_cast<size_t>(n);
    }
}

void DatWriter::write_cmdline(const std::string &cmdline) {
    std::string one_line = cmdline;
    for (char &c : one_line) {
        if (c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    write_all("CMDLINE " + one_line + "\n");
}

void DatWriter::write_sample(const MemorySample &memory,
                             const std::vector<std::pair<int, MemorySample>> &children) {
    std::string text = format_mem_line(memory);
    for (const auto &[pid, sample] : children) {
        text += format_child_line(std::to_string(pid), sample);
    }
    write_all(text);
}

void DatWriter::write_function(const FunctionSpan &span) { write_all(format_function_line(span)); }

namespace {

// Keeps every record: the Profile of a whole file.
class ProfileCollector : public RecordSink {
  public:
    Profile profile;
    void on_cmdline(const std::string &cmdline) override { profile.cmdline = cmdline; }
    void on_memory(const MemorySample &sample) override { profile.memory.push_back(sample); }
    void on_child(const std::string &child, const MemorySample &sample) override {
        profile.children[child].push_back(sample);
    }
    void on_function(const FunctionSpan &span) override { profile.functions.push_back(span); }
};

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// The whitespace-separated fields of a line (at most `max` + 1: one more says "too many").
size_t split_fields(const std::string &line, std::string_view *fields, size_t max) {
    size_t count = 0;
    size_t i = 0;
    while (i < line.size() && count <= max) {
        while (i < line.size() && is_space(line[i])) {
            ++i;
        }
        const size_t start = i;
        while (i < line.size() && !is_space(line[i])) {
            ++i;
        }
        if (i > start) {
            if (count == max) {
                return max + 1;
            }
            fields[count++] = std::string_view(line).substr(start, i - start);
        }
    }
    return count;
}

bool parse_field(std::string_view text, double &value) {
    // from_chars (no locale, no copy) reads what the writers write; strtod then takes the rest
    // Python's float() would (a leading '+', hexadecimal).
    const char *end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, value);
    if (error == std::errc() && stop == end) {
        return std::isfinite(value);
    }
    char small[64];
    if (text.size() < sizeof(small)) {
        std::memcpy(small, text.data(), text.size());
        small[text.size()] = '\0';
        return parse_number(small, text.size(), value);
    }
    const std::string copy(text);
    return parse_number(copy.c_str(), copy.size(), value);
}

bool parse_level(std::string_view text, int &value) {
    double number = 0;
    if (!parse_field(text, number) || number != std::floor(number) || number < INT_MIN ||
        number > INT_MAX) {
        return false;
    }
    value = static_cast<int>(number);
    return true;
}

// Feeds what `fd` holds to `parser`, 64 KiB at a time.
void feed_file(int fd, const std::string &path, DatParser &parser) {
    std::vector<char> chunk(1 << 16);
    for (;;) {
        const ssize_t n = ::read(fd, chunk.data(), chunk.size());
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            throw ProfileFileError(path + ": cannot read: " + std::strerror(errno));
        }
        parser.feed(chunk.data(), static_cast<size_t>(n));
    }
    parser.finish();
}

// Replays a whole Profile's records into a sink (a JSON profile is read whole).
void replay(const Profile &profile, RecordSink &sink) {
    sink.on_cmdline(profile.cmdline);
    for (const MemorySample &s : profile.memory) {
        sink.on_memory(s);
    }
    for (const auto &[child, samples] : profile.children) {
        for (const MemorySample &s : samples) {
            sink.on_child(child, s);
        }
    }
    for (const FunctionSpan &span : profile.functions) {
        sink.on_function(span);
    }
}

class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

} // namespace

DatParser::DatParser(std::string source, RecordSink &sink)
    : source_(std::move(source)), sink_(sink) {}

void DatParser::feed(const char *data, size_t size) {
    const char *end = data + size;
    while (data < end) {
        const char *newline = static_cast<const char *>(std::memchr(data, '\n', end - data));
        const char *stop = newline != nullptr ? newline : end;
        if (pending_.size() + static_cast<size_t>(stop - data) > max_line_bytes) {
            throw ProfileFileError(source_ + ": line " + std::to_string(line_number_ + 1) +
                                   ": longer than " + std::to_string(max_line_bytes >> 20) +
                                   " MiB, not a profile record");
        }
        pending_.append(data, stop);
        if (newline == nullptr) {
            return;
        }
        parse_line(pending_, true);
        pending_.clear();
        data = newline + 1;
    }
}

void DatParser::finish() {
    if (!pending_.empty()) {
        parse_line(pending_, false);
        pending_.clear();
    }
}

void DatParser::parse_line(std::string &line, bool has_newline) {
    ++line_number_;
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    auto fail = [&](const std::string &why) {
        const std::string what = has_newline ? why : "truncated record (" + why + ")";
        throw ProfileFileError(source_ + ": line " + std::to_string(line_number_) + ": " + what +
                               ": '" + shorten(line) + "'");
    };
    if (line.find('\0') != std::string::npos) {
        fail("binary data, not a profile");
    }
    std::string_view f[7];
    const size_t n = split_fields(line, f, 7);
    if (n == 0) {
        return;
    }
    const std::string_view tag = f[0];
    if (tag == "CMDLINE") {
        const size_t space = line.find(' ');
        cmdline_ = space == std::string::npos ? "" : line.substr(space + 1);
        sink_.on_cmdline(cmdline_);
        previous_was_cmdline_ = true;
        return;
    }
    if (tag == "MEM") {
        MemorySample s;
        if (n != 3 || !parse_field(f[1], s.mib) || !parse_field(f[2], s.time)) {
            fail("MEM needs <MiB> <time>");
        }
        memory_seen_ = true;
        sink_.on_memory(s);
    } else if (tag == "CHLD") {
        MemorySample s;
        if (n != 4 || !parse_field(f[2], s.mib) || !parse_field(f[3], s.time)) {
            fail("CHLD needs <pid> <MiB> <time>");
        }
        sink_.on_child(std::string(f[1]), s);
    } else if (tag == "FUNC") {
        FunctionSpan span;
        const bool ok =
            (n == 6 || n == 7) && parse_field(f[2], span.mem_start) &&
            parse_field(f[3], span.time_start) && parse_field(f[4], span.mem_end) &&
            parse_field(f[5], span.time_end) && (n == 6 || parse_level(f[6], span.level));
        if (!ok) {
            fail("FUNC needs <name> <MiB> <time> <MiB> <time> [<level>]");
        }
        span.name = std::string(f[1]);
        sink_.on_function(span);
    } else if (previous_was_cmdline_ && !memory_seen_) {
        // Older mprof wrote a command line holding newlines over several lines (its #210).
        cmdline_ += " " + line;
        sink_.on_cmdline(cmdline_);
        return;
    } else {
        fail("not a MEM, CHLD, FUNC or CMDLINE record");
    }
    previous_was_cmdline_ = false;
}

Profile parse_dat(const std::string &text, const std::string &source) {
    ProfileCollector collector;
    DatParser parser(source, collector);
    parser.feed(text.data(), text.size());
    parser.finish();
    return std::move(collector.profile);
}

void read_records(const std::string &path, RecordSink &sink) {
    // O_NONBLOCK: opening a FIFO planted under a profile's name must not wait for a writer.
    const Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) {
        throw ProfileFileError(path + ": cannot open: " + std::strerror(errno));
    }
    struct stat info{};
    if (fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
        // /dev/zero or a FIFO would be read forever.
        throw ProfileFileError(path + ": not a regular file");
    }
    // A JSON profile starts with '{' after any whitespace: look at the first bytes only.
    char head[4096];
    ssize_t got = 0;
    do {
        got = ::pread(fd.get(), head, sizeof(head), 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        throw ProfileFileError(path + ": cannot read: " + std::strerror(errno));
    }
    const std::string_view start(head, static_cast<size_t>(got));
    const size_t first = start.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && start[first] == '{') {
        std::string text;
        std::vector<char> chunk(1 << 16);
        ssize_t n;
        while ((n = ::read(fd.get(), chunk.data(), chunk.size())) != 0) {
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) {
                    continue;
                }
                throw ProfileFileError(path + ": cannot read: " + std::strerror(errno));
            }
            text.append(chunk.data(), static_cast<size_t>(n));
        }
        replay(profile_from_json(text, path), sink);
        return;
    }
    DatParser parser(path, sink);
    feed_file(fd.get(), path, parser);
}

Profile read_profile(const std::string &path) {
    ProfileCollector collector;
    read_records(path, collector);
    return std::move(collector.profile);
}

std::string profile_to_json(const Profile &profile, int indent) {
    using nlohmann::json;
    json memory = json::array();
    for (const MemorySample &s : profile.memory) {
        memory.push_back(nlohmann::json::array({s.mib, s.time}));
    }
    json children = json::object();
    for (const auto &[child, samples] : profile.children) {
        json series = json::array();
        for (const MemorySample &s : samples) {
            series.push_back(nlohmann::json::array({s.mib, s.time}));
        }
        children[child] = series;
    }
    json functions = json::array();
    for (const FunctionSpan &span : profile.functions) {
        functions.push_back({{"name", span.name},
                             {"mem_start", span.mem_start},
                             {"time_start", span.time_start},
                             {"mem_end", span.mem_end},
                             {"time_end", span.time_end},
                             {"level", span.level}});
    }
    const json doc = {{"format", "mprofxx-1"}, {"unit", "MiB"},        {"cmdline", profile.cmdline},
                      {"memory", memory},      {"children", children}, {"functions", functions}};
    // A command line or function name from a .dat file may hold bytes that are not UTF-8
    // (a Latin-1 file name): JSON carries them as U+FFFD instead of failing the conversion.
    return doc.dump(indent, ' ', false, json::error_handler_t::replace) + "\n";
}

Profile profile_from_json(const std::string &text, const std::string &source) {
    using nlohmann::json;
    Profile profile;
    try {
        const json doc = json::parse(text);
        auto samples_from = [](const json &series) {
            std::vector<MemorySample> out;
            for (const json &pair : series) {
                out.push_back({pair.at(0).get<double>(), pair.at(1).get<double>()});
            }
            return out;
        };
        profile.cmdline = doc.value("cmdline", "");
        profile.memory = samples_from(doc.at("memory"));
        const json children = doc.value("children", json::object());
        for (const auto &[child, series] : children.items()) {
            profile.children[child] = samples_from(series);
        }
        for (const json &f : doc.value("functions", json::array())) {
            profile.functions.push_back(
                {f.at("name").get<std::string>(), f.at("mem_start").get<double>(),
                 f.at("time_start").get<double>(), f.at("mem_end").get<double>(),
                 f.at("time_end").get<double>(), f.value("level", 0)});
        }
    } catch (const json::exception &e) {
        // nlohmann quotes the bytes it choked on: keep the message one printable ASCII line.
        std::string why = e.what();
        for (char &c : why) {
            const auto byte = static_cast<unsigned char>(c);
            c = byte < 0x20 || byte >= 0x7f ? '?' : c;
        }
        throw ProfileFileError(source + ": not an mprofxx JSON profile: " + why);
    }
    return profile;
}

} // namespace memxx::mprof
