"""``mprofxx flame``: the memory live at the peak (from ``run --peak``) as a flame graph."""

from __future__ import annotations

import argparse
import os

from _memxx_shared.errors import CliError

from mprofxx import _profiles
from mprofxx.commands import PROG, no_program
from mprofxx.commands._progress import say

NAME = "flame"
DESCRIPTION = "Draw the memory live at the peak as a flame graph (from run --peak)."
split_arguments = no_program


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """flame's ``-o``, ``--pid`` and the profile."""
    parser.add_argument("-o", "--output", default="peak.html", help="peak.html (default) or .svg")
    parser.add_argument("--pid", type=int, help="the process to draw (default: the program)")
    parser.add_argument("profile", nargs="?", help="index or file (default: the newest)")


def run(options: argparse.Namespace) -> int:
    """``mprofxx flame``: write a flame graph of the memory live at the peak (HTML or SVG)."""
    from _memxx import MIB, write_output
    from mprofxx import _flame

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
    say(f"{PROG}: wrote {options.output}")
    return 0
