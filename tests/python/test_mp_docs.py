"""The runnable examples in memory_profilerxx's docstrings are tests too."""

import doctest
import importlib

import pytest

MODULES = ["memory_profilerxx", "memory_profilerxx._line_profiler",
           "memory_profilerxx._memory_usage", "memory_profilerxx._report",
           "memory_profilerxx._timestamper", "memory_profilerxx._peak",
           "memory_profilerxx._code_lines"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
