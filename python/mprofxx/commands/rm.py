"""``mprofxx rm``: delete the profiles named, by index or file (with their peak files)."""

from __future__ import annotations

import argparse

from mprofxx import _profiles
from mprofxx.commands import no_program
from mprofxx.commands._removal import remove

NAME = "rm"
DESCRIPTION = "Delete profiles."
split_arguments = no_program


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """rm's ``--dry-run`` and the profiles."""
    parser.add_argument("--dry-run", action="store_true", help="only print what would go")
    parser.add_argument("profiles", nargs="+", help="indices (0 oldest, -1 newest) or files")


def run(options: argparse.Namespace) -> int:
    """``mprofxx rm N|FILE ...``: delete the profiles named (indices as ``list`` prints them)."""
    remove(_profiles.resolve(options.profiles), options.dry_run)
    return 0
