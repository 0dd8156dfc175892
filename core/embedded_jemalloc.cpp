#include "core/embedded_jemalloc.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <elf.h>
#include <fcntl.h>
#include <string_view>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc_accounting.hpp"
#include "core/mapped_pages.hpp"

namespace memxx::core::embedded {

namespace {

using namespace accounting;

// jemalloc's hook API (include/jemalloc/internal/hook.h, 5.1 to 5.3): the kinds of call each
// hook hears, in jemalloc's order, and the hooks' signatures.
enum AllocKind : int {
    alloc_malloc,
    alloc_posix_memalign,
    alloc_aligned_alloc,
    alloc_calloc,
    alloc_memalign,
    alloc_valloc,
    alloc_mallocx,
    alloc_realloc,
    alloc_rallocx,
};
enum ExpandKind : int { expand_realloc, expand_rallocx, expand_xallocx };

using AllocHook = void (*)(void *extra, int kind, void *result, std::uintptr_t result_raw,
                           std::uintptr_t args[3]);
using FreeHook = void (*)(void *extra, int kind, void *address, std::uintptr_t args[3]);
using ExpandHook = void (*)(void *extra, int kind, void *address, std::size_t old_usable,
                            std::size_t new_usable, std::uintptr_t result_raw,
                            std::uintptr_t args[4]);
struct Hooks {
    AllocHook alloc;
    FreeHook free;
    ExpandHook expand;
    void *extra;
};
using Mallctl = int (*)(const char *name, void *old_value, std::size_t *old_length,
                        void *new_value, std::size_t new_length);

std::atomic<bool> g_counting{false};

// The mappings adopted at the session's start, until an embedded jemalloc claims one.
struct Adopted {
    std::uintptr_t begin;
    std::uintptr_t end;
    std::atomic<bool> claimed;
};
constexpr std::size_t kMaxAdopted = 64;
std::array<Adopted, kMaxAdopted> g_adopted;
std::atomic<std::size_t> g_adopted_count{0};
std::atomic<std::size_t> g_unclaimed{0};

// The code of the jemallocs our hooks are installed in.
struct CodeRange {
    std::atomic<std::uintptr_t> begin{0};
    std::atomic<std::uintptr_t> end{0};
};
constexpr std::size_t kMaxHooked = 8;
std::array<CodeRange, kMaxHooked> g_hooked_code;

__attribute__((noinline)) void claim_adopted(std::uintptr_t address) noexcept {
    const std::size_t count = g_adopted_count.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < count; ++i) {
        Adopted &mapping = g_adopted[i];
        if (mapping.begin <= address && address < mapping.end &&
            !mapping.claimed.exchange(true, std::memory_order_acq_rel)) {
            g_unclaimed.fetch_sub(1, std::memory_order_relaxed);
            pages::disown(mapping.begin, mapping.end);
        }
    }
}

inline bool counting_here() noexcept {
    return !t_in_hook && g_counting.load(std::memory_order_relaxed);
}

// The size the caller asked for, from the call's raw arguments.
std::size_t requested(int kind, const std::uintptr_t args[3]) noexcept {
    switch (kind) {
    case alloc_malloc:
    case alloc_valloc:
    case alloc_mallocx:
        return args[0];
    case alloc_posix_memalign: // (result pointer, alignment, size)
        return args[2];
    case alloc_aligned_alloc: // (alignment, size)
    case alloc_memalign:
    case alloc_realloc: // (old block, size): the moved half of a realloc
    case alloc_rallocx:
        return args[1];
    case alloc_calloc: // (count, size), already checked for overflow by jemalloc
        return args[0] * args[1];
    default:
        return 0;
    }
}

// After the allocation: the block is the caller's.
void on_alloc(void *, int kind, void *result, std::uintptr_t result_raw,
              std::uintptr_t args[3]) {
    const bool failed = kind == alloc_posix_memalign ? result_raw != 0 : result == nullptr;
    if (failed || !counting_here()) {
        return;
    }
    ReentrancyGuard guard;
    const auto address = reinterpret_cast<std::uintptr_t>(result);
    if (g_unclaimed.load(std::memory_order_relaxed) != 0) {
        claim_adopted(address);
    }
    record_alloc(result, requested(kind, args), Source::native, Guard::none);
}

// Before the free: no other thread can be handed the address before the table forgets it.
void on_free(void *, int, void *address, std::uintptr_t[3]) {
    if (address == nullptr || !counting_here()) {
        return;
    }
    ReentrancyGuard guard;
    record_free(address, Source::native);
}

// A realloc that kept its block: (block, size) for realloc and rallocx; xallocx's size is what
// it made usable.
void on_expand(void *, int kind, void *address, std::size_t, std::size_t new_usable,
               std::uintptr_t, std::uintptr_t args[4]) {
    if (!counting_here()) {
        return;
    }
    ReentrancyGuard guard;
    const std::size_t size = kind == expand_xallocx ? new_usable : args[1];
    record_resize_in_place(address, size, Source::native);
}

// --- finding it --------------------------------------------------------------------------------

// An ELF file mapped read-only for as long as it is read.
class MappedFile {
  public:
    explicit MappedFile(const char *path) noexcept {
        const int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            return;
        }
        struct stat status {};
        if (fstat(fd, &status) == 0 && S_ISREG(status.st_mode) &&
            static_cast<std::size_t>(status.st_size) >= sizeof(Elf64_Ehdr)) {
            void *mapped = mmap(nullptr, static_cast<std::size_t>(status.st_size), PROT_READ,
                                MAP_PRIVATE, fd, 0);
            if (mapped != MAP_FAILED) {
                bytes_ = static_cast<const unsigned char *>(mapped);
                size_ = static_cast<std::size_t>(status.st_size);
            }
        }
        close(fd);
    }
    ~MappedFile() {
        if (bytes_ != nullptr) {
            munmap(const_cast<unsigned char *>(bytes_), size_);
        }
    }
    MappedFile(const MappedFile &) = delete;
    MappedFile &operator=(const MappedFile &) = delete;

    // `count` objects of T at `offset`, or nullptr when the file is shorter.
    template <class T> const T *at(std::uint64_t offset, std::uint64_t count = 1) const noexcept {
        if (bytes_ == nullptr || offset > size_ || count > (size_ - offset) / sizeof(T)) {
            return nullptr;
        }
        return reinterpret_cast<const T *>(bytes_ + offset);
    }

  private:
    const unsigned char *bytes_ = nullptr;
    std::size_t size_ = 0;
};

constexpr std::size_t kSuffixLength = 7; // "mallctl", "mallocx"

// Where the loaded object's code for the symbol at `value` lies, if a PT_LOAD segment maps it;
// its offset in the file through `file_offset`.
const void *loaded_code(const dl_phdr_info &object, std::uint64_t value,
                        std::uint64_t *file_offset) noexcept {
    for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
        const ElfW(Phdr) &segment = object.dlpi_phdr[i];
        if (segment.p_type == PT_LOAD && (segment.p_flags & PF_X) != 0 &&
            segment.p_vaddr <= value && value < segment.p_vaddr + segment.p_filesz) {
            *file_offset = value - segment.p_vaddr + segment.p_offset;
            return reinterpret_cast<const void *>(object.dlpi_addr + value);
        }
    }
    return nullptr;
}

// The lowest start (or highest end, `upper`) of the functions named with `prefix`, their cold
// parts left out (the compiler puts those apart from the rest).
std::uint64_t code_bounds(const Elf64_Sym *symbols, std::size_t count, const char *names,
                          std::size_t names_size, std::string_view prefix, bool upper) noexcept {
    std::uint64_t bound = upper ? 0 : UINT64_MAX;
    for (std::size_t i = 0; i < count; ++i) {
        const Elf64_Sym &symbol = symbols[i];
        if (ELF64_ST_TYPE(symbol.st_info) != STT_FUNC || symbol.st_shndx == SHN_UNDEF ||
            symbol.st_name >= names_size) {
            continue;
        }
        const std::string_view name(names + symbol.st_name,
                                    strnlen(names + symbol.st_name, names_size - symbol.st_name));
        if (name.substr(0, prefix.size()) != prefix || name.find(".cold") != std::string_view::npos) {
            continue;
        }
        bound = upper ? std::max(bound, symbol.st_value + symbol.st_size)
                      : std::min(bound, symbol.st_value);
    }
    return bound;
}

// jemalloc 5.1 or later: the hook API's first release.
bool hooks_available(Mallctl mallctl) noexcept {
    const char *version = nullptr;
    std::size_t length = sizeof(version);
    if (mallctl("version", &version, &length, nullptr, 0) != 0 || version == nullptr) {
        return false;
    }
    int major = 0;
    int minor = 0;
    return std::sscanf(version, "%d.%d", &major, &minor) == 2 && major == 5 && minor >= 1;
}

} // namespace

Jemalloc find_jemalloc(const dl_phdr_info &object) noexcept {
    if (object.dlpi_name == nullptr || object.dlpi_name[0] != '/') {
        return {};
    }
    ReentrancyGuard guard;
    MappedFile file(object.dlpi_name);
    const auto *header = file.at<Elf64_Ehdr>(0);
    if (header == nullptr || std::memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 ||
        header->e_ident[EI_CLASS] != ELFCLASS64 || header->e_shentsize != sizeof(Elf64_Shdr)) {
        return {};
    }
    const auto *sections = file.at<Elf64_Shdr>(header->e_shoff, header->e_shnum);
    if (sections == nullptr) {
        return {};
    }
    for (std::size_t s = 0; s < header->e_shnum; ++s) {
        const Elf64_Shdr &table = sections[s];
        if (table.sh_type != SHT_SYMTAB || table.sh_link >= header->e_shnum ||
            table.sh_entsize != sizeof(Elf64_Sym)) {
            continue;
        }
        const Elf64_Shdr &names_section = sections[table.sh_link];
        const auto *symbols = file.at<Elf64_Sym>(table.sh_offset, table.sh_size / sizeof(Elf64_Sym));
        const auto *names = file.at<char>(names_section.sh_offset, names_section.sh_size);
        if (symbols == nullptr || names == nullptr) {
            continue;
        }
        // "<prefix>mallctl" beside "<prefix>mallocx", with a prefix: the process's own malloc,
        // if it is a jemalloc, is counted through its malloc slots already.
        constexpr std::size_t kMaxCandidates = 8;
        std::array<const Elf64_Sym *, kMaxCandidates> mallctls{};
        std::array<std::string_view, kMaxCandidates> prefixes{};
        std::array<std::string_view, kMaxCandidates> mallocx_prefixes{};
        std::size_t found = 0;
        std::size_t found_mallocx = 0;
        for (std::size_t i = 0; i < table.sh_size / sizeof(Elf64_Sym); ++i) {
            const Elf64_Sym &symbol = symbols[i];
            if (ELF64_ST_TYPE(symbol.st_info) != STT_FUNC || symbol.st_shndx == SHN_UNDEF ||
                symbol.st_name >= names_section.sh_size) {
                continue;
            }
            const std::string_view name(
                names + symbol.st_name, strnlen(names + symbol.st_name,
                                                names_section.sh_size - symbol.st_name));
            if (name.size() <= kSuffixLength) {
                continue;
            }
            const std::string_view prefix = name.substr(0, name.size() - kSuffixLength);
            const std::string_view suffix = name.substr(name.size() - kSuffixLength);
            if (suffix == "mallctl" && found < kMaxCandidates) {
                mallctls[found] = &symbol;
                prefixes[found++] = prefix;
            } else if (suffix == "mallocx" && found_mallocx < kMaxCandidates) {
                mallocx_prefixes[found_mallocx++] = prefix;
            }
        }
        for (std::size_t c = 0; c < found; ++c) {
            bool paired = false;
            for (std::size_t m = 0; m < found_mallocx; ++m) {
                paired = paired || mallocx_prefixes[m] == prefixes[c];
            }
            // The loaded code must be the file's: the file may have been replaced since.
            std::uint64_t offset = 0;
            const void *code = paired ? loaded_code(object, mallctls[c]->st_value, &offset) : nullptr;
            constexpr std::size_t kCompared = 32;
            const auto *on_disk = file.at<unsigned char>(offset, kCompared);
            if (code == nullptr || on_disk == nullptr ||
                std::memcmp(code, on_disk, kCompared) != 0) {
                continue;
            }
            auto mallctl = reinterpret_cast<Mallctl>(const_cast<void *>(code));
            if (hooks_available(mallctl)) {
                return Jemalloc{const_cast<void *>(code),
                                object.dlpi_addr + code_bounds(symbols, table.sh_size / sizeof(Elf64_Sym),
                                                               names, names_section.sh_size,
                                                               prefixes[c], false),
                                object.dlpi_addr + code_bounds(symbols, table.sh_size / sizeof(Elf64_Sym),
                                                               names, names_section.sh_size,
                                                               prefixes[c], true)};
            }
        }
    }
    return {};
}

void *install_hooks(const Jemalloc &jemalloc) noexcept {
    CodeRange *free_range = nullptr;
    for (CodeRange &range : g_hooked_code) {
        if (range.begin.load(std::memory_order_relaxed) == 0) {
            free_range = &range;
            break;
        }
    }
    if (free_range == nullptr) {
        return nullptr;
    }
    ReentrancyGuard guard;
    Hooks hooks{on_alloc, on_free, on_expand, nullptr};
    void *handle = nullptr;
    std::size_t length = sizeof(handle);
    const int error = reinterpret_cast<Mallctl>(jemalloc.mallctl)(
        "experimental.hooks.install", &handle, &length, &hooks, sizeof(hooks));
    if (error != 0 || handle == nullptr) {
        return nullptr;
    }
    free_range->end.store(jemalloc.code_end, std::memory_order_relaxed);
    free_range->begin.store(jemalloc.code_begin, std::memory_order_release);
    return handle;
}

void remove_hooks(const Jemalloc &jemalloc, void *handle) noexcept {
    ReentrancyGuard guard;
    reinterpret_cast<Mallctl>(jemalloc.mallctl)("experimental.hooks.remove", nullptr, nullptr,
                                                &handle, sizeof(handle));
    for (CodeRange &range : g_hooked_code) {
        if (range.begin.load(std::memory_order_relaxed) == jemalloc.code_begin) {
            range.begin.store(0, std::memory_order_release);
        }
    }
}

bool called_by_hooked_jemalloc(const void *return_address) noexcept {
    const auto address = reinterpret_cast<std::uintptr_t>(return_address);
    for (const CodeRange &range : g_hooked_code) {
        const std::uintptr_t begin = range.begin.load(std::memory_order_acquire);
        if (begin != 0 && begin <= address && address < range.end.load(std::memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

void set_counting(bool on) noexcept { g_counting.store(on, std::memory_order_release); }

void note_adopted(std::uintptr_t begin, std::uintptr_t end) noexcept {
    const std::size_t count = g_adopted_count.load(std::memory_order_relaxed);
    if (count == kMaxAdopted) {
        return;
    }
    g_adopted[count].begin = begin;
    g_adopted[count].end = end;
    g_adopted[count].claimed.store(false, std::memory_order_relaxed);
    g_adopted_count.store(count + 1, std::memory_order_release);
    g_unclaimed.fetch_add(1, std::memory_order_relaxed);
}

void forget_adopted() noexcept {
    g_unclaimed.store(0, std::memory_order_relaxed);
    g_adopted_count.store(0, std::memory_order_release);
}

} // namespace memxx::core::embedded
