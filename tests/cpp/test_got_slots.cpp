// GOT slots of a loaded object, tested on this test program itself: it calls getpid() through its
// PLT, so it has a slot for it; this program is linked with -z now, so the slot sits in RELRO
// pages that the loader made read-only.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/got_slots.hpp"

using memxx::core::for_each_got_slot;
using memxx::core::ReadOnlyAfterRelocation;
using memxx::core::relro_pages;
using memxx::core::SlotKind;
using memxx::core::write_got_slots;

namespace {

struct Found {
    const char *wanted;
    std::vector<void **> slots;
    std::vector<SlotKind> kinds;
    ReadOnlyAfterRelocation relro;
};

void collect(const char *symbol, void **slot, SlotKind kind, void *context) {
    auto *found = static_cast<Found *>(context);
    if (std::strcmp(symbol, found->wanted) == 0) {
        found->slots.push_back(slot);
        found->kinds.push_back(kind);
    }
}

// Function pointers in this program's data, as libxml2 keeps `xmlMalloc = malloc`: the loader
// writes getppid's address into them (R_X86_64_64), one in writable data, one in RELRO pages.
using PidFunction = pid_t (*)();
PidFunction volatile g_writable_pointer = &getppid;
extern const PidFunction g_read_only_pointer;
const PidFunction g_read_only_pointer = &getppid;
// Read at each call: the compiler may not assume the constant's value.
PidFunction read_only_pointer() {
    return *static_cast<const volatile PidFunction *>(&g_read_only_pointer);
}

int visit_program(dl_phdr_info *info, std::size_t, void *context) {
    auto *found = static_cast<Found *>(context);
    found->relro = relro_pages(*info);
    for_each_got_slot(*info, collect, found);
    return 1; // the program is the first object
}

Found slots_of_program(const char *symbol) {
    Found found{symbol, {}, {}, {}};
    dl_iterate_phdr(visit_program, &found);
    return found;
}

pid_t fake_getpid() { return 424242; }

// The permissions /proc/self/maps gives the page holding `address` ("r--p", "rw-p", ...).
std::string page_permissions(const void *address) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    const auto target = reinterpret_cast<std::uintptr_t>(address);
    while (std::getline(maps, line)) {
        std::uintptr_t begin = 0, end = 0;
        char dash = 0;
        std::string permissions;
        std::istringstream fields(line);
        fields >> std::hex >> begin >> dash >> end >> permissions;
        if (target >= begin && target < end) {
            return permissions;
        }
    }
    return "";
}

} // namespace

TEST_CASE("the program's slot for an imported function holds that function's address") {
    const pid_t real = getpid(); // bound now, whatever the binding mode
    Found found = slots_of_program("getpid");
    REQUIRE(!found.slots.empty());
    for (void **slot : found.slots) {
        CHECK(*slot == reinterpret_cast<void *>(&getpid));
    }
    CHECK(real == getpid());
    CHECK(slots_of_program("no_such_function_here").slots.empty());
}

TEST_CASE("writing the slot redirects the program's calls, in RELRO pages too, and restores") {
    Found found = slots_of_program("getpid");
    REQUIRE(!found.slots.empty());
    void **slot = found.slots.front();
    const pid_t real = getpid();
    REQUIRE(found.relro.contains(reinterpret_cast<std::uintptr_t>(slot))); // linked with -z now
    CHECK(page_permissions(slot).substr(0, 3) == "r--");

    void *original = *slot;
    void *ours = reinterpret_cast<void *>(&fake_getpid);
    REQUIRE(write_got_slots(&slot, &ours, 1, found.relro));
    CHECK(getpid() == 424242);
    // Protected again after the write.
    CHECK(page_permissions(slot).substr(0, 3) == "r--");

    REQUIRE(write_got_slots(&slot, &original, 1, found.relro));
    CHECK(getpid() == real);
    CHECK(*slot == original);
}

TEST_CASE("function pointers in data are data slots, redirected in writable and RELRO pages") {
    Found found = slots_of_program("getppid");
    auto *writable = reinterpret_cast<void **>(const_cast<PidFunction *>(&g_writable_pointer));
    auto *read_only = reinterpret_cast<void **>(const_cast<PidFunction *>(&g_read_only_pointer));
    std::vector<void **> data_slots;
    for (std::size_t i = 0; i < found.slots.size(); ++i) {
        if (found.kinds[i] == SlotKind::data) {
            data_slots.push_back(found.slots[i]);
        }
    }
    REQUIRE(data_slots.size() == 2);
    CHECK(std::count(data_slots.begin(), data_slots.end(), writable) == 1);
    CHECK(std::count(data_slots.begin(), data_slots.end(), read_only) == 1);
    CHECK(found.relro.contains(reinterpret_cast<std::uintptr_t>(read_only)));

    void *ours = reinterpret_cast<void *>(&fake_getpid);
    void *values[2] = {ours, ours};
    REQUIRE(write_got_slots(data_slots.data(), values, 2, found.relro));
    CHECK(g_writable_pointer() == 424242);
    CHECK(read_only_pointer()() == 424242);
    CHECK(page_permissions(read_only).substr(0, 3) == "r--");

    void *real[2] = {reinterpret_cast<void *>(&getppid), reinterpret_cast<void *>(&getppid)};
    REQUIRE(write_got_slots(data_slots.data(), real, 2, found.relro));
    CHECK(g_writable_pointer() == getppid());
    CHECK(read_only_pointer()() == getppid());
}
