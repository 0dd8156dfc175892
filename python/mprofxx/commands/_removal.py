"""Removing profiles (``rm`` and ``clean``): the .dat, its peak file and any unread peak parts."""

from __future__ import annotations

import os
import shutil

from _memxx_shared.errors import CliError
from _memxx_shared.names import terminal_line

from mprofxx import _profiles


def remove(paths: list[str], dry_run: bool) -> None:
    """Delete ``paths`` and what belongs to each; with ``dry_run`` only print them."""
    if dry_run:
        print("Files to be removed: ")
        for path in paths:
            print(terminal_line(path))
            peak = _profiles.peak_path(path)
            if path.endswith(".dat") and os.path.lexists(peak):
                print(terminal_line(peak))
        return
    for path in paths:
        _remove_file(path)
        if path.endswith(".dat"):
            peak = _profiles.peak_path(path)
            if os.path.lexists(peak):
                _remove_file(peak)
            # What the processes of a killed 'run --peak' wrote and nobody gathered.
            shutil.rmtree(_profiles.peak_parts_path(path), ignore_errors=True)


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except IsADirectoryError:
        raise CliError(f"{path} is a directory, not a profile file: not removed") from None
    except OSError as error:
        raise CliError(f"cannot remove {path}: {error.strerror}") from None
