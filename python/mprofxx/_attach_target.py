"""Inside a process ``mprofxx attach --peak/--growth`` got into: record, then leave no trace.

:func:`run` runs on a thread of its own (started by ``_attach_boot``). It starts the recording,
writes ``recording`` to ``<folder>/status``, then wakes every 0.2 s until one of:

- the CLI asks to stop (it creates ``<folder>/stop``): the result is written to the folder
  (``peak.json`` or ``growth.txt``, through ``write_output``: never through a link) and the
  recording stops;
- the CLI is gone (its pidfd becomes readable: killed, even by SIGKILL): the recording stops,
  nothing is written and the folder is removed;
- the target's own deadline (the CLI's ``-t`` plus a margin) passes: as when asked to stop;
- the program exits: an ``atexit`` handler writes the result first.

Stopping removes the allocator hooks and every patched native slot (``peak_stop`` /
``sites_stop``) and unregisters the ``atexit`` handler; then the thread ends.
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import threading
import time
from typing import Any

# Seconds the target waits past the CLI's own deadline before it stops by itself.
DEADLINE_MARGIN = 10.0
POLL_SECONDS = 0.2


class _Peak:
    """``--peak``: the peak recorder, every allocator and thread, native code included."""

    result_name = "peak.json"

    def start(self, args: dict[str, Any]) -> None:
        import _memxx
        # imported before recording starts: their import is not the program's memory
        from _memxx_shared import peak_capture, peak_file  # noqa: F401

        self._cmdline = args.get("cmdline", "")
        self._start = time.time()
        _memxx.peak_start(True)

    def begin(self) -> None:
        pass  # recording began in start()

    def result(self) -> str:
        from _memxx_shared.peak_capture import capture
        from _memxx_shared.peak_file import dumps

        table = capture(start_time=self._start, cmdline=self._cmdline,
                        runner_files=frozenset({__file__}))
        return dumps([table])

    def stop(self) -> None:
        import _memxx

        _memxx.peak_stop()


class _Growth:
    """``--growth``: objgraphxx's growth_report from start to end, this thread's lines left out."""

    result_name = "growth.txt"

    def start(self, args: dict[str, Any]) -> None:
        import objgraphxx

        ours = os.path.dirname(os.path.abspath(__file__))
        self._report = objgraphxx.growth_report(int(args.get("chains", 3)), leave_out=[ours])

    def begin(self) -> None:
        """The first count, once every object of ours exists: they are not the program's growth."""
        self._report.start()

    def result(self) -> str:
        return self._report.finish()

    def stop(self) -> None:
        self._report.stop()


_lock = threading.Lock()
_sessions: dict[str, dict[str, Any]] = {}  # by folder: the session and whether it ended


def run(args: dict[str, Any]) -> None:
    """Record in this process until asked to stop, the CLI dies or the deadline (own thread)."""
    directory = args["dir"]
    try:
        cli = os.pidfd_open(int(args["cli_pid"]))
    except OSError:  # the CLI has already gone: nothing to do
        shutil.rmtree(directory, ignore_errors=True)
        return

    def at_exit() -> None:
        _end(directory, write=True)

    try:
        session: Any = _Peak() if args["mode"] == "peak" else _Growth()
        with _lock:
            if _sessions:
                raise ValueError("another mprofxx attach already records in this process")
            session.start(args)
            _sessions[directory] = {"session": session, "ended": False}
    except Exception as error:  # noqa: BLE001 - reported to the CLI, never into the program
        os.close(cli)
        _answer(directory, "status", f"refused: {error}")
        return
    deadline = time.monotonic() + float(args["seconds"]) + DEADLINE_MARGIN \
        if args.get("seconds") else None
    stop_path = os.path.join(directory, "stop")
    watch = select.poll()
    watch.register(cli, select.POLLIN)
    session.begin()
    if not _answer(directory, "status", f"recording {time.time():.6f}"):
        _end(directory, write=False)  # the CLI gave up waiting and removed its folder
        os.close(cli)
        return
    atexit.register(at_exit)
    try:
        while True:
            if watch.poll(POLL_SECONDS * 1000):  # the CLI exited: no one will read a result
                _end(directory, write=False)
                shutil.rmtree(directory, ignore_errors=True)
                break
            if os.path.lexists(stop_path) or (
                deadline is not None and time.monotonic() >= deadline
            ):
                _end(directory, write=True)
                break
            if _sessions.get(directory, {}).get("ended", True):  # at_exit ran
                break
    finally:
        atexit.unregister(at_exit)
        os.close(cli)


def _end(directory: str, write: bool) -> None:
    """Stop the session recording into ``directory`` (once), writing its result first."""
    with _lock:
        entry = _sessions.get(directory)
        if entry is None or entry["ended"]:
            return
        entry["ended"] = True
        session = entry["session"]
        try:
            text = session.result() if write else None
        except Exception as error:  # noqa: BLE001 - reported to the CLI
            text = None
            _answer(directory, "error", f"{type(error).__name__}: {error}")
        finally:
            session.stop()
            del _sessions[directory]
        if text is not None:
            import _memxx

            try:
                _memxx.write_output(os.path.join(directory, session.result_name), text)
            except ValueError as error:  # OutputFileError
                _answer(directory, "error", str(error))


def _answer(directory: str, name: str, text: str) -> bool:
    """Write ``<directory>/<name>`` once, never through a link; False if the folder is gone.

    Nothing is printed: the program's own output is not ours to write to.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(os.path.join(directory, name), flags, 0o600)
    except OSError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return True
