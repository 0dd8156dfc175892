"""No import circle between the files of the packages: each module's imports of other project
modules, at module level and inside functions alike, form a graph without a cycle. And no package
reaches into another: memory_profilerxx, mprofxx and objgraphxx import their own modules, what
they share (_memxx_shared, which imports none of them), and each other's public names only.

An import inside a function still ties the two modules together: it only delays the circle
until the function runs (issue 30: _line_profiler, _report and _memory_usage had one hidden that
way). Subpackages (mprofxx/commands) are counted too."""

from __future__ import annotations

import ast
from pathlib import Path

PYTHON = Path(__file__).resolve().parents[2] / "python"
PACKAGES = ("memory_profilerxx", "objgraphxx", "mprofxx")
#: What the three share, below them: it imports none of them.
SHARED = "_memxx_shared"


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


def reaches(graph: dict[str, set[str]], packages: tuple[str, ...] = PACKAGES,
            shared: str = SHARED) -> list[str]:
    """Each import that crosses a package's edge where it may not, as ``module -> module``:
    into another package's private (``_x``) module, or from the shared package up into one."""
    found = []
    for name, deps in sorted(graph.items()):
        home = name.split(".")[0]
        for dep in sorted(deps):
            parts = dep.split(".")
            if parts[0] == home or parts[0] not in (*packages, shared):
                continue
            private = any(part.startswith("_") for part in parts[1:])
            if home == shared or (home in packages and parts[0] != shared and private):
                found.append(f"{name} -> {dep}")
    return found


def test_no_import_cycle_between_the_packages_files() -> None:
    known = module_files(packages=(*PACKAGES, SHARED))
    assert len(known) > 25
    assert "mprofxx.commands.run" in known and "mprofxx.commands" in known
    assert "_memxx_shared.peak_file" in known
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


def test_no_package_imports_another_packages_private_module() -> None:
    graph = import_graph(module_files(packages=(*PACKAGES, SHARED)))
    assert reaches(graph) == []
    # the shared home is used from each of the three (else it has no reason to be below them)
    users = {name.split(".")[0] for name, deps in graph.items()
             if any(dep.split(".")[0] == SHARED for dep in deps)}
    assert users >= set(PACKAGES)


def test_a_reach_into_another_package_is_found(tmp_path: Path) -> None:
    # Given two packages and a shared one, where a reaches into b's private module inside a
    # function, imports b's public name, and the shared package imports a back,
    for package in ("a", "b", "shared"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "b" / "_table.py").write_text("")
    (tmp_path / "b" / "report.py").write_text("")
    (tmp_path / "shared" / "names.py").write_text("def f():\n    import a\n")
    (tmp_path / "a" / "_run.py").write_text(
        "from b import report\nfrom shared.names import f\n"
        "def late():\n    from b import _table\n    from b._table import rows\n")
    # when the rule is checked, then the private reach and the upward import are both named.
    graph = import_graph(module_files(tmp_path, ("a", "b", "shared")))
    assert reaches(graph, ("a", "b"), "shared") == ["a._run -> b._table", "shared.names -> a"]
