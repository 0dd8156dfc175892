#include "core/own_memory.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace memxx::core {

namespace {

std::atomic<OwnMemoryPage *> g_page{nullptr};

const void *map_page(int fd, int protection) noexcept {
    struct stat about {};
    if (fd < 0 || ::fstat(fd, &about) != 0 ||
        about.st_size < static_cast<off_t>(sizeof(OwnMemoryPage))) {
        return nullptr;
    }
    void *page = ::mmap(nullptr, sizeof(OwnMemoryPage), protection, MAP_SHARED, fd, 0);
    return page == MAP_FAILED ? nullptr : page;
}

void forget_in_child() noexcept { g_page.store(nullptr, std::memory_order_relaxed); }

} // namespace

bool own_memory_share(int fd) noexcept {
    static const bool fork_handler = pthread_atfork(nullptr, nullptr, forget_in_child) == 0;
    (void)fork_handler;
    auto *page = static_cast<OwnMemoryPage *>(
        const_cast<void *>(map_page(fd, PROT_READ | PROT_WRITE)));
    if (page == nullptr) {
        return false;
    }
    // The old page (if any) stays mapped: the applying thread may be writing to it now. One page.
    g_page.store(page, std::memory_order_release);
    return true;
}

void own_memory_publish(std::int64_t bytes) noexcept {
    if (OwnMemoryPage *page = g_page.load(std::memory_order_acquire); page != nullptr) {
        page->bytes.store(bytes, std::memory_order_relaxed);
    }
}

OwnMemoryView::OwnMemoryView(int fd) noexcept
    : page_(static_cast<const OwnMemoryPage *>(map_page(fd, PROT_READ))) {}

OwnMemoryView::~OwnMemoryView() {
    if (page_ != nullptr) {
        ::munmap(const_cast<OwnMemoryPage *>(page_), sizeof(OwnMemoryPage));
    }
}

} // namespace memxx::core
