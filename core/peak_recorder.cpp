// The peak recorder: the hooks put one event per allocation and free on a queue, and a thread of
// ours applies them, in order, to the peak tables (core/peak_tables.hpp). The program's threads
// thus pay for a walk of their own Python frames and a 16-byte write; the table work (a cache
// miss or two per block) runs on another core. The figures are those of applying every event
// in the order the hooks saw them, so they are exact; a report first applies what is queued.
//
// A consumer of the allocation stream (core/alloc_stream.hpp): every block, and with native
// memory the mappings' makers and pages; subscribed through core/session.hpp, which starts the
// sources it needs.
//
// Locks: session::g_lock (a spin lock, the allocator hook's) orders the producers: it is held
// to intern a stack and to queue an event. m_apply (a mutex) is held while events are applied,
// and nothing is taken under it. Whoever holds g_lock only tries m_apply and lets go of g_lock
// between tries. The pages pass (count_pages) takes m_apply, then mapped_pages' spin lock
// alone, then m_apply again: never two at once. The fork handler takes g_lock, then m_apply,
// then the pages' lock (core/session.hpp, HACKING's lock table).
#include "core/peak_recorder.hpp"

#include <Python.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <new>
#include <pthread.h>
#include <sched.h>
#include <stdexcept>
#include <thread>

#include <mimalloc.h>

#include "core/alloc_stream.hpp"
#include "core/flat_table.hpp"
#include "core/id_table.hpp"
#include "core/mapped_pages.hpp"
#include "core/own_memory.hpp"
#include "core/peak_tables.hpp"
#include "core/py_compat.h"
#include "core/session.hpp"
#include "core/thread_local.hpp"
#include "core/signal_relay.hpp"
#include "core/stack_tree.hpp"

namespace memxx::core {

namespace {

template <class T> using MiVector = std::vector<T, mi_stl_allocator<T>>;

// The key of the chain of frames from the outermost to this one, by instruction: its caller
// chain's key and the frame. Equal for equal chains, different otherwise but for a chance of
// about 2^-64 per pair. Two multiplications: this runs for every frame of every allocation.
std::uint64_t chain_key(std::uint64_t caller, PyObject *code, int offset) noexcept {
    std::uint64_t h = (caller ^ reinterpret_cast<std::uintptr_t>(code)) * 0x9E3779B97F4A7C15ull;
    const auto instruction = static_cast<std::uint64_t>(static_cast<std::uint32_t>(offset));
    h ^= (instruction + 1) * 0xC2B2AE3D27D4EB4Full;
    return (h ^ (h >> 29)) | 1;
}
constexpr std::uint64_t kRootKey = 0x243F6A8885A308D3ull;
constexpr std::uint64_t kDeeperKey = 0x13198A2E03707344ull;

// The chains of instructions and the whole stacks seen lately, with their nodes and stack ids: many
// chains of instructions make one chain of lines, so these are caches, emptied when full. Nearly
// every miss is a stack seen for the first time: on a pandas + scikit-learn job, 8 k entries
// missed 0.6 % more stacks than 90 k did and looked up 2 % more frames by line. 11 k entries
// fit 2^14 slots (192 KiB each; 90 k took 1.5 MiB each).
constexpr std::size_t kCacheEntries = 11'000;

// The calling thread's innermost frames that have entries in the frames' shadow (3.12, 3.13;
// none on the other versions): memxx_shadow_frames, up to 16.
struct ShadowRun {
    static constexpr int kMax = 16;
    PyObject *codes[kMax];
    int offsets[kMax];
    memxx_shadow_memo *memos[kMax];
    int count = 0;
    int depth = 0;
    ShadowRun() noexcept { count = memxx_shadow_frames(codes, offsets, memos, kMax, &depth); }
};

// A shadow memo names a node of one tree between two collections: its epoch is the tree's. Never
// 0 (a new entry's); g_lock held.
unsigned g_tree_epochs = 0;
unsigned next_tree_epoch() noexcept {
    g_tree_epochs = g_tree_epochs + 1 == 0 ? 1 : g_tree_epochs + 1;
    return g_tree_epochs;
}

// Stacks interned by the shadow's memos instead of a walk, since the recorder started (tests).
unsigned long long g_shadow_stacks = 0;

// The Python side of the interned stacks (core/stack_tree.hpp): the walk of the calling thread's
// frames, the caches in front of it, and a reference to each code object in the tree.
// g_lock held.
class PythonStacks {
  public:
    // The stack id of the calling thread's stack, whose memxx_thread_stack_key() is `key`; 0 (no
    // Python frame) when the tables cannot grow. Stacks seen lately are found by the key alone.
    // Before a walk, `collect()` is called when the tree has grown enough to be collected.
    template <class Collect>
    std::uint32_t stack_of(std::uint64_t key, Collect &&collect) noexcept {
        if (const std::uint32_t *known = stack_cache_.find(key); known != nullptr) {
            return *known;
        }
        if (tree_.wants_collection()) {
            collect();
        }
        std::uint32_t stack = 0;
        const ShadowRun run;
        int found = shadow_stack(run, &stack);
        if (found == 0) {
            found = walk_stack(run, &stack) ? 1 : -1;
        }
        if (found > 0) {
            if (stack_cache_.size() >= kCacheEntries) {
                stack_cache_.clear();
            }
            stack_cache_.put(key, stack); // when it cannot grow, the next walk looks again
        }
        // Only a walk adds to the tables: their size is told to the applying thread here.
        bytes_.store(memory_bytes(), std::memory_order_relaxed);
        return stack;
    }

    // The stack id of the calling thread's stack by the shadow's memos: the innermost frame of
    // `run` whose memo names its callers' node, and only the frames inside it are looked up by
    // line, each one's node becoming the memo of the frame it calls. A frame's callers and the
    // lines they call from do not change while its entry lasts (a generator's entry ends as it
    // yields). 1: found; 0: the memos cannot say (a walk must); -1: the tables cannot grow.
    int shadow_stack(const ShadowRun &run, std::uint32_t *stack) noexcept {
        if (run.count == 0 || run.depth > kPeakMaxDepth) {
            return 0; // a deeper stack's nodes hang from kDeeperNode, by its innermost frames
        }
        int top = 0;
        while (top < run.count && run.memos[top]->epoch != epoch_) {
            ++top;
        }
        std::uint32_t node = StackTree::kRootNode;
        if (top < run.count) {
            node = run.memos[top]->node;
        } else if (run.count == run.depth) {
            top = run.count - 1; // the run reaches the base: the outermost frame's callers are none
        } else {
            return 0;
        }
        const bool gil = PyGILState_Check() != 0;
        for (int i = top; i >= 0; --i) {
            std::uint32_t code = 0;
            if (!code_index(run.codes[i], gil, &code) ||
                !tree_.intern(code, line_of(run.codes[i], run.offsets[i]), &node)) {
                return -1;
            }
            if (i > 0) {
                *run.memos[i - 1] = memxx_shadow_memo{epoch_, node};
            }
        }
        const std::uint32_t id = tree_.stack_id(node);
        if (id == StackTree::kNoStack) {
            return -1;
        }
        ++g_shadow_stacks;
        *stack = id;
        return 1;
    }

    // The stack id of the calling thread's stack, by its frames; false when the tables cannot
    // grow. One walk; the chain keys find the innermost frame whose node is known, and only the
    // frames inside it are looked up by line (or added). The frames of `run` get their callers'
    // nodes as memos.
    bool walk_stack(const ShadowRun &run, std::uint32_t *stack) noexcept {
        PyObject *codes[kPeakMaxDepth];
        int offsets[kPeakMaxDepth];
        std::uint64_t keys[kPeakMaxDepth];
        int deeper = 0;
        const int depth = memxx_thread_stack(codes, offsets, kPeakMaxDepth, &deeper);
        std::uint64_t key = deeper ? kDeeperKey : kRootKey;
        for (int i = depth - 1; i >= 0; --i) {
            key = keys[i] = chain_key(key, codes[i], offsets[i]);
        }
        std::uint32_t node = deeper ? StackTree::kDeeperNode : StackTree::kRootNode;
        int known = 0; // frames [known, depth) have their node
        for (; known < depth; ++known) {
            if (const std::uint32_t *found = chain_cache_.find(keys[known]);
                found != nullptr && codes_[tree_.frame_of(*found).code] == codes[known]) {
                node = *found;
                break;
            }
        }
        if (known > 0) {
            const bool gil = PyGILState_Check() != 0;
            if (chain_cache_.size() + static_cast<std::size_t>(known) > kCacheEntries) {
                chain_cache_.clear();
            }
            for (int i = known - 1; i >= 0; --i) {
                // The code is owned (in codes_) before its line cursor names it.
                std::uint32_t code = 0;
                if (!code_index(codes[i], gil, &code) ||
                    !tree_.intern(code, line_of(codes[i], offsets[i]), &node)) {
                    return false;
                }
                chain_cache_.put(keys[i], node); // when it cannot grow, the next walk looks again
            }
        }
        if (!deeper) {
            // Frame i's callers are its node's parent.
            std::uint32_t frame_node = node;
            for (int i = 0; i < run.count && i < depth; ++i) {
                frame_node = tree_.node(frame_node).parent;
                *run.memos[i] = memxx_shadow_memo{epoch_, frame_node};
            }
        }
        const std::uint32_t id = tree_.stack_id(node);
        if (id == StackTree::kNoStack) {
            return false;
        }
        *stack = id;
        return true;
    }

    // Drops the stacks for which `keep(stack)` is false (StackTree::collect). The caches name
    // nodes and stack ids: emptied.
    template <class Keep> void collect(Keep &&keep) noexcept {
        chain_cache_.clear();
        stack_cache_.clear();
        tree_.collect(keep);
        epoch_ = next_tree_epoch(); // the shadow's memos name nodes of the tree before
    }

    // Code objects seen without the GIL get their reference at the next call with it.
    void own_pending_codes() noexcept {
        for (const std::uint32_t code : pending_codes_) {
            Py_INCREF(codes_[code]);
        }
        pending_codes_.clear();
    }

    void release_codes() noexcept { // GIL held, g_lock not held (a decref may free)
        own_pending_codes();
        for (PyObject *code : codes_) {
            Py_DECREF(code);
        }
        codes_.clear();
    }

    const StackTree &tree() const noexcept { return tree_; }
    PyObject *code(std::uint32_t index) const noexcept { return codes_[index]; }

    // memory_bytes() as of the last walk, for a thread that does not hold g_lock.
    std::size_t published_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

    std::size_t memory_bytes() const noexcept {
        return tree_.memory_bytes() + chain_cache_.memory_bytes() + stack_cache_.memory_bytes() +
               codes_.capacity() * sizeof(PyObject *) + code_index_.memory_bytes() +
               pending_codes_.capacity() * sizeof(std::uint32_t);
    }

  private:
    // The line of an offset, by a cursor per code object in a small direct-mapped set: a module
    // body looked up as it runs walks its line table forward from the last offset. A code
    // object a cursor names is in codes_ (owned until peak_stop), so it stays alive while the
    // cursor names it.
    int line_of(PyObject *code, int offset) noexcept {
        memxx_line_cursor &cursor =
            line_cursors_[(reinterpret_cast<std::uintptr_t>(code) >> 6) % kLineCursors];
        return memxx_code_line_at(code, offset, &cursor);
    }

    static std::uint64_t code_hash(PyObject *code) noexcept {
        return id_hash(reinterpret_cast<std::uintptr_t>(code));
    }

    bool code_index(PyObject *code, bool gil, std::uint32_t *index) noexcept {
        const std::uint64_t hash = code_hash(code);
        const std::uint32_t known =
            code_index_.find(hash, [this, code](std::uint32_t id) { return codes_[id] == code; });
        if (known != IdTable<26>::kNone) {
            *index = known;
            return true;
        }
        const auto id = static_cast<std::uint32_t>(codes_.size());
        if (id > IdTable<26>::kMaxId) {
            return false;
        }
        try {
            codes_.push_back(code);
            if (!gil) {
                // Its frame holds it alive now; the reference is taken with the GIL later.
                pending_codes_.push_back(id);
            }
        } catch (...) {
            return false;
        }
        if (gil) {
            Py_INCREF(code);
        }
        // When the index cannot grow, the code is listed (and owned) twice.
        code_index_.insert(hash, id,
                           [this](std::uint32_t listed) { return code_hash(codes_[listed]); });
        *index = id;
        return true;
    }

    StackTree tree_;
    unsigned epoch_ = next_tree_epoch();   // the shadow's memos with this epoch name its nodes
    FlatTable<std::uint32_t> chain_cache_; // chain key of instructions -> node
    FlatTable<std::uint32_t> stack_cache_; // a thread's stack key -> stack id
    MiVector<PyObject *> codes_;
    IdTable<26> code_index_;                // code object -> index in codes_
    MiVector<std::uint32_t> pending_codes_; // indices of codes_ not owned yet
    std::atomic<std::size_t> bytes_{0};
    static constexpr std::size_t kLineCursors = 61;
    memxx_line_cursor line_cursors_[kLineCursors] = {};
};

// One allocation, free, or pages given back: the address with the kind in its top bits, and the
// size (40 bits) with the stack (24 bits). Pages given back have no address: the stack is that
// of the code that made their mapping.
struct Event {
    std::uint64_t address_kind;
    std::uint64_t size_stack;
};
enum Kind : std::uint64_t { kAlloc = 0, kFree = 1, kPagesFreed = 2, kPagesGrown = 3 };
constexpr unsigned kKindShift = 62;
constexpr std::uint64_t kAddressMask = (std::uint64_t{1} << kKindShift) - 1;
constexpr std::uint64_t kSizeMask = (std::uint64_t{1} << 40) - 1;
constexpr std::uint64_t kRetracted = 1; // a free's size: the block was never the program's

constexpr std::size_t kQueueEvents = std::size_t{1} << 16; // 1 MiB

class Recorder {
  public:
    Recorder() : events_(static_cast<Event *>(mi_malloc(kQueueEvents * sizeof(Event)))) {
        if (events_ == nullptr) {
            throw std::bad_alloc();
        }
    }
    ~Recorder() { mi_free(events_); }

    PythonStacks stacks;   // g_lock
    PeakTables tables;     // m_apply
    std::mutex m_apply;

    // The calling thread's stack id. g_lock held. When the tree has grown enough, the stacks in
    // no report (no bytes now, none at the peak) are collected first: that needs the tables as
    // of every queued event (the queue holds stack ids), so it waits for a walk that finds
    // m_apply free (only tried: see the lock order at the top).
    std::uint32_t stack_of(std::uint64_t key) noexcept {
        return stacks.stack_of(key, [this] {
            if (m_apply.try_lock()) {
                apply_queued_locked();
                stacks.collect([this](std::uint32_t stack) {
                    if (makers_.find(std::uint64_t{stack} + 1) != nullptr ||
                        tables.stack_in_use(stack)) {
                        return true;
                    }
                    tables.forget_stack(stack); // its id is handed out again
                    return false;
                });
                m_apply.unlock();
            }
        });
    }

    // The stack id of code making a mapping (core/mapped_pages.hpp): its pages are charged to it
    // as they come and go, however long after, so it is never collected (its id never handed
    // to another stack). Makers are few: the code that maps memory itself. g_lock held.
    std::uint32_t maker_stack(std::uint64_t key) noexcept {
        const std::uint32_t stack = stack_of(key);
        makers_.put(std::uint64_t{stack} + 1, 1); // when it cannot grow: 0, the root, instead
        return makers_.find(std::uint64_t{stack} + 1) != nullptr ? stack : 0;
    }

    // Queues an event. g_lock held; may release and retake it while the queue is full.
    void push(Event event) noexcept {
        std::uint64_t head = head_.load(std::memory_order_relaxed);
        while (head - tail_.load(std::memory_order_acquire) >= kQueueEvents) {
            // Full: apply the queue here. Only try the mutex: see the lock order at the top.
            if (m_apply.try_lock()) {
                apply_queued_locked();
                m_apply.unlock();
            } else {
                // The applying thread frees room every 256 events: wait a moment for it.
                session::g_lock.unlock();
                for (int spin = 0; spin < 64; ++spin) {
#if defined(__x86_64__) || defined(__i386__)
                    __builtin_ia32_pause();
#endif
                }
                if (head - tail_.load(std::memory_order_acquire) >= kQueueEvents) {
                    sched_yield();
                }
                session::g_lock.lock();
                // Other producers may have queued meanwhile, and the queue been applied past
                // the head read before: with that one, this event would overwrite theirs and the
                // loop might never see room again (a worker stuck at 98 % CPU, found by the
                // pages work of the peak-pages branch).
                head = head_.load(std::memory_order_relaxed);
            }
        }
        events_[head & (kQueueEvents - 1)] = event;
        head_.store(head + 1, std::memory_order_release);
        if (sleeping_.load(std::memory_order_relaxed) && head - notified_ >= kQueueEvents / 4) {
            notified_ = head;
            wake_.notify_one();
        }
    }

    // Applies every queued event. m_apply held.
    void prefetch(const Event &event) const noexcept {
        tables.prefetch(event.address_kind & kAddressMask,
                        (event.address_kind >> kKindShift) == kAlloc);
    }

    void apply_queued_locked() noexcept {
        const std::uint64_t head = head_.load(std::memory_order_acquire);
        std::uint64_t tail = tail_.load(std::memory_order_relaxed);
        constexpr std::uint64_t kAhead = 8; // table lines are loaded this many events early
        for (std::uint64_t next = tail; next != head && next - tail < kAhead; ++next) {
            prefetch(events_[next & (kQueueEvents - 1)]);
        }
        for (; tail != head; ++tail) {
            if (head - tail > kAhead) {
                prefetch(events_[(tail + kAhead) & (kQueueEvents - 1)]);
            }
            const Event &event = events_[tail & (kQueueEvents - 1)];
            const std::uintptr_t address = event.address_kind & kAddressMask;
            const std::uint64_t size = event.size_stack & kSizeMask;
            const auto stack = static_cast<std::uint32_t>(event.size_stack >> 40);
            switch (event.address_kind >> kKindShift) {
            case kAlloc:
                tables.on_alloc(address, size, stack);
                break;
            case kFree:
                if (size == kRetracted) {
                    tables.on_retract(address);
                } else {
                    tables.on_free(address);
                }
                break;
            case kPagesFreed:
                tables.on_pages(stack, -static_cast<std::int64_t>(size));
                break;
            default:
                tables.on_pages(stack, static_cast<std::int64_t>(size));
                break;
            }
            if ((tail & 255) == 255) {
                tail_.store(tail + 1, std::memory_order_release); // room for a waiting producer
            }
        }
        tail_.store(tail, std::memory_order_release);
    }

    // The applying thread: wakes when a quarter of the queue waits, or every millisecond.
    void start_thread() {
        sigset_t all;
        sigset_t previous;
        sigfillset(&all);
        // Signals stay with the program's threads (Python handles them in its main thread).
        pthread_sigmask(SIG_SETMASK, &all, &previous);
        try {
            thread_ = std::thread([this] { run(); });
        } catch (...) {
            pthread_sigmask(SIG_SETMASK, &previous, nullptr);
            throw;
        }
        pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    }

    void stop_thread() {
        {
            std::lock_guard<std::mutex> guard(wake_mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

    // After fork, in the child: the thread did not come along; queued events are applied by
    // whoever reports or finds the queue full.
    void forget_thread() noexcept {
        // Its handle, mutex and condition describe a thread that is not in this process (and
        // may have held the mutex at the fork): made anew, not destroyed.
        new (&thread_) std::thread();
        new (&wake_mutex_) std::mutex();
        new (&wake_) std::condition_variable();
        sleeping_.store(false, std::memory_order_relaxed);
    }

    // Tells the run sampling this process how much of it is the recorder (core/own_memory.hpp).
    // The page tables of the mappings count too: without the recorder's passes they would be
    // kept only while the line profiler counts native memory. m_apply held.
    void publish_own_memory() noexcept {
        own_memory_publish(static_cast<std::int64_t>(
            sizeof(Recorder) + kQueueEvents * sizeof(Event) + stacks.published_bytes() +
            tables.block_table_bytes() + tables.other_bytes() +
            page_table_bytes_.load(std::memory_order_relaxed) + memxx_shadow_bytes()));
    }

    // Counts the pages of the tracked mappings that became resident or went away since the last
    // pass (core/mapped_pages.hpp), for the stacks that made them. Neither m_apply nor g_lock
    // held: the pass takes the pages' lock alone, which the hooks take without ours (and a fork
    // handler takes alone). What was queued before the pass is applied before its changes.
    void count_pages() noexcept {
        if (!counts_pages) {
            return;
        }
        {
            std::lock_guard<std::mutex> guard(m_apply);
            apply_queued_locked();
        }
        pages::PeakPagesChanged changed[kPageChanges];
        std::size_t table_bytes = 0;
        const std::size_t count = pages::peak_pass(changed, kPageChanges, &table_bytes);
        page_table_bytes_.store(table_bytes, std::memory_order_relaxed);
        std::lock_guard<std::mutex> guard(m_apply);
        apply_queued_locked();
        for (std::size_t i = 0; i < count; ++i) {
            tables.on_pages(changed[i].maker, changed[i].bytes);
        }
    }

    bool counts_pages = false; // native memory is recorded: set before the thread starts

  private:
    FlatTable<std::uint8_t> makers_; // stack id + 1 of each code that made a mapping; g_lock

    // The pages pass runs every kPagesEvery at most, and waits kPagesShare times as long as the
    // last one took: the passes take at most 1/kPagesShare of the time (a 1 GiB reservation
    // costs a mincore of 262,144 pages).
    static constexpr auto kPagesEvery = std::chrono::milliseconds(10);
    static constexpr int kPagesShare = 50;

    void run() {
        std::unique_lock<std::mutex> lock(wake_mutex_);
        int idle = 0; // wakes in a row that found nothing to apply
        auto next_pages_pass = std::chrono::steady_clock::now();
        while (!stopping_) {
            lock.unlock();
            signal_relay_poll(); // an ending signal whose handler the main thread has not run
            {
                std::lock_guard<std::mutex> guard(m_apply);
                const bool any = head_.load(std::memory_order_acquire) !=
                                 tail_.load(std::memory_order_relaxed);
                apply_queued_locked();
                idle = any ? 0 : idle + 1;
                if (idle == 20) { // quiet for 20 ms: the table may give memory back
                    tables.trim();
                }
                publish_own_memory();
            }
            if (counts_pages && std::chrono::steady_clock::now() >= next_pages_pass) {
                const auto began = std::chrono::steady_clock::now();
                count_pages();
                const auto now = std::chrono::steady_clock::now();
                next_pages_pass = now + std::max<std::chrono::steady_clock::duration>(
                                            kPagesEvery, kPagesShare * (now - began));
            }
            lock.lock();
            if (stopping_) {
                break;
            }
            sleeping_.store(true, std::memory_order_relaxed);
            wake_.wait_for(lock, std::chrono::milliseconds(1));
            sleeping_.store(false, std::memory_order_relaxed);
        }
    }

    static constexpr std::size_t kPageChanges = 256; // makers changed in one pass, at most
    std::atomic<std::size_t> page_table_bytes_{0};

    Event *events_;
    // On lines of their own: the producers write head_ at every event, the applying thread tail_.
    alignas(64) std::atomic<std::uint64_t> head_{0}; // next event to write (g_lock)
    std::uint64_t notified_ = 0;                     // head_ when the thread was last woken
    alignas(64) std::atomic<std::uint64_t> tail_{0}; // next event to apply (m_apply)
    alignas(64) std::atomic<bool> sleeping_{false};
    std::mutex wake_mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

Recorder *g_recorder = nullptr; // changed with the GIL and g_lock held
int g_slot = -1;                // the recorder's slot in the stream; GIL held

// `stack`: the event's stack when given (~0: the calling thread's, for an allocation).
inline void queue(std::uint64_t kind, std::uintptr_t address, std::uint64_t size,
                  std::uint32_t given_stack = ~std::uint32_t{0}) noexcept {
    // The walk of the thread's own frames needs no lock: threads allocating at once only wait
    // for each other to look the key up and queue.
    const bool walk = given_stack == ~std::uint32_t{0} && kind != kFree;
    const std::uint64_t key = walk ? memxx_thread_stack_key() : 0;
    SpinLockGuard guard(session::g_lock);
    Recorder *recorder = g_recorder;
    if (recorder == nullptr) {
        return;
    }
    const std::uint32_t stack = walk                       ? recorder->stack_of(key)
                                : kind == kFree              ? 0
                                                             : given_stack;
    recorder->push(Event{(kind << kKindShift) | (address & kAddressMask),
                         std::min(size, kSizeMask) | (static_cast<std::uint64_t>(stack) << 40)});
}

// Takes m_apply while g_lock is held, by the lock order: try, and let go of g_lock between tries.
void lock_both() noexcept {
    while (true) {
        session::g_lock.lock();
        if (g_recorder == nullptr || g_recorder->m_apply.try_lock()) {
            return;
        }
        session::g_lock.unlock();
        sched_yield();
    }
}

} // namespace

// fork() (core/session.hpp): the child must not inherit the tables half-way through an event.
// session::g_lock is held across these: g_recorder does not change.
void peak_fork_prepare() noexcept {
    if (g_recorder != nullptr) {
        g_recorder->m_apply.lock();
    }
}
void peak_fork_parent() noexcept {
    if (g_recorder != nullptr) {
        g_recorder->m_apply.unlock();
    }
}
void peak_fork_child() noexcept {
    if (g_recorder != nullptr) {
        g_recorder->m_apply.unlock();
        g_recorder->forget_thread();
    }
}

namespace {

// --- the stream's events (any thread, inside the re-entrancy guard) ----------------------------
MEMXX_TLS std::uintptr_t t_last_alloc = 0; // the calling thread's last block queued
MEMXX_TLS bool t_recorder_calls = false;     // the recorder's own calls run on this thread

void on_block_alloc(std::uintptr_t address, std::size_t size) noexcept {
    queue(kAlloc, address, size);
}

// Where the frames' shadow runs (peak_shadow_possible()), the blocks of its own calls are left
// out and the last block is noted, for peak_retract_event_block.
void on_block_alloc_beside_shadow(std::uintptr_t address, std::size_t size) noexcept {
    if (t_recorder_calls) {
        return; // the recorder's blocks: their frees are of blocks the tables do not hold
    }
    t_last_alloc = address;
    queue(kAlloc, address, size);
}

// Before the real free (and before a realloc's real call): the address may be handed out again
// right after it. A realloc that fails leaves its block counted as freed.
void on_block_free(std::uintptr_t address) noexcept { queue(kFree, address, 0); }

// A new mapping's maker: the calling thread's stack id (0 when not recording).
std::uint32_t mapping_maker() noexcept {
    const std::uint64_t key = memxx_thread_stack_key(); // before the lock, as queue() does
    SpinLockGuard guard(session::g_lock);
    return g_recorder != nullptr ? g_recorder->maker_stack(key) : 0;
}

// The bytes of mapped pages that `stack` holds more (fewer, when negative) since the last count:
// the hooks count the pages they give back (munmap, madvise, mremap shrinking) and those found
// resident just before; the applying thread's passes count the rest.
void on_pages(std::uint32_t stack, std::int64_t bytes) noexcept {
    if (bytes < 0) {
        queue(kPagesFreed, 0, static_cast<std::uint64_t>(-bytes), stack);
    } else if (bytes > 0) {
        queue(kPagesGrown, 0, static_cast<std::uint64_t>(bytes), stack);
    }
}

// Each twice: with the shadow's bookkeeping of blocks or without, chosen when recording starts.
constexpr stream::Consumer kBlocksOnly[2] = {
    {on_block_alloc, on_block_free, nullptr, nullptr, nullptr, nullptr, nullptr},
    {on_block_alloc_beside_shadow, on_block_free, nullptr, nullptr, nullptr, nullptr, nullptr}};
constexpr stream::Consumer kWithMappings[2] = {
    {on_block_alloc, on_block_free, nullptr, nullptr, nullptr, mapping_maker, on_pages},
    {on_block_alloc_beside_shadow, on_block_free, nullptr, nullptr, nullptr, mapping_maker,
     on_pages}};

} // namespace

void peak_start(bool native) {
    if (g_recorder != nullptr) {
        throw std::logic_error("the peak recorder is already running");
    }
    fork_locks_install();
    auto *recorder = new (mi_malloc(sizeof(Recorder))) Recorder();
    recorder->counts_pages = native;
    recorder->start_thread();
    {
        SpinLockGuard guard(session::g_lock);
        g_recorder = recorder;
        g_shadow_stacks = 0;
    }
    const int shadow = peak_shadow_possible() ? 1 : 0;
    g_slot = native ? session_subscribe(&kWithMappings[shadow], SourceNeeds::accounting_native)
                    : session_subscribe(&kBlocksOnly[shadow], SourceNeeds::accounting);
    if (g_slot < 0) {
        {
            SpinLockGuard guard(session::g_lock);
            g_recorder = nullptr;
        }
        recorder->stop_thread();
        recorder->~Recorder();
        mi_free(recorder);
        throw std::runtime_error("the allocation stream has no free slot for the peak recorder");
    }
    if (native) {
        pages::peak_begin(); // after native hooks start: the mappings adopted are its baseline
    }
}

void peak_stop() {
    if (g_recorder == nullptr) {
        return;
    }
    if (g_recorder->counts_pages) {
        pages::peak_end();
    }
    session_unsubscribe(g_slot);
    g_slot = -1;
    Recorder *recorder;
    {
        SpinLockGuard guard(session::g_lock);
        recorder = g_recorder;
        g_recorder = nullptr;
    }
    recorder->stop_thread();
    own_memory_publish(0);
    recorder->stacks.release_codes();
    recorder->~Recorder();
    mi_free(recorder);
}

PeakReport peak_report(bool live_now, std::int64_t largest) {
    if (g_recorder == nullptr) {
        throw std::logic_error("the peak recorder is not running");
    }
    g_recorder->count_pages(); // the pages as they are now
    // The copy's own allocations cannot come back here: our extension's malloc calls are never
    // redirected, and the PyMem domains are not used.
    lock_both();
    // Both let go however this ends: a copy below may throw std::bad_alloc (an address-space
    // limit), and a lock kept would stop every later allocation of the program in the hook.
    struct Unlock {
        ~Unlock() {
            g_recorder->m_apply.unlock();
            session::g_lock.unlock();
        }
    } unlock;
    Recorder &recorder = *g_recorder;
    recorder.stacks.own_pending_codes();
    recorder.apply_queued_locked();
    PeakTables &tables = recorder.tables;
    tables.settle();
    PeakReport out;
    out.peak_bytes = tables.peak();
    out.peak_time = tables.peak_time();
    out.current_bytes = tables.total();
    const PythonStacks &stacks = recorder.stacks;
    const StackTree &tree = stacks.tree();
    std::vector<std::uint32_t> node_of_stack(tree.stack_ids(), StackTree::kRootNode);
    for (std::uint32_t node = 0; node < tree.nodes(); ++node) {
        if (tree.node(node).stack != StackTree::kNoStack) {
            node_of_stack[tree.node(node).stack] = node;
        }
    }
    for (std::uint32_t stack = 0; stack < tables.stacks(); ++stack) {
        if (const std::int64_t bytes = tables.at_peak_bytes(stack); bytes > 0) {
            out.at_peak.push_back(PeakRow{node_of_stack.at(stack), bytes});
        }
    }
    for (std::uint32_t stack = 0; live_now && stack < tables.stacks(); ++stack) {
        if (const std::int64_t bytes = tables.live_bytes(stack); bytes > 0) {
            out.live_now.push_back(PeakRow{node_of_stack.at(stack), bytes});
        }
    }
    auto node_of = [&stacks, &tree](std::uint32_t node) {
        PyObject *code =
            node <= StackTree::kDeeperNode ? nullptr : stacks.code(tree.frame_of(node).code);
        return PeakNode{tree.node(node).parent, PeakFrame{code, tree.frame_of(node).line}};
    };
    if (largest < 0) {
        out.nodes.reserve(tree.nodes());
        for (std::uint32_t node = 0; node < tree.nodes(); ++node) {
            out.nodes.push_back(node_of(node));
        }
    } else {
        // Memory may be short (a table written at exit under an address-space limit): only the
        // largest stacks, and only the nodes they go through, renumbered in the same order.
        if (static_cast<std::size_t>(largest) < out.at_peak.size()) {
            const auto cut = out.at_peak.begin() + largest;
            std::nth_element(out.at_peak.begin(), cut, out.at_peak.end(),
                             [](const PeakRow &a, const PeakRow &b) { return a.bytes > b.bytes; });
            for (auto row = cut; row != out.at_peak.end(); ++row) {
                out.left_bytes += row->bytes;
            }
            out.left_rows = static_cast<std::size_t>(out.at_peak.end() - cut);
            out.at_peak.erase(cut, out.at_peak.end());
        }
        constexpr std::uint32_t kDeeper = StackTree::kDeeperNode;
        std::vector<std::uint32_t> renumbered(tree.nodes(), 0); // 0: not used
        renumbered[StackTree::kRootNode] = StackTree::kRootNode;
        renumbered[kDeeper] = kDeeper;
        for (const PeakRow &row : out.at_peak) {
            for (std::uint32_t node = row.stack; node > kDeeper && renumbered[node] == 0;
                 node = tree.node(node).parent) {
                renumbered[node] = 1; // used; its number is given below
            }
        }
        out.nodes.push_back(node_of(StackTree::kRootNode));
        out.nodes.push_back(node_of(kDeeper));
        for (std::uint32_t node = kDeeper + 1; node < tree.nodes(); ++node) {
            if (renumbered[node] != 0) {
                renumbered[node] = static_cast<std::uint32_t>(out.nodes.size());
                PeakNode copy = node_of(node);
                copy.parent = renumbered[copy.parent]; // parents come first
                out.nodes.push_back(copy);
            }
        }
        for (PeakRow &row : out.at_peak) {
            row.stack = renumbered[row.stack];
        }
    }
    out.live_blocks = tables.live_blocks();
    out.block_table_bytes = tables.block_table_bytes();
    out.peak_live_blocks = tables.peak_live_blocks();
    out.peak_block_table_bytes = tables.peak_block_table_bytes();
    out.stack_table_bytes = recorder.stacks.memory_bytes() + tables.other_bytes();
    out.stack_nodes = tree.nodes();
    out.stacks = tree.stacks();
    out.tags = tables.tags();
    return out;
}

void peak_runner_frame(bool on) {
    if (on) {
        memxx_set_stack_base(1);
        peak_shadow(true);
    } else {
        peak_shadow(false);
        memxx_set_stack_base(0);
    }
}

void peak_own_calls(bool on) noexcept { t_recorder_calls = on; }

unsigned long long peak_shadow_keys() { return memxx_shadow_keys(); }
unsigned long long peak_shadow_stacks() { return g_shadow_stacks; }

void peak_retract_event_block(const void *block) noexcept {
    const auto address = reinterpret_cast<std::uintptr_t>(block);
    if (address != 0 && address == t_last_alloc) {
        t_last_alloc = 0;
        // Its real free comes later: a block no longer in the tables.
        queue(kFree, address, kRetracted);
    }
}

} // namespace memxx::core
