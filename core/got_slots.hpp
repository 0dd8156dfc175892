// The slots of a loaded ELF object that hold the address of a named external function: where its
// calls look up the address to jump to (JUMP_SLOT: calls through the PLT; GLOB_DAT: a function's
// address taken or called through the GOT under -fno-plt), and the words of its data that the
// loader set to that address (R_X86_64_64: a function pointer in a table or a global, such as
// libxml2's `xmlMalloc = malloc`). Writing a slot redirects every call the object makes through
// it, without LD_PRELOAD and without restarting the process.
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

// What a slot is: a GOT entry (JUMP_SLOT, GLOB_DAT), only ever written by the loader; or a word
// of the object's data that the loader set to the function's address, which the object's own
// code may overwrite later (a library's allocator setter): write it only while it still holds
// the function's address.
enum class SlotKind { got, data };

// Calls visit(symbol_name, slot, kind) for each JUMP_SLOT, GLOB_DAT and word-sized absolute
// relocation (R_X86_64_64 without addend) of the object that names a symbol. A slot appears once
// per relocation (an object may have several kinds for one name).
using GotSlotVisitor = void (*)(const char *symbol, void **slot, SlotKind kind, void *context);
void for_each_got_slot(const dl_phdr_info &object, GotSlotVisitor visit, void *context) noexcept;

// Stores values[i] in slots[i], lifting the read-only protection of the object's RELRO pages
// (once for the batch) where a slot lies in them. False when those pages cannot be made
// writable: the slots in them are then left as they were.
bool write_got_slots(void **const *slots, void *const *values, std::size_t count,
                     const ReadOnlyAfterRelocation &relro) noexcept;

} // namespace memxx::core
