#include "core/got_slots.hpp"

#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

namespace memxx::core {

namespace {

#if defined(__x86_64__)
constexpr std::uint32_t kJumpSlot = R_X86_64_JUMP_SLOT;
constexpr std::uint32_t kGlobDat = R_X86_64_GLOB_DAT;
constexpr std::uint32_t kAbsoluteWord = R_X86_64_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kJumpSlot = R_AARCH64_JUMP_SLOT;
constexpr std::uint32_t kGlobDat = R_AARCH64_GLOB_DAT;
constexpr std::uint32_t kAbsoluteWord = R_AARCH64_ABS64;
#else
#error "GOT slots: only x86_64 and aarch64 relocations are known"
#endif

std::uintptr_t page_size() noexcept {
    static const auto size = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    return size;
}

struct DynamicTables {
    const ElfW(Sym) *symbols = nullptr;
    const char *strings = nullptr;
    std::size_t strings_size = 0;
    const ElfW(Rela) *relocations = nullptr; // DT_RELA
    std::size_t relocations_size = 0;
    const ElfW(Rela) *plt_relocations = nullptr; // DT_JMPREL, when DT_PLTREL is DT_RELA
    std::size_t plt_relocations_size = 0;
};

// glibc stores the dynamic section's addresses relocated on most targets, but not everywhere (a
// read-only dynamic section, the vDSO): an address outside the object's own mapping is still
// relative to its load address.
struct Mapping {
    std::uintptr_t begin = UINTPTR_MAX;
    std::uintptr_t end = 0;
};

Mapping object_mapping(const dl_phdr_info &object) noexcept {
    Mapping mapping;
    for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
        const ElfW(Phdr) &segment = object.dlpi_phdr[i];
        if (segment.p_type == PT_LOAD) {
            const std::uintptr_t begin = object.dlpi_addr + segment.p_vaddr;
            mapping.begin = begin < mapping.begin ? begin : mapping.begin;
            const std::uintptr_t end = begin + segment.p_memsz;
            mapping.end = end > mapping.end ? end : mapping.end;
        }
    }
    return mapping;
}

template <class T> const T *dynamic_address(ElfW(Addr) value, const dl_phdr_info &object,
                                            const Mapping &mapping) noexcept {
    std::uintptr_t address = value;
    if (address < mapping.begin || address >= mapping.end) {
        address += object.dlpi_addr;
    }
    return reinterpret_cast<const T *>(address);
}

bool read_dynamic(const dl_phdr_info &object, DynamicTables *tables) noexcept {
    const ElfW(Dyn) *dynamic = nullptr;
    for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
        if (object.dlpi_phdr[i].p_type == PT_DYNAMIC) {
            dynamic = reinterpret_cast<const ElfW(Dyn) *>(object.dlpi_addr +
                                                          object.dlpi_phdr[i].p_vaddr);
        }
    }
    if (dynamic == nullptr) {
        return false;
    }
    const Mapping mapping = object_mapping(object);
    bool plt_is_rela = true;
    for (const ElfW(Dyn) *entry = dynamic; entry->d_tag != DT_NULL; ++entry) {
        switch (entry->d_tag) {
        case DT_SYMTAB:
            tables->symbols = dynamic_address<ElfW(Sym)>(entry->d_un.d_ptr, object, mapping);
            break;
        case DT_STRTAB:
            tables->strings = dynamic_address<char>(entry->d_un.d_ptr, object, mapping);
            break;
        case DT_STRSZ:
            tables->strings_size = entry->d_un.d_val;
            break;
        case DT_RELA:
            tables->relocations = dynamic_address<ElfW(Rela)>(entry->d_un.d_ptr, object, mapping);
            break;
        case DT_RELASZ:
            tables->relocations_size = entry->d_un.d_val;
            break;
        case DT_JMPREL:
            tables->plt_relocations =
                dynamic_address<ElfW(Rela)>(entry->d_un.d_ptr, object, mapping);
            break;
        case DT_PLTRELSZ:
            tables->plt_relocations_size = entry->d_un.d_val;
            break;
        case DT_PLTREL:
            plt_is_rela = entry->d_un.d_val == DT_RELA;
            break;
        default:
            break;
        }
    }
    if (!plt_is_rela) {
        tables->plt_relocations = nullptr;
    }
    return tables->symbols != nullptr && tables->strings != nullptr;
}

void visit_relocations(const dl_phdr_info &object, const DynamicTables &tables,
                       const ElfW(Rela) *relocations, std::size_t bytes, GotSlotVisitor visit,
                       void *context) noexcept {
    if (relocations == nullptr) {
        return;
    }
    const std::size_t count = bytes / sizeof(ElfW(Rela));
    for (std::size_t i = 0; i < count; ++i) {
        const ElfW(Rela) &relocation = relocations[i];
        const auto type = static_cast<std::uint32_t>(ELF64_R_TYPE(relocation.r_info));
        const auto symbol = static_cast<std::size_t>(ELF64_R_SYM(relocation.r_info));
        const bool got = type == kJumpSlot || type == kGlobDat;
        // An addend makes the word point past the function (a member of a symbol's data).
        const bool data = type == kAbsoluteWord && relocation.r_addend == 0;
        if ((!got && !data) || symbol == 0) {
            continue;
        }
        const std::size_t name = tables.symbols[symbol].st_name;
        if (name == 0 || (tables.strings_size != 0 && name >= tables.strings_size)) {
            continue;
        }
        auto **slot = reinterpret_cast<void **>(object.dlpi_addr + relocation.r_offset);
        visit(tables.strings + name, slot, got ? SlotKind::got : SlotKind::data, context);
    }
}

} // namespace

ReadOnlyAfterRelocation relro_pages(const dl_phdr_info &object) noexcept {
    ReadOnlyAfterRelocation relro;
    for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
        const ElfW(Phdr) &segment = object.dlpi_phdr[i];
        if (segment.p_type == PT_GNU_RELRO) {
            // The loader protects whole pages only: the last partial page stays writable.
            const std::uintptr_t mask = ~(page_size() - 1);
            relro.begin = (object.dlpi_addr + segment.p_vaddr) & mask;
            relro.end = (object.dlpi_addr + segment.p_vaddr + segment.p_memsz) & mask;
        }
    }
    return relro;
}

void for_each_got_slot(const dl_phdr_info &object, GotSlotVisitor visit, void *context) noexcept {
    DynamicTables tables;
    if (!read_dynamic(object, &tables)) {
        return;
    }
    visit_relocations(object, tables, tables.plt_relocations, tables.plt_relocations_size, visit,
                      context);
    visit_relocations(object, tables, tables.relocations, tables.relocations_size, visit, context);
}

bool write_got_slots(void **const *slots, void *const *values, std::size_t count,
                     const ReadOnlyAfterRelocation &relro) noexcept {
    bool in_relro = false;
    for (std::size_t i = 0; i < count; ++i) {
        in_relro = in_relro || relro.contains(reinterpret_cast<std::uintptr_t>(slots[i]));
    }
    void *const pages = reinterpret_cast<void *>(relro.begin);
    const std::size_t length = relro.end - relro.begin;
    const bool writable = !in_relro || mprotect(pages, length, PROT_READ | PROT_WRITE) == 0;
    for (std::size_t i = 0; i < count; ++i) {
        if (writable || !relro.contains(reinterpret_cast<std::uintptr_t>(slots[i]))) {
            // One aligned word: a thread calling through the slot sees the old or the new target.
            __atomic_store_n(slots[i], values[i], __ATOMIC_RELEASE);
        }
    }
    if (in_relro && writable) {
        mprotect(pages, length, PROT_READ);
    }
    return writable;
}

} // namespace memxx::core
