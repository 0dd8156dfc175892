"""Native allocation churn for the stress and fork tests: C loops calling the PyMem API.

Python-level loops cannot make GIL-free RAW traffic (a ctypes call spends most of its time
waiting for the GIL), so a few lines of C are compiled once per test session with the system
compiler and called through ctypes:

- ``raw(blocks, stop)`` through ``CDLL``: the GIL is released, as lzma/bz2 threads allocate;
- ``mem(blocks)`` and ``obj(blocks)`` through ``PyDLL``: the GIL is held, as C extensions do.

Each allocates and frees ``blocks`` blocks (batches of 64, sizes 8..519 bytes) and returns the
number done; ``raw`` stops early when ``*stop`` becomes non-zero.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sysconfig
import tempfile

_SOURCE = r"""
#include <stddef.h>
void *PyMem_RawMalloc(size_t);
void PyMem_RawFree(void *);
void *PyMem_Malloc(size_t);
void PyMem_Free(void *);
void *PyObject_Malloc(size_t);
void PyObject_Free(void *);

#define CHURN(name, alloc, release)                                              \
    long name(long blocks, volatile int *stop) {                                 \
        void *live[64];                                                          \
        long done = 0;                                                           \
        while (done < blocks && !(stop && *stop)) {                              \
            for (int i = 0; i < 64; ++i) live[i] = alloc(8 + (done + i) % 512);  \
            for (int i = 0; i < 64; ++i) release(live[i]);                       \
            done += 64;                                                          \
        }                                                                        \
        return done;                                                             \
    }
CHURN(raw, PyMem_RawMalloc, PyMem_RawFree)
CHURN(mem, PyMem_Malloc, PyMem_Free)
CHURN(obj, PyObject_Malloc, PyObject_Free)
"""

_library: dict[str, object] = {}


def _compiler() -> str:
    for name in (sysconfig.get_config_var("CC") or "", "cc", "gcc", "clang"):
        found = shutil.which(name.split()[0]) if name else None
        if found:
            return found
    raise RuntimeError("no C compiler found (cc, gcc, clang): the churn helper needs one")


def _build() -> str:
    directory = tempfile.mkdtemp(prefix="memxx-churn-")
    source = os.path.join(directory, "churn.c")
    with open(source, "w") as out:
        out.write(_SOURCE)
    library = os.path.join(directory, "libchurn.so")
    subprocess.run(
        [_compiler(), "-O2", "-shared", "-fPIC", "-o", library, source],
        check=True,
        capture_output=True,
    )
    return library


def functions() -> tuple[object, object, object]:
    """Return ``(raw, mem, obj)``: raw releases the GIL, mem and obj hold it."""
    if not _library:
        path = _build()
        free = ctypes.CDLL(path)
        held = ctypes.PyDLL(path)
        for handle in (free, held):
            for name in ("raw", "mem", "obj"):
                fn = getattr(handle, name)
                fn.restype = ctypes.c_long
                fn.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_int)]
        _library.update(raw=free.raw, mem=held.mem, obj=held.obj)
    return _library["raw"], _library["mem"], _library["obj"]
