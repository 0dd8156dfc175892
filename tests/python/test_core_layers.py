"""The allocation stream keeps the hook and its consumers apart (core/alloc_stream.hpp, issue 30):
no consumer of the stream includes a source's header (alloc_accounting.hpp, alloc_hook.hpp,
alloc_sources.hpp), and no source includes a consumer's header, directly or through another
header of core/. The stream's header and the session's, which both sides include, include
neither side.

A consumer is any file of core/ that subscribes (calls ``session_subscribe``), with its header;
so a new consumer is checked without being listed here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*#\s*include\s+"(core/[^"]+)"', re.MULTILINE)

#: The sources' headers: what a consumer may not reach.
HOOK_HEADERS = ("core/alloc_accounting.hpp", "core/alloc_hook.hpp", "core/alloc_sources.hpp")
#: The sources of allocations and the hook's own files: what may not reach a consumer.
SOURCES = HOOK_HEADERS + ("core/alloc_hook.cpp", "core/pymem_hooks.cpp", "core/numpy_hooks.cpp",
                          "core/native_hooks.cpp", "core/mapped_pages.cpp",
                          "core/mapped_pages.hpp")
#: Included by both sides: they reach neither.
SHARED = ("core/alloc_stream.hpp", "core/session.hpp")


def includes(root: Path) -> dict[str, set[str]]:
    """Each file of core/ (as ``core/name``) and the core/ files it includes."""
    graph = {}
    for path in sorted((root / "core").iterdir()):
        if path.suffix in (".cpp", ".hpp", ".h", ".c"):
            graph["core/" + path.name] = set(INCLUDE.findall(path.read_text()))
    return graph


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every file `start` includes, directly or through others."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


def consumers(root: Path) -> list[str]:
    """The files of the stream's consumers: those that subscribe, and their headers."""
    found = []
    for path in sorted((root / "core").glob("*.cpp")):
        if path.name != "session.cpp" and "session_subscribe(" in path.read_text():
            found.append("core/" + path.name)
            header = path.with_suffix(".hpp")
            if header.exists():
                found.append("core/" + header.name)
    return found


def violations(root: Path = ROOT) -> list[str]:
    """Each include across the line, as ``file reaches file``."""
    graph = includes(root)
    found = []
    users = consumers(root)
    consumer_headers = [name for name in users if name.endswith(".hpp")]
    for name in users:
        found += [f"{name} reaches {h}" for h in HOOK_HEADERS if h in reached(graph, name)]
    for name in SOURCES:
        found += [f"{name} reaches {h}" for h in consumer_headers if h in reached(graph, name)]
    for name in SHARED:
        found += [f"{name} reaches {h}" for h in HOOK_HEADERS + tuple(consumer_headers)
                  if h in reached(graph, name)]
    return found


def test_the_stream_has_its_consumers() -> None:
    assert consumers(ROOT) == ["core/alloc_sites.cpp", "core/alloc_sites.hpp",
                               "core/peak_recorder.cpp", "core/peak_recorder.hpp"]


def test_no_consumer_includes_the_hook_and_no_source_a_consumer() -> None:
    assert violations() == []


def plant(tmp_path: Path, file: str, header: str) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "core", root / "core")
    path = root / file
    text = path.read_text()
    first = text.index("#include")
    path.write_text(text[:first] + f'#include "{header}"\n' + text[first:])
    return root


def test_a_consumer_including_the_hook_is_found(tmp_path: Path) -> None:
    root = plant(tmp_path, "core/peak_recorder.cpp", "core/alloc_accounting.hpp")
    assert violations(root) == ["core/peak_recorder.cpp reaches core/alloc_accounting.hpp"]


def test_a_consumer_reaching_the_hook_through_another_header_is_found(tmp_path: Path) -> None:
    # mapped_pages.hpp is no hook header, but once it includes one, a consumer including it
    # reaches the hook.
    root = plant(tmp_path, "core/mapped_pages.hpp", "core/alloc_hook.hpp")
    assert "core/peak_recorder.cpp reaches core/alloc_hook.hpp" in violations(root)


def test_a_source_including_a_consumer_is_found(tmp_path: Path) -> None:
    root = plant(tmp_path, "core/alloc_accounting.hpp", "core/peak_recorder.hpp")
    # and every source that includes alloc_accounting.hpp with it
    assert "core/alloc_accounting.hpp reaches core/peak_recorder.hpp" in violations(root)
    assert "core/native_hooks.cpp reaches core/peak_recorder.hpp" in violations(root)
    root = plant(tmp_path / "2", "core/pymem_hooks.cpp", "core/alloc_sites.hpp")
    assert violations(root) == ["core/pymem_hooks.cpp reaches core/alloc_sites.hpp"]
