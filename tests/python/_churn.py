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


def compiler(cplusplus: bool = False) -> str:
    """The system's C (or C++) compiler, for the test helpers built at run time."""
    names = ("c++", "g++", "clang++") if cplusplus else (
        sysconfig.get_config_var("CC") or "", "cc", "gcc", "clang")
    for name in names:
        found = shutil.which(name.split()[0]) if name else None
        if found:
            return found
    raise RuntimeError(f"no {'C++' if cplusplus else 'C'} compiler found ({', '.join(names)}):"
                       " the native test helpers need one")


def build_shared(source_text: str, source_name: str, library_name: str,
                 extra: tuple[str, ...] = ()) -> str:
    """Compiles one source file into a shared object in a new temporary folder; its path."""
    directory = tempfile.mkdtemp(prefix="memxx-native-")
    source = os.path.join(directory, source_name)
    with open(source, "w") as out:
        out.write(source_text)
    library = os.path.join(directory, library_name)
    result = subprocess.run(
        [compiler(source_name.endswith(".cpp")), "-O2", "-shared", "-fPIC", "-o", library,
         source, *extra],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building {source_name} failed:\n{result.stderr}")
    return library


def _build() -> str:
    return build_shared(_SOURCE, "churn.c", "libchurn.so")


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
