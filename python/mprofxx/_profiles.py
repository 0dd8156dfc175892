"""Profile files: finding them in the current directory, reading them, their peaks."""

from __future__ import annotations

import glob
import operator
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from _memxx_shared.errors import CliError

if TYPE_CHECKING:
    from _memxx_shared.peak_file import PeakTable

PROFILE_GLOB = "mprofile_??????????????.dat"


class Samples(Sequence[tuple[float, float]]):
    """``(MiB, time)`` samples kept as packed doubles: 16 bytes a sample, not ~110 as tuples.

    >>> import struct
    >>> samples = Samples(struct.pack("4d", 1.0, 10.0, 3.0, 11.0))
    >>> len(samples), samples[1], list(samples), peak_of(samples)
    (2, (3.0, 11.0), [(1.0, 10.0), (3.0, 11.0)], (3.0, 11.0))
    """

    __slots__ = ("_values",)

    def __init__(self, packed: bytes) -> None:
        self._values = memoryview(packed).cast("d")

    def __len__(self) -> int:
        return len(self._values) // 2

    @overload
    def __getitem__(self, index: int) -> tuple[float, float]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[float, float]]: ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("sample index out of range")
        return self._values[2 * index], self._values[2 * index + 1]

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return zip(self._values[0::2], self._values[1::2])

    def mib(self) -> Sequence[float]:
        """The MiB of every sample (a view: nothing copied)."""
        return self._values[0::2]

    def times(self) -> Sequence[float]:
        """The time of every sample (a view: nothing copied)."""
        return self._values[1::2]


def peak_of(samples: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """``(MiB, time)`` of the first highest sample."""
    if not isinstance(samples, Samples):
        return max(samples, key=lambda s: s[0])
    mib = samples.mib()
    highest = max(mib)
    try:
        return samples[operator.indexOf(mib, highest)]
    except ValueError:  # NaN compares unequal to itself: the first sample, as max() keeps
        return samples[0]


@dataclass
class Recording:
    """One profile as read from a .dat or .json file (MiB, Unix seconds).

    Read whole (``read``) it holds every record; read to be drawn (``read_drawn``) it holds
    what a plot shows (``drawn`` set: thinned samples, merged spans) and the file's figures
    computed over every record while streaming it.
    """

    path: str
    cmdline: str
    memory: Sequence[tuple[float, float]]
    children: dict[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    functions: list[tuple[str, float, float, float, float, int]] = field(default_factory=list)
    drawn: DrawnFigures | None = None

    @property
    def peak(self) -> tuple[float, float]:
        """Return ``(MiB, time)`` of the (first) highest MEM sample."""
        if self.drawn is not None:
            return self.drawn.peak
        return peak_of(self.memory)


@dataclass
class DrawnFigures:
    """A drawn recording's figures over all of its file, not only what is drawn."""

    samples: int
    peak: tuple[float, float]
    start: float  # earliest MEM time or FUNC start
    end: float  # latest MEM time or FUNC end
    first_time: float  # time of the first MEM sample
    trend: tuple[float, float, float, float]  # sums of t, MiB, t*t, t*MiB (t from first_time)
    totals: dict[str, tuple[int, float]]  # calls and seconds of every function
    pixel: float  # seconds a column covers

    def slope(self) -> tuple[float, float] | None:
        """``(MiB/s, MiB at first_time)`` of the least-squares line through every sample."""
        n = self.samples
        st, sm, stt, stm = self.trend
        spread = n * stt - st * st
        if n < 2 or not spread > 0:
            return None
        slope = (n * stm - st * sm) / spread
        return slope, (sm - slope * st) / n


@dataclass
class Summary:
    """A profile's figures read as a stream (``mprofxx peak``): no sample is kept."""

    path: str
    cmdline: str
    samples: int
    first: tuple[float, float]
    peak: tuple[float, float]
    children: dict[str, tuple[int, tuple[float, float]]]  # id: (samples, peak)


def profile_filenames() -> list[str]:
    """Return the ``mprofile_<timestamp>.dat`` files of the current directory, oldest first.

    Only files whose name holds the 14 digits of a time, and no folder or other non-file that
    carries such a name: ``list`` dates each one and ``clean`` removes each one.
    """
    return sorted(
        name
        for name in glob.glob(PROFILE_GLOB)
        if name[len("mprofile_") : -len(".dat")].isdigit()
        and name.isascii()
        and os.path.isfile(name)
    )


def default_output_name() -> str:
    """Return ``mprofile_<YYYYmmddHHMMSS>.dat`` for now."""
    return time.strftime("mprofile_%Y%m%d%H%M%S.dat", time.localtime())


def resolve(arguments: list[str]) -> list[str]:
    """Return the files named by paths or indices (0 the oldest, -1 the newest), in order."""
    known = profile_filenames()
    found: list[str] = []
    for argument in arguments:
        if os.path.exists(argument):
            path = argument
        else:
            try:
                path = known[int(argument)]
            except ValueError:
                raise CliError(f"no such profile file: {argument}") from None
            except IndexError:
                raise CliError(
                    f"no profile number {argument}: {len(known)} profile file(s) here"
                ) from None
        if path not in found:
            found.append(path)
    return found


def latest_or(arguments: list[str]) -> list[str]:
    """Return the files named, or the newest profile here (saying so) when none is named."""
    if arguments:
        return resolve(arguments)
    known = profile_filenames()
    if not known:
        raise CliError("no mprofile_*.dat file in this directory; record one with 'mprofxx run'")
    print("Using last profile data.")
    return [known[-1]]


def read(path: str, require_samples: bool = True) -> Recording:
    """Return the recording in ``path``; CliError if it is unreadable or holds no sample."""
    from _memxx import ProfileFileError, read_profile

    _checked_path(path)
    try:
        data = read_profile(path, packed=True)
    except ProfileFileError as error:
        raise CliError(str(error)) from None
    children: dict[str, Sequence[tuple[float, float]]] = {
        child: Samples(packed) for child, packed in data["children"].items()
    }
    recording = Recording(
        path, data["cmdline"].strip(), Samples(data["memory"]), children, data["functions"]
    )
    if require_samples and not recording.memory:
        raise CliError(f"{path}: no memory samples (MEM lines) in this file")
    return recording


def _checked_path(path: str) -> None:
    if os.path.isdir(path):
        raise CliError(f"{path} is a directory, not a profile file")


def read_summary(path: str) -> Summary:
    """Return the figures of the profile in ``path``, read as a stream; CliError if it is
    unreadable or holds no sample."""
    from _memxx import ProfileFileError, read_profile_summary

    _checked_path(path)
    try:
        data = read_profile_summary(path)
    except ProfileFileError as error:
        raise CliError(str(error)) from None
    if not data["samples"]:
        raise CliError(f"{path}: no memory samples (MEM lines) in this file")
    return Summary(path, data["cmdline"].strip(), data["samples"], data["first"], data["peak"],
                   data["children"])


def read_drawn(path: str, columns: int, window: tuple[float, float] | None = None) -> Recording:
    """Return what a plot of ``columns`` columns draws of ``path`` (``window``: seconds from
    the start), read in two streaming passes; CliError (one line naming the file and the limit)
    when it holds more than a plot can draw."""
    from _memxx import ProfileFileError, read_profile_drawn

    _checked_path(path)
    try:
        data = read_profile_drawn(path, columns, window)
    except ProfileFileError as error:
        raise CliError(str(error)) from None
    if not data["samples"]:
        raise CliError(f"{path}: no memory samples (MEM lines) in this file")
    figures = DrawnFigures(data["samples"], data["peak"], data["start"], data["end"],
                           data["first"][1], data["trend"], data["totals"], data["pixel"])
    children: dict[str, Sequence[tuple[float, float]]] = {
        child: Samples(packed) for child, packed in data["children"].items()
    }
    return Recording(path, data["cmdline"].strip(), Samples(data["memory"]), children,
                     data["functions"], figures)


def peak_path(dat_path: str) -> str:
    """Return the peak file of a profile: ``mprofile_<time>.peak.json`` beside the .dat."""
    return os.path.splitext(dat_path)[0] + ".peak.json"


def peak_parts_path(dat_path: str) -> str:
    """Return the folder the recorded processes write their tables to during ``run --peak``."""
    return os.path.splitext(dat_path)[0] + ".peak.parts"


def companions(dat_path: str) -> list[str]:
    """Return the files that belong to a profile and exist: the .dat and its peak file."""
    return [path for path in (dat_path, peak_path(dat_path)) if os.path.lexists(path)]


def read_peak(dat_path: str) -> list[PeakTable]:
    """Return the peak tables recorded with a profile; CliError (one line) if there are none."""
    from _memxx_shared.peak_file import PeakFileError, load

    path = peak_path(dat_path)
    if not os.path.lexists(path):
        raise CliError(f"{dat_path}: no peak file ({path}); record with 'mprofxx run --peak'")
    try:
        return load(path)
    except PeakFileError as error:
        raise CliError(str(error)) from None


def samples_in_function(recording: Recording, name: str) -> list[float]:
    """Return the MEM values (and span end points) taken while function ``name`` ran."""
    spans = [f for f in recording.functions if f[0] == name]
    values = [m for m, t in recording.memory if any(f[2] <= t <= f[4] for f in spans)]
    values += [f[1] for f in spans] + [f[3] for f in spans]
    return values
