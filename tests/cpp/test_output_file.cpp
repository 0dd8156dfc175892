// The one output writer: what it refuses (links, FIFOs), what it leaves on disk (the whole new
// content, no temporary file), and open_output's append and truncate modes.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "mprof/output_file.hpp"

using namespace memxx::mprof;

namespace {

// A fresh directory of its own, so that "no temporary file left" can be checked by listing it.
std::string fresh_dir(const char *name) {
    std::string dir = "/tmp/memxx_out_" + std::to_string(getpid()) + "_" + name;
    mkdir(dir.c_str(), 0700);
    return dir;
}

std::string slurp(const std::string &path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

int entries(const std::string &dir) {
    int n = 0;
    DIR *d = opendir(dir.c_str());
    while (dirent *e = readdir(d)) {
        n += e->d_name[0] != '.' || std::string(e->d_name).rfind(".memxx-", 0) == 0;
    }
    closedir(d);
    return n;
}

} // namespace

TEST_CASE("write_output replaces the whole content and leaves no temporary file") {
    const std::string dir = fresh_dir("whole");
    const std::string path = dir + "/out.txt";
    write_output(path, "first version, longer\n");
    write_output(path, "second\n");
    CHECK(slurp(path) == "second\n");
    CHECK(entries(dir) == 1);
}

TEST_CASE("a planted symbolic link is refused and its target is not written") {
    const std::string dir = fresh_dir("link");
    const std::string victim = dir + "/victim.txt";
    const std::string link = dir + "/out.txt";
    write_output(victim, "precious\n");
    REQUIRE(symlink(victim.c_str(), link.c_str()) == 0);
    CHECK_THROWS_WITH(write_output(link, "x"), Catch::Contains("is a symbolic link"));
    CHECK_THROWS_WITH(open_output(link, OutputMode::append), Catch::Contains("is a symbolic link"));
    CHECK(slurp(victim) == "precious\n");
    CHECK(entries(dir) == 2);
}

TEST_CASE("a FIFO is refused without waiting for a reader") {
    const std::string dir = fresh_dir("fifo");
    const std::string fifo = dir + "/out.fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(open_output(fifo, OutputMode::truncate),
                      Catch::Contains("not a regular file"));
    CHECK_THROWS_WITH(write_output(fifo, "x"), Catch::Contains("not a regular file"));
}

TEST_CASE("open_output appends, or empties the file only once it is checked") {
    const std::string dir = fresh_dir("open");
    const std::string path = dir + "/out.dat";
    write_output(path, "CMDLINE x\n");
    int fd = open_output(path, OutputMode::append);
    REQUIRE(::write(fd, "MEM 1 2\n", 8) == 8);
    ::close(fd);
    CHECK(slurp(path) == "CMDLINE x\nMEM 1 2\n");
    fd = open_output(path, OutputMode::truncate);
    ::close(fd);
    CHECK(slurp(path).empty());
}

TEST_CASE("a missing directory is one error line naming the path") {
    CHECK_THROWS_WITH(write_output("/nonexistent-dir-memxx/out.txt", "x"),
                      "/nonexistent-dir-memxx/out.txt: cannot write: No such file or directory");
}
