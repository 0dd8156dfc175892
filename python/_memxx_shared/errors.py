"""The project's errors a user is told about in one line, and the exit status of each.

Every command line entry point (``mprofxx``, ``python -m memory_profilerxx``) catches
:class:`MemxxError`, prints its message on one line in its own format and exits with
:func:`exit_status`. This module imports nothing of the project, so every package may import it.
The statuses are checked in ``tests/python/test_mprof_commands.py``.
"""

from __future__ import annotations

#: A command failed on the user's input or a file (``mprofxx: error: ...``).
EXIT_ERROR = 1
#: ``python -m memory_profilerxx`` could not start the program or write its report: as
#: Python's own "can't open file", 2, told apart from the program's own exit status.
EXIT_RUNNER_ERROR = 2
#: ``mprofxx run``: the program ran, but recording failed (disk full, ...).
EXIT_RECORDING_FAILED = 3


class MemxxError(Exception):
    """Base of the project's user-facing errors; ``exit_code`` is the command's exit status."""

    exit_code = EXIT_ERROR


class CliError(MemxxError):
    """A user error: the CLI prints ``mprofxx: error: <message>`` and exits 1."""


class RunnerError(MemxxError):
    """``python -m memory_profilerxx`` cannot run the program or write the report: exit 2."""

    exit_code = EXIT_RUNNER_ERROR


def exit_status(error: BaseException) -> int:
    """The exit status of a command stopped by ``error``.

    A closed stdout (``mprofxx list | head``) ends the command with 1 and no message.
    """
    if isinstance(error, MemxxError):
        return error.exit_code
    if isinstance(error, BrokenPipeError):
        return EXIT_ERROR
    raise TypeError(f"no exit status for {type(error).__name__}: it is no user-facing error")
