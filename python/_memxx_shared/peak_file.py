"""The peak file format: the peak table, its text layout, and its JSON file.

A :class:`PeakTable` is one process's bytes per call stack at its highest moment, as the peak
recorder (``_memxx.peak_start``) kept them; :mod:`_memxx_shared.peak_capture` makes one from the
running recorder. This module prints a table as lines (``MiB  %  file:line  source``) and reads
and writes tables as JSON (the ``mprofile_<time>.peak.json`` files of ``mprofxx run --peak``).
memory_profilerxx's ``peak_report`` and every mprofxx command that reads a peak file use it.

>>> table = PeakTable(pid=1, peak_bytes=2**20, peak_time=2.5, start_time=2.0,
...                   stacks=[PeakStack(2**20, (("/elsewhere/job.py", "main", 3),))])
>>> print(table.format().splitlines()[0])
peak 1.0 MiB tracked at 0.50 s
>>> table.lines()[0].location()
'/elsewhere/job.py:3'
>>> [table.pid for table in loads(dumps([table]), "doctest")]
[1]
"""

from __future__ import annotations

import json
import linecache
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

from _memxx import MIB

from _memxx_shared.errors import MemxxError
from _memxx_shared.names import short_path

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
            if not is_library(frame[0], self.library_paths):
                return frame
        return stack.frames[0] if stack.frames else ("<no Python frame>", "", 0)

    def format(self, limit: int = 10, rss_peak: float | None = None,
               rss_time: float | None = None, tracked_time: float | None = None) -> str:
        """The table: a header with the peak, then ``MiB  %  file:line  source`` rows.

        ``rss_peak`` (MiB) and ``rss_time`` (seconds from the start) are the recorded peak of
        ``mprofxx``'s .dat, and ``tracked_time`` the tracked peak's time on the same clock; each
        figure is printed with its own moment. Without them the header gives the tracked peak
        alone.
        """
        tracked = self.peak_bytes / MIB
        when = self.peak_time - self.start_time if tracked_time is None else tracked_time
        if rss_peak is not None and rss_time is not None:
            head = (f"peak {rss_peak:,.1f} MiB at {rss_time:.2f} s"
                    f" (tracked: {tracked:,.1f} MiB at {when:.2f} s)")
        else:
            head = f"peak {tracked:,.1f} MiB tracked at {when:.2f} s"
        out = [head, "   MiB      %  line"]
        rows = self.lines()
        total = max(self.peak_bytes, 1)
        for row in rows[:limit]:
            out.append(f"{row.bytes / MIB:6,.1f}  {100.0 * row.bytes / total:5.1f}"
                       f"  {row.location()}  {row.source}")
        if len(rows) > limit:
            rest = sum(row.bytes for row in rows[limit:])
            more = len(rows) - limit
            out.append(f"{rest / MIB:6,.1f}  {100.0 * rest / total:5.1f}"
                       f"  ({more} more line{'s' if more > 1 else ''})")
        return "\n".join(out)

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


def is_library(filename: str, library_paths: list[str]) -> bool:
    """True for a frame of the standard library, an installed package or a frozen module."""
    return filename.startswith("<frozen ") or any(
        filename.startswith(path) for path in library_paths
    )


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


def iter_frames(table: PeakTable) -> Iterator[tuple[tuple[Frame, ...], int]]:
    """Each stack outermost frame first with its bytes (the order a flame graph is drawn in)."""
    for stack in table.stacks:
        frames = tuple(reversed(stack.frames))
        if stack.deeper:
            frames = (("...", "(deeper frames not recorded)", 0),) + frames
        yield frames, stack.bytes
