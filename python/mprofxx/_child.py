"""The program side of ``mprofxx run``: ``python -m mprofxx._child (script.py | -m module) args``.

Installs the ``profile`` builtin (FUNC spans) and runs the target as a real ``__main__``, as
``python script.py`` would: functions defined in the script can be pickled, so
``multiprocessing`` with the spawn start method works (memory_profiler exec()s the script into
a plain dict, and pickling fails there).
"""

from __future__ import annotations

import atexit
import builtins
import functools
import importlib
import importlib.abc
import importlib.util
import os
import runpy
import signal
import sys
import time
from typing import Any

from _memxx_shared.spans import TimestampProfile

from mprofxx import _peak_parts

_SPAWN_PRELUDE = "import mprofxx._child as _c; _c.install_profile(); _c.start_peak(); "
#: ``mprofxx run --peak`` names here the folder each recorded process writes its peak table to.
PEAK_DIR_VAR = _peak_parts.DIR_VAR
#: The signals after which the table is written, then the signal's own action taken.
_ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
#: Cut stacks below this share of the peak into one row when writing (small files).
_MERGE_BELOW = 0.001
#: When the write runs out of memory: the largest stacks kept at the next attempt.
_KEEP_WHEN_SHORT = (1000, 0)

_peak_started = 0.0
_peak_written = False
_parent_pid: int | None = None
_link: _peak_parts.ProgramLink | None = None
_real_exit = os._exit


def install_profile() -> None:
    """Make ``profile`` a builtin (FUNC spans) unless the program already defines one."""
    if not hasattr(builtins, "profile"):
        builtins.profile = TimestampProfile()  # type: ignore[attr-defined]


def start_peak(forkserver: bool = False) -> None:
    """Start the peak recorder when ``mprofxx run --peak`` asked for it (the environment says).

    The table is written when the process ends: at normal exit, on SIGINT (KeyboardInterrupt),
    SIGTERM and SIGHUP (the signal's default action is taken after writing), and at
    ``os._exit``; a signal that comes while it is written waits for the write. On SIGKILL
    nothing is written: the part file is whole or absent. A forkserver (``forkserver``) records
    nothing itself: the workers forked from it do.
    """
    global _peak_started, _parent_pid, _link, _shielded
    if not os.environ.get(PEAK_DIR_VAR) or _peak_started:
        return
    import _memxx
    # imported before recording starts: their import is not the program's memory
    from _memxx_shared import peak_capture, peak_file  # noqa: F401

    if _link is None:
        _link = _peak_parts.ProgramLink()
    for signum in _ENDING_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _write_then_terminate)
            # Sent again to this thread until the handler runs (core/signal_relay.hpp): a
            # signal taken just before the main thread blocks for good (a Pool worker that
            # its pool terminates) or by another thread would leave the table unwritten.
            _memxx.peak_relay_signal(signum)
    os.register_at_fork(after_in_child=_restart_peak_in_child)
    os._exit = _exit_after_writing  # type: ignore[assignment]
    if forkserver:
        return
    _parent_pid = os.getppid()
    _memxx.peak_start(True)
    _link.share_own_memory()
    _peak_started = time.time()
    atexit.register(_write_peak_at_exit)
    # atexit calls the last registered first: this block runs just before the write, with no
    # Python line of ours in between, so a signal that comes once the program has ended (the
    # second Ctrl-C to the process group) waits for the write instead of being raised at its
    # first line. _signal's function, not signal's: that one is Python, whose first line would
    # be such a point.
    _shielded = [s for s in _SignalsWait.SIGNALS
                 if s not in signal.pthread_sigmask(signal.SIG_BLOCK, [])]
    block = importlib.import_module("_signal").pthread_sigmask
    atexit.register(functools.partial(block, signal.SIG_BLOCK, _shielded))


_shielded: list[int] = []  # the ending signals the exit's block holds back (not blocked before)


def _write_peak_at_exit() -> None:
    """write_peak from atexit, the ending signals blocked; they are let through after it."""
    try:
        write_peak(shielded=True)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _shielded)


def _exit_after_writing(status: int) -> None:
    write_peak()
    _real_exit(status)


def write_peak(shielded: bool = False) -> None:
    """Stop the recorder and write this process's table to ``<dir>/<pid>.json`` (once).

    ``shielded``: called at exit, with the ending signals blocked since the program ended.
    """
    global _peak_written, _active_wait
    if _peak_written or not _peak_started or not os.environ.get(PEAK_DIR_VAR):
        return
    _active_wait = _SignalsWait(shielded)  # from here on, a signal waits for the write
    _peak_written = True
    with _active_wait:
        if _link is not None:
            _link.writing()  # the run takes no sample of the write
        _write_table()
    _active_wait = None


def _write_table() -> None:
    import _memxx

    from _memxx_shared.peak_capture import capture
    from _memxx_shared.peak_file import dump_chunks

    where: dict[str, Any] = dict(start_time=_peak_started, parent=_parent_pid, cmdline=" ".join(sys.argv),
                 runner_files=frozenset({runpy.__file__, "<frozen runpy>", __file__}),
                 run=os.environ.get(_peak_parts.RUN_VAR, ""))
    attempts: list[dict[str, Any]] = [{"merge_below": _MERGE_BELOW}]
    attempts += [{"keep": keep, "cut_reason": "out of memory while writing"}
                 for keep in _KEEP_WHEN_SHORT]
    try:
        for attempt in attempts:
            try:
                table = capture(**where, **attempt)
                _peak_parts.write_part(dump_chunks([table]))
            except MemoryError:
                table = None
                continue
            if attempt.get("cut_reason") and table is not None:
                _tell(f"out of memory while writing the peak table: the {len(table.stacks) - 1}"
                      f" largest stacks written, {table.cut_stacks} smaller ones"
                      f" ({table.cut_bytes / _memxx.MIB:,.1f} MiB) cut into one row")
            return
        _tell("cannot write the peak table: out of memory")
    except (OSError, ValueError, RuntimeError) as error:  # ValueError: the recorder is off
        _tell(f"cannot write the peak table: {error}")
    finally:
        _memxx.peak_stop()


def _tell(message: str) -> None:
    try:
        print(f"mprofxx: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError, MemoryError):
        pass


class _SignalsWait:
    """While the table is written, SIGINT, SIGTERM and SIGHUP wait; then the first of them
    takes its default action (the process was ending anyway). Python runs signal handlers in
    the main thread only: from another thread the write is not shielded."""

    SIGNALS = (signal.SIGINT,) + _ENDING_SIGNALS

    def __init__(self, shielded: bool = False) -> None:
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}
        # Blocked by the exit's block (start_peak) until the write ends; let through to _note.
        self.shielded = list(_shielded) if shielded else []

    def __enter__(self) -> None:
        # Blocked while the handlers change: one that comes meanwhile reaches _note.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        try:
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._note)
        except ValueError:  # not the main thread
            pass
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _note(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def __exit__(self, *exc: object) -> None:
        if self.shielded:  # those that came during the write reach _note now
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.shielded)
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.pending:
            _terminate(self.pending[0])


def _write_then_terminate(signum: int, frame: Any) -> None:
    import _memxx

    _memxx.peak_signal_taken()
    if _active_wait is not None:  # the write is under way (its handlers not yet in place)
        _active_wait.pending.append(signum)
        return
    write_peak()
    _terminate(signum)


_active_wait: _SignalsWait | None = None


def _terminate(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _restart_peak_in_child() -> None:
    # A forked worker records its own table from the fork on (it often leaves by os._exit,
    # which start_peak made write the table first).
    global _peak_started, _peak_written, _parent_pid, _active_wait
    import _memxx

    _parent_pid = os.getppid()
    _memxx.peak_stop()
    _memxx.peak_start(True)
    if not _peak_started:
        atexit.register(write_peak)  # forked from a forkserver, which recorded nothing
    _peak_started = time.time()
    _peak_written = False
    _active_wait = None


def _patch_spawn(spawn: Any) -> None:
    # A spawned worker re-imports the script, so its module-level @profile needs the builtin
    # too: start the worker's "-c" code by installing it.
    original = spawn.get_command_line

    def get_command_line(**kwds: Any) -> list[str]:
        command = list(original(**kwds))
        if "-c" in command:
            at = command.index("-c") + 1
            command[at] = _SPAWN_PRELUDE + command[at]
        return command

    spawn.get_command_line = get_command_line


def _patch_forkserver(forkserver: Any) -> None:
    # The forkserver is a fresh interpreter that imports its preload modules before it forks
    # the workers: ours among them starts the workers' recorders.
    original = forkserver.ForkServer.ensure_running

    def ensure_running(self: Any) -> Any:
        preload = list(getattr(self, "_preload_modules", []))
        if _FORKSERVER_MODULE not in preload:
            self._preload_modules = preload + [_FORKSERVER_MODULE]
        return original(self)

    forkserver.ForkServer.ensure_running = ensure_running


_FORKSERVER_MODULE = "mprofxx._forkserver"
_PATCHES = {"multiprocessing.spawn": _patch_spawn, "multiprocessing.forkserver": _patch_forkserver}


class _SpawnPatcher(importlib.abc.MetaPathFinder):
    """Patches multiprocessing.spawn and .forkserver when the program imports them (importing
    them ourselves would add ~8 ms and 20 modules to every recorded program)."""

    def __init__(self) -> None:
        self._left = dict(_PATCHES)

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patch = self._left.pop(name, None)
        if patch is None:
            return None
        if not self._left:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # comes here again: None, the name is done
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def main(argv: list[str]) -> None:
    """Run ``argv`` (``[script, args...]`` or ``["-m", module, args...]``) as ``__main__``."""
    install_profile()
    start_peak()
    sys.meta_path.insert(0, _SpawnPatcher())
    runner = _peak_started != 0.0
    if runner:
        import _memxx

        _memxx.peak_runner_frame(True)  # the stacks' walks stop at this frame
    try:
        if argv[:1] == ["-m"]:
            module = argv[1]
            sys.argv = [module] + argv[2:]
            sys.path[0] = os.getcwd()
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            script = argv[0]
            sys.argv = list(argv)
            sys.path[0] = os.path.dirname(os.path.abspath(script))
            runpy.run_path(script, run_name="__main__")
    except KeyboardInterrupt:
        if runner and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            # The program ends by Ctrl-C: a second SIGINT (the run passes on one sent to it
            # alone) is not raised again in the traceback's printing or the exit handlers,
            # where it would stop the table's write.
            signal.signal(signal.SIGINT, _note_late_sigint)
        raise
    finally:
        if runner:
            _memxx.peak_runner_frame(False)


def _note_late_sigint(signum: int, frame: Any) -> None:
    pass  # the process is ending by SIGINT already (Python exits by it after the exit handlers)


if __name__ == "__main__":
    main(sys.argv[1:])
