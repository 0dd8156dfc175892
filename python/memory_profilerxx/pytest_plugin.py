"""pytest plugin: per-test memory and leak budgets that name the line and the reference to blame.

Installed with memory-profilerxx (entry point ``pytest11``) and idle until asked: a marker
(``limit_memory``, ``limit_leaks``, ``no_leaked_objects``, as pytest-memray spells the first two)
or ``--memxx`` / ``--memxx-limit``. Figures come from the allocation hook's per-thread ledger
(``_memxx.watch_thread_begin``): PyMem, numpy and native malloc/mmap bytes of the test's thread.

Leak markers run the test body ``runs`` times (default 3) with one ``gc.collect()`` after each
run; a leak is what grows on every run after the first (the first one fills caches), so its
size is the smallest growth of runs 2..N.

>>> parse_size("1.5 MiB"), parse_size("24 MB"), format_size(3 * 2**20 + 2**19)
(1572864, 25165824, '3.5 MiB')
"""

from __future__ import annotations

import functools
import gc
import io
import json
import re
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
_MARKERS = ("limit_memory", "limit_leaks", "no_leaked_objects")
_FIGURES = pytest.StashKey["Figures"]()
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


@dataclass
class Plan:
    """What one test is measured for: budgets in bytes (None: none), runs, object types."""

    limit_memory: int | None = None
    limit_leaks: int | None = None
    objects: bool = False
    types: tuple[str, ...] = ()
    runs: int = 1
    current_thread_only: bool = False  # True: other threads' work for the test not counted

    marked: bool = False

    @property
    def leaks(self) -> bool:
        return self.limit_leaks is not None or self.objects


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


def _marker_args(mark: Any) -> tuple[Any, dict[str, Any]]:
    kwargs = dict(mark.kwargs)
    current_thread_only = bool(kwargs.pop("current_thread_only", False))
    if mark.name == "limit_leaks":
        kwargs.pop("filter_fn", None)  # memray's stack filter: no stacks here
    runs = kwargs.pop("runs", None)
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise ValueError(f"runs must be an int >= 1, not {runs!r}")
    if mark.name == "no_leaked_objects":
        types = kwargs.pop("types", None)
        if mark.args:
            raise ValueError("takes no positional argument (use types=[...])")
        if types is not None and (isinstance(types, str)
                                  or not all(isinstance(t, str) for t in types)):
            raise ValueError(f"types must be a list of type names, not {types!r}")
        value: Any = tuple(types or ())
    else:
        if len(mark.args) != 1:
            raise ValueError("takes one size, e.g. '24 MB'")
        value = parse_size(mark.args[0])
    if kwargs:
        raise ValueError(f"unknown argument {sorted(kwargs)[0]}=")
    return value, {"runs": runs, "current_thread_only": current_thread_only}


def _plan_for(item: Any, leak_runs: int, default_limit: int | None) -> Plan:
    """The Plan of a test from its markers; ValueError naming the test and the marker if bad."""
    plan = Plan(limit_memory=default_limit)
    runs = None
    for name in _MARKERS:
        mark = item.get_closest_marker(name)
        if mark is None:
            continue
        try:
            value, extra = _marker_args(mark)
        except (ValueError, TypeError) as exc:
            shown = ", ".join([repr(a) for a in mark.args]
                              + [f"{k}={v!r}" for k, v in mark.kwargs.items()])
            raise ValueError(f"{item.nodeid}: @pytest.mark.{name}({shown}): {exc}") from None
        if name == "limit_memory":
            plan.limit_memory = value
        elif name == "limit_leaks":
            plan.limit_leaks = value
        else:
            plan.objects, plan.types = True, value
        runs = extra["runs"] or runs
        plan.current_thread_only = plan.current_thread_only or extra["current_thread_only"]
        plan.marked = True
    if plan.marked and item.cls is not None and issubclass(item.cls, unittest.TestCase):
        raise ValueError(f"{item.nodeid}: memory markers apply to pytest test functions, "
                         "not to unittest.TestCase methods")
    if plan.leaks:
        plan.runs = runs or leak_runs
    return plan


def _type_matches(name: str, wanted: tuple[str, ...]) -> bool:
    return not wanted or name in wanted or name.rsplit(".", 1)[-1] in wanted


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _LeakRuns:
    """Runs a test ``runs`` times; keeps per-run net bytes and per-run new objects by type.

    Everything kept between runs is an int or str, in containers made before the first count
    (3.14+ tracks every dict, even one of ints), so the plugin's own bookkeeping never shows up
    as a growing type.
    """

    def __init__(self, func: Any, plan: Plan) -> None:
        import _memxx

        import objgraphxx
        from memory_profilerxx import LineProfiler

        self.func, self.plan = func, plan
        self.profiler = LineProfiler(threads="self" if plan.current_thread_only else "all")
        self.profiler.add_function(func)
        if not plan.current_thread_only:
            from memory_profilerxx._thread_causes import install

            install()
        self.sites = objgraphxx.track_allocations() if plan.leaks else None
        self.tracker = _memxx.GcNewIds() if plan.leaks else None
        self.nets: list[int] = []
        self.growth: list[dict[str, int]] = []
        self._growth_slots: list[dict[str, int]] = [{} for _ in range(plan.runs)]
        self.last_new: dict[str, tuple[int, ...]] = {}
        self.peak = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import _memxx

        if self.sites is not None:
            self.sites.start()
        try:
            gc.collect()
            if self.tracker is not None:
                self.tracker.update(False)
            result = None
            for run in range(self.plan.runs):
                last = run == self.plan.runs - 1
                mark = _memxx.watch_thread_begin(threads=not self.plan.current_thread_only)
                try:
                    if last:
                        self.profiler.enable()
                    try:
                        result = self.func(*args, **kwargs)
                    finally:
                        if last:
                            self.profiler.disable()
                    if self.plan.leaks:
                        gc.collect()
                    self.nets.append(_memxx.watch_thread_net(mark))
                finally:
                    self.peak = max(self.peak, _memxx.watch_thread_end(mark))
                if self.tracker is not None:
                    self._count_new_objects(last)
            return result
        finally:
            if self.sites is not None:
                self.sites.stop()

    def _count_new_objects(self, last: bool) -> None:
        run = len(self.growth)
        grown = self._growth_slots[run] if run < len(self._growth_slots) else {}
        assert self.tracker is not None
        for name, old, current, new in self.tracker.update(False):
            if current > old and new and _type_matches(name, self.plan.types):
                grown[name] = current - old
                if last:
                    self.last_new[name] = tuple(new)
        self.growth.append(grown)

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


def _line_blame(runner: _LeakRuns, key: str, limit: int = 5) -> list[str]:
    records = [r for r in runner.profiler.records() if getattr(r, key) > 0]
    if key == "peak":
        records = sorted(records, key=lambda r: -r.peak)[:1]
        sizes = [runner.peak]
    else:
        records = sorted(records, key=lambda r: -r.increment)[:limit]
        sizes = [r.increment for r in records]
    from objgraphxx._sites import short_path

    return [f"   {format_size(size):>9}  {short_path(r.filename)}:{r.lineno}   {r.source.strip()}"
            for size, r in zip(sizes, records)]


def _object_story(runner: _LeakRuns, leaked: dict[str, int]) -> list[str]:
    import objgraphxx

    name, count = next(iter(leaked.items()))
    lines = [f"{_short(name)} x {count} still alive after {runner.plan.runs} runs; one of them:"]
    obj = objgraphxx.at(runner.last_new[name][-1]) if runner.last_new.get(name) else None
    if obj is None:
        return lines + ["   (gone before it could be shown)"]
    site = objgraphxx.allocation_site(obj)
    if site is not None:
        from objgraphxx._sites import short_path

        lines.append(f"   made at {short_path(site[0])}:{site[1]}")
    text = io.StringIO()
    objgraphxx.why_alive(obj, file=text)
    chain = [line.strip() for line in text.getvalue().splitlines() if line.strip()]
    lines.append("   " + " -> ".join(chain) if chain else "   (no chain from a module or frame)")
    others = [f"{_short(n)} x {c}" for n, c in list(leaked.items())[1:4]]
    if others:
        lines.append("also still alive: " + ", ".join(others))
    return lines


def _verdict(name: str, runner: _LeakRuns, figures: Figures) -> str | None:
    """The failure message of a measured test, or None when it kept its budgets."""
    plan, parts = runner.plan, []
    if plan.limit_memory is not None and figures.peak > plan.limit_memory:
        parts.append(f"{name} used {format_size(figures.peak)} at its peak "
                     f"(limit {format_size(plan.limit_memory or 0)}), reached on:")
        parts += _line_blame(runner, "peak")
    leaked = runner.leaked_types() if plan.leaks else {}
    over_leak = plan.limit_leaks is not None and figures.leaked > plan.limit_leaks
    if over_leak:
        limit = plan.limit_leaks or 0
        runs = f" a run (limit {format_size(limit)}), held more after each of " \
               f"{plan.runs} runs:" if plan.runs > 1 else \
               f" (limit {format_size(limit)}):"
        parts.append(f"{name} leaked {format_size(figures.leaked)}{runs}")
        parts += _line_blame(runner, "increment")
    if leaked and (over_leak or plan.objects):
        parts += _object_story(runner, leaked)
    return "\n".join(parts) if parts else None


class MemxxPlugin:
    """The plugin's hooks and the session's figures; one per pytest config."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.track_all = bool(config.getoption("memxx") or config.getoption("memxx_limit")
                              or config.getoption("memxx_json"))
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
        self.json_path = config.getoption("memxx_json")
        self.json_error: str | None = None
        if self.json_path:
            _check_json_path(self.json_path)
        self.results: list[Figures] = []

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
                item.stash[_PLAN] = _plan_for(item, self.leak_runs, self.default_limit)
            except ValueError as exc:
                report.outcome, report.longrepr, report.result = "failed", str(exc), []
                return

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: Any) -> Any:
        plan = pyfuncitem.stash.get(_PLAN, None)
        if plan is None or not plan.marked or _is_async(pyfuncitem.obj):
            yield
            return
        func = pyfuncitem.obj
        runner = _LeakRuns(func, plan)
        pyfuncitem.obj = functools.wraps(func)(runner)
        try:
            outcome = yield
        finally:
            pyfuncitem.obj = func
        figures = Figures(pyfuncitem.nodeid, peak=runner.peak, runs=plan.runs,
                          run_nets=list(runner.nets), limit_memory=plan.limit_memory,
                          limit_leaks=plan.limit_leaks)
        if plan.leaks:
            figures.leaked = runner.leaked_bytes()
            figures.leaked_objects = {_short(k): v for k, v in runner.leaked_types().items()}
        elif runner.nets:
            figures.leaked = runner.nets[-1]
        pyfuncitem.stash[_FIGURES] = figures
        if outcome.excinfo is None:
            message = _verdict(pyfuncitem.name, runner, figures)
            if message:
                pyfuncitem.stash[_VERDICT] = message
        if runner.sites is not None:
            runner.sites.stop(forget=True)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: Any) -> Any:
        """--memxx: the call phase of every unmarked test (unittest ones too), measured once."""
        plan = item.stash.get(_PLAN, None)
        if not self.track_all or (plan is not None and plan.marked):
            yield
            return
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

    def pytest_runtest_logreport(self, report: Any) -> None:
        figures = getattr(report, "memxx", None)
        if report.when == "call" and isinstance(figures, dict):
            self.results.append(Figures(**figures))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.track_all or hasattr(self.config, "workerinput"):
            return
        top = self.config.getoption("memxx_top")
        tr = terminalreporter
        tr.write_sep("=", "memory-profilerxx: memory per test")
        for title, key in (("highest peak", "peak"), ("most leaked", "leaked")):
            rows = sorted((f for f in self.results if getattr(f, key) > 0),
                          key=lambda f: (-getattr(f, key), f.nodeid))[:top]
            tr.write_line(f"{len(rows)} tests with the {title}:" if rows else
                          f"no test {'allocated' if key == 'peak' else 'leaked'} memory")
            for f in rows:
                tr.write_line(f"   {format_size(getattr(f, key)):>9}  {f.nodeid}")
        if self.json_error:
            tr.write_line(f"memory-profilerxx: {self.json_error}", red=True)
        elif self.json_path:
            tr.write_line(f"figures of {len(self.results)} tests written to {self.json_path}")

    def pytest_sessionfinish(self, session: Any) -> None:
        """Writes --memxx-json (before the summary, which says where it went or why not)."""
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

    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def pytest_addoption(parser: Any) -> None:
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


def pytest_configure(config: Any) -> None:
    for line in (
        "limit_memory(size, current_thread_only=False): fail if the test's peak exceeds size",
        "limit_leaks(size, runs=N): fail if the test holds more than size more on every run",
        "no_leaked_objects(types=None, runs=N): fail if objects (of these types) pile up",
    ):
        config.addinivalue_line("markers", line)
    if not config.pluginmanager.has_plugin("memxx-session"):
        config.pluginmanager.register(MemxxPlugin(config), "memxx-session")

