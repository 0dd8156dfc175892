"""objgraphxx against ground truth and against objgraph itself (same inputs, same output)."""

from __future__ import annotations

import gc
import io
import re
import struct
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import objgraphxx

objgraph = pytest.importorskip("objgraph")


def fresh_class(name: str = "Planted", module: str = "planted_mod") -> type:
    return type(name, (), {"__module__": module})


# -- counting -------------------------------------------------------------------------------


def test_count_typestats_by_type_are_exact_for_objects_we_create() -> None:
    cls = fresh_class("ExactCount")
    made = [cls() for _ in range(1234)]
    assert objgraphxx.count("ExactCount") == 1234
    assert objgraphxx.count("planted_mod.ExactCount") == 1234
    assert objgraphxx.typestats(shortnames=False)["planted_mod.ExactCount"] == 1234
    found = objgraphxx.by_type("ExactCount")
    assert len(found) == 1234 and {id(o) for o in found} == {id(o) for o in made}
    del made[:1000], found
    assert objgraphxx.count("ExactCount") == 234


def test_frozen_objects_are_counted_and_found_as_referrers() -> None:
    cls = fresh_class("Frozen")
    keep = [cls() for _ in range(50)]
    holder = {"frozen": keep}
    gc.freeze()
    try:
        assert objgraphxx.count("Frozen") == 50
        assert objgraph.count("Frozen") == 0  # objgraph cannot see the permanent generation
        chain = objgraphxx.find_backref_chain(keep[0], lambda o: o is holder)
        assert chain[0] is holder and chain[1] is keep and chain[-1] is keep[0]
    finally:
        gc.unfreeze()


def test_typestats_equals_objgraph_on_the_same_objects_including_order() -> None:
    cls = fresh_class("Mixed")
    objects = [[], {}, cls(), (1, []), cls(), [], set(), cls()]
    for shortnames in (True, False):
        ours = objgraphxx.typestats(objects, shortnames=shortnames)
        theirs = objgraph.typestats(objects, shortnames=shortnames)
        assert list(ours.items()) == list(theirs.items())
    flt = lambda o: not isinstance(o, list)  # noqa: E731
    assert objgraphxx.typestats(objects, filter=flt) == objgraph.typestats(objects, filter=flt)
    assert objgraphxx.most_common_types(2, objects) == [("list", 2), ("Mixed", 3)][::-1]


def test_show_most_common_types_prints_the_same_text_as_objgraph() -> None:
    cls = fresh_class("AVeryLongClassNameForWidth")
    objects = [cls() for _ in range(12)] + [[] for _ in range(3)] + [{}]
    ours, theirs = io.StringIO(), io.StringIO()
    objgraphxx.show_most_common_types(objects=objects, file=ours)
    objgraph.show_most_common_types(objects=objects, file=theirs)
    assert ours.getvalue() == theirs.getvalue() == (
        "AVeryLongClassNameForWidth 12\nlist                       3\n"
        "dict                       1\n"
    )


# -- growth and new ids ---------------------------------------------------------------------


def test_growth_reports_exact_deltas_and_show_growth_matches_objgraph_format() -> None:
    cls = fresh_class("Grower")
    peaks: dict[str, int] = {}
    objgraphxx.growth(limit=None, peak_stats=peaks)
    keep = [cls() for _ in range(7)]
    rows = [r for r in objgraphxx.growth(limit=None, peak_stats=peaks) if r[0] == "Grower"]
    assert rows == [("Grower", 7, 7)]
    keep += [cls() for _ in range(3)]
    out = io.StringIO()
    objgraphxx.show_growth(peak_stats=peaks, file=out, filter=lambda o: type(o) is cls)
    assert out.getvalue() == "%-*s%9d %+9d\n" % (6, "Grower", 10, 3)
    del keep[:]
    assert [r for r in objgraphxx.growth(limit=None, peak_stats=peaks) if r[0] == "Grower"] == []


def test_growth_collect_false_sees_cyclic_garbage() -> None:
    cls = fresh_class("Cyclic")
    peaks: dict[str, int] = {}
    objgraphxx.growth(limit=None, peak_stats=peaks)
    gc.disable()
    try:
        for _ in range(5):
            a = cls()
            a.me = a
        del a
        no_collect = dict((n, d) for n, _, d in objgraphxx.growth(None, peaks, collect=False))
        assert no_collect.get("Cyclic") == 5
    finally:
        gc.enable()
    gc.collect()
    assert objgraphxx.count("Cyclic") == 0


def test_get_new_ids_finds_new_objects_with_small_state() -> None:
    objgraphxx.get_new_ids(limit=0)
    cls = fresh_class("Newcomer")
    keep = [cls() for _ in range(20)]
    out = io.StringIO()
    new = objgraphxx.get_new_ids(limit=None, file=out)
    assert new["Newcomer"] == {id(o) for o in keep}
    row = [line for line in out.getvalue().splitlines() if line.startswith("Newcomer ")]
    assert re.fullmatch(r"Newcomer +0 +20 +\+20 +\+20", row[0])
    again = objgraphxx.get_new_ids(limit=0)
    assert again["Newcomer"] == set()
    state = objgraphxx.get_new_ids.__defaults__[-1]["tracker"]
    assert state.retained_bytes <= 16 * len(gc.get_objects()) + 16 * 1024


def test_get_new_ids_rejects_unknown_sort_column() -> None:
    with pytest.raises(KeyError, match="sortby must be one of"):
        objgraphxx.get_new_ids(sortby="size")


# -- leaks, lookups, referrers ----------------------------------------------------------------


# objgraph.get_leaking_objects calls gc.get_referents on every object; on CPython 3.12.0-3.12.4
# that double-frees asyncio's FutureIter free list once asyncio has run (gh-122695), and the
# next gc.get_referrers loops forever. test_mp_shapes runs asyncio earlier in this process.
def test_get_leaking_objects_equals_objgraph_on_a_planted_set() -> None:
    if (3, 12) <= sys.version_info[:3] < (3, 12, 5) and "_asyncio" in sys.modules:
        pytest.skip("CPython gh-122695: objgraph's gc.get_referents sweep corrupts asyncio")
    cls = fresh_class("Leaky")
    held = [cls() for _ in range(3)]
    loose = [cls() for _ in range(4)]
    candidates = held + loose
    box = {"held": held}
    ours = objgraphxx.get_leaking_objects(candidates)
    theirs = objgraph.get_leaking_objects(candidates)
    assert ours == theirs
    assert box["held"] is held


def test_at_and_at_addrs() -> None:
    x, y = [1], {"a": []}
    assert objgraphxx.at(id(x)) is x
    assert objgraphxx.at(id("not tracked")) is None
    assert objgraphxx.at_addrs([id(x), id(y), 12345]) in ([x, y], [y, x])


def test_analysis_adds_no_referrers_to_user_objects() -> None:
    cls = fresh_class("Observed")
    x = cls()
    holder = [x]
    before = len(gc.get_referrers(x))
    objgraphxx.count("Observed")
    objgraphxx.typestats()
    objgraphxx.by_type("Observed")
    objgraphxx.get_leaking_objects()
    objgraphxx.find_backref_chain(x, lambda o: o is holder)
    objgraphxx.show_backrefs([x], output=io.StringIO())
    assert len(gc.get_referrers(x)) == before


def test_backref_chain_from_a_module_global() -> None:
    mod = types.ModuleType("planted_chain_mod")
    sys.modules[mod.__name__] = mod
    try:
        cls = fresh_class("Leaf")
        leaf = cls()
        mod.registry = {"items": [leaf]}
        chain = objgraphxx.find_backref_chain(leaf, objgraphxx.is_proper_module)
        assert chain[0] is mod
        assert chain[1] is mod.__dict__
        assert chain[2:] == [mod.registry, mod.registry["items"], leaf]
        fwd = objgraphxx.find_ref_chain(mod.registry, lambda o: type(o) is cls)
        assert fwd == [mod.registry, mod.registry["items"], leaf]
    finally:
        del sys.modules[mod.__name__]


PDB_SCRIPT = textwrap.dedent(
    """
    import io, pdb, sys, types
    import objgraphxx
    mod = types.ModuleType('planted_pdb_mod')
    sys.modules['planted_pdb_mod'] = mod
    class Leaf: pass

    def work():
        leaf = Leaf()
        mod.holder = {'slot': leaf}
        cmds = io.StringIO(
            "p [type(o).__name__ for o in objgraphxx.find_backref_chain("
            "leaf, objgraphxx.is_proper_module)]\\n"
            "p objgraphxx.find_backref_chain(leaf, objgraphxx.is_proper_module)[0].__name__\\n"
            "c\\n")
        pdb.Pdb(stdin=cmds, stdout=sys.stdout).set_trace()
        return leaf

    work()
    """
)


def test_backref_chain_from_inside_pdb_does_not_go_through_the_debugger() -> None:
    run = subprocess.run([sys.executable, "-c", PDB_SCRIPT], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "['module', 'dict', 'dict', 'Leaf']" in run.stdout, run.stdout
    assert "'planted_pdb_mod'" in run.stdout, run.stdout


# -- graphs ----------------------------------------------------------------------------------


def make_structure() -> dict:
    cls = fresh_class("Node")
    root = {"name": "root", "children": [cls() for _ in range(3)], "numbers": list(range(15))}
    for i, child in enumerate(root["children"]):
        child.payload = {"index": i, "tags": ("a", "b", [i])}
    return root


def test_show_refs_dot_is_byte_identical_to_objgraph_in_strict_mode(monkeypatch) -> None:
    root = make_structure()
    monkeypatch.setattr(objgraphxx, "STRICT_DOT", True)
    for kwargs in ({}, {"too_many": 5, "max_depth": 4}, {"highlight": lambda o: type(o) is list},
                   {"extra_info": lambda o: hex(id(o))[:4], "shortnames": False}):
        ours, theirs = io.StringIO(), io.StringIO()
        objgraphxx.show_refs([root], output=ours, **kwargs)
        objgraph.show_refs([root], output=theirs, **kwargs)
        assert ours.getvalue() == theirs.getvalue()
    assert "5 more references" in ours.getvalue()


def test_edge_labels_name_list_indexes_and_attributes_without_creating_dicts() -> None:
    cls = fresh_class("Labelled")
    obj = cls()
    obj.first = [10, 20, [30]]
    referents_before = len(gc.get_referents(obj))
    out = io.StringIO()
    objgraphxx.show_refs([obj], output=out, max_depth=2)
    dot = out.getvalue()
    assert '[label="first",weight=2]' in dot
    assert '[label="[2]"]' in dot
    assert len(gc.get_referents(obj)) == referents_before
    if sys.version_info >= (3, 11):
        assert objgraphxx._memxx.gc_existing_dict(obj) is None


def test_show_backrefs_renders_a_real_png_of_the_layout_size(tmp_path: Path, capsys) -> None:
    cls = fresh_class("Pictured")
    target = cls()
    holders = [[target] for _ in range(3)]
    png = tmp_path / "graph.png"
    objgraphxx.show_backrefs([target], filename=str(png), max_depth=2,
                             filter=lambda o: any(o is h for h in holders))
    printed = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Graph written to .*objgraph-.*\.dot \(4 nodes\)", printed[0])
    assert printed[1] == "Image generated as %s" % png
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    # The same DOT rendered as SVG gives the layout size in points; PNG is at 96 dpi.
    dot = io.StringIO()
    objgraphxx.show_backrefs([target], output=dot, max_depth=2,
                             filter=lambda o: any(o is h for h in holders))
    svg = tmp_path / "graph.svg"
    objgraphxx._memxx.gc_render_dot(dot.getvalue(), "svg", str(svg))
    pt_w, pt_h = map(int, re.search(r'<svg width="(\d+)pt" height="(\d+)pt"',
                                    svg.read_text()).groups())
    assert abs(width - pt_w * 96 / 72) <= 1 and abs(height - pt_h * 96 / 72) <= 1
    assert width > 3 * 50  # three holder lists side by side


def test_bad_input_gives_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="typename must be a str"):
        objgraphxx.count(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limit must be an int"):
        objgraphxx.most_common_types(limit="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown output format 'foo'"):
        objgraphxx.show_refs([[]], filename=str(tmp_path / "graph.foo"))
    with pytest.raises(FileNotFoundError):
        objgraphxx.show_refs([[]], filename=str(tmp_path / "missing" / "graph.png"))
    with pytest.raises(FileNotFoundError):
        objgraphxx.show_refs([[]], filename=str(tmp_path / "missing" / "graph.dot"))
    with pytest.raises(ValueError, match="Cannot specify both output and filename"):
        objgraphxx.show_refs([[]], filename="x.dot", output=io.StringIO())
    with pytest.raises(ValueError, match="non-empty chain"):
        objgraphxx.show_chain([])
