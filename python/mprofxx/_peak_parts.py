"""The folder ``mprofxx run --peak`` gathers the per-process peak tables in, and the run's link
with its program.

The run makes ``<name>.peak.parts/`` itself (mode 0700, not through a link) and puts in it a
marker naming a fresh run id; a recorded process writes its table only into a folder it opened
without following a link, that belongs to its user, is private, and holds the marker of its own
run; each table carries the run id. The run gathers only the tables of its run, opened without
following links, and removes only what it and its processes made. So a planted link never
receives a table, a planted file is never merged, and a child that outlives the run writes
nowhere (its folder is gone) or into a folder of its own run only.

The link: the program tells the run "the table is being written" on a pipe and waits (briefly)
for its answer, so that the run takes no memory sample of the write (the recorder's own memory
is not the program's). And a memory file (memfd, passed by descriptor) holds one figure the
program's recorder keeps current: its own tables' memory, which the run's sampler subtracts from
every sample, so the .dat records the program alone while it runs.

Called by ``mprofxx.commands.run`` (the run) and ``mprofxx._child`` (each recorded process).
"""

from __future__ import annotations

import os
import re
import secrets
import select
import stat
from typing import Iterable

from _memxx_shared.errors import MemxxError

#: The environment of the recorded processes: the folder, the run id, the link's descriptors
#: (two pipe ends and the memory file).
DIR_VAR = "MPROFXX_PEAK_DIR"
RUN_VAR = "MPROFXX_PEAK_RUN"
LINK_VAR = "MPROFXX_PEAK_LINK"

_PART = re.compile(r"[0-9]+\.json")
_WRITING = b"w"
_GO_ON = b"g"
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PartsFolderError(MemxxError, OSError):
    """The parts folder cannot be used (one line naming it and why)."""


def _marker(run: str) -> str:
    return f".run-{run}"


def _private(info: os.stat_result) -> bool:
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and stat.S_IMODE(info.st_mode) & 0o077 == 0)


class PartsFolder:
    """The run's side: the folder made (or a private one of ours found) and marked with a run id."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.run = secrets.token_hex(8)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # ours from a run that was killed, or not ours: told by what it is below
        except OSError as error:
            raise PartsFolderError(f"cannot make {path}: {error.strerror}") from None
        try:
            self._fd = os.open(path, _OPEN_DIR)
        except OSError as error:
            what = "a link" if os.path.islink(path) else error.strerror
            raise PartsFolderError(f"{path} exists and is not this run's folder ({what});"
                                   " remove it or choose another -o") from None
        if not _private(os.fstat(self._fd)):
            os.close(self._fd)
            raise PartsFolderError(f"{path} exists and is not a private folder of this user;"
                                   " remove it or choose another -o")
        marker = os.open(_marker(self.run), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=self._fd)
        os.close(marker)

    def environment(self) -> dict[str, str]:
        return {DIR_VAR: os.path.abspath(self.path), RUN_VAR: self.run}

    def parts(self) -> Iterable[tuple[str, str]]:
        """``(name, text)`` of each table file found (not yet checked for the run id)."""
        for name in sorted(os.listdir(self._fd)):
            if not _PART.fullmatch(name):
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd)
            except OSError:
                continue  # a link, or gone
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                with os.fdopen(fd, encoding="utf-8", errors="replace", closefd=False) as source:
                    yield name, source.read()
            finally:
                os.close(fd)

    def remove(self, names: Iterable[str]) -> None:
        """Remove the tables named (those of this run) and the marker, then the folder if empty."""
        for name in list(names) + [_marker(self.run)]:
            try:
                os.unlink(name, dir_fd=self._fd)
            except OSError:
                pass
        os.close(self._fd)
        try:
            os.rmdir(self.path)
        except OSError:
            pass  # it holds what this run did not make: left as it is


def write_part(chunks: Iterable[str]) -> str:
    """Write this process's table (the text in ``chunks``) as ``<pid>.json``; the path or ``""``.

    ``""`` when the run is over (its folder gone) or the folder is not this run's: the table is
    then written nowhere. OSError when the write itself fails.
    """
    folder = os.environ.get(DIR_VAR, "")
    run = os.environ.get(RUN_VAR, "")
    try:
        fd = os.open(folder, _OPEN_DIR)
    except OSError:
        return ""
    try:
        if not run or not _private(os.fstat(fd)):
            return ""
        try:
            marked = os.stat(_marker(run), dir_fd=fd, follow_symlinks=False)
        except OSError:
            return ""
        if not stat.S_ISREG(marked.st_mode):
            return ""
        name = f"{os.getpid()}.json"
        temporary = f".{os.getpid()}.{secrets.token_hex(4)}.tmp"
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                      | os.O_CLOEXEC, 0o600, dir_fd=fd)
        try:
            with os.fdopen(out, "w", encoding="utf-8", closefd=False) as sink:
                for chunk in chunks:
                    sink.write(chunk)
            os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=fd)
            except OSError:
                pass
            raise
        finally:
            os.close(out)
        return os.path.join(folder, name)
    finally:
        os.close(fd)


# --- the link ------------------------------------------------------------------------------------

class RunLink:
    """The run's end: learns when the program starts writing its table, and lets it go on."""

    def __init__(self) -> None:
        self._news, self._to_program = os.pipe()  # program -> run
        self._from_run, self._answer = os.pipe()  # run -> program
        # The recorder's own memory, published by the program (core/own_memory.hpp): one page.
        self.own_memory_fd = os.memfd_create("mprofxx-own-memory", os.MFD_CLOEXEC)
        os.ftruncate(self.own_memory_fd, os.sysconf("SC_PAGE_SIZE"))
        self.writing = False

    def environment(self) -> dict[str, str]:
        return {LINK_VAR: f"{self._to_program},{self._from_run},{self.own_memory_fd}"}

    def program_fds(self) -> tuple[int, int, int]:
        return self._to_program, self._from_run, self.own_memory_fd

    def started(self) -> None:
        """The program runs: its ends are closed here."""
        os.close(self._to_program)
        os.close(self._from_run)

    @property
    def fd(self) -> int:
        return self._news

    def take_news(self, before_answer: object = None) -> bool:
        """Read what the program said (the fd is readable); True when it starts writing.

        ``before_answer`` (a callable) runs before the program is let go on: the sampler stops.
        """
        try:
            said = os.read(self._news, 64)
        except OSError:
            said = b""
        if _WRITING in said and not self.writing:
            self.writing = True
            if callable(before_answer):
                before_answer()
            try:
                os.write(self._answer, _GO_ON)
            except OSError:
                pass
        return self.writing

    def close(self) -> None:
        for fd in (self._news, self._answer, self.own_memory_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class ProgramLink:
    """The program's end (the main program only: forked children and spawned workers have none)."""

    def __init__(self) -> None:
        self._fds: tuple[int, int] | None = None
        self._own_memory = -1
        value = os.environ.pop(LINK_VAR, "")
        try:
            tell, hear, own_memory = (int(part) for part in value.split(","))
            for fd in (tell, hear, own_memory):
                os.set_inheritable(fd, False)  # the program's own subprocesses do not get them
        except (ValueError, OSError):
            return
        self._fds = (tell, hear)
        self._own_memory = own_memory
        self._pid = os.getpid()

    def share_own_memory(self) -> None:
        """Publish the running recorder's own memory for the run to leave out (once)."""
        import _memxx

        fd, self._own_memory = self._own_memory, -1
        if fd < 0 or os.getpid() != self._pid:
            return
        try:
            _memxx.peak_share_own_memory(fd)  # mapped: the descriptor is no longer needed
        except OSError:
            pass  # the run then records the tables with the program, as before
        finally:
            os.close(fd)

    def writing(self, wait: float = 2.0) -> None:
        """Tell the run the table is being written; wait for it to stop sampling (or ``wait`` s)."""
        if self._fds is None or os.getpid() != self._pid:
            return
        tell, hear = self._fds
        self._fds = None
        try:
            os.write(tell, _WRITING)
            ready, _, _ = select.select([hear], [], [], wait)
            if ready:
                os.read(hear, 1)
        except (OSError, ValueError):
            pass
