"""pytest plugin: per-test memory and leak budgets that name the line and the reference to blame.

Installed with memory-profilerxx (entry point ``pytest11``) and idle until asked: a marker
(pytest-memray's ``limit_memory``, ``limit_leaks``, ``limit_leaked_objects``, and our
``no_leaked_objects``) or ``--memxx`` / ``--memray`` / ``--memxx-limit``. Peaks come from the
allocation hook's per-thread ledger (``_memxx.watch_thread_begin``): PyMem, numpy and native
malloc/mmap bytes of the test's thread and, unless ``current_thread_only=True``, of the threads
working for it. Leak sites and the stacks of a failure come from the peak recorder
(``_memxx.peak_start``), which tags every block with the Python stack that made it.

Leak markers run the test body ``runs`` times (default 3) with one ``gc.collect()`` after each
run; the runs before the last fill caches, and the last is judged: per allocation site for
``limit_leaks``, objects it made for ``limit_leaked_objects``; ``no_leaked_objects`` counts
objects of a type that grow on every run after the first.

>>> parse_size("1.5 MiB"), parse_size("24 MB"), format_size(3 * 2**20 + 2**19)
(1572864, 25165824, '3.5 MiB')
"""

from __future__ import annotations

import functools
import gc
import io
import json
import re
import sys
import unittest
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

__all__ = ["format_size", "parse_size"]

# Binary units of the budgets people write ("50M"); not _memxx.MIB: pytest loads this plugin in
# every session, and it imports the extension only for a session that measures.
_UNITS = {"B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_SIZE = re.compile(r"^\s*\+?(\d*\.?\d+)\s*([KMGTP]?)(I?)B\s*$", re.IGNORECASE)
_MAX_SIZE = 2**63 - 1
_MARKERS = ("limit_memory", "limit_leaks", "limit_leaked_objects", "no_leaked_objects")
# pytest-memray judges these itself when it is active in the session.
_MEMRAY_MARKERS = ("limit_memory", "limit_leaks", "limit_leaked_objects")
_FIGURES = pytest.StashKey["Figures"]()
_HAND_OFF_FILE = "memory_profilerxx/_thread_causes.py"
_PLAN = pytest.StashKey["Plan"]()


def parse_size(text: Any) -> int:
    """The bytes of a memory size written as pytest-memray takes it (KB = KiB = 1024 B).

    >>> parse_size("100 KB"), parse_size("3 mb"), parse_size("512B")
    (102400, 3145728, 512)
    """
    match = _SIZE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a memory size (write e.g. '24 MB', '1.5 MiB', '512 KB')")
    number, unit, _binary = match.groups()
    size = float(number) * _UNITS[unit.upper() or "B"]
    if not size <= _MAX_SIZE:  # 401 digits read as infinity
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"{shown!r} is more memory than a 64-bit machine has")
    return int(size)


def format_size(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps a figure >= 1, one decimal.

    >>> format_size(512), format_size(1536), format_size(-3 * 2**20)
    ('512 B', '1.5 KiB', '-3.0 MiB')
    """
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class StackFrame:
    """One frame of the stack given to ``limit_leaks(filter_fn=...)``, as pytest-memray's."""

    function: str
    filename: str
    lineno: int


@dataclass(frozen=True)
class Stack:
    """The call stack that allocated memory still held after a test, most recent frame first.

    ``limit_leaks(..., filter_fn=f)`` calls ``f(stack)`` for each allocation site over the limit;
    the site counts (fails the test) when ``f`` returns True, as in pytest-memray.

    >>> Stack((StackFrame("load", "app.py", 3),)).frames[0].function
    'load'
    """

    frames: tuple[StackFrame, ...]


@dataclass
class Plan:
    """What one test is measured for: budgets in bytes (None: none), runs, object types."""

    limit_memory: int | None = None
    limit_leaks: int | None = None  # per allocation site
    leak_filter: Any = None  # limit_leaks(filter_fn=): Stack -> bool
    objects: bool = False  # no_leaked_objects
    types: tuple[str, ...] = ()
    leaked_objects: bool = False  # limit_leaked_objects
    object_filter: Any = None  # limit_leaked_objects(filter_fn=): object -> bool
    runs: int = 1
    current_thread_only: bool = False  # True: other threads' work for the test not counted

    marked: bool = False

    @property
    def leaks(self) -> bool:
        return self.limit_leaks is not None or self.objects or self.leaked_objects

    @property
    def stacks(self) -> bool:
        """Whether the run records every allocation's stack (the peak recorder)."""
        return self.limit_memory is not None or self.limit_leaks is not None


@dataclass
class Figures:
    """One test's measured figures (bytes), as the summary and ``--memxx-json`` give them."""

    nodeid: str
    peak: int = 0
    leaked: int = 0
    runs: int = 1
    run_nets: list[int] = field(default_factory=list)
    limit_memory: int | None = None
    limit_leaks: int | None = None
    leaked_objects: dict[str, int] = field(default_factory=dict)


def _read_marker(mark: Any) -> dict[str, Any]:
    """The Plan fields one marker sets; ValueError naming what is wrong."""
    fields: dict[str, Any] = {}
    name, kwargs = mark.name, dict(mark.kwargs)
    runs = kwargs.pop("runs", None)
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise ValueError(f"runs must be an int >= 1, not {runs!r}")
    fields["runs"] = runs
    if name in ("limit_memory", "limit_leaks"):
        fields["current_thread_only"] = bool(kwargs.pop("current_thread_only", False))
        keyword = "limit" if name == "limit_memory" else "location_limit"
        args = list(mark.args) + ([kwargs.pop(keyword)] if keyword in kwargs else [])
        if len(args) != 1:
            raise ValueError("takes one size, e.g. '24 MB'")
        fields[name] = parse_size(args[0])
    elif mark.args:
        raise ValueError("takes no positional argument"
                         + (" (use types=[...])" if name == "no_leaked_objects" else ""))
    if name in ("limit_leaks", "limit_leaked_objects"):
        check = kwargs.pop("filter_fn", None)
        if check is not None and not callable(check):
            raise ValueError(f"filter_fn must be a function or None, not {check!r}")
        fields["leak_filter" if name == "limit_leaks" else "object_filter"] = check
    if name == "limit_leaked_objects":
        fields["leaked_objects"] = True
    if name == "no_leaked_objects":
        types = kwargs.pop("types", None)
        if types is not None and (isinstance(types, str)
                                  or not all(isinstance(t, str) for t in types)):
            raise ValueError(f"types must be a list of type names, not {types!r}")
        fields["objects"], fields["types"] = True, tuple(types or ())
    if kwargs:
        raise ValueError(f"unknown argument {sorted(kwargs)[0]}=")
    return fields


def _plan_for(item: Any, leak_runs: int, default_limit: int | None,
              markers: tuple[str, ...] = _MARKERS) -> Plan:
    """The Plan of a test from its markers; ValueError naming the test and the marker if bad."""
    plan = Plan(limit_memory=default_limit)
    runs = None
    for name in markers:
        mark = item.get_closest_marker(name)
        if mark is None:
            continue
        try:
            fields = _read_marker(mark)
        except (ValueError, TypeError) as exc:
            shown = ", ".join([repr(a) for a in mark.args]
                              + [f"{k}={v!r}" for k, v in mark.kwargs.items()])
            raise ValueError(f"{item.nodeid}: @pytest.mark.{name}({shown}): {exc}") from None
        runs = fields.pop("runs") or runs
        plan.current_thread_only = (plan.current_thread_only
                                    or fields.pop("current_thread_only", False))
        for key, value in fields.items():
            setattr(plan, key, value)
        plan.marked = True
    if plan.leaks:
        plan.runs = runs or leak_runs
    return plan


def _type_matches(name: str, wanted: tuple[str, ...]) -> bool:
    return not wanted or name in wanted or name.rsplit(".", 1)[-1] in wanted


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _own_function(func: Any) -> Any:
    """The test's own function under the wrappers plugins put around it (``__wrapped__``)."""
    import inspect

    return inspect.unwrap(getattr(func, "__func__", func))


class _OneRun:
    """One of a test's runs, counted from its ``with`` to the end of it, however it ends.

    Made before the count begins; ``__exit__`` takes its arguments one by one, since a
    ``*args`` tuple would be made inside the count."""

    __slots__ = ("runs", "run", "mark")

    def __init__(self, runs: _LeakRuns, run: int) -> None:
        self.runs, self.run, self.mark = runs, run, None

    def __enter__(self) -> None:
        self.mark = self.runs._begin(self.run)

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.runs._end(self.run, self.mark)


class _LeakRuns:
    """Runs a test ``runs`` times; keeps per-run net bytes and per-run new objects by type.

    The last run is the one looked at closely: its lines (the line profiler), and, for the
    byte budgets, every allocation's stack (the peak recorder): what was live at the peak, and
    what the run still holds after it (the leak sites). The runs before it fill the caches a
    first call fills.

    Everything kept between runs is an int or str, in containers made before the first count
    (3.14+ tracks every dict, even one of ints), so the plugin's own bookkeeping never shows up
    as a growing type.
    """

    def __init__(self, func: Any, plan: Plan) -> None:
        import _memxx

        import objgraphxx
        from memory_profilerxx import LineProfiler

        self.func, self.plan = func, plan
        self.own = _own_function(func)
        self.profiler = LineProfiler(threads="self" if plan.current_thread_only else "all")
        self.profiler.add_function(self.own)
        if not plan.current_thread_only:
            from memory_profilerxx._thread_causes import install

            install()
        self.sites = objgraphxx.track_allocations() if plan.leaks else None
        self.tracker = _memxx.GcNewIds() if plan.leaks else None
        self.nets: list[int] = []
        self.growth: list[dict[str, int]] = []
        self._growth_slots: list[dict[str, int]] = [{} for _ in range(plan.runs)]
        self.last_new: dict[str, tuple[int, ...]] = {}
        # id -> type of the objects the last run made that were alive at its end (but the
        # context's bookkeeping), taken then: an object freed later leaves its address to the
        # next one of its size (a context node's was once taken by a pluggy Result).
        self.last_new_types: dict[int, type] = {}
        self.peak = 0
        self.table: Any = None  # the last run's PeakTable
        self.no_stacks: str | None = None  # why the last run has no stacks

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = None
        with self:
            for run in range(self.plan.runs):
                with _OneRun(self, run):
                    result = self.func(*args, **kwargs)
        return result

    async def call_async(self, *args: Any, **kwargs: Any) -> Any:
        """The same runs for an ``async def`` test, awaited in the runner's event loop."""
        result = None
        with self:
            for run in range(self.plan.runs):
                with _OneRun(self, run):
                    result = await self.func(*args, **kwargs)
        return result

    def __enter__(self) -> None:
        self._start()

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._stop()

    def _start(self) -> None:
        if self.sites is not None:
            self.sites.start()
        gc.collect()
        if self.tracker is not None:
            self.tracker.update(False)

    def _stop(self) -> None:
        if self.sites is not None:
            self.sites.stop()

    def _begin(self, run: int) -> Any:
        import _memxx

        if run == self.plan.runs - 1 and self.plan.stacks:
            try:
                _memxx.peak_start(True)
            except ValueError:  # mprofxx run --peak records this whole process already
                self.no_stacks = "the peak recorder is in use by another tool (mprofxx --peak)"
        mark = _memxx.watch_thread_begin(threads=not self.plan.current_thread_only)
        # On in every run: 3.11's tracing makes a code object's line array at its first trace,
        # memory of the first run only, like any cache.
        self.profiler.enable()
        return mark

    def _end(self, run: int, mark: Any) -> None:
        import _memxx

        last = run == self.plan.runs - 1
        try:
            self.profiler.disable()
            if self.plan.leaks:
                gc.collect()
                clear = getattr(sys, "_clear_internal_caches", None)  # 3.13+: what it made
                if clear is not None and self.plan.leaked_objects:
                    clear()
            self.nets.append(_memxx.watch_thread_net(mark))
        finally:
            self.peak = max(self.peak, _memxx.watch_thread_end(mark))
            try:
                if self.tracker is not None:
                    self._count_new_objects(last)
            finally:
                # After the count: the table's own objects are no object the test made.
                if last and self.plan.stacks and self.no_stacks is None:
                    from _memxx_shared.peak_capture import capture

                    try:
                        self.table = capture(with_kept=True)
                    finally:
                        _memxx.peak_stop()

    def _count_new_objects(self, last: bool) -> None:
        run = len(self.growth)
        grown = self._growth_slots[run] if run < len(self._growth_slots) else {}
        assert self.tracker is not None
        new_ids: set[int] = set()
        for name, old, current, new in self.tracker.update(False):
            if last and new:
                new_ids.update(new)
            if current > old and new and _type_matches(name, self.plan.types):
                grown[name] = current - old
                if last:
                    self.last_new[name] = tuple(new)
        self.growth.append(grown)
        if new_ids and self.plan.leaked_objects:  # one heap walk, for limit_leaked_objects only
            import objgraphxx

            self.last_new_types = {id(obj): type(obj) for obj in objgraphxx.at_addrs(new_ids)
                                   if type(obj).__name__ not in _CONTEXT_NODES}

    def steady(self) -> tuple[list[int], list[dict[str, int]]]:
        """Nets and growths of the runs after the first (all of them when there is one run)."""
        skip = 1 if len(self.nets) > 1 else 0
        return self.nets[skip:], self.growth[skip:]

    def leaked_bytes(self) -> int:
        nets, _ = self.steady()
        return max(0, min(nets)) if nets else 0

    def leaked_types(self) -> dict[str, int]:
        """Type -> objects alive after the last run that were made in runs that all grew it."""
        _, growths = self.steady()
        if not growths:
            return {}
        names = set(growths[0]).intersection(*growths[1:])
        total = {name: sum(g.get(name, 0) for g in self.growth) for name in names}
        return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))

    # --- the last run's stacks -------------------------------------------------------------
    def stacks_of(self, rows: list[Any]) -> list[tuple[int, str, tuple[StackFrame, ...]]]:
        """(bytes, which thread, frames) of the recorder's rows that count for this test.

        A stack whose outermost frame is ``threading``'s bootstrap, or that has no Python frame
        (a native pool's thread), is another thread's; the others are the test's thread's, cut
        after the test's own frame. The plugin's own bookkeeping between the end of the run and
        the capture (stacks through the runner but not the test) is left out, and so are other
        threads' stacks under current_thread_only.
        """
        own = getattr(self.own, "__code__", None)
        own_key = (own.co_filename, getattr(own, "co_qualname", own.co_name)) if own else None
        # Stacks that read the same once cut (two calls on one line, different outer frames)
        # are one location, as pytest-memray groups them: their bytes add up.
        by_location: dict[tuple[str, tuple[StackFrame, ...]], int] = {}
        for row in rows:
            frames = row.frames  # (filename, function, line), innermost first
            other = not frames or (frames[-1][0].endswith("threading.py")
                                   and frames[-1][1].endswith("_bootstrap"))
            if other and self.plan.current_thread_only:
                continue
            if not other:
                cut = next((i for i, f in enumerate(frames) if (f[0], f[1]) == own_key), None)
                if cut is not None:
                    frames = frames[:cut + 1]
                elif any(f[0] == __file__ for f in frames):
                    continue  # the runner's own bookkeeping around the test's call
            shown = tuple(StackFrame(f[1], f[0], f[2]) for f in frames
                          if not f[0].endswith(_HAND_OFF_FILE))  # our hand-over of the cause
            key = ("another thread" if other else "the test's thread", shown)
            by_location[key] = by_location.get(key, 0) + row.bytes
        out = [(size, thread, frames) for (thread, frames), size in by_location.items()]
        out.sort(key=lambda site: -site[0])
        return out

    def leak_sites(self) -> list[tuple[int, str, tuple[StackFrame, ...]]]:
        """The allocation sites whose kept bytes reach the per-site limit and pass filter_fn."""
        limit = self.plan.limit_leaks or 0
        check = self.plan.leak_filter
        return [site for site in self.stacks_of(self.table.kept)
                if site[0] >= limit and (check is None or check(Stack(site[2])))]


def _site_lines(sites: list[Any], depth: int) -> list[str]:
    """Each site as pytest-memray lists one: its size, then up to ``depth`` frames."""
    from _memxx_shared.names import short_path

    lines = []
    for size, thread, frames in sites:
        lines.append(f"    - {format_size(size)} allocated here, on {thread}:")
        for frame in frames[:depth]:
            lines.append(f"        {frame.function}:{short_path(frame.filename)}:{frame.lineno}")
        if len(frames) > depth:
            lines.append("        ...")
        if not frames:
            lines.append("        (no Python frame: a native thread)")
    return lines


def _line_blame(runner: _LeakRuns, key: str, limit: int = 5) -> list[str]:
    from _memxx_shared.names import short_path

    records = [r for r in runner.profiler.records() if getattr(r, key) > 0]
    # Of the lines within 1% of the highest peak, the one that made the memory, not a later one
    # that ran while it was held (an await: a few hundred bytes more), nor the header row.
    if key == "peak":
        first = getattr(getattr(runner.own, "__code__", None), "co_firstlineno", 0)
        top = max((r.peak for r in records), default=0)
        records = sorted((r for r in records if r.peak >= top - top // 100),
                         key=lambda r: (r.lineno == first, -r.increment, -r.peak))[:1]
        sizes = [runner.peak]
    else:
        records = sorted(records, key=lambda r: -r.increment)[:limit]
        sizes = [r.increment for r in records]
    lines = [f"   {format_size(size):>9}  {short_path(r.filename)}:{r.lineno}   {r.source.strip()}"
             for size, r in zip(sizes, records)]
    if key == "peak" and not runner.plan.current_thread_only:
        others = sorted((r for r in runner.profiler.records() if r.threads_increment > 0),
                        key=lambda r: -r.threads_increment)[:limit]
        if others:
            lines.append("   of which threads the test started, by the line that started them:")
            lines += [f"   {format_size(r.threads_increment):>9}  {short_path(r.filename)}:"
                      f"{r.lineno}   {r.source.strip()}" for r in others]
    return lines


def _object_story(runner: _LeakRuns, leaked: dict[str, int]) -> list[str]:
    import objgraphxx

    name, count = next(iter(leaked.items()))
    lines = [f"{_short(name)} x {count} still alive after {runner.plan.runs} runs; one of them:"]
    obj = objgraphxx.at(runner.last_new[name][-1]) if runner.last_new.get(name) else None
    if obj is None:
        return lines + ["   (gone before it could be shown)"]
    site = objgraphxx.allocation_site(obj)
    if site is not None:
        from _memxx_shared.names import short_path

        lines.append(f"   made at {short_path(site[0])}:{site[1]}")
    text = io.StringIO()
    objgraphxx.why_alive(obj, file=text)
    chain = [line.strip() for line in text.getvalue().splitlines() if line.strip()]
    lines.append("   " + " -> ".join(chain) if chain else "   (no chain from a module or frame)")
    others = [f"{_short(n)} x {c}" for n, c in list(leaked.items())[1:4]]
    if others:
        lines.append("also still alive: " + ", ".join(others))
    return lines


# The nodes of the mapping behind a contextvars.Context: each ContextVar.set() anywhere in the
# thread (a plugin's hook around the call, the test itself) replaces a few of them, and the
# newest stay alive until the next set. They are the interpreter's bookkeeping, never an object
# the test made; the values a test leaves set are counted themselves.
_CONTEXT_NODES = frozenset({"hamt", "hamt_bitmap_node", "hamt_array_node", "hamt_collision_node"})


def _surviving_objects(runner: _LeakRuns) -> list[str]:
    """limit_leaked_objects: the objects the last run made that are still alive, described."""
    import objgraphxx

    check = runner.plan.object_filter
    found = [obj for obj in map(objgraphxx.at, runner.last_new_types)
             if obj is not None and type(obj) is runner.last_new_types[id(obj)]
             and (check is None or check(obj))]
    if not found:
        return []
    counts: dict[str, int] = {}
    for obj in found:
        counts[type(obj).__name__] = counts.get(type(obj).__name__, 0) + 1
    lines = [f"leaked {len(found)} objects made by its last run "
             f"(of {runner.plan.runs}), by type:"]
    lines += [f"    - {count} {name} instance(s)"
              for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    lines.append("    sample:")
    for obj in found[:10]:
        try:
            shown = repr(obj)
        except Exception:  # a repr that fails is the object's own business
            shown = "<repr failed>"
        lines.append(f"    - {type(obj).__name__}: "
                     + (shown if len(shown) <= 100 else shown[:97] + "..."))
    return lines


@dataclass
class _Shown:
    """How failures show stacks: frames per stack (--stacks), how many stacks (verbosity)."""

    depth: int = 1
    verbosity: int = 0

    def at_peak(self, sites: list[Any]) -> list[Any]:
        if self.verbosity < 0:
            return []
        return sites if self.verbosity >= 2 else sites[:10]


def _verdict(name: str, runner: _LeakRuns, figures: Figures, shown: _Shown) -> str | None:
    """The failure message of a measured test, or None when it kept its budgets."""
    plan, parts = runner.plan, []
    if plan.limit_memory is not None and figures.peak >= plan.limit_memory:
        parts.append(f"{name} used {format_size(figures.peak)} at its peak "
                     f"(limit {format_size(plan.limit_memory)}), reached on:")
        parts += _line_blame(runner, "peak")
        if runner.table is not None:
            sites = shown.at_peak(runner.stacks_of(runner.table.stacks))
            if sites:
                parts.append("allocations live at the peak:")
                parts += _site_lines(sites, shown.depth)
    if plan.limit_leaks is not None:
        limit = format_size(plan.limit_leaks)
        if runner.table is None:
            parts.append(f"{name}: limit_leaks({limit!r}) could not be judged: {runner.no_stacks}")
        else:
            sites = runner.leak_sites()
            if sites:
                runs = f" by its last run (of {plan.runs})" if plan.runs > 1 else ""
                parts.append(f"{name} was allowed to leak {limit} per location but "
                             f"{len(sites)} location(s) kept more{runs}:")
                parts += _site_lines(sites, max(shown.depth, 5))
    if plan.leaked_objects:
        parts += [f"{name} {line}" if i == 0 else line
                  for i, line in enumerate(_surviving_objects(runner))]
    leaked = runner.leaked_types() if plan.objects or (parts and plan.runs > 1) else {}
    if leaked:
        parts += _object_story(runner, leaked)
    return "\n".join(parts) if parts else None


class MemxxPlugin:
    """The plugin's hooks and the session's figures; one per pytest config."""

    def __init__(self, config: Any) -> None:
        self.config = config
        # pytest-memray in the same session judges its own markers; judging them here as well
        # would fail a test twice, or pass it once and fail it once.
        self.memray_active = config.pluginmanager.has_plugin("memray")
        self.markers = tuple(m for m in _MARKERS
                             if not (self.memray_active and m in _MEMRAY_MARKERS))
        self.track_all = bool(config.getoption("memxx") or config.getoption("memxx_limit")
                              or config.getoption("memxx_json")
                              or (not self.memray_active and _setting(config, "memray")))
        self.leak_runs = config.getoption("memxx_leak_runs")
        if self.leak_runs < 1:
            raise pytest.UsageError(f"--memxx-leak-runs must be >= 1, not {self.leak_runs}")
        if config.getoption("memxx_top") < 1:
            raise pytest.UsageError(f"--memxx-top must be >= 1, not {config.getoption('memxx_top')}")
        limit = config.getoption("memxx_limit")
        try:
            self.default_limit = parse_size(limit) if limit else None
        except ValueError as exc:
            raise pytest.UsageError(f"--memxx-limit: {exc}") from None
        try:
            verbosity = config.get_verbosity() if hasattr(config, "get_verbosity") \
                else config.getoption("verbose")  # pytest < 8
            self.shown = _Shown(depth=int(_setting(config, "stacks")), verbosity=verbosity)
            self.most = int(_setting(config, "most_allocations"))
        except ValueError as exc:
            raise pytest.UsageError(f"--stacks / --most-allocations: {exc}") from None
        if self.shown.depth < 1:
            raise pytest.UsageError(f"stacks must be >= 1, not {self.shown.depth}")
        self.fail_on_increase = bool(_setting(config, "fail_on_increase"))
        self.json_path = config.getoption("memxx_json")
        self.json_error: str | None = None
        if self.json_path:
            _check_json_path(self.json_path)
        self.results: list[Figures] = []
        self.session_peak: _SessionPeak | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: Any) -> None:
        """Under xdist with --memxx: the controller samples itself and its workers together."""
        if not self.track_all or hasattr(self.config, "workerinput") \
                or not self.config.pluginmanager.has_plugin("dsession"):
            return
        self.session_peak = _SessionPeak()

    def pytest_report_header(self, config: Any) -> str | None:
        if not self.memray_active:
            return None
        return ("memory-profilerxx: pytest-memray is active: it judges limit_memory, limit_leaks "
                "and limit_leaked_objects, memory-profilerxx judges no_leaked_objects and "
                "--memxx-limit (-p no:memray hands them all to memory-profilerxx)")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector: Any) -> Any:
        outcome = yield
        report = outcome.get_result()
        if not report.passed:
            return
        for item in report.result:
            if not isinstance(item, pytest.Function):
                continue
            try:
                item.stash[_PLAN] = _plan_for(item, self.leak_runs, self.default_limit,
                                              self.markers)
            except ValueError as exc:
                report.outcome, report.longrepr, report.result = "failed", str(exc), []
                return

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: Any) -> Any:
        """Measures the call phase: a marked test through its runs, any other under --memxx.

        The test's function is swapped for the runner before any plugin's pytest_pyfunc_call
        (pytest-memray's wrapper, anyio's runner) or runtest (pytest-asyncio's loop, unittest's
        TestCase.run) sees it, so their wrappers run around the measured runs, never inside.
        """
        plan = item.stash.get(_PLAN, None)
        if plan is not None and plan.marked:
            yield from self._measure_marked(item, plan)
        elif self.track_all:
            yield from self._measure_once(item)
        else:
            yield

    def _measure_marked(self, item: Any, plan: Plan) -> Any:
        func = item.obj
        runner = _LeakRuns(func, plan)
        if _is_async(runner.own) and _is_async(func):
            async def measured(*args: Any, **kwargs: Any) -> Any:
                return await runner.call_async(*args, **kwargs)

            functools.update_wrapper(measured, func)
        else:
            measured = functools.wraps(func)(runner)
        item.obj = measured
        # pytest hands an async TestCase method to unittest without item.obj: unittest takes it
        # from the instance (IsolatedAsyncioTestCase runs it in its loop).
        testcase = getattr(item, "instance", None) if measured is not runner else None
        if testcase is not None and isinstance(testcase, unittest.TestCase):
            setattr(testcase, item.name, measured)
        try:
            outcome = yield
        finally:
            item.obj = func
            if testcase is not None and item.name in vars(testcase):
                delattr(testcase, item.name)
        figures = Figures(item.nodeid, peak=runner.peak, runs=plan.runs,
                          run_nets=list(runner.nets), limit_memory=plan.limit_memory,
                          limit_leaks=plan.limit_leaks)
        if plan.leaks:
            figures.leaked = runner.leaked_bytes()
            figures.leaked_objects = {_short(k): v for k, v in runner.leaked_types().items()}
        elif runner.nets:
            figures.leaked = runner.nets[-1]
        item.stash[_FIGURES] = figures
        if outcome.excinfo is None and runner.nets:
            message = _verdict(item.name, runner, figures, self.shown)
            if message:
                item.stash[_VERDICT] = message
        if runner.sites is not None:
            runner.sites.stop(forget=True)

    def _measure_once(self, item: Any) -> Any:
        """--memxx: the call phase of an unmarked test (unittest ones too), measured once."""
        import _memxx

        from memory_profilerxx._thread_causes import install

        install()
        mark = _memxx.watch_thread_begin()
        try:
            outcome = yield
            gc.collect(1)
            leaked = _memxx.watch_thread_net(mark)
        finally:
            peak = _memxx.watch_thread_end(mark)
        limit = self.default_limit
        item.stash[_FIGURES] = Figures(item.nodeid, peak=peak, leaked=leaked, limit_memory=limit)
        if outcome.excinfo is None and limit is not None and peak > limit:
            item.stash[_VERDICT] = (f"{item.name} used {format_size(peak)} at its peak "
                                    f"(limit {format_size(limit)}, --memxx-limit)")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        outcome = yield
        if call.when != "call":
            return
        report = outcome.get_result()
        figures = item.stash.get(_FIGURES, None)
        if figures is not None:
            report.memxx = asdict(figures)
        message = item.stash.get(_VERDICT, None)
        if message and report.passed:
            report.outcome, report.longrepr = "failed", message
            report.memxx_failed = True
        plan = item.stash.get(_PLAN, None)
        if figures is not None and plan is not None and plan.limit_memory is not None:
            self._compare_with_last_pass(item, report, figures)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: Any) -> Any:
        """A test failed by a budget shows as pytest-memray shows it: M, MEMORY PROBLEMS."""
        if report.when == "call" and report.failed and getattr(report, "memxx_failed", False):
            return "failed", "M", "MEMORY PROBLEMS"
        return None

    def _compare_with_last_pass(self, item: Any, report: Any, figures: Figures) -> None:
        """--fail-on-increase: a limit_memory test fails when its peak grew since it last passed.

        The figure is kept in pytest's cache under ``memxx/<test id>``, written on each pass.
        """
        cache = getattr(self.config, "cache", None)
        if cache is None or not report.passed:
            return
        key = f"memxx/{item.nodeid}"
        last = cache.get(key, None)
        last_peak = last.get("peak") if isinstance(last, dict) else None
        if self.fail_on_increase and isinstance(last_peak, int) and figures.peak > last_peak:
            report.outcome, report.memxx_failed = "failed", True
            report.longrepr = (f"{item.name} used {format_size(figures.peak)} at its peak, more "
                               f"than the {format_size(last_peak)} of its last passing run "
                               f"({figures.peak - last_peak} B more; --fail-on-increase)")
            return
        cache.set(key, {"peak": figures.peak})

    def pytest_runtest_logreport(self, report: Any) -> None:
        figures = getattr(report, "memxx", None)
        if report.when == "call" and isinstance(figures, dict):
            self.results.append(Figures(**figures))

    def _notes(self) -> list[str]:
        """One line for each pytest-memray option given that means something else here."""
        if self.memray_active:
            return []
        notes = []
        if _setting(self.config, "trace_python_allocators"):
            notes.append("--trace-python-allocators: nothing to switch on, every allocator "
                         "(pymalloc, PyMem, numpy, malloc, mmap) is always seen")
        if _setting(self.config, "native"):
            notes.append("--native: native memory always counts; stacks show Python frames "
                         "only (no C frames)")
        if self.fail_on_increase and getattr(self.config, "cache", None) is None:
            notes.append("--fail-on-increase: pytest's cache is off (-p no:cacheprovider): no "
                         "peak was compared with a last passing run, none was kept")
        return notes

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        tr = terminalreporter
        for note in self._notes():
            tr.write_line(f"memory-profilerxx: {note}", yellow=True)
        if not self.track_all or _setting(self.config, "hide_memray_summary"):
            if self.json_error:
                tr.write_line(f"memory-profilerxx: {self.json_error}", red=True)
            return
        top = self.config.getoption("memxx_top")
        if top == 5 and self.most != 5:  # --most-allocations (0: all) when --memxx-top is unset
            top = self.most or len(self.results)
        tr.write_sep("=", "memory-profilerxx: memory per test")
        for title, key in (("highest peak", "peak"), ("most leaked", "leaked")):
            rows = sorted((f for f in self.results if getattr(f, key) > 0),
                          key=lambda f: (-getattr(f, key), f.nodeid))[:top]
            tr.write_line(f"{len(rows)} tests with the {title}:" if rows else
                          f"no test {'allocated' if key == 'peak' else 'leaked'} memory")
            for f in rows:
                tr.write_line(f"   {format_size(getattr(f, key)):>9}  {f.nodeid}")
        if self.session_peak is not None:
            tr.write_line(self.session_peak.summary())
        if self.json_error:
            tr.write_line(f"memory-profilerxx: {self.json_error}", red=True)
        elif self.json_path:
            tr.write_line(f"figures of {len(self.results)} tests written to {self.json_path}")

    def pytest_sessionfinish(self, session: Any) -> None:
        """Writes --memxx-json (before the summary, which says where it went or why not)."""
        if self.session_peak is not None:
            self.session_peak.stop()
        if not self.json_path or hasattr(self.config, "workerinput"):
            return
        import _memxx

        text = json.dumps({"format": "memxx-pytest", "version": 1,
                           "tests": [asdict(f) for f in self.results]}, indent=2)
        try:
            # A fresh file renamed over the path: a link planted since the start is replaced,
            # never followed.
            _memxx.write_output(self.json_path, text)
        except (ValueError, OSError) as exc:  # ValueError: OutputFileError, one line
            self.json_error = f"--memxx-json: {exc}"
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR


_VERDICT = pytest.StashKey[str]()


class _SessionPeak:
    """The whole xdist session's memory at its highest moment: the controller and every worker
    (its child processes) read in the same sampling pass of mprofxx's sampler, so the figure is
    their sum at one instant, not a sum of peaks reached at different times.
    """

    INTERVAL = 0.02  # seconds between passes

    def __init__(self) -> None:
        import os
        import tempfile

        import _memxx

        folder = tempfile.mkdtemp(prefix="memxx-session-")
        self.path = os.path.join(folder, "session.dat")
        self.sampler: Any = _memxx.Sampler(os.getpid(), self.path, self.INTERVAL, True)
        self.sampler.start()
        self.peak = -1
        self.samples = 0

    def stop(self) -> None:
        import os
        import shutil

        if self.sampler is None:
            return
        self.sampler.stop()
        self.peak, self.samples = self.sampler.peak_bytes, self.sampler.stats()["samples"]
        self.sampler = None
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)

    def summary(self) -> str:
        if self.peak < 0:
            return "whole session at its peak: not sampled"
        return (f"whole session at its peak: {format_size(self.peak)} resident, the controller "
                f"and its workers at one moment ({self.samples} samples, every "
                f"{self.INTERVAL * 1000:.0f} ms)")


def _check_json_path(path: str) -> None:
    """UsageError before any test runs when --memxx-json cannot be written where it points."""
    import os

    import _memxx

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise pytest.UsageError(f"--memxx-json {path}: no such folder {folder}")
    try:
        _memxx.check_output(path)
    except ValueError as exc:  # OutputFileError: a link, a FIFO, another user's file
        raise pytest.UsageError(f"--memxx-json: {exc}") from None


def _is_async(func: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(func)


# pytest-memray's options and ini names, their defaults; the option wins over the ini.
_MEMRAY_SETTINGS: dict[str, tuple[str, Any]] = {
    "memray": ("memray", False),
    "hide_memray_summary": ("hide_memray_summary", False),
    "most_allocations": ("most_allocations", 5),
    "stacks": ("stacks", 1),
    "native": ("native", False),
    "trace_python_allocators": ("trace_python_allocators", False),
    "fail_on_increase": ("fail-on-increase", False),
}


def _setting(config: Any, name: str) -> Any:
    """A pytest-memray setting: its option when given, else its ini value, else its default."""
    ini, default = _MEMRAY_SETTINGS[name]
    value = config.getoption(name, default)
    if value != default:
        return value
    try:
        from_ini = config.getini(ini)
    except (KeyError, ValueError):
        return default
    if from_ini in ("", None, []):
        return default
    return int(from_ini) if isinstance(default, int) and not isinstance(default, bool) \
        else from_ini


def _positive_int(text: str) -> int:
    import argparse

    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is an invalid positive int value")
    return value


def _memray_adds_its_options(pluginmanager: Any) -> bool:
    """Whether pytest-memray's plugin is (or is about to be) loaded in this session."""
    import os
    from importlib import metadata

    if pluginmanager.has_plugin("memray"):
        return True
    if pluginmanager.is_blocked("memray") or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.name == "memray" for ep in metadata.entry_points(group="pytest11"))


def pytest_addoption(parser: Any, pluginmanager: Any) -> None:
    group = parser.getgroup("memxx", "memory-profilerxx: memory and leak budgets")
    group.addoption("--memxx", action="store_true", default=False,
                    help="measure every test; print the tests with the highest peak and leak")
    group.addoption("--memxx-top", type=int, default=5, metavar="N",
                    help="how many tests each list of the --memxx summary shows (default 5)")
    group.addoption("--memxx-limit", default=None, metavar="SIZE",
                    help="a peak budget for every test without limit_memory, e.g. '100 MB'")
    group.addoption("--memxx-leak-runs", type=int, default=3, metavar="N",
                    help="runs of a test with a leak marker (default 3)")
    group.addoption("--memxx-json", default=None, metavar="FILE",
                    help="write every measured test's figures (bytes) to FILE")
    if _memray_adds_its_options(pluginmanager):
        return  # the same names: pytest-memray declares them, and this plugin reads them
    group.addoption("--memray", action="store_true", default=False,
                    help="as --memxx (pytest-memray's name)")
    group.addoption("--hide-memray-summary", action="store_true", default=False,
                    help="hide the summary of --memxx / --memray")
    group.addoption("--most-allocations", type=int, default=5,
                    help="the summary lists the N tests that use most memory (N=0 for all)")
    group.addoption("--stacks", type=_positive_int, default=1,
                    help="frames shown per stack in a limit_memory failure (limit_leaks: >= 5)")
    group.addoption("--native", action="store_true", default=False,
                    help="accepted for pytest-memray: native memory always counts here")
    group.addoption("--trace-python-allocators", action="store_true", default=False,
                    help="accepted for pytest-memray: every allocator is always seen here")
    group.addoption("--fail-on-increase", action="store_true", default=False,
                    help="fail a limit_memory test whose peak grew since its last passing run")
    parser.addini("memray", "as --memray", type="bool")
    parser.addini("hide_memray_summary", "as --hide-memray-summary", type="bool")
    parser.addini("stacks", "as --stacks", type="string")
    parser.addini("native", "as --native", type="bool")
    parser.addini("trace_python_allocators", "as --trace-python-allocators", type="bool")
    parser.addini("fail-on-increase", "as --fail-on-increase", type="bool")
    parser.addini("most_allocations", "as --most-allocations")


def pytest_configure(config: Any) -> None:
    for line in (
        "limit_memory(size, current_thread_only=False): fail if the test's peak reaches size",
        "limit_leaks(location_limit, filter_fn=None, current_thread_only=False, runs=N): fail "
        "if one allocation site keeps location_limit or more after the test",
        "limit_leaked_objects(filter_fn=None, runs=N): fail if objects the test made survive it",
        "no_leaked_objects(types=None, runs=N): fail if objects (of these types) pile up",
    ):
        config.addinivalue_line("markers", line)
    if not config.pluginmanager.has_plugin("memxx-session"):
        config.pluginmanager.register(MemxxPlugin(config), "memxx-session")
