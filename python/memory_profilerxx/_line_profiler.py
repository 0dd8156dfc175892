"""LineProfiler: the memory_profiler-shaped front of the native hook and line tracer."""

from __future__ import annotations

import functools
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from types import CodeType
from typing import Any, Self

import _memxx
from _memxx import MIB

from memory_profilerxx._code_lines import function_lines, last_line
from memory_profilerxx._memory_usage import choose_backend
from memory_profilerxx._report import check_layout, records_json, show_results



@dataclass(frozen=True)
class LineRecord:
    """One measured source line; sizes are in bytes.

    ``increment`` is the net of what was allocated and freed while the line ran (summed over its
    ``occurrences``); the line that leaves a function (its ``return``; its header row, the first
    line, when it falls off its end) also holds what the frame's teardown frees, so a call's
    increments add up to what the call kept. The header row's ``memory`` is the memory at entry.
    ``peak`` is the highest memory reached while it ran, ``memory`` the memory after its last
    run. Memory is the process RSS when profiling started plus the bytes the profiled thread
    allocated minus those it freed since. ``native_increment`` is the part of ``increment``
    that native code (C libraries' ``malloc``/``mmap``) allocated, ``native_peak`` the native
    bytes the thread held at the moment of ``peak``. ``threads_increment`` is the part of
    ``increment`` that other threads allocated minus freed for the line (threads it started,
    pool workers running work it submitted, native threads while it ran, frees of its blocks
    elsewhere; see ``profile(threads=...)``).
    """

    filename: str
    function: str
    lineno: int
    source: str
    occurrences: int
    increment: int
    peak: int
    memory: int
    native_increment: int = 0
    native_peak: int = 0
    threads_increment: int = 0


def check_threads(which: Any) -> str:
    """Return ``which`` if it is a valid ``threads`` choice (``"all"`` or ``"self"``)."""
    if which not in ("all", "self"):
        raise ValueError(f"threads must be 'all' or 'self', not {which!r}")
    return str(which)


def code_of(func: Any) -> CodeType | None:
    """The code object of a function, method, staticmethod/classmethod or partial; else None."""
    while True:
        if isinstance(func, (staticmethod, classmethod)):
            func = func.__func__
        elif isinstance(func, functools.partial):
            func = func.func
        elif hasattr(func, "__func__"):  # bound method
            func = func.__func__
        else:
            break
    code = getattr(func, "__code__", None)
    return code if isinstance(code, CodeType) else None


# inspect.CO_GENERATOR and CO_COROUTINE, without importing inspect (4 ms) at import time.
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80

_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})


def _nested_functions(code: CodeType) -> Iterator[CodeType]:
    """Code objects of functions defined inside ``code`` (at any depth), not comprehensions.

    Comprehensions stay out so that 3.11 (where they are functions) reports what 3.12+ (where
    they are inlined) does: their work on the line that holds them.
    """
    for const in code.co_consts:
        if isinstance(const, CodeType) and const.co_name not in _COMPREHENSIONS:
            yield const
            yield from _nested_functions(const)


_RETURNS = frozenset({"RETURN_VALUE", "RETURN_CONST"})
_return_positions_cache: dict[str, tuple[list[str], frozenset[tuple[int, int]] | None]] = {}
_falls_off_cache: weakref.WeakKeyDictionary[CodeType, list[int]] = weakref.WeakKeyDictionary()


def _return_positions(filename: str) -> frozenset[tuple[int, int]] | None:
    """(line, column) where each ``return`` statement of a source file, its value, and each
    lambda's body start: where an explicit return instruction is placed.

    None when the source cannot be read or parsed.
    """
    import ast
    import linecache

    lines = linecache.getlines(filename)
    cached = _return_positions_cache.get(filename)
    if cached is not None and cached[0] is lines:
        return cached[1]
    positions: frozenset[tuple[int, int]] | None = None
    try:
        tree = ast.parse("".join(lines)) if lines else None
    except (SyntaxError, ValueError):
        tree = None
    if tree is not None:
        positions = frozenset(
            (node.lineno, node.col_offset)
            for found in ast.walk(tree)
            for node in ((found, found.value) if isinstance(found, ast.Return)
                         else (found.body,) if isinstance(found, ast.Lambda) else ())
            if node is not None)
    _return_positions_cache[filename] = (lines, positions)
    return positions


def falls_off_offsets(code: CodeType) -> list[int]:
    """Byte offsets of the return instructions of ``code`` that are no ``return`` statement.

    There the function falls off its end: the compiler's ``return None`` carries the position of
    the code before it (or none), where an explicit ``return`` carries its own or its value's.
    Without the source, no offset is given (the teardown then stays on the last line run).
    """
    cached = _falls_off_cache.get(code)
    if cached is not None:
        return cached
    import dis

    explicit = _return_positions(code.co_filename)
    offsets = []
    if explicit is not None:
        for instruction in dis.get_instructions(code):
            if instruction.opname in _RETURNS:
                where = instruction.positions
                start = (where.lineno, where.col_offset) if where is not None else None
                if start not in explicit:
                    offsets.append(instruction.offset)
    _falls_off_cache[code] = offsets
    return offsets


class CodeMap(dict[Any, Any]):
    """``code -> {lineno: (increment MiB, memory MiB, occurrences)}``, as memory_profiler's.

    ``items()`` yields ``(filename, iterator of (lineno, tuple or None))`` over every source
    line of each profiled function that has measurements, as memory_profiler's CodeMap does.
    """

    def items(  # type: ignore[override]
        self,
    ) -> Iterator[tuple[str, Iterator[tuple[int, tuple[Any, ...] | None]]]]:
        for code, measures in dict.items(self):
            if not measures:
                continue
            linenos = function_lines(code)
            yield code.co_filename, ((line, measures.get(line)) for line in linenos)


class LineProfiler:
    """Records, for each line of the functions added to it, the memory allocated and freed.

    Works like memory_profiler's ``LineProfiler``: use it as a decorator, or ``add_function``
    then ``enable()``/``disable()`` (or ``with profiler:``), then ``show_results(profiler)``.

    >>> prof = LineProfiler()
    >>> def build():
    ...     return [0] * 1000
    >>> profiled = prof(build)
    >>> _ = profiled()
    >>> [r.increment >= 8000 for r in prof.records() if 'return' in r.source]
    [True]
    """

    def __init__(self, **kw: Any) -> None:
        self.include_children = kw.get("include_children", False)
        self.backend = kw.get("backend", "hook")
        self.max_mem = kw.get("max_mem")
        self._previous_trace: Any = None
        self._codes = _memxx.ProfiledCodes()
        self._codes.native = bool(kw.get("native", True))
        self._codes.threads = check_threads(kw.get("threads", "all")) == "all"
        self.functions: list[Callable[..., Any]] = []

    def __call__(self, func: Callable[..., Any] | None = None,
                 precision: int = 1) -> Callable[..., Any]:
        if func is None:
            return functools.partial(self.__call__, precision=precision)
        self.add_function(func)
        return self.wrap_function(func)

    def add_function(self, func: Callable[..., Any]) -> None:
        """Measure the lines of ``func`` from now on (while the profiler is enabled)."""
        code = code_of(func)
        if code is None:
            warnings.warn(f"Could not extract a code object for the object {func!r}",
                          stacklevel=2)
            return
        if self._codes.add(code, last_line(code), falls_off_offsets(code)):
            self.functions.append(func)
            for nested in _nested_functions(code):
                self._codes.add_nested(nested, code, falls_off_offsets(nested))

    def wrap_function(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """A wrapper of ``func`` that enables the profiler while it runs.

        Generator functions and ``async def`` functions get a wrapper of the same kind that
        enables the profiler for each step of the body (each resume up to the next ``yield`` or
        ``await`` suspension), so the consumer's or event loop's work in between is not counted.
        """
        return _wrap(func, lambda: self, lambda used: None)

    def enable(self) -> None:
        """Start measuring (counted: each enable() needs its disable())."""
        if self._codes.threads and self._codes.enabled == 0:
            from memory_profilerxx._thread_causes import install

            install()
        if self.max_mem is not None and self._codes.enabled == 0:
            # Before the hook's tracer is armed, which then chains it (3.11).
            self._previous_trace = sys.gettrace()
            sys.settrace(self._trace_max_mem)
        self._codes.enable()

    def disable(self) -> None:
        self._codes.disable()
        if self.max_mem is not None and self._codes.enabled == 0:
            sys.settrace(self._previous_trace)

    def _trace_max_mem(self, frame: Any, event: str, arg: Any) -> Any:
        """``--pdb-mmem``: enters pdb when a profiled line runs above ``max_mem`` MiB."""
        if frame.f_code not in self._codes or self.max_mem is None:
            return None
        if event in ("line", "return") and _memxx.rss_bytes() / MIB >= self.max_mem:
            sys.stdout.write(f"Current memory {_memxx.rss_bytes() / MIB:.2f} MiB exceeded the "
                             f"maximum of {self.max_mem:.2f} MiB\n")
            sys.stdout.write("Stepping into the debugger \n")
            import pdb  # noqa: T100 - --pdb-mmem is a request for the debugger

            pdb.Pdb().set_trace(frame)
            return None
        return self._trace_max_mem

    enable_by_count = enable
    disable_by_count = disable

    @property
    def enable_count(self) -> int:
        return self._codes.enabled

    def __enter__(self) -> Self:
        self.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disable()

    def runctx(self, cmd: str, globals: dict[str, Any], locals: dict[str, Any]) -> LineProfiler:
        """Profile one statement in the given namespaces."""
        self.enable()
        try:
            exec(cmd, globals, locals)  # noqa: S102 - memory_profiler's runctx API
        finally:
            self.disable()
        return self

    @property
    def native(self) -> bool:
        """Whether native memory (C libraries' ``malloc``/``mmap``) is counted; default True."""
        return self._codes.native

    @native.setter
    def native(self, on: bool) -> None:
        self._codes.native = bool(on)

    @property
    def threads(self) -> str:
        """``"all"`` (default): other threads' memory counts for the line that caused it;
        ``"self"``: only the profiled thread's own allocations and frees count."""
        return "all" if self._codes.threads else "self"

    @threads.setter
    def threads(self, which: str) -> None:
        self._codes.threads = check_threads(which) == "all"

    def _results(self) -> list[tuple[CodeType,
                                     list[tuple[int, int, int, int, int, int, int, int]]]]:
        return self._codes.results()

    @property
    def code_map(self) -> CodeMap:
        """memory_profiler's view: ``{code: {lineno: (increment MiB, memory MiB, occurrences)}}``."""
        view = CodeMap()
        for code, rows in self._results():
            view[code] = {line: (inc / MIB, mem / MIB, occ)
                          for line, occ, inc, _peak, mem, *_native in rows}
        return view

    def records(self) -> list[LineRecord]:
        """The lines that ran, one ``LineRecord`` each (bytes), in source order per function."""
        import linecache

        out = []
        for code, rows in self._results():
            lines = linecache.getlines(code.co_filename)
            for line, occ, inc, peak, mem, native_inc, native_peak, threads_inc in rows:
                source = lines[line - 1].rstrip("\n") if 0 < line <= len(lines) else ""
                out.append(LineRecord(code.co_filename, code.co_qualname, line, source,
                                      occ, inc, peak, mem, native_inc, native_peak, threads_inc))
        return out

    def to_json(self, indent: int = 2) -> str:
        """The records as JSON text: ``{"format", "version", "unit": "bytes", "lines": [...]}``."""
        return records_json(self.records(), indent)


def _step(steps: Any, codes: Any) -> Generator[Any, Any, Any]:
    """Drives a generator or coroutine, with profiling armed only while its body runs."""
    value: Any = None
    error: BaseException | None = None
    while True:
        codes.enable()
        try:
            out = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        finally:
            codes.disable()
            error = None
        try:
            value = yield out
        except GeneratorExit:
            codes.enable()
            try:
                codes.close_generator(steps)
            finally:
                codes.disable()
            raise
        except BaseException as thrown:  # noqa: BLE001 - handed to the profiled body
            error, value = thrown, None


class _Awaitable:
    def __init__(self, coro: Any, codes: Any) -> None:
        self._coro, self._codes = coro, codes

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield from _step(self._coro, self._codes))


def _wrap(func: Callable[..., Any], begin: Callable[[], LineProfiler],
          end: Callable[[LineProfiler], None]) -> Callable[..., Any]:
    """The wrapper of ``func`` that enables a profiler while its body runs.

    ``begin`` (returning the profiler to use) and ``end`` bracket each call; for a generator or
    coroutine, ``end`` runs when it is exhausted, closed or has raised. Between two steps the
    claim on the code objects is held without arming the thread (see ProfiledCodes.enable).
    """

    flags = getattr(code_of(func), "co_flags", 0)
    if flags & _CO_COROUTINE:
        @functools.wraps(func)
        async def run_coroutine(*args: Any, **kwargs: Any) -> Any:
            used = begin()
            codes = used._codes
            codes.enable(arm=False)
            try:
                return await _Awaitable(func(*args, **kwargs), codes)
            finally:
                codes.disable(armed=False)
                end(used)

        return run_coroutine

    if flags & _CO_GENERATOR:
        @functools.wraps(func)
        def run_generator(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            used = begin()
            codes = used._codes
            codes.enable(arm=False)
            try:
                return (yield from _step(func(*args, **kwargs), codes))
            finally:
                codes.disable(armed=False)
                end(used)

        return run_generator

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        used = begin()
        used.enable()
        try:
            return func(*args, **kwargs)
        finally:
            used.disable()
            end(used)

    return run


def _mprof_span(func: Callable[..., Any]) -> Callable[..., Any] | None:
    """Inside ``mprofxx run`` (MPROFXX_DAT set), each call is also a FUNC span of the .dat."""
    import os

    if not os.environ.get("MPROFXX_DAT"):
        return None
    from _memxx_shared import spans

    return functools.partial(spans.function_span, spans.function_name(func))


def profile(func: Callable[..., Any] | None = None, stream: Any = None, precision: int = 1,
            backend: str = "psutil", layout: str | None = None,
            native: bool = True, threads: str = "all") -> Callable[..., Any]:
    """Decorator that prints a line-by-line memory report of ``func`` after each call.

    As memory_profiler's ``profile``: bare or with arguments; ``stream`` (default stdout) gets
    the report, ``precision`` sets its decimal places. ``layout="classic"`` prints
    memory_profiler's exact table; the default adds a ``Peak`` column (see
    ``default_layout``). Recursive calls are
    reported once, when the outermost call returns. ``backend`` is accepted for compatibility;
    the figures always come from the allocation hook. ``native=False`` counts PyMem and numpy
    memory only, not what C libraries allocate with ``malloc``/``mmap``.

    >>> import io
    >>> out = io.StringIO()
    >>> @profile(stream=out)
    ... def make():
    ...     return [1] * 10**6
    >>> _ = make()
    >>> 'Peak' in out.getvalue() and '7.6 MiB' in out.getvalue()
    True
    """
    if func is None:
        return functools.partial(profile, stream=stream, precision=precision, backend=backend,
                                 layout=layout, native=native, threads=threads)
    if code_of(func) is None:
        raise TypeError("profile() expects a function or method, got "
                        f"{type(func).__name__} object {func!r}")
    if layout is not None:
        check_layout(layout)
    choose_backend(backend)
    check_threads(threads)
    calls = _ReportedCalls(func, stream, precision, layout, native, threads)
    span = _mprof_span(func)
    if span is not None and not getattr(code_of(func), "co_flags", 0) & (_CO_COROUTINE
                                                                         | _CO_GENERATOR):
        func = _with_span(func, span)
    return _wrap(func, calls.begin, calls.end)


def _with_span(func: Callable[..., Any], span: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def spanned(*args: Any, **kwargs: Any) -> Any:
        with span():
            return func(*args, **kwargs)

    return spanned


_REPORT_LOCK = threading.Lock()


class _ReportedCalls:
    """The calls of one ``@profile`` function: a report when no call of it is running any more.

    Calls that overlap (recursion, several threads, generators alive at once) share one
    LineProfiler and one report; the bookkeeping is locked because threads enter and leave.
    """

    def __init__(self, func: Callable[..., Any], stream: Any, precision: int, layout: str | None,
                 native: bool = True, threads: str = "all") -> None:
        self._func, self._stream, self._precision, self._layout = func, stream, precision, layout
        self._native, self._threads = native, threads
        self._lock = threading.Lock()
        self._current: LineProfiler | None = None
        self._running = 0

    def begin(self) -> LineProfiler:
        with self._lock:
            if self._current is None:
                self._current = LineProfiler(native=self._native, threads=self._threads)
                self._current.add_function(self._func)
            self._running += 1
            return self._current

    def end(self, prof: LineProfiler) -> None:
        with self._lock:
            self._running -= 1
            if self._running > 0 or self._current is not prof:
                return
            self._current = None
        with _REPORT_LOCK:  # reports of calls ending on two threads must not interleave
            show_results(prof, stream=self._stream, precision=self._precision,
                         layout=self._layout)
