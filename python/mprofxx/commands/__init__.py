"""The ``mprofxx`` commands, one module each, all of one shape: :class:`Command`.

A command module defines

- ``NAME``: the word after ``mprofxx``;
- ``DESCRIPTION``: the line under the usage in ``mprofxx NAME --help``;
- ``add_arguments(parser)``: its options and operands, on the parser ``mprofxx.cli`` made for
  it (prog ``mprofxx NAME``);
- ``split_arguments(args)``: the command's own arguments, and the program's command line that
  follows them, unparsed (``run`` only; the others take :func:`no_program`);
- ``run(options) -> int``: does the work and returns the exit status; ``options.program`` is
  what ``split_arguments`` left (empty but for ``run``). A user's mistake is raised as
  :class:`_memxx_shared.errors.CliError`, which ``mprofxx.cli`` prints as one line.

Files whose name starts with ``_`` hold what several commands share. ``list_`` is the ``list``
command: a module named ``list`` would hide the builtin in this package. A new command is one
new module here and one name in ``mprofxx.cli.COMMANDS``;
``tests/python/test_mprof_commands.py`` checks that every module has this shape.
"""

from __future__ import annotations

import argparse
from typing import Protocol

#: The command's name, first in its messages (``mprofxx: error: ...``).
PROG = "mprofxx"


class Command(Protocol):
    """What ``mprofxx.cli`` needs of a command module."""

    NAME: str
    DESCRIPTION: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def split_arguments(self, args: list[str]) -> tuple[list[str], list[str]]: ...

    def run(self, options: argparse.Namespace) -> int: ...


def no_program(args: list[str]) -> tuple[list[str], list[str]]:
    """``split_arguments`` of a command that runs no program: every argument is its own."""
    return args[:], []
