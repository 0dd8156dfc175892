"""--peak counts the mappings native code makes itself by the pages they occupy, on the line that
made them: a 1 GiB reservation of which 10 MiB are touched holds 10 MiB (not 1 GiB, not 0), pages
given back are freed, OpenBLAS's buffers hold what BLAS touched, pyarrow's bundled mimalloc holds
what arrow allocated in it.

Truths: the bytes the test touches, numpy's nbytes, pyarrow's own count
(``pa.total_allocated_bytes()``) and the kernel's (the Rss of the mappings in /proc/self/smaps).
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_memxx = pytest.importorskip("_memxx")

from memory_profilerxx import peak_report  # noqa: E402
from _memxx_shared.peak_file import load  # noqa: E402

MiB = 2**20
PAGE = mmap.PAGESIZE
MAP_NORESERVE = 0x4000
MADV_DONTNEED = 4

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def reserve_gib() -> int:
    address = libc.mmap(None, 2**30, mmap.PROT_READ | mmap.PROT_WRITE,
                        mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    assert address not in (None, ctypes.c_void_p(-1).value)
    return address


def touch(address: int, length: int) -> None:
    ctypes.memset(address, 1, length)


def rows_of(table, source: str) -> dict[str, int]:
    return {row.source: row.bytes for row in table.lines() if row.filename == source}


MMAP_LINE = "address = libc.mmap(None, 2**30, mmap.PROT_READ | mmap.PROT_WRITE,"


def reserve_and_touch_10_mib() -> int:
    address = reserve_gib()
    touch(address, 10 * MiB)
    return address


def test_a_reservation_holds_the_pages_touched_on_the_line_that_mapped_it() -> None:
    with peak_report() as peak:
        address = reserve_and_touch_10_mib()
    assert peak.table is not None
    rows = rows_of(peak.table, __file__)
    held = rows[MMAP_LINE]
    # 2,560 pages touched; a huge page may come with them where the kernel backs the range so.
    assert 10 * MiB <= held <= 10 * MiB + 2 * PAGE
    assert peak.table.peak_bytes < 11 * MiB
    libc.munmap(address, 2**30)


def test_pages_given_back_are_freed_and_a_temporary_still_makes_its_peak() -> None:
    # Touched, given back (madvise DONTNEED), then a bigger peak: the pages are not in it.
    with peak_report() as peak:
        address = reserve_and_touch_10_mib()
        libc.madvise(address, 10 * MiB, MADV_DONTNEED)
        bigger = bytearray(12 * MiB)
    assert peak.table is not None
    rows = rows_of(peak.table, __file__)
    assert rows["bigger = bytearray(12 * MiB)"] == pytest.approx(12 * MiB, abs=PAGE)
    assert rows.get(MMAP_LINE, 0) < PAGE  # the address (a Python int), not the pages
    assert peak.table.peak_bytes < 12 * MiB + PAGE
    libc.munmap(address, 2**30)
    # Touched and given back at once (no pass of the recorder in between), then a smaller
    # block: the peak is the touched pages' moment, counted by the madvise hook itself.
    with peak_report() as peak:
        address = reserve_and_touch_10_mib()
        libc.madvise(address, 10 * MiB, MADV_DONTNEED)
        smaller = bytearray(8 * MiB)
    assert peak.table is not None
    rows = rows_of(peak.table, __file__)
    assert 10 * MiB <= rows[MMAP_LINE] <= 10 * MiB + 2 * PAGE
    assert rows.get("smaller = bytearray(8 * MiB)", 0) == 0
    assert peak.table.current_bytes < 8 * MiB + MiB  # the pages are no longer held
    # munmap frees what the mapping held.
    with peak_report() as peak:
        touch(address, 4 * MiB)
        libc.munmap(address, 2**30)
        after = bytearray(3 * MiB)
    assert peak.table is not None
    assert peak.table.current_bytes < 3 * MiB + MiB
    del bigger, smaller, after


def mprofxx(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mprofxx", *args], cwd=cwd, capture_output=True,
                          check=False, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


# The Rss of the anonymous mappings (no file), by range: the kernel's count of what they occupy.
SMAPS = '''
    import re

    def anonymous_rss():
        out, mapping = {}, None
        for line in open("/proc/self/smaps"):
            head = re.match(r"([0-9a-f]+)-([0-9a-f]+) \\S+ \\S+ \\S+ \\d+\\s*(.*)", line)
            if head:
                mapping = None if head.group(3).strip() else (int(head.group(1), 16),
                                                              int(head.group(2), 16))
            elif line.startswith("Rss:") and mapping is not None:
                out[mapping] = int(line.split()[1]) * 1024
        return out

    def grown(before, after, smallest):
        return sum(rss - before.get(span, 0) for span, rss in after.items()
                   if span[1] - span[0] >= smallest and rss > before.get(span, 0))
'''


def run_peak(tmp_path: Path, program: str, env: dict[str, str] | None = None
             ) -> tuple[dict, dict[int, int], str]:
    (tmp_path / "prog.py").write_text(textwrap.dedent(SMAPS) + textwrap.dedent(program))
    result = mprofxx("run", "--peak", "-o", "prog.dat", "prog.py", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    (table,) = load(str(tmp_path / "prog.peak.json"))
    rows = {row.lineno: row.bytes for row in table.lines() if row.filename.endswith("prog.py")}
    lines = mprofxx("peak", "--lines", "prog.dat", cwd=tmp_path)
    assert lines.returncode == 0, lines.stderr
    truth = json.loads((tmp_path / "truth.json").read_text())
    return truth, rows, lines.stdout


def line_number(program: str, text: str) -> int:
    source = textwrap.dedent(SMAPS) + textwrap.dedent(program)
    (number,) = [i for i, line in enumerate(source.splitlines(), 1) if text in line]
    return number


def mib_printed(printed: str, where: str) -> float:
    (row,) = [line for line in printed.splitlines() if f" {where} " in line]
    return float(row.split()[0])


CTYPES_PROGRAM = '''
    import ctypes, json, mmap
    libc = ctypes.CDLL(None)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]

    def reserve_and_touch():
        address = libc.mmap(None, 2**30, 3, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000, -1, 0)
        ctypes.memset(address, 1, 10 * 2**20)  # touched: 10 MiB of the 1 GiB
        return address

    kept = reserve_and_touch()
    json.dump({"touched": 10 * 2**20}, open("truth.json", "w"))
'''


def test_run_peak_charges_a_reservation_by_its_pages(tmp_path: Path) -> None:
    truth, rows, printed = run_peak(tmp_path, CTYPES_PROGRAM)
    line = line_number(CTYPES_PROGRAM, "address = libc.mmap(")
    assert truth["touched"] <= rows[line] <= truth["touched"] + 2 * PAGE
    assert mib_printed(printed, f"prog.py:{line}") == 10.0


BLAS_PROGRAM = '''
    import json
    import numpy as np

    a = np.ones((300, 300))

    def work():
        c = a @ a
        return c

    before = anonymous_rss()
    c = work()
    after = anonymous_rss()
    # OpenBLAS's buffers are mappings of 32 MiB and more: what they occupy after the call.
    json.dump({"result": c.nbytes, "blas": grown(before, after, 16 * 2**20)}, open("truth.json", "w"))
'''


def test_run_peak_charges_blas_buffers_by_the_pages_blas_touched(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    truth, rows, _printed = run_peak(tmp_path, BLAS_PROGRAM)
    held = rows[line_number(BLAS_PROGRAM, "c = a @ a")]
    # The result, and at most what the buffers occupy (a buffer mapped by one of BLAS's own
    # threads has no Python stack: it goes to the root); never a 32 MiB buffer in full.
    assert truth["result"] <= held <= truth["result"] + truth["blas"] + 4 * PAGE
    assert held < truth["result"] + 4 * MiB


ARROW_PROGRAM = '''
    import json
    import numpy as np
    import pandas  # pyarrow imports it at its first conversion from numpy
    import pyarrow as pa
    import pyarrow.compute as pc

    source = pa.array(np.arange(5_000_000, dtype=np.int64))  # numpy's buffer, not arrow's

    def work():
        doubled = pc.multiply(source, 2)  # the first arrow allocation: 40 MB in mimalloc
        return doubled

    before, rss_before = pa.total_allocated_bytes(), anonymous_rss()
    doubled = work()
    made, rss_after = pa.total_allocated_bytes() - before, anonymous_rss()
    # The mapping that holds the result: mimalloc's reservation, made by the call.
    address = doubled.buffers()[1].address
    (arena,) = [span for span in rss_after if span[0] <= address < span[1]]
    json.dump({"made": made, "arena": arena[1] - arena[0],
               "occupied": rss_after[arena] - rss_before.get(arena, 0),
               "backend": pa.default_memory_pool().backend_name}, open("truth.json", "w"))
'''


def test_run_peak_charges_pyarrows_mimalloc_what_arrow_allocated(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    # The pool this test is about, whatever pyarrow would choose by default (its jemalloc on
    # some builds). The wheels the project's scripts install all have it: a pyarrow without it
    # (it would fall back to another pool) fails here rather than skip the case.
    truth, rows, _printed = run_peak(tmp_path, ARROW_PROGRAM,
                                     env={"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"})
    assert truth["backend"] == "mimalloc", truth
    held = rows[line_number(ARROW_PROGRAM, "doubled = pc.multiply(source, 2)")]
    # What the reservation holding the result really occupies: the kernel's count (the Rss of
    # that mapping alone: every large mapping's would count others' growth too, such as the
    # recorder's own tables in its mimalloc 3 arena), to a few pages; the line's other bytes
    # are the Python objects it made (a few KiB)...
    assert held == pytest.approx(truth["occupied"], abs=4 * PAGE)
    # ...which is arrow's own count, within 5 % and the huge pages the kernel backs it with
    # (transparent huge pages: 2 MiB at each end of the block and of mimalloc's segment).
    assert truth["made"] <= held <= truth["made"] * 1.05 + 4 * 2 * MiB
    assert held < truth["arena"] / 4  # a reservation, charged by its pages


def _garbage(depth: int, sides: list[bool]) -> None:
    if depth == 0:
        bytearray(100)  # freed at once: a stack no report shows, which the tree collects
    elif sides[depth]:
        _garbage(depth - 1, sides)
    else:
        _garbage(depth - 1, sides)


QUIET_MMAP_LINE = "raw = libc.mmap(None, 2**30, mmap.PROT_READ | mmap.PROT_WRITE,"


def _reserve_holding_nothing() -> int:
    # The int mmap returns is freed when this returns: the mapping's line holds no bytes then.
    raw = libc.mmap(None, 2**30, mmap.PROT_READ | mmap.PROT_WRITE,
                    mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    return int.from_bytes(raw.to_bytes(8, "little"), "little")


def test_a_mappings_line_outlives_the_collection_of_the_stacks_no_report_shows() -> None:
    # The reservation holds no bytes until it is touched. Meanwhile 2^16 stacks that allocate and
    # free grow the stack tree past its first collection (64 Ki nodes), which hands the ids of
    # stacks holding nothing to new stacks: the mapping's own stack must keep its id, or its
    # pages would be charged to whichever stack got it.
    depth = 16
    with peak_report() as peak:
        address = _reserve_holding_nothing()
        for bits in range(2**depth):
            _garbage(depth, [False] + [(bits >> d) & 1 == 1 for d in range(depth)])
        touch(address, 10 * MiB)
    assert peak.table is not None
    rows = rows_of(peak.table, __file__)
    assert 10 * MiB <= rows[QUIET_MMAP_LINE] <= 10 * MiB + 2 * PAGE
    assert sum(rows.values()) < 11 * MiB
    libc.munmap(address, 2**30)
