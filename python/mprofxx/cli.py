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
import sys

from _memxx_shared.errors import MemxxError, exit_status
from _memxx_shared.names import terminal_line

from mprofxx.commands import PROG, Command, attach, clean, flame, list_, peak, plot, rm, run

#: The commands by name, in the order ``mprofxx`` names them; each is a module of
#: ``mprofxx.commands`` (see its ``Command`` protocol).
COMMANDS: dict[str, Command] = {
    command.NAME: command for command in (run, attach, plot, peak, flame, list_, rm, clean)
}


def parse(command: Command, args: list[str]) -> argparse.Namespace:
    """The options of ``mprofxx <command> args...``, parsed by the command's own parser."""
    parser = argparse.ArgumentParser(prog=f"{PROG} {command.NAME}",
                                     description=command.DESCRIPTION)
    command.add_arguments(parser)
    own, program = command.split_arguments(args)
    options = parser.parse_args(own)
    options.program = program
    return options


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
        from mprofxx._version import __version__

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
        return command.run(parse(command, argv[1:]))
    except MemxxError as error:
        print(f"{PROG}: error: {terminal_line(str(error))}", file=sys.stderr)
        return exit_status(error)
    except BrokenPipeError as error:
        return exit_status(error)


if __name__ == "__main__":
    sys.exit(main())
