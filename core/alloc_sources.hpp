// The sources of allocations the accounting core hears from, as the session code starts and
// stops them. Internal to core; every call here needs the GIL.
#pragma once

#include <cstddef>

namespace memxx::core {

// The RAW, MEM and OBJ PyMem domains (pymem_hooks.cpp). Installed while a session or
// allocation-site tracking wants them.
void pymem_hooks_install();
void pymem_hooks_remove();
bool pymem_hooks_installed() noexcept;
// Benchmarks only: functions that just call each domain's previous allocator, the floor of any
// PyMem hook. False when nothing changed (on: our hooks or the floor are installed already; off:
// the floor is not installed, or another hook sits on top of it and it stays).
bool pymem_floor(bool on);

// Native code's malloc family and anonymous mmap, through the GOT slots of the loaded objects
// (native_hooks.cpp). `enable` redirects the slots (walking the relocations of objects it has
// not seen yet) and turns counting on; `disable` turns counting off and puts every slot back.
void native_hooks_enable();
void native_hooks_disable();

struct NativeHookStats {
    bool enabled;                // the slots point at our functions
    std::size_t objects;         // loaded objects whose slots are redirected
    std::size_t slots;           // slots found for our functions
    std::size_t slots_now;       // of them, those that point at our functions now (read back)
    std::size_t live_mappings;   // anonymous mappings made while profiling, not unmapped yet
    double last_enable_seconds;  // the last enable's pass over the loaded objects
};
NativeHookStats native_hook_stats();

} // namespace memxx::core
