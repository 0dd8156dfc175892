"""Notebook output: reports shown as the cell's own output in a Jupyter kernel.

In a kernel (an IPython shell with a kernel behind it: ipykernel, and through it nbclient,
nbconvert, papermill, VS Code, JupyterLab) a report is published with IPython's display
machinery, as ``text/plain`` plus ``text/html``, so that executed and exported notebooks keep
it. In a terminal IPython or a plain interpreter nothing changes. Nothing here imports IPython
unless IPython is already loaded.
"""

from __future__ import annotations

import sys


def in_kernel() -> bool:
    """True when running in a Jupyter kernel (IPython is loaded and its shell has a kernel).

    >>> in_kernel()
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show(text: str, html: str | None = None) -> None:
    """Publishes ``text`` (and ``html``, for front ends that show it) as the cell's output."""
    from IPython.display import display

    bundle = {"text/plain": text.rstrip("\n")}
    if html:
        bundle["text/html"] = html
    display(bundle, raw=True)  # type: ignore[no-untyped-call]
