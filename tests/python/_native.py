"""The native-memory test extension (tests/python/native/memxx_native_ext.cpp), built once per
test session with the system's C++ compiler against the running interpreter's headers.

``module()`` imports it (from a folder put on ``sys.path``); ``path()`` gives the folder, for
tests that import it themselves inside a profiled function or in a child process.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig

from _churn import build_shared

_HERE = os.path.dirname(os.path.abspath(__file__))
_built: dict[str, str] = {}


def path() -> str:
    """The folder holding the built ``memxx_native_ext`` module."""
    if "folder" not in _built:
        with open(os.path.join(_HERE, "native", "memxx_native_ext.cpp")) as source:
            text = source.read()
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        library = build_shared(text, "memxx_native_ext.cpp", "memxx_native_ext" + suffix,
                               ("-I" + sysconfig.get_paths()["include"],))
        _built["folder"] = os.path.dirname(library)
    return _built["folder"]


def module():
    """The imported ``memxx_native_ext`` module."""
    folder = path()
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("memxx_native_ext")
