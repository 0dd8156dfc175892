"""A jemalloc linked into an extension under a prefix (polars' `_rjem_`, pyarrow's `je_arrow_`),
counted through its own hooks: per line, against the library's own count (issue 25).

polars' `estimated_size()` and pyarrow's `pool.bytes_allocated()` count the buffers the library
asked its allocator for: the line's Increment must match them, not the pages jemalloc keeps.
Each case runs in a fresh interpreter (its own jemalloc state, its own first use).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

MiB = 2**20
HERE = os.path.dirname(os.path.abspath(__file__))

PRELUDE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, %r)
    from _profiled import profiled
""" % HERE)


def run_child(body, cwd):
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=300, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def close_to(figure, truth):
    return abs(figure - truth) <= max(0.05 * abs(truth), 2 * MiB)


POLARS_JOB = """
    import numpy as np
    import polars as pl
    N = 3_000_000
    pl.DataFrame({"a": np.arange(N), "b": np.random.default_rng(1).random(N)}).write_csv("n.csv")

    def job():
        df = pl.read_csv("n.csv")
        s = df.sort("b")
        j = df.join(s, on="a")
        f = df.filter(pl.col("a") % 2 == 0)
        del s
        return df, j, f

    lines, (df, j, f) = profiled(job)
    print(json.dumps({
        "lines": {n: lines[n].increment for n in (1, 2, 3, 4, 5)},
        "truth": {1: df.estimated_size(), 2: df.estimated_size(), 3: j.estimated_size(),
                  4: f.estimated_size(), 5: -df.estimated_size()},
    }))
"""


def test_polars_lines_match_estimated_size_on_read_sort_join_filter_and_del(tmp_path):
    pytest.importorskip("polars")
    result = run_child(POLARS_JOB, tmp_path)
    assert result["truth"]["1"] == 3_000_000 * 16  # two 8-byte columns
    for line, truth in result["truth"].items():
        figure = result["lines"][line]
        assert close_to(figure, truth), (line, figure, truth)


def test_polars_worker_threads_count_for_the_line_that_asked(tmp_path):
    # read_csv parses on polars' own thread pool: without the hooks on those threads the line
    # read a few MiB (the main thread's share).
    pytest.importorskip("polars")
    result = run_child("""
        import os
        import numpy as np
        import polars as pl
        N = 2_000_000
        pl.DataFrame({"a": np.arange(N), "b": np.arange(N) * 0.5}).write_csv("n.csv")

        def read():
            df = pl.read_csv("n.csv")
            return df

        lines, df = profiled(read)
        print(json.dumps({"line": lines[1].increment, "truth": df.estimated_size(),
                          "threads": pl.thread_pool_size()}))
    """, tmp_path)
    assert result["truth"] == 2_000_000 * 16
    assert close_to(result["line"], result["truth"]), result


def test_a_second_session_counts_the_same_hooks_are_not_stacked(tmp_path):
    # The hooks are removed when a session ends and installed again by the next: installed
    # twice, each block would count twice.
    pytest.importorskip("polars")
    result = run_child("""
        import numpy as np
        import polars as pl
        df = pl.DataFrame({"a": np.arange(2_000_000)})

        def derive(df):
            new = df.select(pl.col("a") * 3)
            return new

        figures = []
        for _ in range(3):
            lines, new = profiled(derive, df)
            figures.append(lines[1].increment)
            del new
        print(json.dumps({"figures": figures, "truth": 2_000_000 * 8}))
    """, tmp_path)
    for figure in result["figures"]:
        assert close_to(figure, result["truth"]), result


def test_pyarrow_jemalloc_pool_counts_its_bytes_allocated(tmp_path):
    pa = pytest.importorskip("pyarrow")
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow build has no jemalloc pool")
    result = run_child("""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        pool = pa.jemalloc_memory_pool()
        x = pa.array(np.arange(5_000_000))
        pc.multiply(x, 2, memory_pool=pool)  # the pool's first use, before profiling

        def compute(x):
            before = pool.bytes_allocated()
            y = pc.multiply(x, 3, memory_pool=pool)
            return y, pool.bytes_allocated() - before

        lines, (y, truth) = profiled(compute, x)
        print(json.dumps({"line": lines[2].increment, "truth": truth}))
    """, tmp_path)
    assert result["truth"] == 40_000_000
    assert close_to(result["line"], result["truth"]), result


def test_pyarrow_mimalloc_pages_still_count_beside_its_jemalloc(tmp_path):
    # libarrow links both allocators: hooking its jemalloc must not hide its mimalloc's pages.
    pa = pytest.importorskip("pyarrow")
    result = run_child("""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        pool = pa.mimalloc_memory_pool()
        x = pa.array(np.arange(5_000_000))
        warm = pc.multiply(x, 2, memory_pool=pool)  # kept: its pages are not there to reuse

        def compute(x):
            y = pc.multiply(x, 3, memory_pool=pool)
            return y

        lines, y = profiled(compute, x)
        print(json.dumps({"line": lines[1].increment, "truth": y.nbytes}))
    """, tmp_path)
    assert result["truth"] == 40_000_000
    assert close_to(result["line"], result["truth"]), result
