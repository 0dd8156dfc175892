// Fuzz target for the profile readers (.dat text and mprofxx JSON).
//
// The contract checked: any input either parses or throws ProfileFileError, whose message is
// one line; anything else (another exception, a crash, a sanitizer report, a hang) is a bug.
// What parses must survive a round trip through the writer's formats unchanged.
//
// Built with clang's -fsanitize=fuzzer this is a libFuzzer target. Otherwise (GCC, the CI build)
// the main() below is a deterministic mutation loop over the seed files:
//   fuzz_profile_reader --runs N [--seed S] [--timeout SECONDS] seed_file...
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <csignal>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "mprof/dat_file.hpp"
#include "mprof/drawn_profile.hpp"

using memxx::mprof::Profile;
using memxx::mprof::ProfileFileError;

namespace {

[[noreturn]] void fail(const char *what, const std::string &detail) {
    std::fprintf(stderr, "fuzz_profile_reader: %s: %s\n", what, detail.c_str());
    std::abort();
}

void check_error_message(const ProfileFileError &error) {
    const std::string message = error.what();
    if (message.empty() || message.find('\n') != std::string::npos) {
        fail("error message is not one line", message);
    }
    // The sources here are ASCII names, so any other byte came from the input: Python would
    // fail to decode the message (a UnicodeDecodeError instead of the error).
    for (const char c : message) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
            fail("error message holds bytes of the input that are not printable ASCII", message);
        }
    }
}

// JSON replaces bytes that are not UTF-8 by U+FFFD: such strings cannot come back unchanged.
bool is_utf8(const std::string &text) {
    try {
        (void)nlohmann::json(text).dump();
        return true;
    } catch (const nlohmann::json::exception &) {
        return false;
    }
}

bool same_text(const std::string &a, const std::string &b) { return a == b || !is_utf8(a); }

bool same(const Profile &a, const Profile &b) {
    if (!same_text(a.cmdline, b.cmdline) || a.memory.size() != b.memory.size() ||
        a.children.size() != b.children.size() || a.functions.size() != b.functions.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.functions.size(); ++i) {
        if (!same_text(a.functions[i].name, b.functions[i].name) ||
            a.functions[i].level != b.functions[i].level) {
            return false;
        }
    }
    return true;
}

// What parsed must come back from JSON exactly.
void check_round_trip(const Profile &profile) {
    const std::string json = memxx::mprof::profile_to_json(profile);
    Profile again;
    try {
        again = memxx::mprof::profile_from_json(json, "round-trip");
    } catch (const ProfileFileError &error) {
        fail("JSON written from a parsed profile does not read back", error.what());
    }
    if (!same(profile, again)) {
        fail("JSON round trip changed the profile", json.substr(0, 200));
    }
}

// Keeps every record, as parse_dat does, from text fed in pieces.
class Collector : public memxx::mprof::RecordSink {
  public:
    Profile profile;
    void on_cmdline(const std::string &cmdline) override { profile.cmdline = cmdline; }
    void on_memory(const memxx::mprof::MemorySample &s) override { profile.memory.push_back(s); }
    void on_child(const std::string &child, const memxx::mprof::MemorySample &s) override {
        profile.children[child].push_back(s);
    }
    void on_function(const memxx::mprof::FunctionSpan &span) override {
        profile.functions.push_back(span);
    }
};

// The streaming parser, fed 1 to 13 bytes at a time, must give what parsing the whole gives.
void check_pieces(const std::string &text, const Profile *whole) {
    Collector collector;
    memxx::mprof::DatParser parser("fuzz.dat", collector);
    try {
        size_t at = 0;
        for (size_t step = 1; at < text.size(); step = step % 13 + 1) {
            const size_t n = std::min(step, text.size() - at);
            parser.feed(text.data() + at, n);
            at += n;
        }
        parser.finish();
    } catch (const ProfileFileError &error) {
        check_error_message(error);
        if (whole != nullptr) {
            fail("fed in pieces, a text that parses whole was refused", error.what());
        }
        return;
    }
    if (whole == nullptr || !same(*whole, collector.profile) ||
        whole->cmdline != collector.profile.cmdline) {
        fail("fed in pieces, the text parsed differently", text.substr(0, 200));
    }
}

// What peak and plot keep of a file: the first highest sample, and at most 4 samples a column
// (3 columns and the two outside), the peak among them, in file order.
void check_drawn(const std::string &text, const Profile &whole) {
    static const std::string path = "/tmp/fuzz_profile_reader." + std::to_string(getpid());
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
    }
    memxx::mprof::DrawLimits limits;
    limits.columns = 3;
    memxx::mprof::DrawnProfile drawn;
    try {
        drawn = memxx::mprof::read_drawn_profile(path, limits, std::nullopt);
        std::remove(path.c_str());
    } catch (const ProfileFileError &error) {
        std::remove(path.c_str());
        check_error_message(error);
        if (whole.children.size() <= limits.max_children && text.find('{') == std::string::npos) {
            fail("a file that parses was refused for drawing", error.what());
        }
        return;
    }
    if (drawn.summary.memory.samples != static_cast<long>(whole.memory.size()) ||
        drawn.memory.size() > 4 * 5 || drawn.memory.size() > whole.memory.size()) {
        fail("drawn samples are not bounded by the columns", text.substr(0, 200));
    }
    if (!whole.memory.empty()) {
        const auto peak = std::max_element(
            whole.memory.begin(), whole.memory.end(),
            [](const auto &a, const auto &b) { return a.mib < b.mib; });
        const bool kept = std::any_of(drawn.memory.begin(), drawn.memory.end(), [&](const auto &s) {
            return s.mib == peak->mib && s.time == peak->time;
        });
        if (drawn.summary.memory.peak.mib != peak->mib ||
            drawn.summary.memory.peak.time != peak->time || !kept) {
            fail("the peak is not the first highest sample, or was thinned away",
                 text.substr(0, 200));
        }
    }
}

void run_one(const std::string &text) {
    try {
        const Profile whole = memxx::mprof::parse_dat(text, "fuzz.dat");
        check_round_trip(whole);
        check_pieces(text, &whole);
        check_drawn(text, whole);
    } catch (const ProfileFileError &error) {
        check_error_message(error);
        check_pieces(text, nullptr);
    } catch (const std::exception &error) {
        fail("parse_dat threw something other than ProfileFileError", error.what());
    }
    try {
        check_round_trip(memxx::mprof::profile_from_json(text, "fuzz.json"));
    } catch (const ProfileFileError &error) {
        check_error_message(error);
    } catch (const std::exception &error) {
        fail("profile_from_json threw something other than ProfileFileError", error.what());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    run_one(std::string(reinterpret_cast<const char *>(data), size));
    return 0;
}

#ifndef MEMXX_LIBFUZZER

namespace {

// Tokens a profile is made of: mutations that splice them in reach the parser's deeper branches.
const char *const kTokens[] = {"CMDLINE ",
                               "MEM ",
                               "CHLD ",
                               "FUNC ",
                               "\n",
                               " ",
                               "\r\n",
                               "\t",
                               "0",
                               "-1",
                               "1e308",
                               "1e309",
                               "-1e309",
                               "nan",
                               "inf",
                               "2147483648",
                               "-2147483649",
                               "1e300",
                               "0x10",
                               "12.500000",
                               "1700000000.1234",
                               "__main__.f",
                               "{",
                               "}",
                               "[",
                               "]",
                               ",",
                               ":",
                               "\"",
                               "\"memory\"",
                               "\"children\"",
                               "\"functions\"",
                               "\"cmdline\"",
                               "\"level\"",
                               "\"name\"",
                               "\"mem_start\"",
                               "\"time_start\"",
                               "\"mem_end\"",
                               "\"time_end\"",
                               "null",
                               "true",
                               "\"\\u0000\"",
                               "\\",
                               "" /* a NUL byte */,
                               "\xff\xfe",
                               "[[[[[[[[",
                               "]]]]]]]]",
                               "{\"memory\":[[1,2]]}"};

class Mutator {
  public:
    explicit Mutator(std::uint64_t seed) : random_(seed) {}

    std::string mutate(std::string text) {
        const int steps = 1 + static_cast<int>(below(8));
        for (int i = 0; i < steps; ++i) {
            step(text);
        }
        return text;
    }

  private:
    std::size_t below(std::size_t n) { return n == 0 ? 0 : random_() % n; }

    void step(std::string &text) {
        const std::size_t at = below(text.size() + 1);
        switch (below(7)) {
        case 0: // flip a bit
            if (!text.empty()) {
                text[below(text.size())] ^= static_cast<char>(1u << below(8));
            }
            break;
        case 1: // a random byte
            text.insert(at, 1, static_cast<char>(below(256)));
            break;
        case 2: // delete a run
            if (!text.empty()) {
                text.erase(below(text.size()), 1 + below(16));
            }
            break;
        case 3: { // splice a token
            const std::size_t n = sizeof(kTokens) / sizeof(kTokens[0]);
            const std::size_t which = below(n);
            // The NUL token is empty as a C string: insert the byte itself.
            text.insert(at, std::strlen(kTokens[which]) ? kTokens[which] : std::string(1, '\0'));
            break;
        }
        case 4: // duplicate a chunk
            if (!text.empty()) {
                const std::size_t from = below(text.size());
                const std::string chunk = text.substr(from, 1 + below(64));
                text.insert(at, chunk);
            }
            break;
        case 5: // truncate
            text.resize(at);
            break;
        case 6: // replace a digit by another
            for (std::size_t i = at; i < text.size(); ++i) {
                if (text[i] >= '0' && text[i] <= '9') {
                    text[i] = static_cast<char>('0' + below(10));
                    break;
                }
            }
            break;
        }
        if (text.size() > 1 << 16) {
            text.resize(1 << 16);
        }
    }

    std::mt19937_64 random_;
};

std::string slurp(const char *path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        fail("cannot read seed file", path);
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void on_timeout(int) {
    static const char message[] = "fuzz_profile_reader: one input took too long (hang)\n";
    (void)!write(2, message, sizeof(message) - 1);
    _exit(3);
}

} // namespace

int main(int argc, char **argv) {
    long runs = 10000;
    std::uint64_t seed = 1;
    unsigned timeout = 10;
    std::vector<std::string> seeds;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--runs" && i + 1 < argc) {
            runs = std::atol(argv[++i]);
        } else if (arg == "--seed" && i + 1 < argc) {
            seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (arg == "--timeout" && i + 1 < argc) {
            timeout = static_cast<unsigned>(std::atoi(argv[++i]));
        } else {
            seeds.push_back(slurp(argv[i]));
        }
    }
    if (seeds.empty()) {
        std::fprintf(stderr, "usage: %s --runs N [--seed S] [--timeout S] seed_file...\n", argv[0]);
        return 2;
    }
    std::signal(SIGALRM, on_timeout);
    Mutator mutator(seed);
    std::size_t longest = 0;
    for (const std::string &s : seeds) {
        run_one(s);
    }
    // The seeds stay; some mutants join the pool (a ring of 64) so mutations accumulate.
    const std::size_t originals = seeds.size();
    std::vector<std::string> pool = seeds;
    for (long n = 0; n < runs; ++n) {
        std::string input = mutator.mutate(pool[static_cast<std::size_t>(n) % pool.size()]);
        longest = std::max(longest, input.size());
        alarm(timeout);
        run_one(input);
        alarm(0);
        if (n % 7 == 0) {
            if (pool.size() < originals + 64) {
                pool.push_back(std::move(input));
            } else {
                pool[originals + static_cast<std::size_t>(n / 7) % 64] = std::move(input);
            }
        }
    }
    std::printf("fuzz_profile_reader: %ld executions (seed %llu, %zu seed files, longest input "
                "%zu bytes): no crash, no hang, every error one ProfileFileError line\n",
                runs + static_cast<long>(seeds.size()), static_cast<unsigned long long>(seed),
                seeds.size(), longest);
    return 0;
}

#endif
