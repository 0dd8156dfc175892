"""Flame graphs of the memory live at the peak: one self-contained HTML page (or an SVG).

The root is the whole peak; below it each call stack's frames, outermost first, a box per frame
as wide as the bytes its callees and its own line held at the peak. The HTML page needs no
network: the tree is embedded as JSON and drawn by a few lines of inline script; hovering a box
shows its file:line, bytes and share, clicking one zooms to it, clicking the root zooms out.

>>> from _memxx_shared.peak_file import PeakStack, PeakTable
>>> table = PeakTable(pid=1, peak_bytes=3 << 20, peak_time=0.0, stacks=[
...     PeakStack(2 << 20, (("a.py", "load", 7), ("a.py", "<module>", 1))),
...     PeakStack(1 << 20, (("a.py", "<module>", 2),))])
>>> tree = build_tree(table)
>>> tree["b"], [(child["n"], child["f"], child["b"]) for child in tree["c"]]
(3145728, [('<module>', 'a.py:1', 2097152), ('<module>', 'a.py:2', 1048576)])
>>> "<svg" in flame_svg(table, "peak")
True
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from _memxx import MIB

from _memxx_shared.names import short_path, xml_chars, xml_text
from _memxx_shared.peak_file import PeakTable, iter_frames

ROW_HEIGHT = 18


def build_tree(table: PeakTable) -> dict[str, Any]:
    """The stacks merged into a tree: ``{"n": name, "f": "file:line", "b": bytes, "c": [...]}``."""
    root: dict[str, Any] = {"n": "all", "f": "", "b": 0, "c": [], "_k": {}}
    for frames, size in iter_frames(table):
        node = root
        node["b"] += size
        for filename, function, line in frames:
            key = (filename, function, line)
            child = node["_k"].get(key)
            if child is None:
                where = f"{short_path(filename)}:{line}" if line else filename
                # Controls and undecodable bytes shown as \xNN, in the page as in the SVG.
                child = {"n": xml_chars(function), "f": xml_chars(where), "b": 0, "c": [],
                         "_k": {}}
                node["_k"][key] = child
                node["c"].append(child)
            child["b"] += size
            node = child
    # A loop, not recursion: a stack may be thousands of frames deep.
    for node in _preorder(root):
        del node["_k"]
        node["c"].sort(key=lambda child: -child["b"])
    return root


def _preorder(root: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each node of the tree, a parent before its children, children in their order."""
    todo = [root]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(reversed(node["c"]))


def flat_nodes(tree: dict[str, Any]) -> list[list[Any]]:
    """The tree as ``[parent index, name, file:line, bytes]`` rows in preorder (root: -1).

    >>> flat_nodes({"n": "all", "f": "", "b": 3, "c": [{"n": "f", "f": "a.py:1", "b": 3, "c": []}]})
    [[-1, 'all', '', 3], [0, 'f', 'a.py:1', 3]]
    """
    rows: list[list[Any]] = []
    todo: list[tuple[dict[str, Any], int]] = [(tree, -1)]
    while todo:
        node, parent = todo.pop()
        at = len(rows)
        rows.append([parent, node["n"], node["f"], node["b"]])
        todo.extend((child, at) for child in reversed(node["c"]))
    return rows


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 13px sans-serif; margin: 12px; }}
#info {{ height: 1.4em; margin: 6px 0; white-space: nowrap; overflow: hidden; }}
#chart {{ position: relative; width: 100%; }}
.box {{ position: absolute; height: {row}px; box-sizing: border-box; overflow: hidden;
  white-space: nowrap; border: 1px solid #fff; padding: 1px 3px; cursor: pointer;
  font-size: 12px; background: hsl(var(--hue), 75%, 70%); }}
.box:hover {{ filter: brightness(0.9); }}
</style></head>
<body><h3 id="title">{title}</h3>
<div id="info">Hover a box for its line and bytes; click to zoom, click the top box to zoom out.</div>
<div id="chart"></div>
<script id="peak-data" type="application/json">{data}</script>
<script>
"use strict";
const rows = JSON.parse(document.getElementById("peak-data").textContent);
// Rows are [parent, name, file:line, bytes] in preorder: rebuild the tree (no recursion, so a
// stack thousands of frames deep draws as any other).
const nodes = rows.map((r, i) => ({{i: i, n: r[1], f: r[2], b: r[3], c: []}}));
rows.forEach((r, i) => {{ if (r[0] >= 0) nodes[r[0]].c.push(nodes[i]); }});
const tree = nodes[0];
const chart = document.getElementById("chart");
const info = document.getElementById("info");
const total = tree.b || 1;
function mib(b) {{ return (b / {mib}).toFixed(1) + " MiB"; }}
function describe(node) {{
  return node.n + (node.f ? "  " + node.f : "") + "  " + mib(node.b) + "  " +
    (100 * node.b / total).toFixed(1) + " %";
}}
function draw(top) {{
  let deepest = 0;
  const todo = [[top, 0, 0, 100]];
  while (todo.length) {{
    const [node, depth, left, width] = todo.pop();
    if (width < 0.05) continue;
    const box = document.createElement("div");
    box.className = "box";
    box.style.left = left + "%";
    box.style.width = width + "%";
    box.style.top = (depth * {row}) + "px";
    box.style.setProperty("--hue", depth === 0 ? 0 : 20 + (depth * 37) % 40);
    box.textContent = node.n + (node.f ? " " + node.f : "");
    box.title = describe(node);
    box.dataset.node = node.i;
    box.addEventListener("mouseenter", () => {{ info.textContent = describe(node); }});
    box.addEventListener("click", () => {{ zoom(depth === 0 && shown !== tree ? tree : node); }});
    chart.appendChild(box);
    deepest = Math.max(deepest, depth);
    let at = left;
    const placed = [];
    for (let i = 0; i < node.c.length; i++) {{
      const share = width * node.c[i].b / (node.b || 1);
      placed.push([node.c[i], depth + 1, at, share]);
      at += share;
    }}
    todo.push(...placed.reverse());
  }}
  return deepest;
}}
let shown = tree;
function zoom(node) {{
  shown = node;
  chart.textContent = "";
  const deepest = draw(node);
  chart.style.height = ((deepest + 1) * {row}) + "px";
  info.textContent = describe(node);
}}
zoom(tree);
</script></body></html>
"""


def flame_html(table: PeakTable, title: str) -> str:
    """The flame graph as one HTML page with no outside reference."""
    # Script data: no "<" at all, so neither "</script" nor "<!--<script" (which would swallow
    # the rest of the page) can appear; JSON.parse reads \\u003c back as "<".
    text = json.dumps(flat_nodes(build_tree(table)), separators=(",", ":"))
    data = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _PAGE.format(title=xml_text(title), data=data, row=ROW_HEIGHT, mib=MIB)


def flame_svg(table: PeakTable, title: str, width: int = 1200) -> str:
    """The flame graph as a static SVG (a box's tooltip gives its line, bytes and share)."""
    tree = build_tree(table)
    total = tree["b"] or 1
    boxes: list[str] = []
    deepest = 0
    todo: list[tuple[dict[str, Any], int, float, float]] = [(tree, 0, 0.0, float(width))]
    while todo:  # a loop, not recursion: a stack may be thousands of frames deep
        node, depth, left, span = todo.pop()
        if span < 0.5:
            continue
        deepest = max(deepest, depth)
        y = 30 + depth * ROW_HEIGHT
        label = node["n"] + (" " + node["f"] if node["f"] else "")
        tip = f"{label}  {node['b'] / MIB:.1f} MiB  {100 * node['b'] / total:.1f} %"
        hue = 0 if depth == 0 else 20 + (depth * 37) % 40
        shown = xml_text(label[: max(0, int(span / 7))])
        boxes.append(
            f'<g><title>{xml_text(tip)}</title><rect x="{left:.1f}" y="{y}" '
            f'width="{span:.1f}" height="{ROW_HEIGHT - 1}" fill="hsl({hue},75%,70%)"/>'
            f'<text x="{left + 3:.1f}" y="{y + 13}">{shown}</text></g>'
        )
        at = left
        placed = []
        for child in node["c"]:
            share = span * child["b"] / (node["b"] or 1)
            placed.append((child, depth + 1, at, share))
            at += share
        todo.extend(reversed(placed))
    height = 40 + (deepest + 1) * ROW_HEIGHT
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">'
        f'<text x="0" y="18" font-size="15">{xml_text(title)}</text>' + "".join(boxes) + "</svg>"
    )
