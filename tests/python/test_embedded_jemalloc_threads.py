"""Threads that used an embedded jemalloc (polars', pyarrow's pool) and end after a profiling
session: the heap stays sound for every other thread.

Why this exists: jemalloc 5.3's `experimental.hooks.install` and `.remove` mark every thread of
that jemalloc "recompute" (`tsd_global_slow_inc/dec`), and its thread-exit cleanup (`tsd_cleanup`)
has no case for that state: a thread that ends before its next call into that jemalloc is never
cleaned up and stays linked in the allocator's thread list after glibc frees its TLS. The next
install, removal or thread start writes through that list into freed memory: compressed data
of unrelated bz2/lzma threads corrupted ("Invalid data stream"), then a segfault in
`tsd_add_nominal`. Hooks installed and removed per session did that within a second here.
Each case runs in a child: a corrupted heap must fail the test, not the test run.
"""

import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = textwrap.dedent("""
    import bz2, lzma, os, sys, threading, time
    sys.path.insert(0, %r)
    from _profiled import profiled
    work = sys.argv[1]
    if work == "polars":
        import numpy as np
        import polars as pl

        def allocate():
            s = pl.Series(np.arange(10_000)) * 2
            del s
    else:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        pool = pa.jemalloc_memory_pool()
        x = pa.array(np.arange(10_000))

        def allocate():
            y = pc.multiply(x, 2, memory_pool=pool)
            del y

    def small():
        block = [1] * 1000
        return block

    payload = os.urandom(1 << 14) * 8
    stop = threading.Event()
    bad = []

    def compress(i):
        codec = lzma if i %% 2 else bz2
        while not stop.is_set():
            try:
                if codec.decompress(codec.compress(payload)) != payload:
                    bad.append("data changed")
            except Exception as error:
                bad.append(repr(error))

    codecs = [threading.Thread(target=compress, args=(i,)) for i in range(4)]
    for t in codecs:
        t.start()
    allocate()
    profiled(small)
    rounds = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not bad:
        go = threading.Event()
        ready = []

        def worker():
            allocate()  # this thread is now one of the allocator's
            ready.append(1)
            go.wait()  # idle through the session, then ends without calling it again

        workers = [threading.Thread(target=worker) for _ in range(4)]
        for t in workers:
            t.start()
        while len(ready) < len(workers):
            time.sleep(0.0005)
        lines, _ = profiled(small)
        assert 8000 <= lines[1].increment <= 8056, lines[1].increment
        go.set()
        for t in workers:
            t.join()
        rounds += 1
    stop.set()
    for t in codecs:
        t.join()
    print(rounds, bad[:3])
""" % HERE)


@pytest.mark.parametrize("work", ["polars", "pyarrow_jemalloc_pool"])
def test_threads_of_an_embedded_jemalloc_end_after_sessions_without_corrupting_others(
        work, tmp_path):
    if work == "polars":
        pytest.importorskip("polars")
    else:
        pa = pytest.importorskip("pyarrow")
        try:
            pa.jemalloc_memory_pool()
        except NotImplementedError:
            pytest.skip("this pyarrow build has no jemalloc pool")
    done = subprocess.run([sys.executable, "-c", CHILD, work], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    rounds, bad = done.stdout.split(" ", 1)
    assert bad.strip() == "[]"
    assert int(rounds) >= 10  # threads really ended around sessions
