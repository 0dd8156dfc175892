// The recorder's own-memory figure as the run reads it: what the program publishes is what the
// run's view reads, through a page of a memory file shared by descriptor; a forked child's
// figure never replaces its parent's; a descriptor that is not a page long is refused.
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/own_memory.hpp"

using namespace memxx::core;

namespace {

int page_file() {
    const int fd = memfd_create("test-own-memory", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, sysconf(_SC_PAGESIZE)) == 0);
    return fd;
}

} // namespace

TEST_CASE("the run's view reads what the program publishes") {
    const int fd = page_file();
    OwnMemoryView view(fd);
    CHECK(view.bytes() == 0);
    REQUIRE(own_memory_share(fd));
    own_memory_publish(85 * 1024 * 1024 + 17);
    CHECK(view.bytes() == 85 * 1024 * 1024 + 17);
    own_memory_publish(0);
    CHECK(view.bytes() == 0);
    close(fd);
}

TEST_CASE("a forked child's figure is not its parent's") {
    const int fd = page_file();
    OwnMemoryView view(fd);
    REQUIRE(own_memory_share(fd));
    own_memory_publish(4096);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        own_memory_publish(1); // its own tables: not what the run subtracts
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(view.bytes() == 4096);
    own_memory_publish(0);
    close(fd);
}

TEST_CASE("a descriptor without a page is not shared, and its view reads 0") {
    const int fd = memfd_create("test-own-memory-empty", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK_FALSE(own_memory_share(fd));
    OwnMemoryView view(fd);
    CHECK(view.bytes() == 0);
    CHECK_FALSE(own_memory_share(-1));
    close(fd);
}
