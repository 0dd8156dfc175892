"""No import circle between the files of the three packages: each module's module-level imports
of other project modules form a graph without a cycle (imports inside functions are left out:
they run after both modules have loaded). objgraphxx, split by job, has none even counting
the imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

PYTHON = Path(__file__).resolve().parents[2] / "python"
PACKAGES = ("memory_profilerxx", "objgraphxx", "mprofxx")


def module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((PYTHON / package).glob("*.py")):
            name = package if path.stem == "__init__" else package + "." + path.stem
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path], everywhere: bool) -> set[str]:
    """The project modules `name` imports: at module level, or `everywhere` in the file."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    statements: list[ast.AST] = []
    if everywhere:
        statements = list(ast.walk(tree))
    else:
        for node in tree.body:
            statements += node.body if isinstance(node, ast.Try) else [node]
    deps = set()
    for node in statements:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1:
                base = package + ("." + node.module if node.module else "")
            for alias in node.names:
                deps.add(base + "." + alias.name if base + "." + alias.name in known else base)
        elif isinstance(node, ast.Import):
            deps.update(alias.name for alias in node.names)
    return {d for d in deps if d in known and d != name}


def assert_acyclic(graph: dict[str, set[str]]) -> None:
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import cycle: " + " -> ".join(path + [name])
        state[name] = "open"
        for dep in sorted(graph[name]):
            visit(dep, path + [name])
        state[name] = "done"

    for name in graph:
        visit(name, [])


def test_no_import_cycle_between_the_packages_files() -> None:
    known = module_files()
    assert len(known) > 25
    assert_acyclic({n: imports_of(n, p, known, everywhere=False) for n, p in known.items()})


def test_no_import_cycle_between_objgraphxx_modules_even_inside_functions() -> None:
    known = {n: p for n, p in module_files().items() if n.startswith("objgraphxx.")}
    assert_acyclic({n: imports_of(n, p, known, everywhere=True) for n, p in known.items()})
