"""``mprofxx clean``: delete every profile of the current directory (with their peak files)."""

from __future__ import annotations

import argparse

from mprofxx import _profiles
from mprofxx.commands import no_program
from mprofxx.commands._removal import remove

NAME = "clean"
DESCRIPTION = "Delete every profile of this directory."
split_arguments = no_program


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """clean's ``--dry-run``."""
    parser.add_argument("--dry-run", action="store_true", help="only print what would go")


def run(options: argparse.Namespace) -> int:
    """``mprofxx clean``: delete every ``mprofile_*.dat`` of the current directory."""
    remove(_profiles.profile_filenames(), options.dry_run)
    return 0
