"""objgraphxx is split by job: no module imports another's private names or the package
itself, and every module's examples run (no import cycle: test_import_cycles.py)."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import objgraphxx
import pytest

PACKAGE = Path(objgraphxx.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imports_of(module: str) -> list[tuple[str, str]]:
    """(imported module, imported name) for every import of a package module in `module`."""
    tree = ast.parse((PACKAGE / (module + ".py")).read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                source = node.module or ""
            elif node.module and node.module.split(".")[0] == "objgraphxx":
                source = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:
                found.append((source, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "objgraphxx":
                    found.append((alias.name.partition(".")[2], ""))
    return found


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_another_modules_private_names(module: str) -> None:
    private = [(src, name) for src, name in imports_of(module) if name.startswith("_") and src]
    assert private == [], "%s imports private names %s" % (module, private)


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_the_package_itself(module: str) -> None:
    assert ("", "") not in imports_of(module) and not any(
        src == "" and not name.startswith("_") for src, name in imports_of(module)
    ), module


@pytest.mark.parametrize("module", MODULES)
def test_module_examples_run(module: str) -> None:
    result = doctest.testmod(
        importlib.import_module("objgraphxx." + module), optionflags=doctest.ELLIPSIS
    )
    assert result.failed == 0 and result.attempted > 0


def test_why_alive_result_is_short_at_a_prompt() -> None:
    big = {i: list(range(100)) for i in range(1000)}
    hop = objgraphxx.Hop(".CACHE", big)
    chain = objgraphxx.AliveChain([objgraphxx.Hop("module m", None), hop])
    assert repr(hop) == "Hop(edge='.CACHE', obj=<dict (1000 items)>)"
    assert len(repr(chain)) < 80
