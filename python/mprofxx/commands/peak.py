"""``mprofxx peak``: the peak memory of profiles, while a function ran (``--func``), or the lines
that held it (``--lines``, from ``run --peak``)."""

from __future__ import annotations

import argparse

from _memxx_shared.errors import CliError
from _memxx_shared.names import terminal_line, terminal_text

from mprofxx import _profiles
from mprofxx.commands import no_program

NAME = "peak"
DESCRIPTION = "Print the peak memory of profiles."
split_arguments = no_program


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """peak's ``--func``, ``--lines``, ``-n`` and the profiles."""
    parser.add_argument("--func", help="peak while this function (module.name) ran")
    parser.add_argument(
        "--lines", action="store_true", help="the lines that held the memory at the peak (--peak)"
    )
    parser.add_argument("-n", type=int, default=10, help="--lines: rows to show (default 10)")
    parser.add_argument("profiles", nargs="*", help="indices or files (default: the newest)")


def run(options: argparse.Namespace) -> int:
    """``mprofxx peak``: print ``<file>\\t<peak MiB> MiB`` and each child's peak."""
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
