"""The runnable examples in mprofxx's docstrings are tests too, as memory_profilerxx's and
objgraphxx's."""

import doctest
import importlib

import pytest

MODULES = ["mprofxx", "mprofxx._flame", "mprofxx._plot", "mprofxx._profiles", "mprofxx._thinning"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    pytest.importorskip("matplotlib")  # mprofxx._plot's examples import it
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def test_every_module_with_examples_is_listed() -> None:
    import pkgutil

    import mprofxx

    with_examples = []
    for info in pkgutil.iter_modules(mprofxx.__path__, "mprofxx."):
        if info.name == "mprofxx.__main__":  # importing it runs the command line
            continue
        tests = doctest.DocTestFinder().find(importlib.import_module(info.name))
        if any(not e.options.get(doctest.SKIP) for t in tests for e in t.examples):
            with_examples.append(info.name)
    assert sorted(["mprofxx", *with_examples]) == sorted(MODULES)
