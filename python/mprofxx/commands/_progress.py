"""Progress lines of the commands (``mprofxx: wrote ...``) on stdout, safe when it is closed."""

from __future__ import annotations

import os
import sys

from _memxx_shared.names import terminal_text


def say(text: str) -> None:
    """Print a progress line; a closed stdout (``| head``) must not stop the recording."""
    try:
        print(terminal_text(text), flush=True)  # file names: bytes and controls as \xNN
    except (BrokenPipeError, ValueError, OSError):
        # Later prints, and the interpreter's final flush, go nowhere instead of failing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)
