"""The program side of ``mprofxx run``: ``python -m mprofxx._child (script.py | -m module) args``.

Installs the ``profile`` builtin (FUNC spans) and runs the target as a real ``__main__``, as
``python script.py`` would: functions defined in the script can be pickled, so
``multiprocessing`` with the spawn start method works (memory_profiler exec()s the script into
a plain dict, and pickling fails there).
"""

from __future__ import annotations

import atexit
import builtins
import importlib.abc
import importlib.util
import os
import runpy
import signal
import sys
import time
from typing import Any

from mprofxx._spans import TimestampProfile

_SPAWN_PRELUDE = "import mprofxx._child as _c; _c.install_profile(); _c.start_peak(); "
#: ``mprofxx run --peak`` names here the folder each recorded process writes its peak table to.
PEAK_DIR_VAR = "MPROFXX_PEAK_DIR"

_peak_started = 0.0
_peak_written = False


def install_profile() -> None:
    """Make ``profile`` a builtin (FUNC spans) unless the program already defines one."""
    if not hasattr(builtins, "profile"):
        builtins.profile = TimestampProfile()  # type: ignore[attr-defined]


def start_peak() -> None:
    """Start the peak recorder when ``mprofxx run --peak`` asked for it (the environment says).

    The table is written when the process ends: at normal exit, on SIGINT (KeyboardInterrupt)
    and SIGTERM (the default action is taken after writing), and in a forked worker at
    ``os._exit``. On SIGKILL nothing is written: the part file is whole or absent.
    """
    global _peak_started, _parent_pid
    directory = os.environ.get(PEAK_DIR_VAR)
    if not directory or _peak_started:
        return
    import _memxx
    from memory_profilerxx import _peak  # noqa: F401 - imported before recording starts

    _parent_pid = os.getppid()
    _memxx.peak_start(True)
    _peak_started = time.time()
    atexit.register(write_peak)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _write_then_terminate)
    os.register_at_fork(after_in_child=_restart_peak_in_child)


def write_peak() -> None:
    """Stop the recorder and write this process's table to ``<dir>/<pid>.json`` (once)."""
    global _peak_written, _writing
    directory = os.environ.get(PEAK_DIR_VAR)
    if _peak_written or not _peak_started or not directory:
        return
    _peak_written = _writing = True
    import _memxx
    from memory_profilerxx import _peak

    try:
        try:
            table = _peak.capture(start_time=_peak_started, parent=_parent_pid,
                                  cmdline=" ".join(sys.argv),
                                  runner_files=frozenset({runpy.__file__, "<frozen runpy>",
                                                          __file__}))
        finally:
            _memxx.peak_stop()
        os.makedirs(directory, exist_ok=True)
        _memxx.write_output(os.path.join(directory, f"{os.getpid()}.json"), _peak.dumps([table]))
    except (OSError, ValueError) as error:  # ValueError: OutputFileError
        print(f"mprofxx: cannot write the peak table: {error}", file=sys.stderr)
    finally:
        _writing = False
    if _pending_signal:
        _terminate(_pending_signal)


_writing = False  # write_peak is under way: a SIGTERM now waits for it to finish
_pending_signal = 0


def _write_then_terminate(signum: int, frame: Any) -> None:
    global _pending_signal
    if _writing:
        _pending_signal = signum
        return
    write_peak()
    _terminate(signum)


def _terminate(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_parent_pid: int | None = None


def _restart_peak_in_child() -> None:
    # A forked worker records its own table from the fork on; it often leaves by os._exit,
    # which runs no atexit handler.
    global _peak_started, _peak_written, _parent_pid
    import _memxx
    from memory_profilerxx import _peak  # noqa: F401 - imported before recording starts

    _parent_pid = os.getppid()
    _memxx.peak_stop()
    _memxx.peak_start(True)
    _peak_started = time.time()
    _peak_written = False
    real_exit = os._exit

    def exit_after_writing(status: int) -> None:
        write_peak()
        real_exit(status)

    os._exit = exit_after_writing  # type: ignore[assignment]


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


class _SpawnPatcher(importlib.abc.MetaPathFinder):
    """Patches multiprocessing.spawn when the program imports it (importing it ourselves
    would add ~8 ms and 20 modules to every recorded program)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "multiprocessing.spawn":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            _patch_spawn(module)

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
    finally:
        if runner:
            _memxx.peak_runner_frame(False)


if __name__ == "__main__":
    main(sys.argv[1:])
