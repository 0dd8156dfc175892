"""Flame graphs of the memory live at the peak: one self-contained HTML page (or an SVG).

The root is the whole peak; below it each call stack's frames, outermost first, a box per frame
as wide as the bytes its callees and its own line held at the peak. The HTML page needs no
network: the tree is embedded as JSON and drawn by a few lines of inline script; hovering a box
shows its file:line, bytes and share, clicking one zooms to it, clicking the root zooms out.

>>> from memory_profilerxx._peak import PeakStack, PeakTable
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

import html
import json
from typing import Any

from _memxx import MIB
from memory_profilerxx._peak import PeakTable, iter_frames, short_path

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
                child = {"n": function, "f": where, "b": 0, "c": [], "_k": {}}
                node["_k"][key] = child
                node["c"].append(child)
            child["b"] += size
            node = child
    _finish(root)
    return root


def _finish(node: dict[str, Any]) -> None:
    del node["_k"]
    node["c"].sort(key=lambda child: -child["b"])
    for child in node["c"]:
        _finish(child)


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
const tree = JSON.parse(document.getElementById("peak-data").textContent);
const chart = document.getElementById("chart");
const info = document.getElementById("info");
const total = tree.b || 1;
function mib(b) {{ return (b / {mib}).toFixed(1) + " MiB"; }}
function describe(node) {{
  return node.n + (node.f ? "  " + node.f : "") + "  " + mib(node.b) + "  " +
    (100 * node.b / total).toFixed(1) + " %";
}}
function draw(node, depth, left, width, path) {{
  if (width < 0.05) return 0;
  const box = document.createElement("div");
  box.className = "box";
  box.style.left = left + "%";
  box.style.width = width + "%";
  box.style.top = (depth * {row}) + "px";
  box.style.setProperty("--hue", depth === 0 ? 0 : 20 + (depth * 37) % 40);
  box.textContent = node.n + (node.f ? " " + node.f : "");
  box.title = describe(node);
  box.dataset.path = path;
  box.addEventListener("mouseenter", () => {{ info.textContent = describe(node); }});
  box.addEventListener("click", () => {{ zoom(depth === 0 && shown !== tree ? tree : node); }});
  chart.appendChild(box);
  let deepest = depth, at = left;
  for (let i = 0; i < node.c.length; i++) {{
    const child = node.c[i];
    const share = width * child.b / (node.b || 1);
    deepest = Math.max(deepest, draw(child, depth + 1, at, share, path + "/" + i));
    at += share;
  }}
  return deepest;
}}
let shown = tree;
function zoom(node) {{
  shown = node;
  chart.textContent = "";
  const deepest = draw(node, 0, 0, 100, "");
  chart.style.height = ((deepest + 1) * {row}) + "px";
  info.textContent = describe(node);
}}
zoom(tree);
</script></body></html>
"""


def flame_html(table: PeakTable, title: str) -> str:
    """The flame graph as one HTML page with no outside reference."""
    data = json.dumps(build_tree(table), separators=(",", ":")).replace("</", "<\\/")
    return _PAGE.format(title=html.escape(title), data=data, row=ROW_HEIGHT, mib=MIB)


def flame_svg(table: PeakTable, title: str, width: int = 1200) -> str:
    """The flame graph as a static SVG (a box's tooltip gives its line, bytes and share)."""
    tree = build_tree(table)
    total = tree["b"] or 1
    boxes: list[str] = []
    depth_reached = [0]

    def place(node: dict[str, Any], depth: int, left: float, span: float) -> None:
        if span < 0.5:
            return
        depth_reached[0] = max(depth_reached[0], depth)
        y = 30 + depth * ROW_HEIGHT
        label = node["n"] + (" " + node["f"] if node["f"] else "")
        tip = f"{label}  {node['b'] / MIB:.1f} MiB  {100 * node['b'] / total:.1f} %"
        hue = 0 if depth == 0 else 20 + (depth * 37) % 40
        shown = html.escape(label[: max(0, int(span / 7))])
        boxes.append(
            f'<g><title>{html.escape(tip)}</title><rect x="{left:.1f}" y="{y}" '
            f'width="{span:.1f}" height="{ROW_HEIGHT - 1}" fill="hsl({hue},75%,70%)"/>'
            f'<text x="{left + 3:.1f}" y="{y + 13}">{shown}</text></g>'
        )
        at = left
        for child in node["c"]:
            share = span * child["b"] / (node["b"] or 1)
            place(child, depth + 1, at, share)
            at += share

    place(tree, 0, 0.0, float(width))
    height = 40 + (depth_reached[0] + 1) * ROW_HEIGHT
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">'
        f'<text x="0" y="18" font-size="15">{html.escape(title)}</text>' + "".join(boxes) + "</svg>"
    )
