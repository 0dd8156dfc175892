"""``mprofxx attach``: record the memory of a running process (and with ``--peak`` or ``--growth``
what holds it, from inside the process: see ``mprofxx._attach``).

    mprofxx attach [-C] [-M] [-T S] [-o FILE] [-t S] [--peak | --growth [--chains N]] PID
"""

from __future__ import annotations

import argparse
import os
import time

from _memxx_shared.errors import CliError
from _memxx_shared.names import utf8_text

from mprofxx import _profiles
from mprofxx.commands import PROG, no_program
from mprofxx.commands._progress import say
from mprofxx.commands._recording import (
    StatusLine,
    add_recording_options,
    check_recording_options,
    finish,
)

NAME = "attach"
DESCRIPTION = "Record the memory of a running process."
split_arguments = no_program


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """attach's options and the PID."""
    add_recording_options(parser)
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


def run(options: argparse.Namespace) -> int:
    """``mprofxx attach PID``: record a running process until it exits, Ctrl-C or --timeout."""
    from _memxx import Sampler, create_dat, process_command_line, process_running

    metric = check_recording_options(options)
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
    say(
        f"{PROG}: attached to PID {pid}, sampling every {options.interval:g}s into {output}"
        " (Ctrl-C stops)"
    )
    sampler = Sampler(
        pid, output, options.interval, options.include_children, options.multiprocess, metric
    )
    sampler.start()
    status = StatusLine(sampler)
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
    finish(sampler, output, options.json)
    if inside is not None:
        _attach.write_result(inside, output, sampler.running or process_running(pid))
    return 0
