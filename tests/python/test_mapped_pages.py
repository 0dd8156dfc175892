"""Anonymous mappings count by the pages they occupy, not by their length (issue 25, part 1).

A reservation (mmap with MAP_NORESERVE, as mimalloc and jemalloc make them) costs nothing until
its pages are touched; the pages touched while a line runs count for that line, to the page;
madvise(DONTNEED/FREE) and munmap give them back. The truth is the number of pages the test
extension (native/memxx_native_ext.cpp) wrote to.
"""

import ctypes
import mmap
import threading
import time

import _memxx
import _native
import pytest
from _profiled import profiled

ext = _native.module()
PAGE = mmap.PAGESIZE
GIB = 2**30


def reserve_touch_give_back(pages, advice):
    address = ext.reserve(GIB)
    ext.touch(address, 0, pages * PAGE)
    ext.touch(address, GIB // 2, PAGE)
    ext.advise(address, 0, pages * PAGE, advice)
    ext.release("mmap", address, GIB)


@pytest.mark.parametrize("advice", ["dontneed", "free"])
def test_a_reservation_costs_nothing_and_its_touched_pages_count_exactly(advice):
    pages = 3001
    lines, _ = profiled(reserve_touch_give_back, pages, advice)
    assert lines[1].native_increment == 0  # 1 GiB reserved, nothing touched
    assert lines[2].native_increment == pages * PAGE
    assert lines[3].native_increment == PAGE  # one page in the middle
    assert lines[4].native_increment == -pages * PAGE
    assert lines[5].native_increment == -PAGE  # the rest, unmapped


def touch_in_a_loop(pages):
    address = ext.reserve(GIB)
    for i in range(pages):
        ext.touch(address, i * 7 * PAGE, 1)
    ext.touch(address, 0, PAGE)  # already counted
    ext.release("mmap", address, GIB)


def test_each_line_of_a_loop_gets_the_page_it_touched():
    lines, _ = profiled(touch_in_a_loop, 500)
    assert lines[3].native_increment == 500 * PAGE
    assert lines[3].occurrences == 500
    assert lines[4].native_increment == 0
    assert lines[5].native_increment == -500 * PAGE


def ctypes_libc():
    """libc through ctypes: calls by pointers from dlsym, which no slot rewrite reaches."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def reserve_before(address, pages):
    ext.touch(address, 0, pages * PAGE)
    ext.release("mmap", address, GIB)


def test_no_mapping_tracked_after_the_session():
    lines, _ = profiled(reserve_touch_give_back, 10, "dontneed")
    assert _memxx.hook_stats()["native_mappings"] == 0


def test_a_reservation_made_with_ctypes_before_profiling_counts_the_pages_touched_in_it():
    # ctypes calls libc's mmap through a pointer from dlsym, which no slot rewrite reaches: the
    # reservation is adopted when profiling starts, as one made at a library's import would be.
    libc = ctypes_libc()
    map_noreserve = 0x4000
    address = libc.mmap(None, GIB, mmap.PROT_READ | mmap.PROT_WRITE,
                        mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | map_noreserve, -1, 0)
    assert address not in (None, ctypes.c_void_p(-1).value)
    pages = 2500

    def fill(address):
        ctypes.memset(address, 7, pages * PAGE)
        ctypes.memset(address + GIB // 2, 7, 1)
        return address

    try:
        lines, _ = profiled(fill, address)
    finally:
        libc.munmap(address, GIB)
    assert lines[1].native_increment == pages * PAGE
    assert lines[2].native_increment == PAGE


def test_a_glibc_heap_whose_header_moved_on_since_the_maps_were_read_is_not_adopted():
    # A thread's glibc arena heap: 64 MiB aligned, RW for its header's mprotect_size, no access
    # after. Its thread grows it (mprotect) at any time, so the header can be a page ahead of
    # /proc/self/maps when the session reads both: it is still the heap of a block-counted
    # allocator, and the pages its thread touches or gives back are no line's (a churning
    # thread's trim once charged -4,096 B to a profiled line this way). This one is made by hand,
    # its header a page ahead of its RW part; the profiled line writes 1 MiB into it.
    libc = ctypes_libc()
    heap_max = 64 * 2**20
    rw = 2 * 2**20
    span = 3 * heap_max
    base = libc.mmap(None, span, 0,  # PROT_NONE
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000, -1, 0)
    assert base not in (None, ctypes.c_void_p(-1).value)
    heap = (base // heap_max + 1) * heap_max  # never the first byte: a gap below it
    try:
        assert libc.munmap(base, heap - base) == 0
        assert libc.mprotect(heap, rw, mmap.PROT_READ | mmap.PROT_WRITE) == 0
        header = (ctypes.c_size_t * 5).from_address(heap)
        header[:] = [heap + 48, 0, rw, rw + PAGE, PAGE]  # ar_ptr, prev, size, mprotect_size

        def fill(heap):
            ctypes.memset(heap + PAGE, 7, 2**20)
            return heap

        lines, _ = profiled(fill, heap)
    finally:
        libc.munmap(heap, base + span - heap)
    assert lines[1].native_increment == 0


def test_a_python_thread_that_pays_nobody_maps_and_unmaps_without_charging_a_profiled_line():
    # A Python thread started outside the profiled code (no cause) pays nobody: its mappings'
    # pages are not counted when the profiled thread's long lines count the other threads'
    # pages, nor credited when that thread unmaps them (a thread's data stack is one: its
    # page came back as -4096 at whichever line waited for the GIL while the thread ended).
    started, mapped_, release, released = (threading.Event() for _ in range(4))

    def bystander():
        started.wait(30)
        address = ext.reserve(GIB)
        ext.touch(address, 0, 256 * PAGE)
        mapped_.set()
        release.wait(30)
        ext.release("mmap", address, GIB)
        released.set()

    def waits_for_another_thread():
        started.set()
        mapped_.wait(30)
        time.sleep(0.05)  # a long line: its end counts the pages of every tracked mapping
        release.set()
        released.wait(30)
        time.sleep(0.05)
        return 1

    thread = threading.Thread(target=bystander)
    thread.start()
    try:
        lines, _ = profiled(waits_for_another_thread)
    finally:
        started.set()
        release.set()
        thread.join()
    assert released.is_set()
    assert {offset: r.native_increment for offset, r in lines.items()} == {
        offset: 0 for offset in lines}
