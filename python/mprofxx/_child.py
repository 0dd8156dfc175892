"""The program side of ``mprofxx run``: ``python -m mprofxx._child (script.py | -m module) args``.

Installs the ``profile`` builtin (FUNC spans) and runs the target as a real ``__main__``, as
``python script.py`` would: functions defined in the script can be pickled, so
``multiprocessing`` with the spawn start method works (memory_profiler exec()s the script into
a plain dict, and pickling fails there).
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.util
import os
import runpy
import sys
from typing import Any

from mprofxx._spans import TimestampProfile

_SPAWN_PRELUDE = "import mprofxx._child as _c; _c.install_profile(); "


def install_profile() -> None:
    """Make ``profile`` a builtin (FUNC spans) unless the program already defines one."""
    if not hasattr(builtins, "profile"):
        builtins.profile = TimestampProfile()  # type: ignore[attr-defined]


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
    sys.meta_path.insert(0, _SpawnPatcher())
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


if __name__ == "__main__":
    main(sys.argv[1:])
