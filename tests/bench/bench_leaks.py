"""The leak finder on a large heap, and the cost of allocation-site tracking, in one process.

Usage: python tests/bench/bench_leaks.py [TRACKED_OBJECTS]   (default 3000000)

Part 1, a heap of about TRACKED_OBJECTS gc-tracked objects (class instances, dicts, lists,
tuples held from a module-level list) plus their untracked referents: CPU seconds and peak
extra memory of why_alive (a target 10 links below a module), retained_size (one full dominator
tree of the heap) and snapshot(), beside objgraph's find_backref_chain on the same target.
Peak extra memory = VmHWM after resetting it via /proc/self/clear_refs, minus RSS before the
call (tracemalloc cannot see C++ allocations).

Part 2, an allocation-heavy function (builds and drops 200 000 small objects, dicts, lists and
strings) run plain, with track_allocations() on and with tracemalloc.start(1): best of 5 wall
times and the slowdown ratios. The benchmark prints; it asserts nothing.
"""

from __future__ import annotations

import gc
import io
import sys
import time
import tracemalloc
import types

import objgraphxx

try:
    import objgraph
except ImportError:  # objgraph is only the reference column
    objgraph = None

HEAP: list = []


class Rec:
    def __init__(self, i: int) -> None:
        self.i = i
        self.name = "r"
        self.tags: list = []
        self.extra = None


def build_heap(tracked: int) -> None:
    HEAP.clear()
    for i in range(tracked // 8):  # 8 tracked objects per unit
        HEAP.append((Rec(i), {"k": i, "v": []}, [i], (i, [])))


class Leaf:
    pass


def plant_deep_target() -> None:
    """A Leaf 8 links below a module: module -> dict -> dict -> list -> tuple -> dict -> Rec ->
    list -> dict -> Leaf."""
    mod = types.ModuleType("bench_leaks_deep")
    sys.modules[mod.__name__] = mod
    rec = Rec(-1)
    rec.tags = [{"leaf": Leaf()}]
    mod.store = {"level": [({"rec": rec},)]}


def deep_leaf() -> Leaf:
    # Returned, not kept in a variable: a local holding it would be the shortest answer.
    return sys.modules["bench_leaks_deep"].store["level"][0][0]["rec"].tags[0]["leaf"]


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(fn) -> tuple[float, float, object]:
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = rss_kb("VmRSS")
    real = sys.stdout
    sys.stdout = io.StringIO()
    t0 = time.process_time()
    try:
        result = fn()
    finally:
        t1 = time.process_time()
        sys.stdout = real
    return t1 - t0, max(0, rss_kb("VmHWM") - before) / 1024.0, result


def heap_part(tracked: int) -> None:
    # Built under track_allocations(), so that snapshot() has sites to count.
    rss_before = rss_kb("VmRSS")
    with objgraphxx.track_allocations():
        build_heap(tracked)
        plant_deep_target()
    gc.collect()
    table = objgraphxx._leaks._memxx.sites_stats()
    print(
        "heap: %d gc-tracked objects, RSS +%.0f MB, Python %s"
        % (len(gc.get_objects()), (rss_kb("VmRSS") - rss_before) / 1024.0, sys.version.split()[0])
    )
    print(
        "site table: %d live blocks with a site, %.1f MB (%.1f B per block)"
        % (
            table["live_blocks"],
            table["table_bytes"] / 2**20,
            table["table_bytes"] / max(table["live_blocks"], 1),
        )
    )
    print("%-44s %9s %9s" % ("operation", "CPU s", "extra MB"))
    rows = []

    def row(name: str, fn) -> object:
        cpu, mb, result = measure(fn)
        rows.append((name, cpu))
        print("%-44s %9.3f %9.1f" % (name, cpu, mb))
        return result

    hops = row("objgraphxx.why_alive(deep leaf)", lambda: objgraphxx.why_alive(deep_leaf()))
    if objgraph is not None:
        row(
            "objgraph.find_backref_chain(deep, module)",
            lambda: objgraph.find_backref_chain(deep_leaf(), objgraph.is_proper_module),
        )
    retained = row("objgraphxx.retained_size(HEAP)", lambda: objgraphxx.retained_size(HEAP))
    snap = row("objgraphxx.snapshot()", objgraphxx.snapshot)
    row("gc.collect() (reference)", gc.collect)
    if objgraph is not None:
        row("objgraph.show_most_common_types() (ref.)", objgraph.show_most_common_types)
    print(
        "why_alive chain: %s" % " ".join(h.edge for h in hops),
    )
    print(
        "retained_size(HEAP) = %.1f MB; snapshot: %d objects, %d types, %d sites"
        % (retained / 2**20, snap.objects, len(snap.types), len(snap.sites))
    )
    times = dict(rows)
    if objgraph is not None:
        print(
            "ratio objgraph find_backref_chain / objgraphxx why_alive: %.1fx"
            % (
                times["objgraph.find_backref_chain(deep, module)"]
                / max(times["objgraphxx.why_alive(deep leaf)"], 1e-9)
            )
        )
    print(
        "per object: retained_size %.0f ns, snapshot %.0f ns (gc.collect %.0f ns)"
        % tuple(
            times[k] / snap.objects * 1e9
            for k in (
                "objgraphxx.retained_size(HEAP)",
                "objgraphxx.snapshot()",
                "gc.collect() (reference)",
            )
        )
    )
    HEAP.clear()
    del hops, snap
    objgraphxx.track_allocations().stop(forget=True)
    gc.collect()


class Item:
    def __init__(self, i: int) -> None:
        self.i = i
        self.label = "item-%d" % i


def allocation_heavy() -> int:
    """Builds and drops 200 000 objects of the kinds programs make: instances, dicts, lists,
    strings, tuples."""
    total = 0
    for _ in range(5):
        items = [Item(i) for i in range(10_000)]
        rows = [{"id": it.i, "tags": [it.label, str(it.i)], "pos": (it.i, -it.i)} for it in items]
        total += len(rows)
    return total


def best_wall(fn, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def tracking_part() -> None:
    plain = best_wall(allocation_heavy)
    with objgraphxx.track_allocations():
        tracked = best_wall(allocation_heavy)
    objgraphxx.track_allocations().stop(forget=True)
    tracemalloc.start(1)
    traced = best_wall(allocation_heavy)
    tracemalloc.stop()
    print()
    print("allocation-heavy function (best of 5 wall s): plain %.3f" % plain)
    print("  track_allocations()  %.3f  slowdown %.2fx" % (tracked, tracked / plain))
    print("  tracemalloc.start(1) %.3f  slowdown %.2fx" % (traced, traced / plain))
    print("  tracemalloc / track_allocations: %.2fx" % (traced / tracked))


def main() -> None:
    tracked = int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000
    heap_part(tracked)
    tracking_part()


if __name__ == "__main__":
    main()
