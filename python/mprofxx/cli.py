"""The ``mprofxx`` command: record a program's memory over time, list, remove and plot records.

    mprofxx run [-C] [-M] [-E] [-T S] [-o FILE] [--json] [--peak] script.py | -m module | program [args]
    mprofxx attach [-C] [-M] [-T S] [-o FILE] [-t S] [--peak | --growth [--chains N]] PID
    mprofxx plot [-o FILE] [-t TITLE] [-n] [-s] [-w XMIN,XMAX] [-f] [file.dat | index ...]
    mprofxx peak [--func NAME] [--lines [-n N]] [file.dat | index ...]
    mprofxx flame [-o peak.html | peak.svg] [file.dat | index]
    mprofxx list | clean [--dry-run] | rm [--dry-run] (index | file.dat) ...

Files are memory_profiler's ``mprofile_<YYYYmmddHHMMSS>.dat``: ``mprof`` reads ours and we read
theirs.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import time

from mprofxx import _profiles
from mprofxx._profiles import CliError
from mprofxx._peak_parts import DIR_VAR as PEAK_DIR_VAR
from mprofxx._peak_parts import LINK_VAR, RUN_VAR, PartsFolder, PartsFolderError, RunLink
from mprofxx._names import terminal_line, terminal_text, utf8_text
from mprofxx._spans import ENV_VAR

PROG = "mprofxx"
# Exit status of ``run`` when recording failed (disk full, ...) though the program ran.
EXIT_RECORDING_FAILED = 3
# run's own options that take a value; the program starts at the first other non-option.
_RUN_VALUE_OPTIONS = {"-T", "--interval", "-o", "--output", "--backend", "-t", "--timeout"}
_METRICS = {
    "rss": "rss",
    "psutil": "rss",
    "posix": "rss",
    "psutil_pss": "pss",
    "pss": "pss",
    "psutil_uss": "uss",
    "uss": "uss",
}


def _quote_cmdline(argv: list[str]) -> str:
    # memory_profiler's CMDLINE: arguments joined by spaces, those with blanks in single quotes;
    # an argument's bytes that are not UTF-8 as \xNN (the program itself gets them unchanged).
    return utf8_text(" ".join(f"'{a}'" if any(c.isspace() for c in a) else a for a in argv))


def _split_program(args: list[str]) -> tuple[list[str], list[str]]:
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


def _add_recording_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-C",
        "--include-children",
        action="store_true",
        help="add the memory of all descendants to MEM (PSS: shared pages count once)",
    )
    parser.add_argument(
        "-M",
        "--multiprocess",
        action="store_true",
        help="record each descendant separately (CHLD lines)",
    )
    parser.add_argument(
        "-T", "--interval", type=float, default=0.1, help="seconds between samples (default 0.1)"
    )
    parser.add_argument("-o", "--output", help="the .dat file (default mprofile_<time>.dat)")
    parser.add_argument(
        "--backend",
        choices=sorted(_METRICS) + ["tracemalloc"],
        help="rss (default; psutil and posix mean the same), pss (the default with -C) or uss",
    )
    parser.add_argument(
        "--json", action="store_true", help="also write the series as JSON next to the .dat file"
    )


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG + " run",
        usage="%(prog)s [options] (script.py | -m module | program) [args ...]",
        description="Run a program and record its memory over time.",
    )
    _add_recording_options(parser)
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
    return parser


def _check_recording_options(options: argparse.Namespace) -> str:
    if not options.interval > 0:
        raise CliError(f"--interval must be a positive number of seconds, not {options.interval}")
    if options.backend is None:
        # With -C the processes' proportional set sizes are summed: pages shared after fork
        # count once, not once per child (summed RSS counts a parent's buffer in every worker).
        options.backend = "pss" if options.include_children else "rss"
    if options.backend == "tracemalloc":
        raise CliError(
            "--backend tracemalloc cannot record another process; use rss (default), pss or uss"
        )
    return _METRICS[options.backend]


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


class _StatusLine:
    """One line rewritten in place with elapsed time, current and peak memory (terminals only)."""

    def __init__(self, sampler: object) -> None:
        self._sampler = sampler
        self._start = time.monotonic()
        self._shown = sys.stdout.isatty()

    @property
    def period(self) -> float | None:
        return 0.25 if self._shown else None

    def update(self) -> None:
        if not self._shown:
            return
        from _memxx import MIB

        current = self._sampler.current_bytes / MIB  # type: ignore[attr-defined]
        peak = self._sampler.peak_bytes / MIB  # type: ignore[attr-defined]
        if current < 0:
            return
        sys.stdout.write(
            f"\r\x1b[K[mprofxx] {time.monotonic() - self._start:7.1f} s   now {current:9.1f} MiB   peak {peak:9.1f} MiB"
        )
        sys.stdout.flush()

    def clear(self) -> None:
        if self._shown:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()


def _say(text: str) -> None:
    """Print a progress line; a closed stdout (``| head``) must not stop the recording."""
    try:
        print(terminal_text(text), flush=True)  # file names: bytes and controls as \xNN
    except (BrokenPipeError, ValueError, OSError):
        # Later prints, and the interpreter's final flush, go nowhere instead of failing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)


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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _note_signal(signum: int, frame: object) -> None:
    pass  # while the program is stopped: it already has the first signal


_late_signal = 0  # the first signal that came while the run wrote its files


def _note_late_signal(signum: int, frame: object) -> None:
    global _late_signal
    if not (_late_signal or _stop_signal):
        _late_signal = signum


class _ProgramWatch:
    """Waits for the program's exit, and for the news that it writes its peak table (then the
    sampler stops: the write is the recorder's memory, not the program's)."""

    def __init__(self, process: subprocess.Popen[bytes], link: RunLink | None,
                 sampler: object) -> None:
        self.process = process
        self.link = link
        self.sampler = sampler
        try:
            self._exit_fd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            self._exit_fd = -1  # polled instead

    @property
    def writing(self) -> bool:
        return self.link is not None and self.link.writing

    def wait(self, timeout: float | None) -> bool:
        """Wait until the program exits (True) or ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.process.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            watched = [] if self._exit_fd < 0 else [self._exit_fd]
            if self.link is not None and not self.link.writing:
                watched.append(self.link.fd)
            step = left if self._exit_fd >= 0 else min(0.05, left if left is not None else 0.05)
            if not watched:
                time.sleep(step if step is not None else 0.05)
                continue
            ready, _, _ = select.select(watched, [], [], step)
            if self.link is not None and self.link.fd in ready:
                self.link.take_news(self.sampler.stop)  # type: ignore[attr-defined]
        return True

    def close(self) -> None:
        if self._exit_fd >= 0:
            os.close(self._exit_fd)
        if self.link is not None:
            self.link.close()


def _stop_program(process: subprocess.Popen[bytes], signum: int = signal.SIGINT,
                  watch: _ProgramWatch | None = None) -> None:
    """Pass Ctrl-C (or the signal we got) on to the program, then wait, then kill.

    Further signals meanwhile are noted, not acted on; a program writing its peak table is
    waited for until it has finished.
    """
    if process.poll() is not None:
        return
    previous = {sig: signal.signal(sig, _note_signal)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        process.send_signal(signum)
        if watch is None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
            process.wait()
            return
        if not watch.wait(5) and not (watch.writing and watch.wait(None)):
            process.kill()
        process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _finish(sampler: object, output: str, write_json: bool) -> bool:
    """Report what was recorded; return False when recording stopped on a write error."""
    from _memxx import MIB, profile_to_json, read_profile, write_output

    error = sampler.error  # type: ignore[attr-defined]
    stats = sampler.stats()  # type: ignore[attr-defined]
    if error:
        print(
            f"{PROG}: error: recording stopped early: {error}; the {stats['samples']} samples"
            f" taken before are in {output}",
            file=sys.stderr,
        )
    peak = sampler.peak_bytes / MIB  # type: ignore[attr-defined]
    _say(f"{PROG}: wrote {output} ({stats['samples']} samples, peak {peak:.1f} MiB)")
    if write_json:
        json_path = os.path.splitext(output)[0] + ".json"
        try:
            write_output(json_path, profile_to_json(read_profile(output)))
        except ValueError as error:  # OutputFileError, ProfileFileError: one line naming the file
            raise CliError(str(error)) from None
        _say(f"{PROG}: wrote {json_path}")
    return not error


def run_command(args: list[str]) -> int:
    """``mprofxx run``: start the program, record it until it exits; return the exit status."""
    from _memxx import Sampler, create_dat

    own, program = _split_program(args)
    options = _run_parser().parse_args(own)
    metric = _check_recording_options(options)
    command, cmdline = _program_command(options, program)
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
    _say(f"{PROG}: sampling memory every {options.interval:g}s into {output}")
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
        )
    except ValueError as error:  # the .dat was replaced (a link planted) since create_dat
        _stop_program(process)
        raise CliError(str(error)) from None
    sampler.start()
    watch = _ProgramWatch(process, link, sampler)
    status = _StatusLine(sampler)
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
        _stop_program(process, signal.SIGINT, watch)
    except _Terminated as stop:
        interrupted = stop.signum
        status.clear()
        _stop_program(process, stop.signum, watch)
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
        recorded = _finish(sampler, output, options.json)
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
            else f"stopped by {_signal_name(interrupted)}"
        )
        print(f"{PROG}: {how}; the recording up to now is in {output}", file=sys.stderr)
        return 128 + interrupted
    code = process.poll()
    if code is not None and code < 0:
        print(f"{PROG}: the program was killed by {_signal_name(-code)}", file=sys.stderr)
    if not recorded:
        return EXIT_RECORDING_FAILED
    if code is None:
        return 0  # --timeout: recording stopped, the program goes on
    if code != 0 and options.exit_code:
        if code > 0:
            print(f"{PROG}: the program exited with code {code}", file=sys.stderr)
        return code if code > 0 else 128 - code
    return 0


def _check_may_watch(pid: int) -> None:
    """Raise CliError unless this user may read the memory figures of process ``pid``.

    The rule is the kernel's for /proc/PID/smaps and ptrace: the same user, or root. statm is
    world-readable, but watching another user's process is not ours to allow.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise CliError(f"no running process with PID {pid}") from None
    except PermissionError:
        raise CliError(
            f"permission denied: PID {pid} belongs to another user (attach as that user or root)"
        ) from None
    for name in ("smaps_rollup", "statm"):
        path = f"/proc/{pid}/{name}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except ProcessLookupError:  # a zombie: it has exited, its parent has not reaped it
            raise CliError(f"PID {pid} has exited (a zombie: nothing left to record)") from None
        except FileNotFoundError:
            if name == "smaps_rollup":  # kernels before 4.14
                continue
            raise CliError(f"no running process with PID {pid}") from None
        except PermissionError:
            raise CliError(
                f"permission denied: cannot read {path} (PID {pid} belongs to another user"
                " or /proc is mounted with hidepid)"
            ) from None
        try:
            os.read(fd, 1)
        except PermissionError:
            raise CliError(f"permission denied: cannot read {path}") from None
        finally:
            os.close(fd)


def attach_command(args: list[str]) -> int:
    """``mprofxx attach PID``: record a running process until it exits, Ctrl-C or --timeout."""
    from _memxx import Sampler, create_dat, process_command_line, process_running

    parser = argparse.ArgumentParser(
        prog=PROG + " attach", description="Record the memory of a running process."
    )
    _add_recording_options(parser)
    parser.add_argument(
        "-t",
        "--timeout",
        type=float,
        help="stop after S seconds (default: when the process exits or on Ctrl-C)",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--peak",
        action="store_true",
        help="also record inside the process what holds the memory at its peak (<name>.peak.json)",
    )
    what.add_argument(
        "--growth",
        action="store_true",
        help="print the object types that grew inside the process, their lines and a chain each",
    )
    parser.add_argument(
        "--chains", type=int, default=3, help="--growth: why_alive chains for the first N types (3)"
    )
    parser.add_argument("pid", help="the process id")
    options = parser.parse_args(args)
    metric = _check_recording_options(options)
    if options.chains != 3 and not options.growth:
        raise CliError("--chains applies to --growth only")
    if options.chains < 0:
        raise CliError(f"--chains must be 0 or more, not {options.chains}")
    try:
        pid = int(options.pid)
    except ValueError:
        raise CliError(f"attach needs a process id (a number), not {options.pid!r}") from None
    if pid <= 0:
        raise CliError(f"no running process with PID {pid}")
    _check_may_watch(pid)
    if not process_running(pid):
        raise CliError(f"no running process with PID {pid}")
    inside = None
    if options.peak or options.growth:
        from mprofxx import _attach

        inside = _attach.start_inside(pid, "peak" if options.peak else "growth",
                                      options.timeout, options.chains)
    output = options.output or _profiles.default_output_name()
    try:
        create_dat(output, utf8_text(process_command_line(pid)) or str(pid))
    except ValueError as error:
        raise CliError(str(error)) from None
    _say(
        f"{PROG}: attached to PID {pid}, sampling every {options.interval:g}s into {output}"
        " (Ctrl-C stops)"
    )
    sampler = Sampler(
        pid, output, options.interval, options.include_children, options.multiprocess, metric
    )
    sampler.start()
    status = _StatusLine(sampler)
    deadline = time.monotonic() + options.timeout if options.timeout else None
    try:
        while sampler.running and (deadline is None or time.monotonic() < deadline):
            if inside is not None and inside.ended():
                break
            time.sleep(status.period or 0.05)
            status.update()
    except KeyboardInterrupt:
        pass
    finally:
        sampler.stop()
        status.clear()
    _finish(sampler, output, options.json)
    if inside is not None:
        _attach.write_result(inside, output, sampler.running or process_running(pid))
    return 0


def _gather_peak(output: str, parts: PartsFolder, main_pid: int) -> None:
    """Merge the tables this run's processes wrote into the one peak file, the program first."""
    from _memxx import MIB, write_output
    from memory_profilerxx import _peak

    tables = []
    taken = []
    others = 0
    for name, text in parts.parts():
        try:
            found = _peak.loads(text, os.path.join(parts.path, name))
        except _peak.PeakFileError as error:
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
        write_output(path, _peak.dumps(tables, os.path.basename(output)))
    except ValueError as error:  # OutputFileError: one line naming the file
        raise CliError(str(error)) from None
    top = tables[0]
    _say(f"{PROG}: wrote {path} (peak tracked {top.peak_bytes / MIB:.1f} MiB,"
         f" {len(tables)} process{'es' if len(tables) > 1 else ''})")


def list_command(args: list[str]) -> int:
    """``mprofxx list``: print ``<index> <file> HH:MM:SS DD/MM/YYYY`` per profile here."""
    argparse.ArgumentParser(
        prog=PROG + " list", description="List the profiles of this directory."
    ).parse_args(args)
    for index, name in enumerate(_profiles.profile_filenames()):
        stamp = name[len("mprofile_") : -len(".dat")]
        try:
            when = time.strftime("%H:%M:%S %d/%m/%Y", time.strptime(stamp, "%Y%m%d%H%M%S"))
        except ValueError:  # 14 digits that are no date (a month 13): listed, undated
            when = "(no date)"
        print(index, name, when)
    return 0


def _remove(paths: list[str], dry_run: bool) -> None:
    if dry_run:
        print("Files to be removed: ")
        for path in paths:
            print(terminal_line(path))
            peak = _profiles.peak_path(path)
            if path.endswith(".dat") and os.path.lexists(peak):
                print(terminal_line(peak))
        return
    for path in paths:
        _remove_file(path)
        if path.endswith(".dat"):
            peak = _profiles.peak_path(path)
            if os.path.lexists(peak):
                _remove_file(peak)
            # What the processes of a killed 'run --peak' wrote and nobody gathered.
            shutil.rmtree(_profiles.peak_parts_path(path), ignore_errors=True)


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except IsADirectoryError:
        raise CliError(f"{path} is a directory, not a profile file: not removed") from None
    except OSError as error:
        raise CliError(f"cannot remove {path}: {error.strerror}") from None


def rm_command(args: list[str]) -> int:
    """``mprofxx rm N|FILE ...``: delete the profiles named (indices as ``list`` prints them)."""
    parser = argparse.ArgumentParser(prog=PROG + " rm", description="Delete profiles.")
    parser.add_argument("--dry-run", action="store_true", help="only print what would go")
    parser.add_argument("profiles", nargs="+", help="indices (0 oldest, -1 newest) or files")
    options = parser.parse_args(args)
    _remove(_profiles.resolve(options.profiles), options.dry_run)
    return 0


def clean_command(args: list[str]) -> int:
    """``mprofxx clean``: delete every ``mprofile_*.dat`` of the current directory."""
    parser = argparse.ArgumentParser(
        prog=PROG + " clean", description="Delete every profile of this directory."
    )
    parser.add_argument("--dry-run", action="store_true", help="only print what would go")
    options = parser.parse_args(args)
    _remove(_profiles.profile_filenames(), options.dry_run)
    return 0


def peak_command(args: list[str]) -> int:
    """``mprofxx peak``: print ``<file>\\t<peak MiB> MiB`` and each child's peak."""
    parser = argparse.ArgumentParser(
        prog=PROG + " peak", description="Print the peak memory of profiles."
    )
    parser.add_argument("--func", help="peak while this function (module.name) ran")
    parser.add_argument(
        "--lines", action="store_true", help="the lines that held the memory at the peak (--peak)"
    )
    parser.add_argument("-n", type=int, default=10, help="--lines: rows to show (default 10)")
    parser.add_argument("profiles", nargs="*", help="indices or files (default: the newest)")
    options = parser.parse_args(args)
    if options.n < 1:
        raise CliError(f"-n must be a positive number of rows, not {options.n}")
    for path in _profiles.latest_or(options.profiles):
        if not options.func:  # read as a stream: memory independent of the file's size
            summary = _profiles.read_summary(path)
            if options.lines:
                _print_peak_lines(summary, options.n)
                continue
            print(f"{terminal_line(path)}\t{summary.peak[0]:.3f} MiB")
            for child, (_samples, child_peak) in summary.children.items():
                print(f"  Child {terminal_line(child)}\t\t\t{child_peak[0]:.3f} MiB")
            continue
        # --func: the samples taken while the function ran, so every sample is read.
        values = _profiles.samples_in_function(_profiles.read(path), options.func)
        print(f"{terminal_line(path)}\t{max(values):.3f} MiB" if values
              else f"{terminal_line(path)}\tNaN MiB")
    return 0


def _print_peak_lines(recording: _profiles.Summary, limit: int) -> None:
    # File names, source lines and command lines come from the peak file: escaped, so that a
    # name holding ESC sequences (clear screen, window title, OSC 52 clipboard) shows as text.
    tables = _profiles.read_peak(recording.path)
    start = recording.first[1]
    for index, table in enumerate(tables):
        if index == 0:
            rss, when = recording.peak  # the plot's marker: the same moment
            text = table.format(limit, rss_peak=rss, rss_time=when - start,
                                tracked_time=table.peak_time - start)
            print(terminal_text(text))
        else:
            print(f"\nchild {table.pid} ({terminal_line(table.cmdline)})")
            print(terminal_text(table.format(limit)))


def flame_command(args: list[str]) -> int:
    """``mprofxx flame``: write a flame graph of the memory live at the peak (HTML or SVG)."""
    from _memxx import MIB, write_output
    from mprofxx import _flame

    parser = argparse.ArgumentParser(
        prog=PROG + " flame",
        description="Draw the memory live at the peak as a flame graph (from run --peak).",
    )
    parser.add_argument("-o", "--output", default="peak.html", help="peak.html (default) or .svg")
    parser.add_argument("--pid", type=int, help="the process to draw (default: the program)")
    parser.add_argument("profile", nargs="?", help="index or file (default: the newest)")
    options = parser.parse_args(args)
    if not options.output.endswith((".html", ".svg")):
        raise CliError(f"{options.output}: the flame graph is written as .html or .svg")
    path = _profiles.latest_or([options.profile] if options.profile else [])[0]
    tables = _profiles.read_peak(path)
    table = tables[0]
    if options.pid is not None:
        chosen = [t for t in tables if t.pid == options.pid]
        if not chosen:
            raise CliError(f"no process {options.pid} in {_profiles.peak_path(path)}")
        table = chosen[0]
    title = f"Memory at the peak: {table.peak_bytes / MIB:,.1f} MiB ({os.path.basename(path)})"
    if options.output.endswith(".svg"):
        text = _flame.flame_svg(table, title)
    else:
        text = _flame.flame_html(table, title)
    try:
        write_output(options.output, text)
    except ValueError as error:  # OutputFileError: one line naming the file
        raise CliError(str(error)) from None
    _say(f"{PROG}: wrote {options.output}")
    return 0


def plot_command(args: list[str]) -> int:
    """``mprofxx plot``: draw profiles with matplotlib (see ``mprofxx plot --help``)."""
    from mprofxx import _plot as plot

    return plot.plot_command(args)


COMMANDS = {
    "run": run_command,
    "attach": attach_command,
    "plot": plot_command,
    "peak": peak_command,
    "flame": flame_command,
    "list": list_command,
    "rm": rm_command,
    "clean": clean_command,
}


def main(argv: list[str] | None = None) -> int:
    """Run ``mprofxx <command> ...``; return the exit status (also the console script).

    >>> main(["list"])  # doctest: +SKIP
    0 mprofile_20240101120000.dat 12:00:00 01/01/2024
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 1
    if argv[0] == "--version":
        from mprofxx import __version__

        print(__version__)
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(
            "{}: error: unknown command {!r}; commands: {}".format(
                PROG, argv[0], ", ".join(COMMANDS)
            ),
            file=sys.stderr,
        )
        return 1
    try:
        return command(argv[1:])
    except CliError as error:
        print(f"{PROG}: error: {terminal_line(str(error))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
