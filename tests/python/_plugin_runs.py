"""What the plugin's pytester tests share: how a session runs with our plugin alone, and the
FAILURES section of one test."""

from __future__ import annotations

import pytest

# In-process runs import the plugin once; later runs would warn that it cannot be rewritten.
PLUGIN = ("-p", "no:memray", "-p", "memory_profilerxx.pytest_plugin", "-p", "no:cacheprovider",
          "-W", "ignore::pytest.PytestAssertRewriteWarning")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, *args)


def failure_text(result: pytest.RunResult, test: str) -> str:
    """The FAILURES section of one test."""
    text = result.stdout.str()
    start = text.index(f"_ {test} _")
    end = text.find("\n___", start + 1)
    stop = text.find("short test summary", start)
    return text[start:min(e for e in (end, stop) if e > 0)]
