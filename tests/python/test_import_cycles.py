"""No import circle between the files of the three packages: each module's imports of other
project modules, at module level and inside functions alike, form a graph without a cycle.

An import inside a function still ties the two modules together: it only delays the circle
until the function runs (issue 30: _line_profiler, _report and _memory_usage had one hidden that
way). Subpackages (mprofxx/commands) are counted too."""

from __future__ import annotations

import ast
from pathlib import Path

PYTHON = Path(__file__).resolve().parents[2] / "python"
PACKAGES = ("memory_profilerxx", "objgraphxx", "mprofxx")


def module_files(root: Path = PYTHON, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if path.stem == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports anywhere in its file (functions included)."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = anchor + ("." + node.module if node.module else "")
            for alias in node.names:
                deps.add(base + "." + alias.name if base + "." + alias.name in known else base)
        elif isinstance(node, ast.Import):
            deps.update(alias.name for alias in node.names)
    return {d for d in deps if d in known and d != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as the modules along it, or None."""
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        if state.get(name) == "done":
            return None
        if state.get(name) == "open":
            return path[path.index(name):] + [name]
        state[name] = "open"
        for dep in sorted(graph[name]):
            cycle = visit(dep, path + [name])
            if cycle:
                return cycle
        state[name] = "done"
        return None

    for name in graph:
        cycle = visit(name, [])
        if cycle:
            return cycle
    return None


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    return {n: imports_of(n, p, known) for n, p in known.items()}


def test_no_import_cycle_between_the_packages_files() -> None:
    known = module_files()
    assert len(known) > 25
    assert "mprofxx.commands.run" in known and "mprofxx.commands" in known
    cycle = find_cycle(import_graph(known))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_an_import_inside_a_function_closes_a_cycle(tmp_path: Path) -> None:
    # Given two modules that import each other, one of them only inside a function,
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def late():\n    from pkg.a import x\n    from . import a\n")
    # when the graph is made, then the function's import counts and the cycle is found.
    known = module_files(tmp_path, ("pkg",))
    assert imports_of("pkg.b", package / "b.py", known) == {"pkg.a"}
    assert find_cycle(import_graph(known)) == ["pkg.a", "pkg.b", "pkg.a"]
