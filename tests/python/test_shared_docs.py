"""The runnable examples in _memxx_shared's docstrings (the home of what the three packages
share) are tests too, as the packages' own."""

import doctest
import importlib
import pkgutil

import pytest

pytest.importorskip("_memxx")

MODULES = ["_memxx_shared.names", "_memxx_shared.notebook", "_memxx_shared.peak_file",
           "_memxx_shared.spans"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def test_every_module_with_examples_is_listed() -> None:
    import _memxx_shared

    with_examples = []
    for info in pkgutil.iter_modules(_memxx_shared.__path__, "_memxx_shared."):
        tests = doctest.DocTestFinder().find(importlib.import_module(info.name))
        if any(not e.options.get(doctest.SKIP) for t in tests for e in t.examples):
            with_examples.append(info.name)
    assert sorted(with_examples) == sorted(MODULES)
