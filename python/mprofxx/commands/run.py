"""``mprofxx run``: start a program and record its memory over time until it exits.

    mprofxx run [-C] [-M] [-E] [-T S] [-o FILE] [--json] [--peak] script.py | -m module | program [args]

A Python program runs under ``mprofxx._child`` (FUNC spans; with ``--peak`` its peak table);
any other program as it is. Ctrl-C, SIGTERM and SIGHUP are passed on to the program and the
recording up to then is kept.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

from _memxx_shared.errors import CliError, EXIT_RECORDING_FAILED
from _memxx_shared.names import terminal_line, utf8_text
from _memxx_shared.spans import ENV_VAR

from mprofxx import _profiles
from mprofxx._peak_parts import DIR_VAR as PEAK_DIR_VAR
from mprofxx._peak_parts import LINK_VAR, RUN_VAR, PartsFolder, PartsFolderError, RunLink
from mprofxx.commands import PROG
from mprofxx.commands._program import ProgramWatch, signal_name, stop_program
from mprofxx.commands._progress import say
from mprofxx.commands._recording import (
    StatusLine,
    add_recording_options,
    check_recording_options,
    finish,
)

NAME = "run"
DESCRIPTION = "Run a program and record its memory over time."
# run's own options that take a value; the program starts at the first other non-option.
_RUN_VALUE_OPTIONS = {"-T", "--interval", "-o", "--output", "--backend", "-t", "--timeout"}


def _quote_cmdline(argv: list[str]) -> str:
    # memory_profiler's CMDLINE: arguments joined by spaces, those with blanks in single quotes;
    # an argument's bytes that are not UTF-8 as \xNN (the program itself gets them unchanged).
    return utf8_text(" ".join(f"'{a}'" if any(c.isspace() for c in a) else a for a in argv))


def split_arguments(args: list[str]) -> tuple[list[str], list[str]]:
    """Split run's arguments into its own options and the program with the program's options."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[:i], args[i + 1 :]
        if arg == "-m" or not arg.startswith("-") or arg == "-":
            return args[:i], args[i:]
        i += 2 if arg in _RUN_VALUE_OPTIONS else 1
    return args, []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """run's options; the program and its arguments follow them (see ``split_arguments``)."""
    parser.usage = "%(prog)s [options] (script.py | -m module | program) [args ...]"
    add_recording_options(parser)
    parser.add_argument(
        "-E", "--exit-code", action="store_true", help="exit with the program's exit code"
    )
    parser.add_argument(
        "--python",
        action="store_true",
        help="run the program as Python (FUNC spans) even without .py",
    )
    parser.add_argument(
        "--nopython",
        action="store_true",
        help="run a .py file as a plain executable (no FUNC spans)",
    )
    parser.add_argument(
        "--timestamp",
        action="store_true",
        help="record FUNC spans (the default for Python programs)",
    )
    parser.add_argument("-t", "--timeout", type=float, help="stop recording after S seconds")
    parser.add_argument(
        "--peak",
        action="store_true",
        help="also record what held the memory at the peak, by call stack (<name>.peak.json)",
    )


def _program_command(options: argparse.Namespace, program: list[str]) -> tuple[list[str], str]:
    """Return the command to start and the command line to record for ``program``."""
    if not program:
        raise CliError("no program given: mprofxx run script.py | -m module | program [args]")
    child = [sys.executable, "-m", "mprofxx._child"]
    if program[0] == "-m":
        if len(program) < 2:
            raise CliError("-m needs a module name")
        return child + program, _quote_cmdline(["python"] + program)
    first = program[0]
    if first.endswith(".py") and not options.nopython:
        if not os.path.isfile(first):
            raise CliError(f"script not found: {first}")
        return child + program, _quote_cmdline(["python"] + program)
    if options.python and os.path.basename(first).startswith("python") and len(program) > 1:
        # "--python python3.12 script.py": that interpreter runs our child runner.
        return [first, "-m", "mprofxx._child"] + program[1:], _quote_cmdline(program)
    if options.python and not os.path.isfile(first):
        raise CliError(f"script not found: {first}")
    if options.python:
        return child + program, _quote_cmdline(["python"] + program)
    if shutil.which(first) is None:
        raise CliError(f"program not found: {first}")
    return list(program), _quote_cmdline(program)


class _Terminated(Exception):
    """SIGTERM (or SIGHUP) reached ``mprofxx run``: stop the program and keep the data."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_stop_signal = 0  # the signal that is stopping the run (0: none yet)


def _raise_terminated(signum: int, frame: object) -> None:
    global _stop_signal
    if _stop_signal:
        return  # a second signal (GNU timeout sends two): the program is being stopped already
    _stop_signal = signum
    raise _Terminated(signum)


_late_signal = 0  # the first signal that came while the run wrote its files


def _note_late_signal(signum: int, frame: object) -> None:
    global _late_signal
    if not (_late_signal or _stop_signal):
        _late_signal = signum


def run(options: argparse.Namespace) -> int:
    """``mprofxx run``: start the program, record it until it exits; return the exit status."""
    from _memxx import Sampler, create_dat

    metric = check_recording_options(options)
    command, cmdline = _program_command(options, options.program)
    if options.peak and "mprofxx._child" not in command[:3]:
        raise CliError("--peak records Python programs only (script.py, -m module or --python)")
    output = options.output or _profiles.default_output_name()
    parts = link = None
    if options.peak:
        try:
            parts = PartsFolder(_profiles.peak_parts_path(output))
        except PartsFolderError as error:
            raise CliError(str(error)) from None
        link = RunLink()
    try:
        create_dat(output, cmdline)
    except ValueError as error:
        if parts is not None:
            parts.remove([])
        raise CliError(str(error)) from None
    env = dict(os.environ)
    env[ENV_VAR] = os.path.abspath(output)
    for name in (PEAK_DIR_VAR, RUN_VAR, LINK_VAR):
        env.pop(name, None)
    if parts is not None and link is not None:
        env.update(parts.environment())
        env.update(link.environment())
    say(f"{PROG}: sampling memory every {options.interval:g}s into {output}")
    try:
        process = subprocess.Popen(command, env=env,
                                   pass_fds=link.program_fds() if link is not None else ())
    except OSError as error:
        raise CliError(f"cannot start {command[0]}: {error.strerror}") from None
    finally:
        if link is not None:
            link.started()
    global _stop_signal, _late_signal
    _stop_signal = _late_signal = 0
    previous_handlers = {
        signum: signal.signal(signum, _raise_terminated)
        for signum in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        sampler = Sampler(
            process.pid,
            output,
            options.interval,
            options.include_children,
            options.multiprocess,
            metric,
            own_memory_fd=link.own_memory_fd if link is not None else -1,
        )
    except ValueError as error:  # the .dat was replaced (a link planted) since create_dat
        stop_program(process)
        raise CliError(str(error)) from None
    sampler.start()
    watch = ProgramWatch(process, link, sampler)
    status = StatusLine(sampler)
    interrupted = 0
    deadline = time.monotonic() + options.timeout if options.timeout else None
    try:
        while process.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                break
            wait = status.period
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                wait = left if wait is None else min(wait, left)
            watch.wait(wait)
            if not watch.writing:
                status.update()
    except KeyboardInterrupt:
        interrupted = signal.SIGINT
        status.clear()
        stop_program(process, signal.SIGINT, watch)
    except _Terminated as stop:
        interrupted = stop.signum
        status.clear()
        stop_program(process, stop.signum, watch)
    finally:
        sampler.stop()
        status.clear()
        watch.close()
        # Until the files are written, a signal is noted, not acted on (GNU timeout's second
        # SIGTERM can come after the program is gone).
        previous_handlers.setdefault(signal.SIGINT, signal.getsignal(signal.SIGINT))
        for signum in previous_handlers:
            signal.signal(signum, _note_late_signal)
    try:
        recorded = finish(sampler, output, options.json)
        if parts is not None:
            _gather_peak(output, parts, process.pid)
    finally:
        # Stopped by a signal, the run stays deaf to more until it exits: GNU timeout's second
        # SIGTERM may come after the files are written.
        # Ignored, not noted: the interpreter's finalization puts back the default action of
        # a signal with a Python handler, and an ignored one stays ignored.
        for signum, handler in previous_handlers.items():
            stopped = interrupted or _late_signal
            signal.signal(signum, signal.SIG_IGN if stopped else handler)
    interrupted = interrupted or _late_signal
    if interrupted:
        how = (
            "interrupted"
            if interrupted == signal.SIGINT
            else f"stopped by {signal_name(interrupted)}"
        )
        print(f"{PROG}: {how}; the recording up to now is in {output}", file=sys.stderr)
        return 128 + interrupted
    code = process.poll()
    if code is not None and code < 0:
        print(f"{PROG}: the program was killed by {signal_name(-code)}", file=sys.stderr)
    if not recorded:
        return EXIT_RECORDING_FAILED
    if code is None:
        return 0  # --timeout: recording stopped, the program goes on
    if code != 0 and options.exit_code:
        if code > 0:
            print(f"{PROG}: the program exited with code {code}", file=sys.stderr)
        return code if code > 0 else 128 - code
    return 0


def _gather_peak(output: str, parts: PartsFolder, main_pid: int) -> None:
    """Merge the tables this run's processes wrote into the one peak file, the program first."""
    from _memxx import MIB, write_output
    from _memxx_shared import peak_file

    tables = []
    taken = []
    others = 0
    for name, text in parts.parts():
        try:
            found = peak_file.loads(text, os.path.join(parts.path, name))
        except peak_file.PeakFileError as error:
            print(f"{PROG}: skipped a peak table: {terminal_line(str(error))}", file=sys.stderr)
            continue
        if any(table.run != parts.run for table in found):
            others += 1  # not made by this run (an earlier run's orphan, or planted)
            continue
        tables.extend(found)
        taken.append(name)
    if others:
        print(f"{PROG}: skipped {others} peak table{'s' if others > 1 else ''} of another run"
              f" in {terminal_line(parts.path)}", file=sys.stderr)
    parts.remove(taken)
    tables.sort(key=lambda table: (table.pid != main_pid, table.start_time))
    if not tables:
        print(f"{PROG}: no peak table was written (the program was killed?)", file=sys.stderr)
        return
    path = _profiles.peak_path(output)
    try:
        write_output(path, peak_file.dumps(tables, os.path.basename(output)))
    except ValueError as error:  # OutputFileError: one line naming the file
        raise CliError(str(error)) from None
    top = tables[0]
    say(f"{PROG}: wrote {path} (peak tracked {top.peak_bytes / MIB:.1f} MiB,"
         f" {len(tables)} process{'es' if len(tables) > 1 else ''})")
