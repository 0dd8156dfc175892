"""Hands a profiled line's cause to the threads doing its work, so their memory is its memory.

Two places in the standard library start work on another thread on behalf of the calling one:
``threading.Thread.start`` (the new thread works for the thread that started it, for its whole
life) and ``concurrent.futures.ThreadPoolExecutor`` (a worker works, one item at a time, for the
thread that submitted the item; ``asyncio.to_thread`` and ``loop.run_in_executor`` submit to
one). Each captures the calling thread's cause (``_memxx.thread_cause()``: its profiled line, or
the cause it works for itself) where the work is handed over, and the thread doing the work
adopts it while the work runs. Outside profiling ``thread_cause()`` is None and the work runs as
before; the patches are installed at the first profiling with ``threads="all"`` and stay.

>>> install()
>>> import threading
>>> threading.Thread.start.__name__
'start'
"""

from __future__ import annotations

import threading
from typing import Any

import _memxx

_installed = False
_install_lock = threading.Lock()


def _run_for(cause: Any, run: Any, *args: Any, **kwargs: Any) -> Any:
    """Runs ``run`` with the calling thread charging ``cause`` (None: nobody), then restores."""
    previous = _memxx.adopt_thread_cause(cause)
    del cause
    try:
        return run(*args, **kwargs)
    finally:
        _memxx.adopt_thread_cause(previous)


def _patch_threading() -> None:
    thread = threading.Thread
    start, bootstrap_inner = thread.start, thread._bootstrap_inner  # type: ignore[attr-defined]

    def patched_start(self: threading.Thread) -> None:
        self._memxx_cause = _memxx.thread_cause()  # type: ignore[attr-defined]
        start(self)

    def patched_bootstrap_inner(self: threading.Thread) -> None:
        cause = self.__dict__.pop("_memxx_cause", None)
        if cause is None:
            bootstrap_inner(self)
        else:
            _run_for(cause, bootstrap_inner, self)

    patched_start.__name__, patched_start.__doc__ = start.__name__, start.__doc__
    patched_start.__qualname__ = start.__qualname__
    thread.start = patched_start  # type: ignore[method-assign]
    thread._bootstrap_inner = patched_bootstrap_inner  # type: ignore[attr-defined]


def _patch_thread_pool() -> None:
    from concurrent.futures import thread as pool

    work_item = pool._WorkItem
    init, run = work_item.__init__, work_item.run

    def patched_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._memxx_cause = _memxx.thread_cause()

    def patched_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Adopted even when None: a worker the profiled code started works for whoever
        # submitted the item it runs, not for the thread that started it.
        return _run_for(self.__dict__.pop("_memxx_cause", None), run, self, *args, **kwargs)

    work_item.__init__ = patched_init  # type: ignore[method-assign]
    work_item.run = patched_run  # type: ignore[method-assign]


def install() -> None:
    """Installs the hand-over points once (idempotent). Call without a profiled frame running."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        _patch_threading()
        _patch_thread_pool()
