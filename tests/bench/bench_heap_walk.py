"""The heap walk two ways on bench_objgraph's heap: the collector's lists read in place (the
compat layer's default) and the collector's public visitor, PyUnstable_GC_VisitObjects (3.12+;
the fallback of the import's offsets check). CPU seconds per objgraphxx call, the two modes in
turns round by round after a warm-up; each figure is the mode's median.

Run: python tests/bench/bench_heap_walk.py [N]   (default 1000000: about 2N tracked objects)
"""

from __future__ import annotations

import gc
import io
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _memxx  # noqa: E402
import bench_objgraph  # noqa: E402

import objgraphxx  # noqa: E402

ROUNDS = 7


def main(n: int) -> None:
    bench_objgraph.build_heap(n)
    target = bench_objgraph.fan_in(100)
    gc.collect()
    print(f"Python {sys.version.split()[0]}: {len(gc.get_objects()):,} tracked objects; "
          f"{ROUNDS} interleaved rounds, medians")
    cases = {
        "gc_tracked_count()": _memxx.gc_tracked_count,
        "show_most_common_types()":
            lambda: objgraphxx.show_most_common_types(file=io.StringIO()),
        "get_leaking_objects()": objgraphxx.get_leaking_objects,
        "find_backref_chain(fan-in 100)":
            lambda: objgraphxx.find_backref_chain(target, objgraphxx.is_proper_module),
        "get_new_ids() x2": lambda: [objgraphxx.get_new_ids(limit=0, file=io.StringIO())
                                     for _ in range(2)],
    }
    print(f"{'call':32s} {'lists ms':>10s} {'visitor ms':>11s} {'visitor/lists':>14s}")
    for name, call in cases.items():
        times: dict[bool, list[float]] = {False: [], True: []}
        for public in (False, True):
            _memxx._gc_public_walk(public)
            call()
        for _ in range(ROUNDS):
            for public in (False, True):
                _memxx._gc_public_walk(public)
                gc.collect()
                start = time.process_time()
                call()
                times[public].append(time.process_time() - start)
        _memxx._gc_public_walk(False)
        lists, visitor = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name:32s} {lists * 1e3:10.1f} {visitor * 1e3:11.1f} {visitor / lists:13.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
