"""The package's settings and objgraph's patchable hooks, read by every module at call time.

``objgraphxx.STRICT_DOT``, ``objgraphxx.RENDER_IN_PROCESS``, ``objgraphxx.IS_INTERACTIVE``,
``objgraphxx.graphviz``, ``objgraphxx.subprocess`` and ``objgraphxx._program_in_path`` are views
of the names here (objgraph's tests assign and patch them on the package), so the modules that
use them need not import the package.

>>> from objgraphxx import _settings
>>> _settings.renders_in_process()
True
"""

from __future__ import annotations

import os
import subprocess as _real_subprocess
from typing import Any

# Render images with the linked Graphviz (True) or, as objgraph, by running `dot`.
RENDER_IN_PROCESS = True
# Only objgraph's edge labels (no list indexes, no instance attribute names): byte-identical DOT.
STRICT_DOT = False

# objgraph's inline display: a graphviz.Source in a (non-terminal) IPython shell.
IS_INTERACTIVE = False
try:  # pragma: no cover - depends on the hosting shell
    import graphviz  # type: ignore[import-not-found, unused-ignore]

    if "TerminalInteractiveShell" not in get_ipython().__class__.__name__:  # type: ignore[name-defined]  # noqa: F821
        IS_INTERACTIVE = True
except (NameError, ImportError):
    pass

subprocess: Any = _real_subprocess


def program_in_path(program: str) -> bool:
    """Return True if ``program`` (or ``program.exe``) is a file in a $PATH directory.

    >>> program_in_path('sh')
    True
    """
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return any(
        os.path.isfile(os.path.join(d, program)) or os.path.isfile(os.path.join(d, program + ".exe"))
        for d in path
    )


original_program_in_path = program_in_path

# The names the package shows as its own attributes, and the name each has here.
PACKAGE_VIEWS = {
    "STRICT_DOT": "STRICT_DOT",
    "RENDER_IN_PROCESS": "RENDER_IN_PROCESS",
    "IS_INTERACTIVE": "IS_INTERACTIVE",
    "graphviz": "graphviz",
    "subprocess": "subprocess",
    "_program_in_path": "program_in_path",
}


def renders_in_process() -> bool:
    """Return True when images are rendered by the linked Graphviz, not by running `dot`.

    objgraph's tests replace ``subprocess`` / ``_program_in_path`` to watch the `dot` path:
    that is honoured.

    >>> renders_in_process()
    True
    """
    return (
        RENDER_IN_PROCESS
        and subprocess is _real_subprocess
        and program_in_path is original_program_in_path
    )
