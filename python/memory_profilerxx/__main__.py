"""python -m memory_profilerxx [options] script.py [args] | -m module [args]

Runs a program with ``profile`` in builtins: every function it decorates with ``@profile`` is
measured line by line, and one report is written when the program ends (also when it raises).
"""

from __future__ import annotations

import argparse
import builtins
import os
import runpy
import sys
from typing import Any

import _memxx

from _memxx_shared.errors import RunnerError, exit_status

from memory_profilerxx import LineProfiler, __version__, show_results
from memory_profilerxx._memory_usage import BACKENDS
from memory_profilerxx._report import LAYOUTS
from memory_profilerxx._timestamper import TimeStamper

PROG = "python -m memory_profilerxx"
USAGE = PROG + " [options] script.py [args] | -m module [args]"


class BuiltinProfile(LineProfiler):
    """The ``profile`` a script gets from builtins: one profiler shared by every decorated
    function, reported once at exit. ``precision`` given to it is ignored (the CLI's wins)."""

    def __call__(self, func: Any = None, precision: int | None = None) -> Any:
        if func is None:
            return lambda f: self(f)
        return super().__call__(func)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, usage=USAGE)
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--precision", type=int, default=3,
                        help="decimal places of the MiB figures (default 3)")
    parser.add_argument("-o", dest="out_filename", default=None,
                        help="append the report to this file instead of stdout")
    parser.add_argument("--timestamp", action="store_true",
                        help="record memory and time at each call's start and end instead "
                             "(FUNC lines, the mprof format)")
    parser.add_argument("--include-children", action="store_true",
                        help="with --timestamp, add the memory of child processes")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="how memory is read: hook (default, exact), psutil/posix (RSS), "
                             "psutil_pss, psutil_uss, tracemalloc; line increments always "
                             "come from the allocation hook")
    parser.add_argument("--pdb-mmem", dest="max_mem", metavar="MAXMEM", type=float,
                        default=None,
                        help="step into the debugger when a profiled line runs with more "
                             "than MAXMEM MiB")
    parser.add_argument("--json", dest="json_filename", default=None, metavar="FILE",
                        help="also write the per-line records (bytes) to FILE as JSON")
    parser.add_argument("--layout", choices=LAYOUTS, default=None,
                        help="peak: with a Peak column (default, or $MEMORY_PROFILERXX_LAYOUT); "
                             "classic: memory_profiler's")
    parser.add_argument("--no-native", dest="native", action="store_false",
                        help="count PyMem and numpy memory only, not what C libraries allocate "
                             "with malloc/mmap")
    parser.add_argument("-m", dest="module", action="store_true",
                        help="the program is a module name, run as with python -m")
    parser.add_argument("program", nargs=argparse.REMAINDER,
                        help="script (or module with -m) and its arguments")
    return parser


def _run(args: argparse.Namespace, prof: Any) -> None:
    target, rest = args.program[0], args.program[1:]
    builtins.profile = prof  # type: ignore[attr-defined]
    if args.module:
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return
    script = os.path.abspath(target)
    sys.argv = [target, *rest]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="__main__")


def _open_report(path: str) -> Any:
    """Return the report file open for appending (as memory_profiler's -o), through the one
    safe output opener."""
    return os.fdopen(_memxx.open_output(path, append=True), "a", encoding="utf-8")


def _write_reports(args: argparse.Namespace, prof: Any) -> None:
    if isinstance(prof, TimeStamper):
        if args.out_filename is not None:
            with _open_report(args.out_filename) as out:
                prof.show_results(out)
        else:
            prof.show_results()
            sys.stdout.flush()
        return
    if args.out_filename is not None:
        with _open_report(args.out_filename) as out:
            show_results(prof, stream=out, precision=args.precision, layout=args.layout)
    else:
        show_results(prof, precision=args.precision, layout=args.layout)
        sys.stdout.flush()
    if args.json_filename is not None:
        _memxx.write_output(args.json_filename, prof.to_json() + "\n")


def _check_arguments(args: argparse.Namespace) -> None:
    """RunnerError when the program cannot be found or a report file cannot be written."""
    if not args.program:
        raise RunnerError("no program given; usage: " + USAGE)
    target = args.program[0]
    if not args.module and not os.path.isfile(target):
        raise RunnerError(f"cannot open {target!r}: no such file")
    for path in (args.out_filename, args.json_filename):
        if path is None:
            continue
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise RunnerError(f"cannot write {path!r}: no such directory")
        if os.path.islink(path):
            raise RunnerError(
                f"cannot write {path!r}: it is a symbolic link (refused: it could point anywhere)"
            )


def _tell(error: RunnerError) -> int:
    """Print ``error`` as this command's one line; return its exit status."""
    print(f"{PROG}: {error}", file=sys.stderr)
    return exit_status(error)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_arguments(args)
    except RunnerError as error:
        return _tell(error)
    prof: Any
    if args.timestamp:
        prof = TimeStamper(args.backend, include_children=args.include_children)
    else:
        prof = BuiltinProfile(max_mem=args.max_mem, backend=args.backend, native=args.native)
    code = 0
    try:
        _run(args, prof)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - the program's own error, reported as Python would
        # The program's own exception: its traceback as Python prints it, then the report.
        import traceback

        exc_type, exc, tb = sys.exc_info()
        traceback.print_exception(exc_type, exc, tb.tb_next if tb else None)
        code = 1
    finally:
        try:
            _write_reports(args, prof)
        except (OSError, _memxx.OutputFileError) as error:  # e.g. a link planted meanwhile
            status = _tell(RunnerError(f"cannot write the report: {error}"))
            code = code or status
    return code


if __name__ == "__main__":
    sys.exit(main())
