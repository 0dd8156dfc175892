"""The leak finder on planted leaks with known answers: allocation sites, why-alive chains,
retained sizes, snapshots."""

from __future__ import annotations

import doctest
import gc
import importlib
import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import objgraphxx
import pytest
from objgraphxx import _leaks

# Each fixture module is a real file, so that allocation sites have a file and a line; the line
# of interest carries a "# <- NAME" marker.
FIXTURES = {
    "leakfix_cache": """
        class Foo:
            def __init__(self, i):
                self.i = i

        CACHE = {}

        def fill(n):
            for i in range(n):
                CACHE["foo-%d" % i] = Foo(i)  # <- MAKE_FOO
        """,
    "leakfix_closure": """
        class Payload:
            pass

        HANDLERS = []

        def make_handler():
            payload = Payload()
            def handler():
                return payload
            return handler

        HANDLERS.append(make_handler())
        """,
    "leakfix_callbacks": """
        class Listener:
            def on_save(self):
                pass

        REGISTRY = {"on_save": []}

        def subscribe():
            listener = Listener()
            REGISTRY["on_save"].append(listener.on_save)

        subscribe()
        """,
    "leakfix_del": """
        import gc

        GRAVEYARD = []

        class Owner:
            def __del__(self):
                GRAVEYARD.append(self)  # resurrected: the cycle below survives collection

        class Part:
            pass

        def make_cycle():
            owner = Owner()
            owner.part = Part()
            owner.part.owner = owner

        make_cycle()
        gc.collect()
        """,
    "leakfix_big": """
        BIG = [object() for _ in range(10 ** 5)]
        """,
    "leakfix_planted": """
        class Planted:
            def __init__(self):
                self.tag = None

        KEPT = []

        def plant(n):
            for _ in range(n):
                KEPT.append(Planted())  # <- PLANT
        """,
}


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leakfix")
    for name, source in FIXTURES.items():
        (root / (name + ".py")).write_text(textwrap.dedent(source).lstrip())
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in FIXTURES:
        sys.modules.pop(name, None)


def load(fixture_dir: Path, name: str) -> ModuleType:
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def marker_line(fixture_dir: Path, name: str, marker: str) -> int:
    lines = (fixture_dir / (name + ".py")).read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if line.endswith("# <- " + marker))


def edges(hops: list[objgraphxx.Hop]) -> list[str]:
    return [h.edge for h in hops]


# -- allocation sites ---------------------------------------------------------------------------


def test_show_growth_with_sites_names_the_line_and_the_exact_count(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_cache")
    line = marker_line(fixture_dir, "leakfix_cache", "MAKE_FOO")
    peaks: dict[str, int] = {}
    with objgraphxx.track_allocations():
        objgraphxx.show_growth(peak_stats=peaks, file=io.StringIO(), sites=True)
        mod.fill(1000)
        out = io.StringIO()
        objgraphxx.show_growth(peak_stats=peaks, file=out, sites=True)
    lines = out.getvalue().splitlines()
    row = next(i for i, text in enumerate(lines) if text.startswith("Foo "))
    assert re.fullmatch(r"Foo +1000 +\+1000", lines[row])
    site = lines[row + 1]
    assert site.startswith("    "), lines
    where, count = site.split()
    assert where == "%s:%d" % (fixture_dir / "leakfix_cache.py", line)
    assert count == "+1000"
    assert objgraphxx.allocation_site(mod.CACHE["foo-3"]) == (
        str(fixture_dir / "leakfix_cache.py"),
        line,
    )
    # The next interval starts empty: nothing new, no site line.
    mod.fill(1000)  # replaces the 1000 Foo with 1000 others, not recorded any more
    out = io.StringIO()
    objgraphxx.show_growth(peak_stats=peaks, file=out, sites=True)
    assert "leakfix_cache.py" not in out.getvalue()
    objgraphxx.track_allocations().stop(forget=True)


def test_stopped_tracking_forgets_freed_objects_and_keeps_live_ones(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_planted")
    tracker = objgraphxx.track_allocations().start()
    mod.plant(200)
    tracker.stop()
    assert _leaks._memxx.sites_state() == "forgetting"
    first = mod.KEPT[0]
    assert objgraphxx.allocation_site(first)[1] == marker_line(
        fixture_dir, "leakfix_planted", "PLANT"
    )
    del first
    mod.KEPT.clear()
    gc.collect()
    mod.plant(200)  # reuses the freed memory while not recording
    assert all(objgraphxx.allocation_site(o) is None for o in mod.KEPT)
    tracker.stop(forget=True)
    assert _leaks._memxx.sites_state() == "off"
    assert _leaks._memxx.sites_stats()["live_blocks"] == 0


def test_tracking_and_the_line_profiler_share_the_hook(fixture_dir: Path) -> None:
    from memory_profilerxx import LineProfiler

    mod = load(fixture_dir, "leakfix_planted")
    mod.KEPT.clear()

    def grow() -> list:
        block = [0] * 100_000
        return block

    with objgraphxx.track_allocations():
        prof = LineProfiler()
        prof(grow)()  # a profiling session begins and ends inside the tracking
        mod.plant(5)
    try:
        increments = [r.increment for r in prof.records() if "[0] * 100_000" in r.source]
        assert increments == [800_000 + sys.getsizeof([])] or increments == [800_000]
        line = marker_line(fixture_dir, "leakfix_planted", "PLANT")
        assert [objgraphxx.allocation_site(o)[1] for o in mod.KEPT] == [line] * 5
    finally:
        objgraphxx.track_allocations().stop(forget=True)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.11/3.12 have no object events")
def test_objects_from_free_lists_get_the_site_of_their_creation() -> None:
    with objgraphxx.track_allocations():
        first = [[] for _ in range(50)]  # <- fills the list free list when freed
        del first
        reused = []
        line = sys._getframe().f_lineno - 1
    try:
        assert objgraphxx.allocation_site(reused) == (__file__, line)
    finally:
        objgraphxx.track_allocations().stop(forget=True)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.11/3.12 have no object events")
def test_sites_after_tracemalloc_ran_and_beside_it_while_it_runs() -> None:
    # 3.13's tracemalloc.stop() leaves its reference tracer installed: ours goes on top of it,
    # calls it, and puts it back when tracking ends; tracemalloc.start() takes the events over
    # without calling ours, and a tracker's start() goes on top again. A child process: the
    # tracer stays for good.
    script = textwrap.dedent("""
        import ctypes, sys, tracemalloc
        import objgraphxx

        get = ctypes.pythonapi.PyRefTracer_GetTracer
        get.restype = ctypes.c_void_p
        get.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        def tracer():
            return get(ctypes.byref(ctypes.c_void_p()))

        tracemalloc.start()
        tracemalloc.stop()
        left = tracer()
        with objgraphxx.track_allocations():
            first = [[] for _ in range(50)]
            del first
            reused = []; floats = [i + 0.5 for i in range(3)]
            line = sys._getframe().f_lineno - 1
            print(objgraphxx.allocation_site(reused)[1] == line,
                  [objgraphxx.allocation_site(f)[1] for f in floats] == [line] * 3)
        objgraphxx.track_allocations().stop(forget=True)
        print(tracer() == left)

        # tracemalloc running: ours goes on top of its tracer, which it gets back afterwards
        tracemalloc.start()
        running = tracer()
        with objgraphxx.track_allocations():
            kept = [object() for _ in range(10)]
            line = sys._getframe().f_lineno - 1
            print(tracemalloc.get_object_traceback(kept[0])[0].lineno == line,
                  objgraphxx.allocation_site(kept[0])[1] == line)
        objgraphxx.track_allocations().stop(forget=True)
        print(tracer() == running)
        tracemalloc.stop()

        # tracemalloc started while tracking takes the events over; a start brings ours back
        outer = objgraphxx.track_allocations().start()
        tracemalloc.start()
        lost = [object() for _ in range(3)]
        again = objgraphxx.track_allocations().start()
        back = [object() for _ in range(3)]
        line = sys._getframe().f_lineno - 1
        print(objgraphxx.allocation_site(lost[1]) is None,
              objgraphxx.allocation_site(back[1])[1] == line,
              tracemalloc.get_object_traceback(back[1])[0].lineno == line)
        again.stop(); outer.stop(forget=True)
        tracemalloc.stop()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[:5] == ["True True", "True", "True True", "True", "True True True"], out


def test_show_growth_with_sites_says_when_nothing_was_tracked(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_planted")
    peaks: dict[str, int] = {}
    objgraphxx.show_growth(peak_stats=peaks, file=io.StringIO())
    mod.plant(10)
    out = io.StringIO()
    objgraphxx.show_growth(peak_stats=peaks, file=out, sites=True)
    assert re.search(r"^Planted +\d+ +\+10$", out.getvalue(), re.M)
    assert "run the code under objgraphxx.track_allocations()" in out.getvalue()


# -- why alive ----------------------------------------------------------------------------------


def test_why_alive_through_a_module_level_dict_cache_names_the_key(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_cache")
    mod.fill(10)
    foo = mod.CACHE["foo-7"]
    out = io.StringIO()
    hops = objgraphxx.why_alive(foo, file=out)
    assert edges(hops) == ["module leakfix_cache", ".CACHE", "['foo-7']"]
    assert hops[0].obj is mod and hops[1].obj is mod.CACHE and hops[2].obj is foo
    assert out.getvalue() == (
        "module leakfix_cache\n    .CACHE -> dict (10 items)\n    ['foo-7'] -> Foo\n"
    )


def test_why_alive_through_a_closure(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_closure")
    payload = mod.HANDLERS[0]()
    hops = objgraphxx.why_alive(payload, file=io.StringIO())
    assert edges(hops) == [
        "module leakfix_closure",
        ".HANDLERS",
        "[0]",
        ".__closure__",
        "[0]",
        ".cell_contents",
    ]
    assert hops[-1].obj is payload


def test_why_alive_through_a_bound_method_in_a_callback_registry(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_callbacks")
    listener = mod.REGISTRY["on_save"][0].__self__
    hops = objgraphxx.why_alive(listener, file=io.StringIO())
    assert edges(hops) == [
        "module leakfix_callbacks",
        ".REGISTRY",
        "['on_save']",
        "[0]",
        ".__self__",
    ]
    assert type(hops[-2].obj).__name__ == "method"


def test_why_alive_through_a_cycle_resurrected_by_del(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_del")
    assert [type(o).__name__ for o in mod.GRAVEYARD] == ["Owner"]
    part = mod.GRAVEYARD[0].part
    hops = objgraphxx.why_alive(part, file=io.StringIO())
    assert edges(hops) == ["module leakfix_del", ".GRAVEYARD", "[0]", ".part"]


def test_why_alive_finds_a_local_of_a_live_frame_but_not_the_callers_own_reference() -> None:
    class Thing:
        pass

    def ask(y: object) -> list:
        return objgraphxx.why_alive(y, file=io.StringIO())  # `y` is the question, not a root

    def holder(x: object) -> list:
        return ask(x)

    thing = Thing()
    hops = holder(thing)
    assert len(hops) == 1 and hops[0].obj is thing
    assert re.fullmatch(
        r"local 'x' of .*holder\(\) at .*test_leaks\.py:\d+ \(MainThread\)", hops[0].edge
    ), hops[0].edge


def test_why_alive_finds_a_local_on_another_threads_stack() -> None:
    import threading

    class Job:
        pass

    holding = threading.Event()
    release = threading.Event()
    box: list = [Job()]

    def worker() -> None:
        job = box.pop()  # the only reference left, on this thread's stack
        holding.set()
        release.wait(30)
        del job

    thread = threading.Thread(target=worker, name="leaky-worker")
    thread.start()
    holding.wait(30)
    try:
        job = next(o for o in gc.get_objects() if type(o) is Job)
        hops = objgraphxx.why_alive(job, file=io.StringIO())
    finally:
        release.set()
        thread.join()
    assert len(hops) == 1 and hops[0].obj is job
    assert re.fullmatch(
        r"local 'job' of .*worker\(\) at .*test_leaks\.py:\d+ \(leaky-worker\)", hops[0].edge
    ), hops[0].edge


def test_why_alive_says_so_when_no_root_reaches_the_object() -> None:
    out = io.StringIO()
    assert objgraphxx.why_alive(object(), file=out) == []
    assert out.getvalue().startswith("no root reaches this object")


def test_why_alive_draws_the_chain(
    fixture_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mod = load(fixture_dir, "leakfix_cache")
    mod.fill(3)
    dot = tmp_path / "alive.dot"
    objgraphxx.why_alive(mod.CACHE["foo-1"], filename=str(dot), file=io.StringIO())
    assert "Graph written to %s (4 nodes)" % dot in capsys.readouterr().out
    text = dot.read_text()
    assert "[label=\"str\\n'foo-1'\"]" in text and '[label="CACHE",weight=2]' in text
    png = tmp_path / "alive.png"
    objgraphxx.why_alive(mod.CACHE["foo-1"], filename=str(png), file=io.StringIO())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


PDB_SCRIPT = textwrap.dedent(
    """
    import io, pdb, sys
    sys.path.insert(0, sys.argv[1])
    import objgraphxx
    import leakfix_cache, leakfix_closure, leakfix_callbacks, leakfix_del
    leakfix_cache.fill(10)

    def work():
        foo = leakfix_cache.CACHE["foo-7"]
        payload = leakfix_closure.HANDLERS[0]()
        listener = leakfix_callbacks.REGISTRY["on_save"][0].__self__
        part = leakfix_del.GRAVEYARD[0].part
        for obj in (foo, payload, listener, part):
            objgraphxx.why_alive(obj)
        print("--- pdb")
        cmds = io.StringIO(
            "for o in (foo, payload, listener, part): _ = objgraphxx.why_alive(o)\\n"
            "c\\n")
        pdb.Pdb(stdin=cmds, stdout=sys.stdout).set_trace()
        return foo

    work()
    """
)


def test_why_alive_from_inside_pdb_gives_the_same_chains(fixture_dir: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", PDB_SCRIPT, str(fixture_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    plain, _, debugged = run.stdout.partition("--- pdb\n")
    chains = [line.replace("(Pdb) ", "") for line in debugged.splitlines()]
    chains = [line for line in chains if line and not line.startswith(("> ", "-> "))]
    assert "\n".join(chains) + "\n" == plain, run.stdout
    assert plain.count("\nmodule ") + plain.startswith("module ") == 4
    assert "['foo-7'] -> Foo" in plain and ".__self__ -> Listener" in plain


IPYTHON_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_cell("import io, pdb, sys, objgraphxx, leakfix_cache\\nleakfix_cache.fill(10)")
    shell.run_cell("leakfix_cache.CACHE['foo-7']")  # displayed: IPython's Out[2] holds it
    shell.run_cell("def probe(x):\\n    return objgraphxx.why_alive(x)")
    shell.run_cell("_h = probe(leakfix_cache.CACHE['foo-7'])")
    shell.run_cell(
        "cmds = io.StringIO('_h = objgraphxx.why_alive(leakfix_cache.CACHE[\\"foo-7\\"])\\\\nc\\\\n')\\n"
        "def work():\\n"
        "    pdb.Pdb(stdin=cmds, stdout=sys.stdout).set_trace()\\n"
        "    return 1\\n"
        "work()"
    )
    """
)


def test_why_alive_in_ipython_from_a_cell_and_from_pdb(fixture_dir: Path) -> None:
    pytest.importorskip("IPython")
    run = subprocess.run(
        [sys.executable, "-c", IPYTHON_SCRIPT, str(fixture_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    chain = "module leakfix_cache\n    .CACHE -> dict (10 items)\n    ['foo-7'] -> Foo\n"
    text = run.stdout.replace("(Pdb) ", "")
    assert text.count(chain) == 2, run.stdout


# -- sizes --------------------------------------------------------------------------------------


def test_retained_size_of_a_list_of_objects_and_its_drop_with_a_second_reference(
    fixture_dir: Path,
) -> None:
    mod = load(fixture_dir, "leakfix_big")
    expected = sys.getsizeof(mod.BIG) + 10**5 * sys.getsizeof(object())
    assert objgraphxx.retained_size(mod.BIG) == expected
    mod.OTHER = list(mod.BIG)  # every item now has a second owner
    assert objgraphxx.retained_size(mod.BIG) == sys.getsizeof(mod.BIG)
    del mod.OTHER
    assert objgraphxx.retained_size(mod.BIG) == expected


def test_shallow_sizes_equal_sys_getsizeof() -> None:
    class Plain:
        pass

    class Slotted:
        __slots__ = ("a", "b")

    samples = [
        [],
        [1, 2, 3],
        list(range(100)),
        {},
        {"a": 1},
        "abc",
        "é" * 9,
        2**100,
        (1, 2),
        object(),
        Plain(),
        Slotted(),
        Plain,
        type,
        sys,
        1.5,
        set(range(10)),
        b"xy",
        bytearray(100),
        frozenset({1}),
        range(5),
        lambda: 0,
        gc.collect,
    ]
    for obj in samples:
        assert _leaks._memxx.gc_shallow_size(obj) == sys.getsizeof(obj), obj


def test_show_most_common_types_with_sizes(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_planted")
    mod.KEPT.clear()
    mod.plant(300)
    out = io.StringIO()
    objgraphxx.show_most_common_types(limit=None, sizes=True, file=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["type", "count", "shallow", "B", "retained", "B"]
    row = next(line.split() for line in lines if line.startswith("Planted "))
    size = sys.getsizeof(mod.KEPT[0])
    assert row == ["Planted", "300", str(300 * size), str(300 * size)]
    obj_row = next(line.split() for line in lines if line.startswith("object "))
    assert int(obj_row[2]) >= int(obj_row[1]) * sys.getsizeof(object())


# -- snapshots ----------------------------------------------------------------------------------


def test_snapshot_json_round_trip(tmp_path: Path) -> None:
    snap = objgraphxx.snapshot()
    path = tmp_path / "heap.json"
    snap.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "objgraphxx-snapshot" and data["version"] == 1
    again = objgraphxx.Snapshot.load(path)
    assert again == snap
    assert again.types["dict"] == snap.types["dict"]
    assert again.objects == snap.objects > 0


def test_diff_of_two_snapshots_names_exactly_the_planted_growth(fixture_dir: Path) -> None:
    mod = load(fixture_dir, "leakfix_planted")
    line = marker_line(fixture_dir, "leakfix_planted", "PLANT")
    with objgraphxx.track_allocations():
        before = objgraphxx.snapshot()
        mod.plant(500)
        after = objgraphxx.snapshot()
    objgraphxx.track_allocations().stop(forget=True)
    size = sys.getsizeof(mod.KEPT[-1])
    out = io.StringIO()
    grown = objgraphxx.diff(before, after, limit=None, file=out)
    assert ("Planted", 500, 500 * size, 500 * size) in grown.types
    site = "%s:%d" % (fixture_dir / "leakfix_planted.py", line)
    assert grown.sites == [(site, "Planted", 500, 500 * size)]
    assert re.search(
        r"^Planted +\+500 +\+%d +\+%d$" % (500 * size, 500 * size), out.getvalue(), re.M
    )
    assert re.search(
        r"^%s +Planted +\+500 +\+%d$" % (re.escape(site), 500 * size), out.getvalue(), re.M
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format": "pickle"}', 'no "format"'),
        ('{"format": "objgraphxx-snapshot", "version": 99}', "unsupported version 99"),
        (
            '{"format": "objgraphxx-snapshot", "version": 1, "types": {"a": {"count": -1, '
            '"shallow": 0, "retained": 0}}, "sites": []}',
            "types['a'].count",
        ),
        ('{"format": "objgraphxx-snapshot", "version": 1, "types": {}, "sites": [{}]}', "sites[0]"),
    ],
)
def test_a_corrupt_snapshot_gives_one_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        objgraphxx.Snapshot.load(path)
    assert str(path) in str(info.value)


def test_bad_arguments_give_clear_errors() -> None:
    with pytest.raises(TypeError, match="diff\\(\\): old must be a Snapshot"):
        objgraphxx.diff({}, objgraphxx.Snapshot({}, []))
    with pytest.raises(TypeError, match="max_depth must be an int"):
        objgraphxx.why_alive([], max_depth="deep")
    with pytest.raises(ValueError, match="objects= and filter= do not apply"):
        objgraphxx.show_most_common_types(objects=[], sizes=True)
    with pytest.raises(FileNotFoundError):
        objgraphxx.Snapshot.load("/nonexistent/heap.json")
    with pytest.raises(TypeError, match="sites must be a bool or an int, not str"):
        objgraphxx.show_growth(sites="yes", file=io.StringIO())
    with pytest.raises(TypeError, match="limit must be an int or None"):
        objgraphxx.diff(objgraphxx.Snapshot({}, []), objgraphxx.Snapshot({}, []), limit="all")


def test_a_binary_file_is_not_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "heap.pickle"
    path.write_bytes(b"\x80\x04\x95\xff\xfe")
    with pytest.raises(
        ValueError, match="heap.pickle is not a valid objgraphxx snapshot: not UTF-8"
    ):
        objgraphxx.Snapshot.load(path)


def test_docstring_examples_run() -> None:
    for module in (_leaks, objgraphxx):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0
