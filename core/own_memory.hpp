// The recorder's own memory, told to the run that samples this process: `mprofxx run --peak`
// subtracts it from every sample, so that the .dat file records the program's memory, not the
// stack and block tables kept about it (issue 27: with 400 k stacks they were a quarter of the
// figure).
//
// The figure is one 8-byte count in the first page of a memory file (memfd) the run made and
// passed down by descriptor: nothing on a path, so nothing anyone else could plant or read. The
// program writes it (its recorder's applying thread), the run's sampling thread reads it; each
// side maps the page itself. Pure C++, no Python; any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace memxx::core {

// The layout both sides map.
struct OwnMemoryPage {
    std::atomic<std::int64_t> bytes; // the recorder's own memory now, in bytes; 0 before any
};
static_assert(std::atomic<std::int64_t>::is_always_lock_free,
              "the page is shared between processes");

// --- the program's side ------------------------------------------------------------------------
// Maps the run's page from `fd` (the descriptor stays the caller's); a second call replaces the
// first. False (errno set) when it cannot be mapped. A forked child stops publishing: its
// tables are not the ones the run subtracts.
bool own_memory_share(int fd) noexcept;
// Publishes `bytes` (no-op when nothing is shared).
void own_memory_publish(std::int64_t bytes) noexcept;

// --- the run's side ----------------------------------------------------------------------------
// A read-only view of the page behind `fd`; reads 0 when it could not be mapped.
class OwnMemoryView {
  public:
    explicit OwnMemoryView(int fd) noexcept;
    ~OwnMemoryView();
    OwnMemoryView(const OwnMemoryView &) = delete;
    OwnMemoryView &operator=(const OwnMemoryView &) = delete;

    std::int64_t bytes() const noexcept {
        return page_ != nullptr ? page_->bytes.load(std::memory_order_relaxed) : 0;
    }

  private:
    const OwnMemoryPage *page_ = nullptr;
};

} // namespace memxx::core
