"""Anonymous mappings count by the pages they occupy, not by their length (issue 25, part 1).

A reservation (mmap with MAP_NORESERVE, as mimalloc and jemalloc make them) costs nothing until
its pages are touched; the pages touched while a line runs count for that line, to the page;
madvise(DONTNEED/FREE) and munmap give them back. The truth is the number of pages the test
extension (native/memxx_native_ext.cpp) wrote to.
"""

import mmap

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


def reserve_before(address, pages):
    ext.touch(address, 0, pages * PAGE)
    ext.release("mmap", address, GIB)


def test_no_mapping_tracked_after_the_session():
    lines, _ = profiled(reserve_touch_give_back, 10, "dontneed")
    assert _memxx.hook_stats()["native_mappings"] == 0
