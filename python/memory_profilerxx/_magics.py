"""The IPython extension: ``%load_ext memory_profilerxx`` registers ``%memit`` and ``%mprun``.

Imported only by ``load_ipython_extension`` (``import memory_profilerxx`` does not load IPython),
and it needs neither setuptools nor distutils.
"""

from __future__ import annotations

import builtins
import gc
import io
import linecache
from typing import Any

import _memxx
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.utils.ipstruct import Struct

from _memxx_shared.notebook import in_kernel, show
from _memxx_shared.peak_file import PeakTable

from memory_profilerxx._line_profiler import LineProfiler
from memory_profilerxx._memory_usage import MemitResult, call_with_peak, memory_usage
from memory_profilerxx._peak import peak_report
from memory_profilerxx._report import report_html, show_results


def _run_statement(stmt: str, namespace: dict[str, Any]) -> None:
    exec(compile(stmt, "<memit>", "exec"), namespace)  # noqa: S102 - the user's own statement


@magics_class
class MemoryProfilerMagics(Magics):
    """``%memit`` and ``%mprun``, with memory_profiler's options and output; and ``%peak``."""

    _peak_runs = 0

    @line_cell_magic
    def mprun(self, parameter_s: str = "", cell: str | None = None) -> LineProfiler | None:
        """Line-by-line memory report of the functions given with ``-f`` while a statement runs.

        ``%mprun -f func [-f other] [-T file] [-c] [-r] [-N] statement``; in cell mode the cell
        is the statement. ``-N``: PyMem and numpy memory only (no native malloc/mmap). Works on functions defined in the notebook as well as in modules.
        """
        opts, arg_str = self.parse_options(parameter_s, "rf:T:cN", list_all=True)
        opts.merge(Struct(f=[], T=[""]))
        if cell is not None:
            arg_str += "\n" + cell
        assert self.shell is not None  # a magic runs inside a shell
        global_ns = self.shell.user_global_ns
        local_ns = self.shell.user_ns
        funcs = []
        for name in opts.f:
            try:
                funcs.append(eval(name, global_ns, local_ns))
            except Exception as e:  # noqa: BLE001 - reported as memory_profiler does
                raise UsageError(f"Could not find function {name!r}.\n"
                                 f"{e.__class__.__name__}: {e}") from None
        prof = LineProfiler(include_children="c" in opts, native="N" not in opts)
        for func in funcs:
            prof.add_function(func)
        saved = builtins.__dict__.get("profile")
        builtins.profile = prof  # type: ignore[attr-defined]
        message = ""
        try:
            prof.runctx(arg_str, global_ns, local_ns)
        except SystemExit:
            message = "*** SystemExit exception caught in code being profiled."
        except KeyboardInterrupt:
            message = "*** KeyboardInterrupt exception caught in code being profiled."
        finally:
            if saved is None:
                builtins.__dict__.pop("profile", None)
            else:
                builtins.profile = saved  # type: ignore[attr-defined]
        out = io.StringIO()
        show_results(prof, out, precision=1)
        output = out.getvalue().rstrip()
        if in_kernel():  # the cell's output: a pager payload is dropped by executed notebooks
            show(output, report_html(prof, precision=1))
        else:
            from IPython.core import page

            page.page(output)
        print(message)
        text_file = opts.T[0]
        if text_file:
            _memxx.write_output(text_file, output)
            print(f"\n*** Profile printout saved to text file {text_file}. {message}")
        return prof if "r" in opts else None

    @line_cell_magic
    def memit(self, line: str = "", cell: str | None = None) -> MemitResult | None:
        """Peak memory of a statement: ``peak memory: X MiB, increment: Y MiB``.

        ``%memit [-r<R>] [-t<T>] [-i<I>] [-c] [-o] [-q] statement``: ``-r`` runs it R times
        (exactly) and reports the highest peak; ``-i`` is the sampling interval in seconds,
        which does not change the peak (it comes from the allocation hook and the kernel);
        ``-t`` is accepted for compatibility; ``-c`` adds child processes; ``-o`` returns a
        MemitResult; ``-q`` prints nothing. The increment is the highest of the runs' own
        increments (see ``call_with_peak``) and the peak is the baseline plus it. In cell mode the first line is setup code and the
        cell body is measured.
        """
        opts, stmt = self.parse_options(line, "r:t:i:coq", posix=False, strict=False)
        repeat = max(int(getattr(opts, "r", 1)), 1)
        seconds = int(getattr(opts, "t", 0))
        timeout = seconds if seconds > 0 else None
        interval = float(getattr(opts, "i", 0.1))
        include_children = "c" in opts
        if cell is None:
            setup = "pass"
        else:
            setup, stmt = stmt, cell
        assert self.shell is not None  # a magic runs inside a shell
        namespace = self.shell.user_ns
        gc.collect()
        _run_statement(setup, namespace)
        baseline = memory_usage()[0]
        peaks: list[float] = []
        for _ in range(repeat):
            # Each run's own increment, on top of the baseline: memory the allocator kept from
            # an earlier run is not the statement's.
            reading = call_with_peak(_run_statement, (stmt, namespace), interval=interval,
                                     include_children=include_children)
            peaks.append(baseline + reading.increment_mib)
        result = MemitResult(peaks, baseline, repeat, timeout, interval, include_children)
        if "q" not in opts:
            print(result)
        return result if "o" in opts else None

    @line_cell_magic
    def peak(self, line: str = "", cell: str | None = None) -> PeakTable | None:
        """What held the memory at the peak of a statement: the lines, largest first.

        ``%peak [-n N] [-N] [-o] statement``, or ``%%peak`` with the cell as the statement:
        every allocation it makes (Python objects, numpy, native malloc and mmap; ``-N``: not
        native) is tagged with the line that made it, and the table shows the bytes each line
        held at the statement's highest moment. ``-n``: rows (default 10); ``-o``: return the
        PeakTable.
        """
        opts, stmt = self.parse_options(line, "n:No", posix=False, strict=False)
        if cell is not None:
            stmt = cell
        if not stmt.strip():
            raise UsageError("%peak needs a statement (or use %%peak with a cell)")
        try:
            limit = int(getattr(opts, "n", 10))
        except ValueError:
            raise UsageError(f"-n takes a number of rows, not {opts.n!r}") from None
        self._peak_runs += 1
        name = f"<peak-{self._peak_runs}>"
        linecache.cache[name] = (len(stmt), None, stmt.splitlines(True), name)  # the rows' source
        code = compile(stmt, name, "exec")
        recording = peak_report(native="N" not in opts)
        assert self.shell is not None  # a magic runs inside a shell
        with recording:
            exec(code, self.shell.user_global_ns, self.shell.user_ns)  # noqa: S102 - the user's
        table = recording.table
        assert table is not None
        print(table.format(max(limit, 1)))
        return table if "o" in opts else None


def load_ipython_extension(ip: Any) -> None:
    """Registers %memit, %mprun and %peak: ``%load_ext memory_profilerxx``."""
    ip.register_magics(MemoryProfilerMagics)
