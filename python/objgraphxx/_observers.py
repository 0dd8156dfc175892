"""What the analysis never steps through or counts as a root: its own frames and containers,
the debugger (pdb) and the IPython shell.

>>> from objgraphxx import _observers
>>> _observers.shell_history_ids()
[]
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any, Iterable, Optional

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def observer_types() -> tuple[type, ...]:
    """Return the types whose instances are never steps of a chain: debugger, IPython shell
    and why_alive's own answers.

    >>> import bdb
    >>> bdb.Bdb in observer_types()
    True
    """
    found = []
    for module_name, attr in (
        ("bdb", "Bdb"),
        ("IPython.core.interactiveshell", "InteractiveShell"),
        ("IPython.core.displayhook", "DisplayHook"),
        ("IPython.core.history", "HistoryManager"),
        # why_alive's own answers, kept in a variable at a prompt, are not why an object lives.
        ("objgraphxx._leaks", "AliveChain"),
        ("objgraphxx._leaks", "Hop"),
    ):
        module = sys.modules.get(module_name)
        t = getattr(module, attr, None) if module is not None else None
        if isinstance(t, type):
            found.append(t)
    return tuple(found)


def own_frame_ids() -> list[int]:
    """Return the ids of this package's frames on the stack (they hold the objects as locals).

    >>> id(sys._getframe()) in own_frame_ids()
    False
    """
    ids = []
    frame: Optional[types.FrameType] = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith(PACKAGE_DIR):
            ids.append(id(frame))
        frame = frame.f_back
    return ids


def _shell() -> Any:
    module = sys.modules.get("IPython.core.interactiveshell")
    cls = getattr(module, "InteractiveShell", None) if module is not None else None
    if cls is None or not cls.initialized():
        return None
    return cls.instance()


def shell_history_ids() -> list[int]:
    """Return the ids of IPython's output caches (Out, _oh), which hold every displayed result.

    >>> shell_history_ids()  # no IPython shell here
    []
    """
    shell = _shell()
    if shell is None:
        return []
    ids = [id(shell.user_ns.get("Out")), id(shell.user_ns.get("_oh"))]
    return [i for i in ids if i != id(None)]


def history_namespaces() -> list[Any]:
    """Return the IPython user namespace, whose _, __, ___ and _<n> hold displayed results.

    >>> history_namespaces()
    []
    """
    shell = _shell()
    namespace = getattr(shell, "user_ns", None) if shell is not None else None
    return [namespace] if isinstance(namespace, dict) else []


def _module_paths(names: Iterable[str], directory: bool) -> list[str]:
    paths = []
    for name in names:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            path = os.path.abspath(path)
            paths.append(os.path.dirname(path) + os.sep if directory else path)
    return paths


def observer_prefixes() -> list[str]:
    """Return the file prefixes whose frames are never roots: this package, the line profiler,
    the IPython shell.

    >>> observer_prefixes()[0] == PACKAGE_DIR
    True
    """
    return [PACKAGE_DIR] + _module_paths(("memory_profilerxx", "IPython"), directory=True)


def debugger_prefixes() -> list[str]:
    """Return the files of debuggers and consoles (never roots): with one at its prompt, the
    frames above the debugged one are the question being asked.

    >>> import pdb
    >>> pdb.__file__ in debugger_prefixes()
    True
    """
    debuggers = ("bdb", "pdb", "cmd", "code", "IPython.core.debugger")
    return _module_paths(debuggers, directory=False) + (
        _module_paths(("ipdb",), directory=True)
    )


def root_modules() -> list[Any]:
    """Return the modules that are in sys.modules under their own name.

    >>> sys in root_modules()
    True
    """
    return [
        m
        for name, m in list(sys.modules.items())
        if isinstance(m, types.ModuleType) and getattr(m, "__name__", None) == name
    ]


def in_kernel() -> bool:
    """Return True when running in a Jupyter kernel (graphs are then shown inline).

    >>> in_kernel()
    False
    """
    from _memxx_shared.notebook import in_kernel as kernel

    return kernel()
