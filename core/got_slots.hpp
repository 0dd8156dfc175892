// The GOT slots of a loaded ELF object: where its calls to a named external function look up the
// address to jump to (JUMP_SLOT: calls through the PLT; GLOB_DAT: a function's address taken or
// called through the GOT under -fno-plt). Writing a slot redirects every call the object makes to
// that function, without LD_PRELOAD and without restarting the process.
//
// Pure C++ (no Python). `for_each_got_slot` must be called from a dl_iterate_phdr callback (the
// loader's lock keeps the object loaded); `write_got_slot` while the object cannot be unloaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <link.h>

namespace memxx::core {

// The part of an object that the loader makes read-only after relocation (PT_GNU_RELRO, whole
// pages only); slots inside it must be made writable to be written.
struct ReadOnlyAfterRelocation {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;
    bool contains(std::uintptr_t address) const noexcept {
        return address >= begin && address < end;
    }
};
ReadOnlyAfterRelocation relro_pages(const dl_phdr_info &object) noexcept;

// Calls visit(symbol_name, slot) for each JUMP_SLOT and GLOB_DAT relocation of the object that
// names a symbol. A slot appears once per relocation (an object may have both kinds for one name).
using GotSlotVisitor = void (*)(const char *symbol, void **slot, void *context);
void for_each_got_slot(const dl_phdr_info &object, GotSlotVisitor visit, void *context) noexcept;

// Stores values[i] in slots[i], lifting the read-only protection of the object's RELRO pages
// (once for the batch) where a slot lies in them. False when those pages cannot be made
// writable: the slots in them are then left as they were.
bool write_got_slots(void **const *slots, void *const *values, std::size_t count,
                     const ReadOnlyAfterRelocation &relro) noexcept;

} // namespace memxx::core
