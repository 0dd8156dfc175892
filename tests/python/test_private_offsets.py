"""The private offsets the compat layer reads (thread state, interpreter frame, code object,
generator, the runtime's interpreter list, the collector's state), checked at import against the
running interpreter's own _Py_DebugOffsets (3.13+): a mismatch turns on the public path where
one exists (the heap walk through PyUnstable_GC_VisitObjects) and otherwise refuses the import
in one line naming the field and both offsets. 3.11 and 3.12 publish no table: nothing to compare.
"""
from __future__ import annotations

import gc
import sys

import pytest

import _memxx
import objgraphxx

HAS_TABLE = sys.version_info >= (3, 13)
needs_table = pytest.mark.skipif(not HAS_TABLE, reason="_Py_DebugOffsets is 3.13+")


def refusal(field: str, published: int, compiled: int) -> str:
    return ("memory-profilerxx was built against another layout of this CPython's private "
            f"structures: {field} is {published} in the running interpreter's _Py_DebugOffsets "
            f"but {compiled} in the headers it was built with; reinstall it from source with "
            "this interpreter")


def compiled_offsets() -> dict[str, tuple[int, int]]:
    return {field: (compiled, public) for field, compiled, _, public in _memxx._private_offsets()}


def test_the_running_interpreter_publishes_every_offset_compiled_in():
    offsets = _memxx._private_offsets()
    if not HAS_TABLE:
        assert offsets == []  # nothing to compare: the module imported unchecked
        return
    fields = {field for field, *_ in offsets}
    assert {"thread_state.current_frame", "interpreter_frame.instr_ptr",
            "interpreter_frame.executable", "code_object.co_code_adaptive",
            "runtime_state.interpreters_head", "interpreter_state.gc"} <= fields
    if sys.version_info >= (3, 14):
        assert {"gen_object.gi_iframe", "gen_object.gi_frame_state"} <= fields
    assert [(f, c, p) for f, c, p, _ in offsets if c != p] == []
    # So the import turned no public path on: the heap walk reads the collector's lists.
    assert _memxx._gc_public_walk(False) is False


@needs_table
def test_a_moved_frame_field_refuses_the_import_in_one_line():
    compiled, _ = compiled_offsets()["interpreter_frame.instr_ptr"]
    with pytest.raises(ImportError) as refused:
        _memxx._check_offsets_altered("interpreter_frame.instr_ptr", compiled + 8)
    assert str(refused.value) == refusal("interpreter_frame.instr_ptr", compiled + 8, compiled)


@needs_table
def test_every_field_without_a_public_path_refuses_and_names_itself():
    for field, (compiled, public) in compiled_offsets().items():
        if public:
            continue
        with pytest.raises(ImportError) as refused:
            _memxx._check_offsets_altered(field, compiled + 16)
        assert str(refused.value) == refusal(field, compiled + 16, compiled), field


@needs_table
@pytest.mark.parametrize("field", ["interpreter_state.gc", "gc.size"])
def test_a_changed_collector_state_turns_on_the_public_heap_walk(field):
    compiled, public = compiled_offsets()[field]
    assert public == _memxx.PUBLIC_GC_WALK
    assert _memxx._check_offsets_altered(field, compiled + 8) == _memxx.PUBLIC_GC_WALK
    assert _memxx._check_offsets_altered(field, compiled) == 0


class Marker:
    pass


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PyUnstable_GC_VisitObjects is 3.12+")
def test_the_public_heap_walk_finds_what_the_lists_hold():
    made = [Marker() for _ in range(321)]
    gc.collect()
    markers_by_lists = objgraphxx.count("Marker")
    # Nothing tracked is made between the two counts (ints and bools are not tracked).
    tracked_by_lists = _memxx.gc_tracked_count()
    _memxx._gc_public_walk(True)
    try:
        tracked_by_visitor = _memxx.gc_tracked_count()
        markers_by_visitor = objgraphxx.count("Marker")
    finally:
        _memxx._gc_public_walk(False)
    assert markers_by_lists == markers_by_visitor == len(made)
    # The visitor shows the permanent generation (gc.freeze()) from 3.14 on only.
    unseen = gc.get_freeze_count() if sys.version_info < (3, 14) else 0
    assert tracked_by_visitor == tracked_by_lists - unseen


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PyUnstable_GC_VisitObjects is 3.12+")
def test_frozen_objects_and_the_public_heap_walk():
    # Given objects frozen by gc.freeze(), the lists show them on every version; the visitor
    # from 3.14 on only (which is why the lists stay the walk where they are readable).
    frozen = [Marker() for _ in range(57)]
    gc.freeze()
    try:
        by_lists = objgraphxx.count("Marker")
        _memxx._gc_public_walk(True)
        try:
            by_visitor = objgraphxx.count("Marker")
        finally:
            _memxx._gc_public_walk(False)
    finally:
        gc.unfreeze()
    assert by_lists == len(frozen)
    assert by_visitor == (len(frozen) if sys.version_info >= (3, 14) else 0)
