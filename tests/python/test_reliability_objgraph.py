"""objgraphxx on hostile heaps: a 1 M-long linked list, objects whose __repr__ raises or hangs,
objects whose __class__ lies, and unittest.mock objects. Nothing may crash, recurse out of
stack, hang, or be miscounted."""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import threading
import time
from unittest import mock

import objgraphxx as objgraph
import pytest

CHAIN_LENGTH = 1_000_000


class ChainLink:
    __slots__ = ("__weakref__", "next")

    def __init__(self, next_link):
        self.next = next_link


@pytest.fixture(scope="module")
def long_chain():
    head = None
    for _ in range(CHAIN_LENGTH):
        head = ChainLink(head)
    tail = head
    while tail.next is not None:
        tail = tail.next
    yield head, tail
    # Freeing a 1 M-deep chain must not overflow the C stack either (the trashcan bounds it).
    del head, tail


def test_a_million_long_linked_list_is_counted_and_walked(long_chain):
    head, tail = long_chain
    assert objgraph.count("ChainLink") == CHAIN_LENGTH
    out = io.StringIO()
    objgraph.show_most_common_types(limit=3, file=out)
    assert f"ChainLink {CHAIN_LENGTH}" in " ".join(out.getvalue().split())
    objgraph.show_growth(limit=1, file=io.StringIO())
    # Backwards from the tail the head is 1 M links away, but found through a shortcut (its
    # class, our frame): the search ends, within max_depth.
    back = objgraph.find_backref_chain(tail, lambda x: x is head, max_depth=50)
    assert back[0] is head and back[-1] is tail and len(back) <= 51
    del back
    # Forwards from the head to the tail: a 1 M-step chain, found without recursion.
    # Ignoring the class leaves the links as the only path.
    chain = objgraph.find_ref_chain(
        head, lambda x: x is tail, max_depth=CHAIN_LENGTH + 1, extra_ignore=[id(ChainLink)]
    )
    assert chain[0] is head and chain[-1] is tail
    assert len([x for x in chain if type(x) is ChainLink]) == CHAIN_LENGTH
    del chain
    dot = io.StringIO()
    objgraph.show_refs([head], max_depth=30, output=dot)
    assert dot.getvalue().count("ChainLink") >= 29
    if hasattr(objgraph, "retained_size"):
        # Everything but the tail, which our own variable keeps alive too.
        assert objgraph.retained_size(head) == (CHAIN_LENGTH - 1) * sys.getsizeof(tail)


HELD: dict[str, object] = {}


class RaisingRepr:
    def __repr__(self):
        raise RuntimeError("repr refused")


class HangingRepr:
    def __repr__(self):
        while True:
            time.sleep(0.01)


class LyingClass:
    @property
    def __class__(self):
        return int


def test_raising_repr_gives_a_placeholder_label():
    holder = {"r": RaisingRepr()}
    dot = io.StringIO()
    objgraph.show_backrefs([holder["r"]], max_depth=2, output=dot)
    assert "(unrepresentable)" in dot.getvalue()
    objgraph.show_refs([holder], max_depth=2, output=io.StringIO())


def test_hanging_repr_never_blocks_the_counting_and_searching_functions():
    # Only graph labels call repr (as objgraph does); everything else must finish at once.
    keep = [HangingRepr() for _ in range(100)]
    done = threading.Event()
    result = {}

    def work():
        result["count"] = objgraph.count("HangingRepr")
        objgraph.show_most_common_types(limit=5, file=io.StringIO())
        objgraph.show_growth(file=io.StringIO())
        result["by_type"] = len(objgraph.by_type("HangingRepr"))
        result["chain"] = objgraph.find_backref_chain(keep[0], objgraph.is_proper_module)
        result["leaking"] = len(objgraph.get_leaking_objects()) >= 0
        done.set()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    assert done.wait(120), "an objgraphxx call hung on an object whose __repr__ hangs"
    assert result["count"] == 100 and result["by_type"] == 100
    assert type(result["chain"][0]).__name__ == "module"


def test_lying_class_is_counted_by_its_real_type():
    liars = [LyingClass() for _ in range(50)]
    assert isinstance(liars[0], int)  # what isinstance believes
    assert objgraph.count("LyingClass") == 50
    assert len(objgraph.by_type("LyingClass")) == 50
    stats = objgraph.typestats(shortnames=False)
    assert stats[f"{__name__}.LyingClass"] == 50
    dot = io.StringIO()
    objgraph.show_backrefs([liars[0]], max_depth=2, output=dot)
    assert "LyingClass" in dot.getvalue()


def test_mocks_answer_every_attribute_and_are_still_handled():
    mocks = [mock.MagicMock(name=f"m{i}") for i in range(20)]
    mocks.append(mock.NonCallableMock(spec=dict))
    HELD["mocks"] = mocks  # a module global holds them: the chain search has a path
    before = sum(len(m.mock_calls) for m in mocks[:20])
    assert objgraph.count("MagicMock") == 20
    objgraph.show_most_common_types(file=io.StringIO())
    chain = objgraph.find_backref_chain(mocks[0], objgraph.is_proper_module)
    assert type(chain[0]).__name__ == "module" and chain[-1] is mocks[0]
    dot = io.StringIO()
    objgraph.show_backrefs(mocks[:2], max_depth=3, output=dot)
    objgraph.show_refs([mocks[0]], max_depth=2, output=io.StringIO())
    assert "MagicMock" in dot.getvalue()
    # The walk called nothing on the mocks (a call would be recorded).
    assert sum(len(m.mock_calls) for m in mocks[:20]) == before
    del HELD["mocks"]
    gc.collect()


FREE_LIST_SCRIPT = """
import asyncio, gc, sys
import objgraphxx

async def work():
    await asyncio.sleep(0.001)

async def main():
    await asyncio.create_task(work())

asyncio.run(main())
chain = objgraphxx.find_ref_chain(sys.modules["_asyncio"], lambda x: False, max_depth=3)
del chain
gc.get_referrers(object())  # loops forever once a free list has been made circular
print("ok")
"""


def test_a_traverse_that_visits_free_list_memory_does_not_corrupt_it():
    # CPython 3.12.0-3.12.4 (gh-122695): _asyncio's module traverse visits FutureIter objects
    # that are already on its free list; a chain search that took references to them freed
    # them twice. In a subprocess: the failure mode is a hang.
    done = subprocess.run(
        [sys.executable, "-c", FREE_LIST_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
