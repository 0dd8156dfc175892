"""``mprofxx plot``: draw profiles with matplotlib (the drawing itself is ``mprofxx._plot``)."""

from __future__ import annotations

import argparse
import os
import sys

from _memxx_shared.errors import CliError
from _memxx_shared.names import terminal_line

from mprofxx import _profiles
from mprofxx.commands import no_program

NAME = "plot"
DESCRIPTION = "Plot memory recorded by mprofxx run or mprof."
split_arguments = no_program


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """plot's options and the profiles."""
    parser.add_argument("profiles", nargs="*", help="files or indices (default: the newest)")
    parser.add_argument("-o", "--output", help="write PNG, SVG or PDF (by extension)")
    parser.add_argument("-t", "--title", help="the title (default: the command line)")
    parser.add_argument(
        "-n", "--no-function-ts", action="store_true", help="no function spans and no peak marks"
    )
    parser.add_argument("-s", "--slope", action="store_true", help="add a trend line")
    parser.add_argument("-w", "--window", help="xmin,xmax in seconds")
    parser.add_argument(
        "-f", "--flame", action="store_true", help="draw function spans as a flame chart over time"
    )
    parser.add_argument(
        "--children",
        choices=["separate", "stacked"],
        default="separate",
        help="with -M data: a line per child (default) or stacked areas",
    )
    parser.add_argument("--backend", help="matplotlib backend")


def run(options: argparse.Namespace) -> int:
    """``mprofxx plot [options] [file.dat | index ...]``; return the exit status."""
    from mprofxx import _plot

    _plot.parse_window(options.window)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CliError("plot needs matplotlib: pip install matplotlib") from None
    recordings = _plot.read_for_plot(_profiles.latest_or(options.profiles), options)
    output = options.output
    if output is not None:
        ext = os.path.splitext(output)[1].lower()
        if ext not in (".png", ".svg", ".pdf"):
            raise CliError("--output must end in .png, .svg or .pdf, not %r" % (ext or output))
    elif not options.backend and not _plot.has_display():
        output = os.path.splitext(os.path.basename(recordings[0].path))[0] + ".png"
        print(f"No display: writing {terminal_line(output)}", file=sys.stderr)
    _plot.render(recordings, options, output)
    if output is not None:
        print(f"mprofxx: wrote {terminal_line(output)}")
    return 0
