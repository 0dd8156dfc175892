"""Stress: the allocator hook under 8 allocating threads, and armed/disarmed 1,000 times.

- 8 threads allocate and free 1 M blocks each (RAW without the GIL, MEM and OBJ with it, from C)
  or churn lzma/bz2 (which allocate through the RAW domain without the GIL), while a profiled
  function runs in the main thread: its lines' figures of blocks must be those of a quiet run.
- The hook is armed and disarmed 1,000 times, with tracemalloc off, on, started inside the
  profiled call, and left running after it: PyMem_GetAllocator gives back the allocators that
  were there before, every time.
"""

from __future__ import annotations

import bz2
import ctypes
import gc
import lzma
import os
import sys
import threading
import time
import tracemalloc

import _churn
import _memxx
from _profiled import profiled

BLOCKS_PER_THREAD = 1_000_000
COMPRESSIONS = 40  # lzma/bz2 round trips of 64 KiB: their threads allocate without the GIL
BATCH = 16_384  # MEM/OBJ churn holds the GIL per call, as a C extension does


def measured(rounds):
    kept = []
    for _ in range(rounds):
        block = bytearray(100_000)
        kept.append(bytes(1000))
        del block
    total = [0] * 1_000_000
    return kept, total


# The blocks' figures: a mapping's pages that other threads touch or give back count for the
# profiled thread's long lines by design (core/mapped_pages.hpp: native pools fill the profiled
# code's arrays), and a line that waits for the GIL while a churn thread ends is such a line.
def _figures(lines):
    return {offset: (r.occurrences, r.increment - r.native_increment)
            for offset, r in lines.items()}


# CPython's free lists (list headers, 56 B; small objects) are shared by all threads: whether
# one of this thread's objects comes from a free list (no allocator call, not counted) or from
# the allocator depends on what other threads did. One such object per line is the only
# difference allowed; a block of another thread charged to this one would be far larger. 3.14+
# also keeps free lists of range iterators and ints: the `for` line's range (48 B) and its
# iterator (40 B) can both come from them.
FREE_LIST_SLACK = 64 if sys.version_info < (3, 14) else 96


def _differs(figures, baseline):
    return figures.keys() != baseline.keys() or any(
        figures[k][0] != baseline[k][0] or abs(figures[k][1] - baseline[k][1]) > FREE_LIST_SLACK
        for k in baseline
    )


def _churn_with_gil(fn, blocks, done, index):
    count = 0
    while count < blocks:
        count += fn(min(BATCH, blocks - count), None)
    done[index] = count


def _churn_without_gil(fn, blocks, done, index):
    done[index] = fn(blocks, None)


def _compressor(module, rounds, done, index):
    data = os.urandom(4096) * 16
    for _ in range(rounds):
        assert module.decompress(module.compress(data)) == data
        done[index] += 1


def test_eight_threads_churn_while_a_profiled_function_stays_exact():
    raw, mem, obj = _churn.functions()
    baseline = _figures(profiled(measured, 300)[0])
    # The quiet run's figures are themselves right: 300 x 1,033-byte bytes objects are kept.
    assert 8_000_000 <= baseline[6][1] <= 8_000_056
    assert 300 * 1033 <= baseline[4][1] <= 300 * 1033 + 8 * 400

    done = [0] * 8
    workers = [
        threading.Thread(target=_churn_without_gil, args=(raw, BLOCKS_PER_THREAD, done, 0)),
        threading.Thread(target=_churn_without_gil, args=(raw, BLOCKS_PER_THREAD, done, 1)),
        threading.Thread(target=_churn_with_gil, args=(mem, BLOCKS_PER_THREAD, done, 2)),
        threading.Thread(target=_churn_with_gil, args=(mem, BLOCKS_PER_THREAD, done, 3)),
        threading.Thread(target=_churn_with_gil, args=(obj, BLOCKS_PER_THREAD, done, 4)),
        threading.Thread(target=_churn_with_gil, args=(obj, BLOCKS_PER_THREAD, done, 5)),
        threading.Thread(target=_compressor, args=(lzma, COMPRESSIONS, done, 6)),
        threading.Thread(target=_compressor, args=(bz2, COMPRESSIONS, done, 7)),
    ]
    # A collection that runs in this thread during a profiled run frees garbage made before it
    # (in 3.12+ any thread's allocations can schedule it, and it runs at the next function entry
    # or loop back edge): those frees are charged, rightly, to the line that was running. Such
    # runs are counted and left out of the comparison; the others must match the quiet run.
    main = threading.get_ident()
    collections = [0]

    def count_collections(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and threading.get_ident() == main:
            collections[0] += 1

    gc.callbacks.append(count_collections)
    started = time.monotonic()
    for t in workers:
        t.start()
    runs = 0
    mismatches = []
    exact = 0
    collected_in = 0
    with_pages = 0
    try:
        while any(t.is_alive() for t in workers) or runs < 3:
            before = collections[0]
            lines = profiled(measured, 300)[0]
            with_pages += any(r.native_increment != 0 for r in lines.values())
            figures = _figures(lines)
            if collections[0] != before:
                collected_in += 1
            elif _differs(figures, baseline):
                mismatches.append(figures)
            exact += figures == baseline
            runs += 1
    finally:
        gc.callbacks.remove(count_collections)
    for t in workers:
        t.join(timeout=120)
        assert not t.is_alive(), "a worker thread is stuck (deadlock in the hook?)"
    elapsed = time.monotonic() - started
    assert done[:6] == [BLOCKS_PER_THREAD] * 6
    assert done[6:] == [COMPRESSIONS, COMPRESSIONS]
    assert not mismatches, (f"{len(mismatches)} of {runs} profiled runs differ from {baseline}: "
                            f"{mismatches[0]}")
    assert collected_in * 10 <= runs, f"{collected_in} of {runs} runs collected garbage"
    print(
        f"\nstress: {sum(done[:6]):,} blocks in 6 churn threads + {done[6]} lzma, {done[7]} bz2"
        f" round trips in {elapsed:.1f} s; {runs} profiled runs, {exact} byte-identical to the"
        f" quiet run, {collected_in} with a collection in this thread left out, the rest within"
        f" one free-list object per line; {with_pages} runs with other threads' pages counted",
        file=sys.stderr,
    )


class PyMemAllocatorEx(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]


_get_allocator = ctypes.pythonapi.PyMem_GetAllocator
_get_allocator.restype = None
_get_allocator.argtypes = [ctypes.c_int, ctypes.POINTER(PyMemAllocatorEx)]


def allocators():
    """(ctx, malloc, calloc, realloc, free) of the RAW, MEM and OBJ domains, as PyMem sees them."""
    out = []
    for domain in (0, 1, 2):  # PYMEM_DOMAIN_RAW, _MEM, _OBJ
        current = PyMemAllocatorEx()
        _get_allocator(domain, ctypes.byref(current))
        out.append(tuple(getattr(current, name) for name, _ in PyMemAllocatorEx._fields_))
    return tuple(out)


# What a bytearray holds beyond its items and the 57 B it took through 3.14: 3.15 keeps the items
# in a bytes object of their own (its 33 B header, and a larger bytearray object).
BYTEARRAY_EXTRA = sys.getsizeof(bytearray(1 << 20)) - (1 << 20) - 57


def test_arm_and_disarm_1000_times_restores_the_allocators_exactly():
    assert not tracemalloc.is_tracing()
    original = allocators()
    seen = {}

    def small(mode):
        seen["armed"] = allocators()
        if mode == "start inside":
            tracemalloc.start()
        data = bytearray(1 << 20)
        if tracemalloc.is_tracing():
            seen["traced"] = tracemalloc.get_traced_memory()[0]
        if mode == "start inside":
            tracemalloc.stop()
        if mode == "left running":
            tracemalloc.start()
        return data

    modes = ["off", "on around", "start inside", "left running"]
    left_in_chain = False
    for i in range(1000):
        mode = modes[i % 4]
        if mode == "on around":
            tracemalloc.start()
        before = allocators()
        lines, _ = profiled(small, mode)
        # Started above our hook, tracemalloc's own tables are allocated through it: a few
        # hundred bytes more on the line.
        slack = 64 if mode in ("off", "on around") else 1024
        assert 1 << 20 <= lines[4].increment <= (1 << 20) + BYTEARRAY_EXTRA + slack, (i, mode)
        if tracemalloc.is_tracing():
            assert seen["traced"] >= 1 << 20  # tracemalloc above or below us still sees it
        if left_in_chain:
            # The previous call ended under tracemalloc, so our hook stayed in the chain,
            # passing through; this call, with nothing above it, takes it out.
            assert seen["armed"] == before and allocators() == original, (i, mode)
            left_in_chain = False
            continue
        assert seen["armed"] != before, "the hook was not installed while profiling"
        if mode == "left running":
            tracemalloc.stop()
            assert _memxx.hook_stats()["active"] is False
            left_in_chain = allocators() != original
            continue
        assert allocators() == before, (i, mode)
        if mode == "on around":
            tracemalloc.stop()
        assert allocators() == original, (i, mode)
    profiled(small, "off")
    assert allocators() == original
