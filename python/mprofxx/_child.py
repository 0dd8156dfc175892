"""The program side of ``mprofxx run``: ``python -m mprofxx._child (script.py | -m module) args``.

Installs the ``profile`` builtin (FUNC spans) and runs the target as a real ``__main__``, as
``python script.py`` would: functions defined in the script can be pickled, so
``multiprocessing`` with the spawn start method works (memory_profiler exec()s the script into
a plain dict, and pickling fails there).
"""

from __future__ import annotations

import builtins
import os
import runpy
import sys

from mprofxx._spans import TimestampProfile


def main(argv: list[str]) -> None:
    """Run ``argv`` (``[script, args...]`` or ``["-m", module, args...]``) as ``__main__``."""
    if not hasattr(builtins, "profile"):
        builtins.profile = TimestampProfile()  # type: ignore[attr-defined]
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
