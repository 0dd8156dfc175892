"""What held the memory at the peak: the peak table, its text layout and its JSON file format.

The recorder (``_memxx.peak_start``) tags every block allocated while it runs with the Python
stack that allocated it and keeps the bytes per stack as they stood when the total was highest.
This module turns that into a :class:`PeakTable`, prints it as a table of lines, and reads and
writes it as JSON (the ``mprofile_<time>.peak.json`` files of ``mprofxx run --peak``).

>>> with peak_report() as peak:
...     held = [bytearray(1000) for _ in range(1000)]
>>> peak.table.peak_bytes >= 1000 * 1000
True
"""

from __future__ import annotations

import json
import linecache
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import _memxx
from _memxx import MIB
from mprofxx._errors import MemxxError
from mprofxx._names import short_path

#: The file format's name and version, first in every peak file. Version 2 stores the stacks as
#: a tree (each node a frame and its caller's node); version 1 files (a frame list per stack) are
#: still read.
FORMAT = "mprofxx-peak"
VERSION = 2
READABLE_VERSIONS = (1, 2)
#: The most frames the stacks of one process may add up to when read (a hostile file's deep
#: shared chain would otherwise take quadratic time and memory).
MAX_FRAMES_READ = 10_000_000

Frame = tuple[str, str, int]  # file name, function, line
#: The file name of the one frame of the row the smaller stacks are cut into when writing.
CUT_PREFIX = "(cut: "


class PeakFileError(MemxxError, ValueError):
    """A peak file that cannot be read: missing, not JSON, or not the documented schema."""


@dataclass(frozen=True)
class PeakStack:
    """Bytes live at the peak that one Python call stack allocated (frames innermost first)."""

    bytes: int
    frames: tuple[Frame, ...]
    deeper: bool = False  # outer frames beyond the recorded depth were left out


@dataclass(frozen=True)
class PeakLine:
    """Bytes live at the peak allocated while a line was the innermost Python frame's."""

    filename: str
    lineno: int
    function: str
    bytes: int

    @property
    def source(self) -> str:
        try:
            return linecache.getline(self.filename, self.lineno).strip()
        except (UnicodeError, ValueError):  # a name from a damaged file: "\ud800", "a\x00b"
            return ""

    def location(self) -> str:
        if self.filename.startswith(CUT_PREFIX):  # the row of the stacks cut when writing
            return self.filename
        return f"{short_path(self.filename)}:{self.lineno}"


@dataclass
class PeakTable:
    """One process's peak: the total and the bytes per call stack at that moment."""

    pid: int
    peak_bytes: int
    peak_time: float  # seconds since the epoch
    stacks: list[PeakStack]
    current_bytes: int = 0
    start_time: float = 0.0
    parent: int | None = None
    cmdline: str = ""
    live_blocks: int = 0
    block_table_bytes: int = 0
    stack_table_bytes: int = 0
    peak_live_blocks: int = 0  # live blocks at the peak, and the block table's bytes then
    peak_block_table_bytes: int = 0
    #: Folders of the standard library and installed packages in the recorded process: a line
    #: there is charged to the innermost calling line outside them (``np.ones(...)``, not
    #: numpy's own line), unless the whole stack is library code.
    library_paths: list[str] = field(default_factory=list)
    run: str = ""  # the id of the mprofxx run that recorded it
    cut_stacks: int = 0  # stacks cut into one row when writing, their bytes, and why
    cut_bytes: int = 0
    cut_reason: str = ""
    #: The bytes per stack still live when the table was captured (what the code kept).
    kept: list[PeakStack] = field(default_factory=list)

    def lines(self) -> list[PeakLine]:
        """The peak's bytes by the innermost line of the program's own code, largest first."""
        by_line: dict[tuple[str, int], list[Any]] = {}
        for stack in self.stacks:
            filename, function, lineno = self._own_frame(stack)
            row = by_line.setdefault((filename, lineno), [function, 0])
            row[1] += stack.bytes
        rows = [PeakLine(f, n, fn, b) for (f, n), (fn, b) in by_line.items()]
        rows.sort(key=lambda row: (-row.bytes, row.filename, row.lineno))
        return rows

    def _own_frame(self, stack: PeakStack) -> Frame:
        for frame in stack.frames:
            if not _is_library(frame[0], self.library_paths):
                return frame
        return stack.frames[0] if stack.frames else ("<no Python frame>", "", 0)

    def format(self, limit: int = 10, rss_peak: float | None = None,
               rss_time: float | None = None, tracked_time: float | None = None) -> str:
        """The table: a header with the peak, then ``MiB  %  file:line  source`` rows."""
        from memory_profilerxx._report import peak_table_text

        return peak_table_text(self, limit, rss_peak, rss_time, tracked_time)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return (f"<PeakTable pid {self.pid}: peak {self.peak_bytes / MIB:,.1f} MiB tracked,"
                f" {len(self.stacks)} stacks>")

    # --- JSON --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The process's entry of the peak file: frames interned in one table, the stacks in one
        tree of nodes ``[caller node or -1, frame]`` (callers first), each stack its node."""
        frame_ids: dict[Frame, int] = {}
        node_ids: dict[tuple[int, int], int] = {}
        nodes: list[list[int]] = []
        stacks = []
        for stack in sorted(self.stacks, key=lambda s: -s.bytes):
            node = -1
            for frame in reversed(stack.frames):
                key = (node, frame_ids.setdefault(frame, len(frame_ids)))
                found = node_ids.get(key)
                if found is None:
                    found = node_ids[key] = len(nodes)
                    nodes.append([node, key[1]])
                node = found
            stacks.append({"bytes": stack.bytes, "node": node, "deeper": stack.deeper})
        return {
            "pid": self.pid,
            "parent": self.parent,
            "cmdline": self.cmdline,
            "start_time": self.start_time,
            "peak_bytes": self.peak_bytes,
            "peak_time": self.peak_time,
            "current_bytes": self.current_bytes,
            "live_blocks": self.live_blocks,
            "block_table_bytes": self.block_table_bytes,
            "stack_table_bytes": self.stack_table_bytes,
            "peak_live_blocks": self.peak_live_blocks,
            "peak_block_table_bytes": self.peak_block_table_bytes,
            "library_paths": self.library_paths,
            "run": self.run,
            "cut_stacks": self.cut_stacks,
            "cut_bytes": self.cut_bytes,
            "cut_reason": self.cut_reason,
            "frames": [list(frame) for frame in frame_ids],
            "nodes": nodes,
            "stacks": stacks,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> PeakTable:
        """Read a process entry written by :meth:`to_json` (or by version 1, a frame list per
        stack); PeakFileError names what is wrong."""
        try:
            frames = [(str(f), str(fn), _count(n)) for f, fn, n in data["frames"]]
            if "nodes" in data:
                paths = _node_frames(data["nodes"], frames)
                stacks = [PeakStack(_count(s["bytes"]), paths[_count(s["node"] + 1)],
                                    bool(s.get("deeper", False)))
                          for s in data["stacks"]]
            else:
                stacks = [
                    PeakStack(_count(s["bytes"]), tuple(frames[_count(i)] for i in s["frames"]),
                              bool(s.get("deeper", False)))
                    for s in data["stacks"]
                ]
            parent = data.get("parent")
            return cls(
                pid=_count(data["pid"]),
                peak_bytes=_count(data["peak_bytes"]),
                peak_time=_seconds(data["peak_time"]),
                stacks=stacks,
                current_bytes=_count(data.get("current_bytes", 0)),
                start_time=_seconds(data.get("start_time", 0.0)),
                parent=None if parent is None else _count(parent),
                cmdline=str(data.get("cmdline", "")),
                live_blocks=_count(data.get("live_blocks", 0)),
                block_table_bytes=_count(data.get("block_table_bytes", 0)),
                stack_table_bytes=_count(data.get("stack_table_bytes", 0)),
                peak_live_blocks=_count(data.get("peak_live_blocks", 0)),
                peak_block_table_bytes=_count(data.get("peak_block_table_bytes", 0)),
                library_paths=[str(path) for path in data.get("library_paths", [])],
                run=str(data.get("run", "")),
                cut_stacks=_count(data.get("cut_stacks", 0)),
                cut_bytes=_count(data.get("cut_bytes", 0)),
                cut_reason=str(data.get("cut_reason", "")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise PeakFileError(f"{where}: not a peak table ({type(error).__name__}: {error})"
                                ) from None


def _node_frames(nodes: Any, frames: list[Frame]) -> list[tuple[Frame, ...]]:
    """Each node's stack, innermost first, after the root's (index 0: no frame); ValueError when
    a node's caller is not an earlier node or the stacks add up to too many frames."""
    paths: list[tuple[Frame, ...]] = [()]
    total = 0
    for index, (caller, frame) in enumerate(nodes):
        caller = _count(caller + 1)  # -1, the root, is paths[0]
        if caller > index:
            raise ValueError(f"node {index} is called from a later node")
        path = (frames[_count(frame)],) + paths[caller]
        total += len(path)
        if total > MAX_FRAMES_READ:
            raise ValueError(f"the stacks add up to more than {MAX_FRAMES_READ:,} frames")
        paths.append(path)
    return paths


def _is_library(filename: str, library_paths: list[str]) -> bool:
    return filename.startswith("<frozen ") or any(
        filename.startswith(path) for path in library_paths
    )


def library_paths() -> list[str]:
    """This interpreter's standard library and package folders, and this project's packages."""
    import sysconfig

    paths = sysconfig.get_paths()
    found = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    here = os.path.dirname(os.path.abspath(__file__))
    found.update({here, os.path.join(os.path.dirname(here), "mprofxx")})
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
    report = _memxx.peak_report(-1 if keep is None else keep, with_kept)
    nodes = report["nodes"]
    rows = report["at_peak"]
    peak_bytes = report["peak_bytes"]
    cut_stacks = cut_bytes = 0
    small: list[tuple[int, int]] = []
    if merge_below or keep is not None:
        floor = merge_below * peak_bytes
        rows.sort(key=lambda row: -row[0])
        kept = len(rows) if keep is None else min(keep, len(rows))
        while kept and rows[kept - 1][0] < floor:
            kept -= 1
        small = rows[kept:]
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
            name = names.get(id(code))
            if name is None:
                name = names[id(code)] = (code.co_filename, _code_name(code))
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
    if keep is None and small:
        # Small stacks of one line (the same frames up to the program's own innermost one) add
        # up: a line at or above the floor keeps its bytes, with the frames its stacks share, so
        # that every line shown holds what it held.
        line_of = _LineKeys(nodes, library_paths(), names)
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for size, node in small:
            group = groups.setdefault(line_of(node), [0, []])
            group[0] += size
            group[1].append(node)
        shown = {line_of(node) for _size, node in rows}
        small = []
        for own, (size, members) in groups.items():
            if size < floor and own not in shown:  # a line shown keeps every byte of its own
                small.extend((0, member) for member in members)
                cut_bytes += size
                continue
            frames, cut = _shared_frames(nodes, members, resolve)
            if own not in frames:  # the line's stacks part above it: the line under their caller
                frames = (own,) + frames
            stacks.append(PeakStack(size, frames, cut))
        cut_stacks = len(small)
    else:
        cut_stacks = len(small) + report.get("left_rows", 0)
        cut_bytes = sum(row[0] for row in small) + report.get("left_bytes", 0)
    # The bytes each stack still holds now (what the code kept), for the pytest plugin's leaks.
    kept_stacks = [PeakStack(size, (), node == -2) if node < 0 else PeakStack(size, *resolve(node))
                   for size, node in report.get("live_now", ())]
    del resolved, rows, nodes, small
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
        library_paths=library_paths(),
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


class _LineKeys:
    """The frame :meth:`PeakTable.lines` charges the stack ending at a node to: its innermost
    frame outside library code, else its innermost frame. Each node is looked at once."""

    def __init__(self, nodes: list[Any], paths: list[str],
                 names: dict[int, tuple[str, str]]) -> None:
        self.nodes = nodes
        self.paths = paths
        self.names = names
        self.library: dict[int, bool] = {}
        self.own: dict[int, Frame | None] = {-1: None, -2: None}  # node -> own frame above it

    def frame(self, node: int) -> Frame:
        _up, code, line = self.nodes[node]
        name = _frame_name(code, self.names)
        return (name[0], name[1], line)

    def own_frame(self, node: int) -> Frame | None:
        path = []
        while node not in self.own:
            path.append(node)
            node = self.nodes[node][0]
        found = self.own[node]
        for step in reversed(path):
            code = self.nodes[step][1]
            library = self.library.get(id(code))
            if library is None:
                library = self.library[id(code)] = _is_library(
                    _frame_name(code, self.names)[0], self.paths)
            if not library:
                found = self.frame(step)
            self.own[step] = found
        return found

    def __call__(self, node: int) -> Frame:
        if node < 0:
            return ("<no Python frame>", "", node)
        return self.own_frame(node) or self.frame(node)


def _shared_frames(nodes: list[Any], members: list[int],
                   resolve: Any) -> tuple[tuple[Frame, ...], bool]:
    """The stack the stacks ending at ``members`` share from the root: that of their deepest
    common caller (outer frames left out when even their roots differ)."""
    common = []
    node = members[0]
    while node >= 0:
        common.append(node)
        node = nodes[node][0]
    common.append(node)  # -1, or -2 for stacks cut at the recorded depth
    common.reverse()
    place = {node: index for index, node in enumerate(common)}
    for member in members[1:]:
        node = member
        while node not in place:
            if node < 0:
                return (), True
            node = nodes[node][0]
        if place[node] + 1 < len(common):
            del common[place[node] + 1:]
            place = {node: index for index, node in enumerate(common)}
    return resolve(common[-1]) if common[-1] >= 0 else ((), common[-1] == -2)


def dumps(tables: list[PeakTable], dat: str | None = None) -> str:
    """The peak file's text: ``{"format", "version", "dat", "processes": [...]}``."""
    return "".join(dump_chunks(tables, dat))


def dump_chunks(tables: list[PeakTable], dat: str | None = None) -> Iterator[str]:
    """The peak file's text in pieces, to be written as they come (no copy of the whole)."""
    encoder = json.JSONEncoder(separators=(",", ":"))
    yield f'{{"format":{encoder.encode(FORMAT)},"version":{VERSION},"dat":{encoder.encode(dat)},'
    yield '"processes":['
    for index, table in enumerate(tables):
        if index:
            yield ","
        buffered: list[str] = []
        size = 0
        for piece in encoder.iterencode(table.to_json()):
            buffered.append(piece)
            size += len(piece)
            if size >= 1 << 16:
                yield "".join(buffered)
                buffered.clear()
                size = 0
        yield "".join(buffered)
    yield "]}"


def loads(text: str, where: str) -> list[PeakTable]:
    """Read a peak file's text; PeakFileError (one line) when it is not one."""
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except ValueError as error:
        raise PeakFileError(f"{where}: not JSON ({error})") from None
    except RecursionError:
        raise PeakFileError(f"{where}: not a peak file (JSON nested too deep)") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PeakFileError(f"{where}: not an {FORMAT} file")
    if document.get("version") not in READABLE_VERSIONS:
        raise PeakFileError(f"{where}: version {document.get('version')!r} is not one of"
                            f" {', '.join(map(str, READABLE_VERSIONS))}")
    processes = document.get("processes")
    if not isinstance(processes, list):
        raise PeakFileError(f"{where}: no process list")
    return [PeakTable.from_json(entry, where) for entry in processes]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a peak file holds")


# The bounds of what a recorder writes: byte counts fit 63 bits, times are finite.
_MAX_COUNT = (1 << 63) - 1


def _count(value: Any) -> int:
    """A byte, block or line count, or a PID, read from a peak file (ValueError if out of range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{type(value).__name__} where a count belongs")
    try:
        number = int(value)
    except OverflowError:  # 1e400 reads as an infinite float
        raise ValueError(f"{value} is not a finite count") from None
    if not 0 <= number <= _MAX_COUNT:
        raise ValueError(f"{str(number)[:24]}... is out of range for a count")
    return number


def _seconds(value: Any) -> float:
    """A time read from a peak file (ValueError if it is not a finite number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{type(value).__name__} where a time belongs")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{str(value)[:24]}... is out of range for a time") from None
    if not math.isfinite(number):
        raise ValueError(f"{value} is not a finite time")
    return number


def load(path: str) -> list[PeakTable]:
    """Read the peak file at ``path``."""
    try:
        with open(path, encoding="utf-8") as source:
            text = source.read()
    except FileNotFoundError:
        raise PeakFileError(f"{path}: no such peak file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PeakFileError(f"{path}: cannot read: {error}") from None
    return loads(text, path)


class peak_report:  # noqa: N801 - a function-like context manager, as memray's Tracker is used
    """Record what holds the memory at the peak of a block of code; the table is ``.table``.

    Every allocation made inside the block (Python objects, numpy, native malloc and mmap, on
    every thread) is tagged with the Python stack that made it; on leaving the block ``.table``
    holds the bytes per line and per stack live at the block's highest moment.

    >>> with peak_report() as peak:
    ...     block = bytearray(10 * 2**20)
    ...     del block
    >>> peak.table.peak_bytes >= 10 * 2**20
    True
    >>> peak.table.lines()[0].bytes >= 10 * 2**20
    True
    """

    def __init__(self, native: bool = True) -> None:
        self.native = native
        self.table: PeakTable | None = None
        self._start = 0.0

    def __enter__(self) -> peak_report:
        self._start = time.time()  # before: the float would be one of the block's objects
        _memxx.peak_start(self.native)
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        try:
            self.table = capture(start_time=self._start, with_kept=True)
        finally:
            _memxx.peak_stop()
        return False

    def __str__(self) -> str:
        return "(still recording)" if self.table is None else str(self.table)

    def __repr__(self) -> str:
        return f"<peak_report {self.table!r}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def iter_frames(table: PeakTable) -> Iterator[tuple[tuple[Frame, ...], int]]:
    """Each stack outermost frame first with its bytes (the order a flame graph is drawn in)."""
    for stack in table.stacks:
        frames = tuple(reversed(stack.frames))
        if stack.deeper:
            frames = (("...", "(deeper frames not recorded)", 0),) + frames
        yield frames, stack.bytes
