#include "mprof/dat_file.hpp"

#include "mprof/output_file.hpp"

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sstream>
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

std::vector<std::string> split_spaces(const std::string &line) {
    std::vector<std::string> fields;
    std::istringstream in(line);
    std::string field;
    while (in >> field) {
        fields.push_back(field);
    }
    return fields;
}

bool parse_number(const std::string &text, double &value) {
    if (text.empty()) {
        return false;
    }
    char *end = nullptr;
    errno = 0;
    value = std::strtod(text.c_str(), &end);
    return errno == 0 && end == text.c_str() + text.size() && std::isfinite(value);
}

bool parse_integer(const std::string &text, int &value) {
    double number = 0;
    if (!parse_number(text, number) || number != std::floor(number)) {
        return false;
    }
    value = static_cast<int>(number);
    return true;
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

Profile parse_dat(const std::string &text, const std::string &source) {
    Profile profile;
    size_t start = 0;
    int line_number = 0;
    bool previous_was_cmdline = false;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        const bool has_newline = end != std::string::npos;
        if (!has_newline) {
            end = text.size();
        }
        std::string line = text.substr(start, end - start);
        start = end + 1;
        ++line_number;
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        auto fail = [&](const std::string &why) {
            const std::string what = has_newline ? why : "truncated record (" + why + ")";
            throw ProfileFileError(source + ": line " + std::to_string(line_number) + ": " + what +
                                   ": '" + shorten(line) + "'");
        };
        if (line.find('\0') != std::string::npos) {
            fail("binary data, not a profile");
        }
        const std::vector<std::string> f = split_spaces(line);
        if (f.empty()) {
            continue;
        }
        const std::string &tag = f[0];
        if (tag == "CMDLINE") {
            const size_t space = line.find(' ');
            profile.cmdline = space == std::string::npos ? "" : line.substr(space + 1);
            previous_was_cmdline = true;
            continue;
        }
        if (tag == "MEM") {
            MemorySample s;
            if (f.size() != 3 || !parse_number(f[1], s.mib) || !parse_number(f[2], s.time)) {
                fail("MEM needs <MiB> <time>");
            }
            profile.memory.push_back(s);
        } else if (tag == "CHLD") {
            MemorySample s;
            if (f.size() != 4 || !parse_number(f[2], s.mib) || !parse_number(f[3], s.time)) {
                fail("CHLD needs <pid> <MiB> <time>");
            }
            profile.children[f[1]].push_back(s);
        } else if (tag == "FUNC") {
            FunctionSpan span;
            span.name = f.size() > 1 ? f[1] : "";
            const bool ok = (f.size() == 6 || f.size() == 7) &&
                            parse_number(f[2], span.mem_start) &&
                            parse_number(f[3], span.time_start) &&
                            parse_number(f[4], span.mem_end) && parse_number(f[5], span.time_end) &&
                            (f.size() == 6 || parse_integer(f[6], span.level));
            if (!ok) {
                fail("FUNC needs <name> <MiB> <time> <MiB> <time> [<level>]");
            }
            profile.functions.push_back(span);
        } else if (previous_was_cmdline && profile.memory.empty()) {
            // Older mprof wrote a command line holding newlines over several lines (its #210).
            profile.cmdline += " " + line;
            continue;
        } else {
            fail("not a MEM, CHLD, FUNC or CMDLINE record");
        }
        previous_was_cmdline = false;
    }
    return profile;
}

Profile read_profile(const std::string &path) {
    // O_NONBLOCK: opening a FIFO planted under a profile's name must not wait for a writer.
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        throw ProfileFileError(path + ": cannot open: " + std::strerror(errno));
    }
    struct stat info{};
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        ::close(fd);
        // /dev/zero or a FIFO would be read forever.
        throw ProfileFileError(path + ": not a regular file");
    }
    std::string text;
    char chunk[1 << 16];
    ssize_t n;
    while ((n = ::read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            const int error = errno;
            ::close(fd);
            throw ProfileFileError(path + ": cannot read: " + std::strerror(error));
        }
        text.append(chunk, static_cast<size_t>(n));
    }
    ::close(fd);
    const size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && text[first] == '{') {
        return profile_from_json(text, path);
    }
    return parse_dat(text, path);
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
