"""The running peak recorder's figures as a :class:`~_memxx_shared.peak_file.PeakTable`.

The recorder (``_memxx.peak_start``, started by memory_profilerxx's ``peak_report``, by
``mprofxx run --peak`` in each recorded process, or by ``mprofxx attach --peak`` in its target)
tags every block with the Python stack that allocated it. :func:`capture` reads its stacks as
they stood at the peak, names their frames, and cuts the smallest into one row when asked.
"""

from __future__ import annotations

import os
import time
from typing import Any

import _memxx

from _memxx_shared.peak_file import CUT_PREFIX, Frame, PeakStack, PeakTable, is_library

#: This project's packages beside this one: their frames are the profiler's, not the program's.
_OWN_PACKAGES = ("_memxx_shared", "memory_profilerxx", "mprofxx")


def library_paths() -> list[str]:
    """This interpreter's standard library and package folders, and this project's packages."""
    import sysconfig

    paths = sysconfig.get_paths()
    found = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    packages = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found.update(os.path.join(packages, name) for name in _OWN_PACKAGES)
    return sorted(os.path.join(path, "") for path in found)


def _code_name(code: Any) -> str:
    return str(getattr(code, "co_qualname", code.co_name))


def capture(start_time: float = 0.0, parent: int | None = None, cmdline: str = "",
            runner_files: frozenset[str] = frozenset(), *, merge_below: float = 0.0,
            keep: int | None = None, cut_reason: str = "", run: str = "",
            with_kept: bool = False) -> PeakTable:
    """The running recorder's figures as a PeakTable (the recorder keeps running).

    Outermost frames in ``runner_files`` (the code that started the program) are left out.
    Stacks holding less than ``merge_below`` of the peak, and those beyond the ``keep`` largest,
    are cut into one row (``cut_reason`` says why; by default: their share). ``with_kept``: the
    table's ``kept`` lists the bytes each stack still holds now.
    """
    paths: list[str] = []  # made after the report is taken: its allocations are not in it

    def library(filename: str) -> bool:
        if not paths:
            paths.extend(library_paths())
        return is_library(filename, paths)

    grouped = merge_below > 0 and keep is None
    report = _memxx.peak_report(-1 if keep is None else keep, with_kept,
                                merge_below=merge_below if grouped else 0.0,
                                is_library=library if grouped else None)
    nodes = report["nodes"]
    rows = report["at_peak"]
    peak_bytes = report["peak_bytes"]
    cut_stacks = report["cut_rows"] + report["left_rows"]
    cut_bytes = report["cut_bytes"] + report["left_bytes"]
    if keep is not None:
        rows.sort(key=lambda row: -row[0])
        kept = min(keep, len(rows))
        while kept and rows[kept - 1][0] < merge_below * peak_bytes:
            kept -= 1
        cut_stacks += len(rows) - kept
        cut_bytes += sum(row[0] for row in rows[kept:])
        del rows[kept:]
    names: dict[int, tuple[str, str]] = {}
    # node -> (its stack innermost first, outer frames left out); only the nodes the kept
    # stacks go through are resolved.
    resolved: dict[int, tuple[tuple[Frame, ...], bool]] = {-1: ((), False), -2: ((), True)}

    def resolve(node: int) -> tuple[tuple[Frame, ...], bool]:
        path = []
        while node not in resolved:
            path.append(node)
            node = nodes[node][0]
        frames, cut = resolved[node]
        for step in reversed(path):
            _up, code, line = nodes[step]
            name = _frame_name(code, names)
            if frames or cut or name[0] not in runner_files:
                frames = ((name[0], name[1], line),) + frames
            resolved[step] = (frames, cut)
        return frames, cut

    stacks = []
    for size, node in rows:
        if node < 0:
            stacks.append(PeakStack(size, (), node == -2))
            continue
        frames, cut = resolve(node)
        stacks.append(PeakStack(size, frames, cut))
    # The smaller stacks of one line (the same frames up to the program's own innermost one) add
    # up (grouped by _memxx): a line at or above the floor keeps its bytes, with the frames its
    # stacks share, so that every line shown holds what it held; the other lines are cut.
    for size, line_node, shared in report["groups"]:
        own: Frame
        if line_node < 0:
            own = ("<no Python frame>", "", line_node)
        else:
            _up, code, line = nodes[line_node]
            own = _frame_name(code, names) + (line,)
        frames, cut = resolve(shared)
        if own not in frames:  # the line's stacks part above it: the line under their caller
            frames = (own,) + frames
        stacks.append(PeakStack(size, frames, cut))
    # The bytes each stack still holds now (what the code kept), for the pytest plugin's leaks.
    kept_stacks = [PeakStack(size, (), node == -2) if node < 0 else PeakStack(size, *resolve(node))
                   for size, node in report.get("live_now", ())]
    del resolved, rows, nodes
    reason = cut_reason or f"below {100 * merge_below:g} % of the peak"
    if cut_stacks:
        label = f"{CUT_PREFIX}{cut_stacks:,} smaller stack{'s' if cut_stacks > 1 else ''}, {reason})"
        stacks.append(PeakStack(cut_bytes, ((label, "", 0),)))
    return PeakTable(
        pid=os.getpid(),
        peak_bytes=peak_bytes,
        peak_time=report["peak_time"] or time.time(),
        stacks=stacks,
        current_bytes=report["current_bytes"],
        start_time=start_time,
        parent=parent,
        cmdline=cmdline,
        live_blocks=report["live_blocks"],
        block_table_bytes=report["block_table_bytes"],
        stack_table_bytes=report["stack_table_bytes"],
        peak_live_blocks=report["peak_live_blocks"],
        peak_block_table_bytes=report["peak_block_table_bytes"],
        library_paths=paths or library_paths(),
        run=run,
        cut_stacks=cut_stacks,
        cut_bytes=cut_bytes,
        cut_reason=reason if cut_stacks else "",
        kept=kept_stacks,
    )


def _frame_name(code: Any, names: dict[int, tuple[str, str]]) -> tuple[str, str]:
    name = names.get(id(code))
    if name is None:
        name = names[id(code)] = (code.co_filename, _code_name(code))
    return name
