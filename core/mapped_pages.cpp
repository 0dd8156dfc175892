#include "core/mapped_pages.hpp"

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <functional>
#include <iterator>
#include <linux/perf_event.h>
#include <map>
#include <new>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include <mimalloc.h>

#include "core/alloc_stream.hpp"
#include "core/line_ledger.hpp"
#include "core/session.hpp"
#include "core/spin_lock.hpp"
#include "core/thread_local.hpp"

namespace memxx::core::pages {

std::atomic<bool> g_watching{false};

namespace {

template <class T> using MiVector = std::vector<T, mi_stl_allocator<T>>;

// A tracked page's state: one byte per page, two bits for each observer. The line profiler's:
constexpr std::uint8_t kCounted = 1; // resident, and charged
constexpr std::uint8_t kLazy = 2;    // given back with MADV_FREE while still resident
constexpr std::uint8_t kLineBits = kCounted | kLazy;
// The peak recorder's, the same meanings (set by peak_pass, cleared by the hooks and the pass):
constexpr std::uint8_t kPeakCounted = 4;
constexpr std::uint8_t kPeakLazy = 8;
constexpr std::uint8_t kPeakBits = kPeakCounted | kPeakLazy;

std::uintptr_t page_size() noexcept {
    static const auto size = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    return size;
}
std::uintptr_t round_up(std::size_t length) noexcept {
    return (length + page_size() - 1) & ~(page_size() - 1);
}

// A fault in a region the kernel backs with a huge page makes the whole of it resident.
constexpr std::uintptr_t kHugePage = std::uintptr_t{2} << 20;

struct Tracked {
    std::uintptr_t end;
    MiVector<std::uint8_t> state; // per page, from the mapping's start
    std::uint32_t maker = 0;      // the peak recorder's stack id of the code that mapped it
    bool bystander = false;       // made by a thread that pays nobody: no line counts its pages
};
using TrackedMap = std::map<std::uintptr_t, Tracked, std::less<std::uintptr_t>,
                            mi_stl_allocator<std::pair<const std::uintptr_t, Tracked>>>;

SpinLock g_lock;
TrackedMap *g_tracked = nullptr;       // created at the first mapping, never freed
MiVector<unsigned char> *g_resident;   // mincore's answer, reused
MiVector<std::uintptr_t> *g_windows;   // the huge-page windows faulted in, reused
std::atomic<std::int64_t> g_unclaimed{0}; // bytes given back on unprofiled threads
// A line that ran at least this long (in ticks) ends with a mincore pass over every mapping, so
// that the pages other threads touched meanwhile count for it: 20 times the last pass's cost.
std::atomic<std::uint64_t> g_long_line_ticks{0};
// The peak recorder counts pages (between peak_begin and peak_end); changed under g_lock, read
// without it by the hooks' fast paths.
std::atomic<bool> g_peak_pages{false};

std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
    return __rdtsc();
#else
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
#endif
}

// The pages the peak recorder counted (or found resident) at a hook, by the stack that made
// their mapping. Distinct makers in one range beyond the last slot are put on the root stack.
struct PeakChange {
    static constexpr int kSlots = 8;
    std::uint32_t maker[kSlots];
    std::int64_t pages[kSlots];
    int used = 0;

    void add(std::uint32_t stack, std::int64_t count) noexcept {
        if (count == 0) {
            return;
        }
        for (int i = 0; i < used; ++i) {
            if (maker[i] == stack) {
                pages[i] += count;
                return;
            }
        }
        if (used == kSlots) {
            stack = 0;
            for (int i = 0; i < used; ++i) {
                if (maker[i] == 0) {
                    pages[i] += count;
                    return;
                }
            }
            --used; // the last slot's pages go to the root as well
            count += pages[used];
        }
        maker[used] = stack;
        pages[used] = count;
        ++used;
    }
};

struct Change {
    std::size_t grown = 0; // pages
    std::size_t freed = 0;
    PeakChange peak; // grown first, then freed: a hook counts what it finds, then gives back
};

// The peak recorder's bits of `count` pages brought in line with mincore's `resident`: the pages
// that became resident less those that went away.
std::int64_t peak_sync(std::uint8_t *state, const unsigned char *resident,
                       std::size_t count) noexcept {
    std::int64_t pages = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint8_t peak = state[i] & kPeakBits;
        if ((resident[i] & 1) != 0) {
            if (peak == 0) {
                state[i] |= kPeakCounted;
                ++pages;
            }
        } else if (peak != 0) {
            pages -= (peak & kPeakCounted) != 0 ? 1 : 0;
            state[i] &= kLineBits;
        }
    }
    return pages;
}

// Clears the peak recorder's bits of `count` pages; the counted ones are freed, for `maker`.
void peak_give_back(std::uint8_t *state, std::size_t count, std::uint32_t maker, bool lazily,
                    Change *change) noexcept {
    if (!g_peak_pages) {
        return;
    }
    std::size_t freed = 0;
    for (std::size_t i = 0; i < count; ++i) {
        freed += (state[i] & kPeakCounted) != 0 ? 1 : 0;
        const bool was = (state[i] & kPeakBits) != 0;
        const int lazy = lazily && was ? kPeakLazy : 0;
        state[i] = static_cast<std::uint8_t>((state[i] & kLineBits) | lazy);
    }
    change->peak.add(maker, -static_cast<std::int64_t>(freed));
}

// The calling profiled thread's page faults, as perf_event samples of their addresses.
struct FaultWatcher {
    int fd = -1; // -1: no perf event here; the thread's fault count (getrusage) tells instead
    perf_event_mmap_page *meta = nullptr;
    const char *data = nullptr;
    std::uint64_t data_size = 0;
    std::uint64_t size_mapped = 0;
    long faults = -1;
};
MEMXX_TLS FaultWatcher *t_watcher = nullptr;
MEMXX_TLS std::uint64_t t_line_began = 0; // ticks at the thread's last line boundary
constexpr std::uint64_t kRingPages = 64; // 16 K samples between two line boundaries

void ensure_tables_locked() {
    if (g_tracked == nullptr) {
        g_tracked = new (mi_malloc(sizeof(TrackedMap))) TrackedMap();
        g_resident = new (mi_malloc(sizeof(MiVector<unsigned char>))) MiVector<unsigned char>();
        g_windows = new (mi_malloc(sizeof(MiVector<std::uintptr_t>))) MiVector<std::uintptr_t>();
    }
}

void update_watching_locked() noexcept {
    const bool tracked = g_tracked != nullptr && !g_tracked->empty();
    g_watching.store(tracked || g_unclaimed.load(std::memory_order_relaxed) != 0,
                     std::memory_order_relaxed);
}

// Brings the state of [begin, end) (inside the mapping at map_begin) in line with mincore.
// False when mincore fails (part of the range was unmapped behind our back).
bool sync_range_locked(std::uintptr_t map_begin, Tracked &tracked, std::uintptr_t begin,
                       std::uintptr_t end, Change *change) {
    if (tracked.bystander) {
        return true; // its pages stay uncounted (kLineBits never set), so none is ever freed
    }
    const std::size_t count = (end - begin) / page_size();
    g_resident->resize(count);
    if (mincore(reinterpret_cast<void *>(begin), end - begin, g_resident->data()) != 0) {
        return false;
    }
    std::uint8_t *state = tracked.state.data() + (begin - map_begin) / page_size();
    const unsigned char *resident = g_resident->data();
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint8_t line = state[i] & kLineBits;
        if ((resident[i] & 1) != 0) {
            if (line == 0) {
                state[i] |= kCounted;
                ++change->grown;
            }
        } else if (line != 0) {
            change->freed += line & kCounted;
            state[i] &= ~kLineBits;
        }
    }
    return true;
}

std::size_t counted_pages(const std::uint8_t *state, std::size_t count) noexcept {
    std::size_t counted = 0;
    for (std::size_t i = 0; i < count; ++i) {
        counted += state[i] & kCounted;
    }
    return counted;
}

void full_sync_locked(Change *change) {
    const std::uint64_t start = ticks();
    for (auto it = g_tracked->begin(); it != g_tracked->end();) {
        if (sync_range_locked(it->first, it->second, it->first, it->second.end, change)) {
            ++it;
        } else {
            change->freed += counted_pages(it->second.state.data(), it->second.state.size());
            peak_give_back(it->second.state.data(), it->second.state.size(), it->second.maker,
                           false, change);
            it = g_tracked->erase(it);
        }
    }
    g_long_line_ticks.store(20 * (ticks() - start), std::memory_order_relaxed);
}

// The first tracked mapping that ends after `address`, or end().
TrackedMap::iterator first_overlapping_locked(std::uintptr_t address) {
    auto it = g_tracked->upper_bound(address);
    if (it != g_tracked->begin() && std::prev(it)->second.end > address) {
        --it;
    }
    return it;
}

// The tracked mapping holding `address`, or end().
TrackedMap::iterator mapping_at_locked(std::uintptr_t address) {
    auto it = g_tracked->upper_bound(address);
    if (it == g_tracked->begin()) {
        return g_tracked->end();
    }
    --it;
    return address < it->second.end ? it : g_tracked->end();
}

// Removes [begin, end) from the tracked mappings, splitting those it cuts. Its counted pages
// are freed, unless `moved` is given: it then receives the range's state (0 where untracked).
// True when any of the range was tracked.
// `moved_from` receives the maker and the bystander flag of the first mapping moved.
bool cut_locked(std::uintptr_t begin, std::uintptr_t end, MiVector<std::uint8_t> *moved,
                Change *change, Tracked *moved_from = nullptr) {
    if (moved != nullptr) {
        moved->assign((end - begin) / page_size(), 0);
    }
    bool any = false;
    auto it = g_tracked->upper_bound(begin);
    if (it != g_tracked->begin()) {
        --it;
    }
    while (it != g_tracked->end() && it->first < end) {
        const std::uintptr_t map_begin = it->first;
        const std::uintptr_t map_end = it->second.end;
        if (map_end <= begin) {
            ++it;
            continue;
        }
        const bool first_cut = !any;
        any = true;
        const std::uintptr_t cut_begin = std::max(map_begin, begin);
        const std::uintptr_t cut_end = std::min(map_end, end);
        const std::size_t first = (cut_begin - map_begin) / page_size();
        const std::size_t count = (cut_end - cut_begin) / page_size();
        MiVector<std::uint8_t> state = std::move(it->second.state);
        if (moved != nullptr) {
            if (moved_from != nullptr && first_cut) {
                moved_from->maker = it->second.maker;
                moved_from->bystander = it->second.bystander;
            }
            std::copy_n(state.begin() + first, count,
                        moved->begin() + (cut_begin - begin) / page_size());
        } else {
            change->freed += counted_pages(state.data() + first, count);
            peak_give_back(state.data() + first, count, it->second.maker, false, change);
        }
        const std::uint32_t maker = it->second.maker;
        const bool bystander = it->second.bystander;
        it = g_tracked->erase(it);
        if (map_begin < cut_begin) {
            g_tracked->emplace(map_begin,
                               Tracked{cut_begin,
                                       MiVector<std::uint8_t>(state.begin(), state.begin() + first),
                                       maker, bystander});
        }
        if (cut_end < map_end) {
            it = g_tracked
                     ->emplace(cut_end,
                               Tracked{map_end,
                                       MiVector<std::uint8_t>(state.begin() + first + count,
                                                              state.end()),
                                       maker, bystander})
                     .first;
            ++it;
        }
    }
    return any;
}

// --- the calling thread's faults --------------------------------------------------------------

FaultWatcher *open_watcher() noexcept {
    void *memory = mi_malloc(sizeof(FaultWatcher));
    if (memory == nullptr) {
        return nullptr;
    }
    auto *watcher = new (memory) FaultWatcher();
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_PAGE_FAULTS;
    attr.sample_period = 1;
    attr.sample_type = PERF_SAMPLE_ADDR;
    attr.exclude_hv = 1;
    // Faults taken in the kernel (a read() into a fresh buffer) count too, where allowed.
    int fd = static_cast<int>(syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC));
    if (fd < 0) {
        attr.exclude_kernel = 1;
        fd = static_cast<int>(syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC));
    }
    if (fd >= 0) {
        const std::uint64_t size = (kRingPages + 1) * page_size();
        void *ring = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (ring == MAP_FAILED) {
            close(fd);
            fd = -1;
        } else {
            watcher->fd = fd;
            watcher->meta = static_cast<perf_event_mmap_page *>(ring);
            watcher->data = static_cast<const char *>(ring) + page_size();
            watcher->data_size = kRingPages * page_size();
            watcher->size_mapped = size;
        }
    }
    return watcher;
}

void close_watcher(FaultWatcher *watcher) noexcept {
    if (watcher->fd >= 0) {
        munmap(watcher->meta, watcher->size_mapped);
        close(watcher->fd);
    }
    watcher->~FaultWatcher();
    mi_free(watcher);
}

void copy_from_ring(const FaultWatcher &watcher, std::uint64_t position, void *to,
                    std::size_t bytes) noexcept {
    auto *out = static_cast<char *>(to);
    for (std::size_t i = 0; i < bytes; ++i) {
        out[i] = watcher.data[(position + i) & (watcher.data_size - 1)];
    }
}

// Reads the faults sampled since the last call and brings the huge-page windows around the
// tracked ones up to date. False when samples were lost (or no perf event: the thread's fault
// count changed), the caller then syncs every mapping. Takes g_lock.
bool drain_faults(FaultWatcher *watcher, Change *change) {
    if (watcher->fd < 0) {
        rusage usage;
        getrusage(RUSAGE_THREAD, &usage);
        const long faults = usage.ru_minflt + usage.ru_majflt;
        const bool same = faults == watcher->faults;
        watcher->faults = faults;
        return same;
    }
    const std::uint64_t head = __atomic_load_n(&watcher->meta->data_head, __ATOMIC_ACQUIRE);
    std::uint64_t tail = watcher->meta->data_tail;
    if (head == tail) {
        return true;
    }
    bool complete = true;
    SpinLockGuard guard(g_lock);
    if (g_tracked == nullptr) {
        __atomic_store_n(&watcher->meta->data_tail, head, __ATOMIC_RELEASE);
        return true;
    }
    g_windows->clear();
    while (tail < head) {
        perf_event_header header;
        copy_from_ring(*watcher, tail, &header, sizeof(header));
        if (header.size == 0) {
            complete = false;
            break;
        }
        if (header.type == PERF_RECORD_SAMPLE) {
            std::uint64_t address = 0;
            copy_from_ring(*watcher, tail + sizeof(header), &address, sizeof(address));
            if (mapping_at_locked(address) != g_tracked->end()) {
                g_windows->push_back(address & ~(kHugePage - 1));
            }
        } else if (header.type == PERF_RECORD_LOST) {
            complete = false;
        }
        tail += header.size;
    }
    __atomic_store_n(&watcher->meta->data_tail, head, __ATOMIC_RELEASE);
    if (!complete) {
        return false;
    }
    std::sort(g_windows->begin(), g_windows->end());
    g_windows->erase(std::unique(g_windows->begin(), g_windows->end()), g_windows->end());
    for (const std::uintptr_t window : *g_windows) {
        // A window may span several mappings.
        const std::uintptr_t window_end = window + kHugePage;
        for (auto it = first_overlapping_locked(window);
             it != g_tracked->end() && it->first < window_end; ++it) {
            const std::uintptr_t from = std::max(it->first, window);
            const std::uintptr_t to = std::min(it->second.end, window_end);
            if (!sync_range_locked(it->first, it->second, from, to, change)) {
                return false;
            }
        }
    }
    return true;
}

void charge(ThreadLedger *ledger, const Change &change) noexcept {
    for (int i = 0; i < change.peak.used; ++i) {
        stream::pages_changed(change.peak.maker[i],
                              change.peak.pages[i] * static_cast<std::int64_t>(page_size()));
    }
    if (ledger == nullptr) {
        g_unclaimed.fetch_add(static_cast<std::int64_t>(change.freed * page_size()),
                              std::memory_order_relaxed);
        return;
    }
    if (change.grown != 0) {
        ledger->on_native_alloc(change.grown * page_size());
    }
    if (change.freed != 0) {
        ledger->on_native_free(change.freed * page_size());
    }
}

} // namespace

void count_own_faults(ThreadLedger *ledger) noexcept {
    if (ledger != nullptr && t_watcher != nullptr && t_watcher->fd >= 0) {
        Change change;
        if (!drain_faults(t_watcher, &change)) {
            SpinLockGuard guard(g_lock);
            full_sync_locked(&change);
        }
        charge(ledger, change);
    }
}

void fork_prepare() noexcept { g_lock.lock(); }
void fork_parent() noexcept { g_lock.unlock(); }
// The child's copy of the forking thread's watcher reads the parent's faults: closed.
void fork_child() noexcept {
    g_lock.unlock();
    if (t_watcher != nullptr) {
        close_watcher(t_watcher);
        t_watcher = nullptr;
    }
}

void observe(ThreadLedger *ledger) noexcept {
    const std::uint64_t now = ticks();
    const bool long_line = now - t_line_began >= g_long_line_ticks.load(std::memory_order_relaxed);
    t_line_began = now;
    FaultWatcher *watcher = t_watcher;
    // The common case, without a lock: this thread took no fault, nothing waits to be charged.
    if (watcher != nullptr && watcher->fd >= 0 && !long_line &&
        __atomic_load_n(&watcher->meta->data_head, __ATOMIC_ACQUIRE) == watcher->meta->data_tail &&
        g_unclaimed.load(std::memory_order_relaxed) == 0) {
        return;
    }
    Change change;
    bool full = long_line;
    if (watcher == nullptr) {
        fork_locks_install();
        t_watcher = watcher = open_watcher();
        full = true; // what happened before this thread watched
    }
    if (!full) {
        full = watcher == nullptr || !drain_faults(watcher, &change);
    }
    {
        SpinLockGuard guard(g_lock);
        if (full && g_tracked != nullptr) {
            full_sync_locked(&change);
        }
        change.freed += static_cast<std::size_t>(g_unclaimed.exchange(0)) / page_size();
        update_watching_locked();
    }
    charge(ledger, change);
}

void mapped(void *address, std::size_t length, bool populated, std::uint32_t maker,
            bool bystander, ThreadLedger *ledger) noexcept {
    const auto begin = reinterpret_cast<std::uintptr_t>(address);
    const std::uintptr_t end = begin + round_up(length);
    Change change;
    {
        SpinLockGuard guard(g_lock);
        ensure_tables_locked();
        MiVector<std::uint8_t> pages((end - begin) / page_size(), 0);
        auto it =
            g_tracked->emplace(begin, Tracked{end, std::move(pages), maker, bystander}).first;
        if (populated) {
            sync_range_locked(begin, it->second, begin, end, &change);
        }
        update_watching_locked();
    }
    charge(ledger, change);
}

void adopt(std::uintptr_t begin, std::uintptr_t end) noexcept {
    SpinLockGuard guard(g_lock);
    ensure_tables_locked();
    auto it = first_overlapping_locked(begin);
    if (it != g_tracked->end() && it->first < end) {
        return;
    }
    MiVector<std::uint8_t> pages((end - begin) / page_size(), 0);
    it = g_tracked->emplace(begin, Tracked{end, std::move(pages)}).first;
    Change baseline;
    if (!sync_range_locked(begin, it->second, begin, end, &baseline)) {
        g_tracked->erase(it);
    } else if (g_peak_pages) {
        for (std::uint8_t &page : it->second.state) { // the peak recorder's baseline too
            page |= (page & kCounted) != 0 ? kPeakCounted : 0;
        }
    }
    update_watching_locked();
}

void unmapped(void *address, std::size_t length, ThreadLedger *ledger) noexcept {
    const auto begin = reinterpret_cast<std::uintptr_t>(address);
    Change change;
    {
        SpinLockGuard guard(g_lock);
        if (g_tracked == nullptr) {
            return;
        }
        cut_locked(begin, begin + round_up(length), nullptr, &change);
        update_watching_locked();
    }
    charge(ledger, change);
}

void given_back(void *address, std::size_t length, bool lazily, ThreadLedger *ledger) noexcept {
    // Another thread's pages: the line profiler's next mincore pass sees them go, as it sees them
    // come. The peak recorder counts them freed now, for whichever thread gave them back: a
    // larger peak that follows must not find them still counted.
    if (ledger == nullptr && !g_peak_pages) {
        return;
    }
    const auto begin = reinterpret_cast<std::uintptr_t>(address);
    const std::uintptr_t end = begin + round_up(length);
    Change change;
    {
        SpinLockGuard guard(g_lock);
        if (g_tracked == nullptr) {
            return;
        }
        for (auto it = first_overlapping_locked(begin); it != g_tracked->end() && it->first < end;
             ++it) {
            const std::uintptr_t from = std::max(it->first, begin);
            const std::uintptr_t to = std::min(it->second.end, end);
            std::uint8_t *state = it->second.state.data() + (from - it->first) / page_size();
            const std::size_t n = (to - from) / page_size();
            peak_give_back(state, n, it->second.maker, lazily, &change);
            for (std::size_t i = 0; ledger != nullptr && i < n; ++i) {
                const std::uint8_t line = state[i] & kLineBits;
                change.freed += line & kCounted;
                state[i] = static_cast<std::uint8_t>((state[i] & kPeakBits) |
                                                     (lazily && line != 0 ? kLazy : 0));
            }
        }
        update_watching_locked();
    }
    charge(ledger, change);
}

void remapped(void *old, std::size_t old_length, void *now, std::size_t new_length,
              ThreadLedger *ledger) noexcept {
    const auto old_begin = reinterpret_cast<std::uintptr_t>(old);
    const auto new_begin = reinterpret_cast<std::uintptr_t>(now);
    const std::size_t old_pages = round_up(old_length) / page_size();
    const std::size_t new_pages = round_up(new_length) / page_size();
    Change change;
    {
        SpinLockGuard guard(g_lock);
        ensure_tables_locked();
        MiVector<std::uint8_t> moved;
        Tracked from{};
        if (cut_locked(old_begin, old_begin + old_pages * page_size(), &moved, &change, &from)) {
            if (new_pages < old_pages) {
                change.freed += counted_pages(moved.data() + new_pages, old_pages - new_pages);
                peak_give_back(moved.data() + new_pages, old_pages - new_pages, from.maker, false,
                               &change);
            }
            moved.resize(new_pages, 0);
            g_tracked->emplace(new_begin, Tracked{new_begin + new_pages * page_size(),
                                                  std::move(moved), from.maker, from.bystander});
        } else if (new_pages > old_pages) {
            // A mapping from before profiling: its growth is new, untouched memory.
            const std::uintptr_t grown = new_begin + old_pages * page_size();
            g_tracked->emplace(grown, Tracked{new_begin + new_pages * page_size(),
                                              MiVector<std::uint8_t>(new_pages - old_pages, 0)});
        }
        update_watching_locked();
    }
    charge(ledger, change);
}

void thread_end() noexcept {
    if (t_watcher != nullptr) {
        close_watcher(t_watcher);
        t_watcher = nullptr;
    }
}

void forget_all() noexcept {
    SpinLockGuard guard(g_lock);
    if (g_tracked != nullptr) {
        g_tracked->clear();
    }
    g_unclaimed.store(0, std::memory_order_relaxed);
    update_watching_locked();
}

void peak_count(void *address, std::size_t length) noexcept {
    if (!g_peak_pages) {
        return;
    }
    const auto begin = reinterpret_cast<std::uintptr_t>(address) & ~(page_size() - 1);
    const std::uintptr_t end = reinterpret_cast<std::uintptr_t>(address) + round_up(length);
    Change change;
    {
        SpinLockGuard guard(g_lock);
        if (!g_peak_pages || g_tracked == nullptr) {
            return;
        }
        for (auto it = first_overlapping_locked(begin); it != g_tracked->end() && it->first < end;
             ++it) {
            const std::uintptr_t from = std::max(it->first, begin);
            const std::uintptr_t to = std::min(it->second.end, end);
            const std::size_t count = (to - from) / page_size();
            g_resident->resize(count);
            if (mincore(reinterpret_cast<void *>(from), to - from, g_resident->data()) == 0) {
                std::uint8_t *state = it->second.state.data() + (from - it->first) / page_size();
                change.peak.add(it->second.maker, peak_sync(state, g_resident->data(), count));
            }
        }
    }
    charge(nullptr, change);
}

void peak_begin() noexcept {
    fork_locks_install(); // the passes hold the lock from the recorder's thread
    SpinLockGuard guard(g_lock);
    g_peak_pages.store(true, std::memory_order_relaxed);
    if (g_tracked == nullptr) {
        return;
    }
    for (auto &[begin, tracked] : *g_tracked) {
        tracked.maker = 0; // a stack id of an earlier recording means nothing now
        const std::size_t count = tracked.state.size();
        g_resident->resize(count);
        const bool known = mincore(reinterpret_cast<void *>(begin), tracked.end - begin,
                                   g_resident->data()) == 0;
        for (std::size_t i = 0; i < count; ++i) {
            const bool resident = known && ((*g_resident)[i] & 1) != 0;
            tracked.state[i] = static_cast<std::uint8_t>((tracked.state[i] & kLineBits) |
                                                         (resident ? kPeakCounted : 0));
        }
    }
}

void peak_end() noexcept {
    SpinLockGuard guard(g_lock);
    g_peak_pages.store(false, std::memory_order_relaxed);
}

std::size_t peak_pass(PeakPagesChanged *changed, std::size_t capacity,
                      std::size_t *memory_bytes) noexcept {
    SpinLockGuard guard(g_lock);
    std::size_t used = 0;
    std::size_t bytes = 0;
    if (!g_peak_pages || g_tracked == nullptr) {
        *memory_bytes = 0;
        return 0;
    }
    auto note = [&](std::uint32_t maker, std::int64_t pages) {
        if (pages == 0) {
            return;
        }
        for (std::size_t i = 0; i < used; ++i) {
            if (changed[i].maker == maker) {
                changed[i].bytes += pages * static_cast<std::int64_t>(page_size());
                return;
            }
        }
        if (used == capacity) { // more makers changed than the caller has room for: the root's
            maker = 0;
            for (std::size_t i = 0; i < used; ++i) {
                if (changed[i].maker == 0) {
                    changed[i].bytes += pages * static_cast<std::int64_t>(page_size());
                    return;
                }
            }
            --used;
            pages += changed[used].bytes / static_cast<std::int64_t>(page_size());
        }
        changed[used++] = PeakPagesChanged{maker, pages * static_cast<std::int64_t>(page_size())};
    };
    for (auto &[begin, tracked] : *g_tracked) {
        const std::size_t count = tracked.state.size();
        bytes += sizeof(TrackedMap::value_type) + 32 + tracked.state.capacity();
        g_resident->resize(count);
        std::uint8_t *state = tracked.state.data();
        std::int64_t pages = 0;
        if (mincore(reinterpret_cast<void *>(begin), tracked.end - begin, g_resident->data()) !=
            0) {
            // Unmapped behind our back: its pages are gone (the line profiler finds out itself).
            for (std::size_t i = 0; i < count; ++i) {
                pages -= (state[i] & kPeakCounted) != 0 ? 1 : 0;
                state[i] &= kLineBits;
            }
        } else {
            pages = peak_sync(state, g_resident->data(), count);
        }
        note(tracked.maker, pages);
    }
    *memory_bytes = bytes + g_resident->capacity() + g_windows->capacity() * sizeof(std::uintptr_t);
    return used;
}

std::size_t tracked_mappings() noexcept {
    SpinLockGuard guard(g_lock);
    return g_tracked == nullptr ? 0 : g_tracked->size();
}

} // namespace memxx::core::pages
