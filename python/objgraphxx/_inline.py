"""Graphs shown inline in a Jupyter kernel: rendered in-process, no temporary file, no viewer.

``show_refs``, ``show_backrefs``, ``show_chain`` and ``why_alive`` hand their DOT text to
``InlineGraph`` when they run in a kernel without a ``filename``: it is displayed as the cell's
output at once and returned, and it displays itself again wherever it is shown later
(``_repr_svg_``, ``_repr_png_``), like the ``graphviz.Source`` objgraph returns.
"""

from __future__ import annotations

import sys

import _memxx

# The format a graph is displayed in inline: "svg" (default) or "png".
INLINE_FORMAT = "svg"


class InlineGraph:
    """An object graph for a notebook: its DOT text, rendered on demand by the linked Graphviz.

    >>> g = InlineGraph('digraph ObjectGraph { a -> b; }', nodes=2)
    >>> g
    <InlineGraph: 2 nodes, 31 bytes of DOT>
    >>> g._repr_svg_().startswith('<?xml')
    True
    """

    def __init__(self, source: str, nodes: int = 0) -> None:
        self.source = source
        self.nodes = nodes
        self._images: dict[str, bytes] = {}
        self._shown_in: int | None = None

    def render(self, fmt: str = "svg") -> bytes:
        """The graph as ``fmt`` (svg, png, pdf, ...) bytes, laid out with Graphviz dot."""
        if fmt not in self._images:
            self._images[fmt] = _memxx.gc_render_dot_data(self.source, fmt)
        return self._images[fmt]

    def _repr_svg_(self) -> str:
        return self.render("svg").decode("utf-8")

    def _repr_png_(self) -> bytes:
        return self.render("png")

    def _ipython_display_(self) -> None:
        # Shown once by the call that made it; its being the cell's last expression as well
        # must not show it a second time in the same cell.
        count = _execution_count()
        if count is not None and count == self._shown_in:
            return
        self._shown_in = count
        from IPython.display import display

        fmt = INLINE_FORMAT if INLINE_FORMAT in ("svg", "png") else "svg"
        bundle: dict[str, str | bytes] = {"text/plain": repr(self)}
        if fmt == "png":
            bundle["image/png"] = self._repr_png_()
        else:
            bundle["image/svg+xml"] = self._repr_svg_()
        display(bundle, raw=True)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        return "<InlineGraph: %d nodes, %d bytes of DOT>" % (self.nodes, len(self.source))


def _execution_count() -> int | None:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "execution_count", None)


def show_inline(source: str, nodes: int) -> InlineGraph:
    """Displays the graph as the cell's output and returns it."""
    graph = InlineGraph(source, nodes)
    graph._ipython_display_()
    return graph
