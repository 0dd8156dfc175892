// The .dat writer and reader: what the writer puts down, the reader gives back, in the text
// memory_profiler's mprof reads; and malformed files fail with the line named.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "mprof/dat_file.hpp"

using namespace memxx::mprof;

namespace {

std::string temp_path(const char* name) {
    return "/tmp/memxx_test_" + std::to_string(getpid()) + "_" + name;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

} // namespace

TEST_CASE("records are formatted as memory_profiler writes them") {
    CHECK(format_mem_line({12.5, 1700000000.12345}) == "MEM 12.500000 1700000000.1235\n");
    CHECK(format_child_line("4242", {3.25, 1700000000.5}) ==
          "CHLD 4242 3.250000 1700000000.5000\n");
    CHECK(format_function_line({"__main__.f", 1.5, 10.0, 2.5, 11.0, 1}) ==
          "FUNC __main__.f 1.5000 10.0000 2.5000 11.0000 1\n");
}

TEST_CASE("a written file reads back with every record") {
    const std::string path = temp_path("roundtrip.dat");
    {
        DatWriter writer(path);
        writer.write_cmdline("python 'my script.py'\nsecond line");
        writer.write_sample({10.0, 100.0}, {});
        writer.write_sample({20.0, 100.1}, {{77, {5.0, 100.1}}, {78, {6.0, 100.1}}});
        writer.write_function({"pkg.mod.f", 10.0, 100.0, 20.0, 100.1, 0});
    }
    {
        // The sampler appends after the runner created the file: nothing is lost.
        DatWriter appender(path, DatWriter::Mode::append);
        appender.write_sample({15.0, 100.2}, {{77, {4.0, 100.2}}});
    }
    const Profile p = read_profile(path);
    CHECK(p.cmdline == "python 'my script.py' second line");
    REQUIRE(p.memory.size() == 3);
    CHECK(p.memory[1].mib == Approx(20.0));
    CHECK(p.memory[2].time == Approx(100.2));
    REQUIRE(p.children.at("77").size() == 2);
    CHECK(p.children.at("78")[0].mib == Approx(6.0));
    REQUIRE(p.functions.size() == 1);
    CHECK(p.functions[0].name == "pkg.mod.f");
    CHECK(p.functions[0].time_end == Approx(100.1));

    SECTION("and the same series survives JSON") {
        const Profile back = profile_from_json(profile_to_json(p), "mem");
        CHECK(back.cmdline == p.cmdline);
        CHECK(back.memory.size() == 3);
        CHECK(back.children.at("77")[1].mib == Approx(4.0));
        CHECK(back.functions[0].mem_end == Approx(20.0));
    }
    std::remove(path.c_str());
}

TEST_CASE("each write is a whole line on disk at once") {
    const std::string path = temp_path("flush.dat");
    DatWriter writer(path);
    writer.write_sample({1.0, 2.0}, {{5, {3.0, 2.0}}});
    // No close: a reader (or a crash) now sees both lines.
    CHECK(slurp(path) == "MEM 1.000000 2.0000\nCHLD 5 3.000000 2.0000\n");
    writer.close();
    std::remove(path.c_str());
}

TEST_CASE("files from mprof: FUNC without level, blank lines, old multi-line CMDLINE") {
    const Profile p =
        parse_dat("CMDLINE python\nx.py\nMEM 1.5 10.0\n\nFUNC m.f 1.0 10.0 2.0 11.0\n", "old.dat");
    CHECK(p.cmdline == "python x.py");
    CHECK(p.memory.size() == 1);
    REQUIRE(p.functions.size() == 1);
    CHECK(p.functions[0].level == 0);
}

TEST_CASE("malformed files name the file and the line") {
    auto error_of = [](const std::string& text) {
        try {
            parse_dat(text, "bad.dat");
        } catch (const ProfileFileError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error_of("MEM 1.0 2.0\nMEM 1.0 2.0\nhello world\n") ==
          "bad.dat: line 3: not a MEM, CHLD, FUNC or CMDLINE record: 'hello world'");
    CHECK(error_of("MEM 1.0 2.0\nMEM 1.") ==
          "bad.dat: line 2: truncated record (MEM needs <MiB> <time>): 'MEM 1.'");
    CHECK(error_of("MEM abc 2.0\n").find("line 1: MEM needs") != std::string::npos);
    CHECK(error_of(std::string("MEM 1 2\n\0\x01\x02\n", 12)).find("binary data") !=
          std::string::npos);
    CHECK(error_of("FUNC f 1 2 3\n").find("FUNC needs") != std::string::npos);
    CHECK_THROWS_AS(profile_from_json("{\"memory\": 3}", "x.json"), ProfileFileError);
    CHECK_THROWS_AS(read_profile("/nonexistent/dir/x.dat"), ProfileFileError);
}

namespace {

// Counts what a streamed read hands over, keeping nothing else.
struct CountingSink : RecordSink {
    std::string cmdline;
    long memory = 0, children = 0, functions = 0;
    double last_mib = 0;
    void on_cmdline(const std::string& text) override { cmdline = text; }
    void on_memory(const MemorySample& s) override {
        ++memory;
        last_mib = s.mib;
    }
    void on_child(const std::string&, const MemorySample&) override { ++children; }
    void on_function(const FunctionSpan&) override { ++functions; }
};

} // namespace

TEST_CASE("a .dat fed a byte at a time gives the records of the whole text") {
    const std::string text = "CMDLINE python\nx.py\r\nMEM 1.5 10.0\n\nCHLD 7 2.0 10.5\n"
                             "FUNC m.f 1.0 10.0 2.0 11.0 3\nMEM +2.5 0x10\n";
    CountingSink sink;
    DatParser parser("pieces.dat", sink);
    for (char c : text) {
        parser.feed(&c, 1);
    }
    parser.finish();
    CHECK(sink.cmdline == "python x.py");
    CHECK(sink.memory == 2);
    CHECK(sink.last_mib == 2.5); // what Python's float() reads, strtod reads too
    CHECK(sink.children == 1);
    CHECK(sink.functions == 1);
}

TEST_CASE("a line longer than a record can be is refused, not held") {
    CountingSink sink;
    DatParser parser("long.dat", sink);
    const std::string piece(1 << 20, 'x');
    std::string error;
    try {
        for (int i = 0; i < 17; ++i) {
            parser.feed(piece.data(), piece.size());
        }
    } catch (const ProfileFileError& e) {
        error = e.what();
    }
    CHECK(error == "long.dat: line 1: longer than 16 MiB, not a profile record");
}

TEST_CASE("a FUNC level beyond an int is a malformed record") {
    CHECK_THROWS_AS(parse_dat("FUNC m.f 1 2 3 4 1e300\n", "level.dat"), ProfileFileError);
    CHECK(parse_dat("FUNC m.f 1 2 3 4 2000000000\n", "level.dat").functions[0].level ==
          2000000000);
}
