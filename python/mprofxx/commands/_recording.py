"""What ``run`` and ``attach`` share: the recording options, the status line, the last report."""

from __future__ import annotations

import argparse
import os
import sys
import time

from _memxx_shared.errors import CliError

from mprofxx.commands import PROG
from mprofxx.commands._progress import say

METRICS = {
    "rss": "rss",
    "psutil": "rss",
    "posix": "rss",
    "psutil_pss": "pss",
    "pss": "pss",
    "psutil_uss": "uss",
    "uss": "uss",
}


def add_recording_options(parser: argparse.ArgumentParser) -> None:
    """The options of how a process is sampled, and where to: ``-C -M -T -o --backend --json``."""
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
        choices=sorted(METRICS) + ["tracemalloc"],
        help="rss (default; psutil and posix mean the same), pss (the default with -C) or uss",
    )
    parser.add_argument(
        "--json", action="store_true", help="also write the series as JSON next to the .dat file"
    )


def check_recording_options(options: argparse.Namespace) -> str:
    """The sampler's metric for the options; CliError for an interval or backend it cannot use."""
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
    return METRICS[options.backend]


class StatusLine:
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


def finish(sampler: object, output: str, write_json: bool) -> bool:
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
    say(f"{PROG}: wrote {output} ({stats['samples']} samples, peak {peak:.1f} MiB)")
    if write_json:
        json_path = os.path.splitext(output)[0] + ".json"
        try:
            write_output(json_path, profile_to_json(read_profile(output)))
        except ValueError as error:  # OutputFileError, ProfileFileError: one line naming the file
            raise CliError(str(error)) from None
        say(f"{PROG}: wrote {json_path}")
    return not error
