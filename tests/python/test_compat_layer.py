"""The compat layer (core/py_compat*.c and .h, one pair per interpreter area) is the only C/C++
source that tests the interpreter's version or build: a PY_VERSION_HEX or Py_GIL_DISABLED anywhere
else is a difference that escaped it, and the next CPython release would have to be found there
too."""
from __future__ import annotations

import re
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
AREAS = ("frames", "gc", "objects", "offsets", "reftracer")
COMPAT = ({Path("core/py_compat.h"), Path("core/py_compat_internal.h"),
           Path("core/py_compat_teardown.h")}
          | {Path(f"core/py_compat_{area}.{ext}") for area in AREAS for ext in ("c", "h")})
VERSION_TEST = re.compile(r"\b(PY_VERSION_HEX|Py_GIL_DISABLED)\b")
SOURCE_FOLDERS = ("core", "gc_walker", "mprof", "python", "tests/cpp", "tests/fuzz")


def version_tests_outside_compat(top: Path) -> list[str]:
    """Every `file:line: text` of a C/C++ source under top naming PY_VERSION_HEX or
    Py_GIL_DISABLED outside the compat files."""
    found = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((top / folder).rglob("*")):
            if path.suffix not in {".c", ".cpp", ".h", ".hpp"}:
                continue
            relative = path.relative_to(top)
            if relative in COMPAT:
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if VERSION_TEST.search(line):
                    found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_no_version_test_outside_the_compat_layer():
    assert all((TOP / path).is_file() for path in COMPAT), "the checkout's sources are not here"
    assert version_tests_outside_compat(TOP) == []


def test_the_check_finds_a_version_test_put_outside_the_compat_layer(tmp_path):
    # Given a copy of the tree's layout with one version test outside the compat files and one
    # inside them, when the check runs, then it names the outside one only.
    (tmp_path / "core").mkdir()
    (tmp_path / "gc_walker").mkdir()
    (tmp_path / "core/py_compat_frames.c").write_text("#if PY_VERSION_HEX >= 0x030E0000\n#endif\n")
    (tmp_path / "gc_walker/heap_walk.cpp").write_text(
        "int a;\n#ifdef Py_GIL_DISABLED\nint b;\n#endif\n")
    assert version_tests_outside_compat(tmp_path) == [
        "gc_walker/heap_walk.cpp:2: #ifdef Py_GIL_DISABLED"]


def test_only_the_compat_layer_includes_the_interpreters_internal_headers():
    # Given every C/C++ source of the tree, the internal headers (and Py_BUILD_CORE, which they
    # need) appear in py_compat_internal.h only, which only the compat layer's .c files include.
    internal = re.compile(r"(#include\s*<internal/|#define\s+Py_BUILD_CORE\b|"
                          r"#include\s*\"core/py_compat_internal\.h\")")
    found = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((TOP / folder).rglob("*")):
            if path.suffix not in {".c", ".cpp", ".h", ".hpp"}:
                continue
            relative = path.relative_to(TOP)
            allowed = relative == Path("core/py_compat_internal.h") or (
                relative in COMPAT and relative.suffix == ".c")
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if internal.search(line) and not allowed:
                    found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []
