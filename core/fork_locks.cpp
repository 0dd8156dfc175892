#include "core/fork_locks.hpp"

#include <pthread.h>

#include "core/alloc_accounting.hpp"

namespace memxx::core {

namespace {

void prepare() noexcept {
    native_hooks_fork_prepare();
    accounting::g_lock.lock();
    peak_fork_prepare();
    pages::fork_prepare();
    shares_fork_prepare();
}

void parent() noexcept {
    shares_fork_parent();
    pages::fork_parent();
    peak_fork_parent();
    accounting::g_lock.unlock();
    native_hooks_fork_parent();
}

void child() noexcept {
    shares_fork_child();
    pages::fork_child();
    peak_fork_child();
    accounting::g_lock.unlock();
    native_hooks_fork_child();
}

} // namespace

void fork_locks_install() noexcept {
    static const bool installed = pthread_atfork(prepare, parent, child) == 0;
    (void)installed;
}

} // namespace memxx::core
