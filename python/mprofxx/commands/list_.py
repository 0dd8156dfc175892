"""``mprofxx list``: the profiles of the current directory, numbered as the other commands take
them (0 the oldest)."""

from __future__ import annotations

import argparse
import time

from mprofxx import _profiles
from mprofxx.commands import no_program

NAME = "list"
DESCRIPTION = "List the profiles of this directory."
split_arguments = no_program


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """list takes no argument (``--help`` only)."""


def run(options: argparse.Namespace) -> int:
    """``mprofxx list``: print ``<index> <file> HH:MM:SS DD/MM/YYYY`` per profile here."""
    for index, name in enumerate(_profiles.profile_filenames()):
        stamp = name[len("mprofile_") : -len(".dat")]
        try:
            when = time.strftime("%H:%M:%S %d/%m/%Y", time.strptime(stamp, "%Y%m%d%H%M%S"))
        except ValueError:  # 14 digits that are no date (a month 13): listed, undated
            when = "(no date)"
        print(index, name, when)
    return 0
