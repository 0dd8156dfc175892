"""objgraph vs objgraphxx on the same heap, in one process: CPU seconds and peak extra memory.

Usage: python tests/bench/bench_objgraph.py [N ...]   (default 1000000; the heap then holds
about 2N gc-tracked objects, printed in the header)
Heap: class instances, dicts, lists and tuples, held from a module-level list; fan-in targets
held by 100 and 1000 small lists. Peak extra memory = VmHWM after resetting it via
/proc/self/clear_refs, minus RSS before the call (tracemalloc cannot see C++ allocations).
"""

from __future__ import annotations

import gc
import io
import os
import sys
import tempfile
import time
import types

import objgraph

import objgraphxx

HEAP: list = []


class Rec:
    def __init__(self, i: int) -> None:
        self.i = i
        self.name = "r"
        self.tags: list = []
        self.extra = None


def build_heap(n: int) -> None:
    HEAP.clear()
    for i in range(n // 4):
        HEAP.append((Rec(i), {"k": i, "v": []}, [i], (i, [])))


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(fn) -> tuple[float, float]:
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = rss_kb("VmRSS")
    sink = io.StringIO()
    real = sys.stdout
    sys.stdout = sink
    t0 = time.process_time()
    try:
        fn()
    finally:
        t1 = time.process_time()
        sys.stdout = real
    return t1 - t0, max(0, rss_kb("VmHWM") - before) / 1024.0


def fan_in(n: int) -> object:
    target = Rec(-1)
    mod = types.ModuleType("bench_fanin_%d" % n)
    sys.modules[mod.__name__] = mod
    mod.holders = [[target] for _ in range(n)]
    return target


def main(sizes: list[int]) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-objgraph-")
    print("%-44s %10s %10s %8s %9s %9s" % ("operation", "objgraph s", "xx s", "ratio",
                                           "og MB", "xx MB"))
    for n in sizes:
        build_heap(n)
        t100, t1000 = fan_in(100), fan_in(1000)
        gc.collect()
        print("== heap: %d gc-tracked objects (%s)" % (len(gc.get_objects()), sys.version.split()[0]))
        cases = [
            ("show_most_common_types()", lambda m: m.show_most_common_types()),
            ("show_growth() (collect)", lambda m: m.show_growth(peak_stats={})),
            ("show_growth(collect=False) [og: collect]",
             lambda m: m.show_growth(peak_stats={}, collect=False) if m is objgraphxx
             else m.show_growth(peak_stats={})),
            ("gc.collect() (reference)", lambda m: gc.collect()),
            ("get_leaking_objects()", lambda m: m.get_leaking_objects()),
            ("find_backref_chain(fan-in 100)",
             lambda m: m.find_backref_chain(t100, m.is_proper_module)),
            ("find_backref_chain(fan-in 1000)",
             lambda m: m.find_backref_chain(t1000, m.is_proper_module)),
            ("show_backrefs(max_depth=5) .dot",
             lambda m: m.show_backrefs([t100], max_depth=5, filename=os.path.join(tmp, "b.dot"))),
            ("get_new_ids() x2", lambda m: (m.get_new_ids(limit=0), m.get_new_ids(limit=0))),
        ]
        for name, fn in cases:
            og_s, og_mb = measure(lambda: fn(objgraph))
            xx_s, xx_mb = measure(lambda: fn(objgraphxx))
            print("%-44s %10.3f %10.3f %7.1fx %9.1f %9.1f" % (name, og_s, xx_s, og_s / max(xx_s, 1e-6),
                                                         og_mb, xx_mb))
        xx_png, _ = measure(lambda: objgraphxx.show_backrefs([t100], max_depth=5,
                                                             filename=os.path.join(tmp, "b.png")))
        print("%-44s %10s %10.3f  (objgraph needs the dot program)" % (
            "show_backrefs(max_depth=5) .png", "-", xx_png))
        state = objgraphxx.get_new_ids.__defaults__[-1]["tracker"].retained_bytes
        print("get_new_ids state: %.1f B per tracked object" % (state / len(gc.get_objects())))
        HEAP.clear()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000_000])
