"""``mprofxx plot``: memory over time with matplotlib, function spans, peaks, several files.

PNG, SVG or PDF by the extension of ``-o``. Without ``-o`` a window opens when there is a
display; otherwise the picture is written to ``<profile>.png`` and the path is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from _memxx_shared.errors import CliError
from _memxx_shared.names import math_free_text as literal
from _memxx_shared.names import terminal_line

from mprofxx import _profiles
from mprofxx._profiles import Recording, Samples
from mprofxx._thinning import COLUMNS, merge_spans, thin_samples

_SPAN_COLOURS = [
    "#17becf",
    "#bcbd22",
    "#2ca02c",
    "#d62728",
    "#1f77b4",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
]
_FILE_COLOURS = ["black", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
_MAX_NAMED_SPANS = 40  # more brackets than this get no text beside them, only the legend
_MAX_LEGEND_FUNCTIONS = 30  # beyond, the legend names those that ran longest and says so


def function_labels(dotted_names: list[str]) -> dict[str, str]:
    """Return, per dotted name, its shortest dotted suffix no other name ends with.

    >>> function_labels(["a.b.run", "c.d.run", "a.load"])
    {'a.b.run': 'b.run', 'c.d.run': 'd.run', 'a.load': 'load'}
    """
    labels = {}
    names = list(dict.fromkeys(dotted_names))
    for name in names:
        parts = [p for p in name.split(".") if p] or [name]
        for size in range(1, len(parts) + 1):
            suffix = ".".join(parts[-size:])
            clash = any(
                other != name and (other == suffix or other.endswith("." + suffix))
                for other in names
            )
            if not clash:
                break
        labels[name] = suffix
    return labels


def parse_window(text: str | None) -> tuple[float, float] | None:
    """``--window xmin,xmax`` as two seconds; None without one; CliError when malformed."""
    if not text:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise CliError(f"--window needs xmin,xmax in seconds, e.g. 0,2.5; got {text!r}") from None
    if not high > low:
        raise CliError("--window: xmax must be above xmin")
    return low, high


def has_display() -> bool:
    """True when a plot window can open (X11 or Wayland)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _times(samples: Sequence[tuple[float, float]]) -> Sequence[float]:
    return samples.times() if isinstance(samples, Samples) else [t for _, t in samples]


def _xy(samples: Sequence[tuple[float, float]], start: float) -> tuple[Any, Any]:
    """Seconds since ``start`` and MiB of the samples, as numpy arrays (packed: no copy made
    beyond the arrays)."""
    import numpy as np

    if isinstance(samples, Samples):
        return np.asarray(samples.times()) - start, np.asarray(samples.mib())
    pairs = np.asarray(list(samples), dtype=float).reshape(-1, 2)
    return pairs[:, 1] - start, pairs[:, 0]


def read_for_plot(paths: list[str], options: argparse.Namespace) -> list[Recording]:
    """The recordings at ``paths`` as a plot draws them: streamed, thinned to the figure's
    columns (of the window, if any) and spans merged below a column; CliError beyond what a
    plot can draw."""
    window = parse_window(options.window)
    return [_profiles.read_drawn(path, COLUMNS, window) for path in paths]


def _start_time(recording: Recording) -> float:
    if recording.drawn is not None:
        return recording.drawn.start
    return min(min(_times(recording.memory), default=float("inf")),
               min((f[2] for f in recording.functions), default=float("inf")))


def _start_label(recording: Recording, start: float) -> str:
    """The legend's date of a recording; CliError when its times are no date (a damaged file)."""
    try:
        return time.strftime("%d / %m / %Y - start at %H:%M:%S", time.localtime(start))
    except (OverflowError, ValueError, OSError):
        raise CliError(
            f"{recording.path}: its times are no date (first sample at {start:g} s since 1970)"
        ) from None


def _draw_slope(ax: Any, xs: Any, ys: Any, colour: str, recording: Recording,
                start: float) -> float:
    import numpy as np

    if len(xs) < 2:
        return 0.0
    if recording.drawn is not None:  # the line through every sample, from the streamed sums
        fit = recording.drawn.slope()
        if fit is None:
            return 0.0
        slope, at_first = fit
        intercept = at_first - slope * (recording.drawn.first_time - start)
    else:
        slope, intercept = np.polyfit(xs, ys, 1)
    line = np.array([np.min(xs), np.max(xs)])
    ax.plot(line, slope * line + intercept, "--", color=colour, linewidth=0.8)
    return float(slope)


def _pixel_seconds(recording: Recording, start: float, options: argparse.Namespace) -> float:
    """The seconds one column of the picture covers (spans closer than this merge)."""
    if recording.drawn is not None:
        return recording.drawn.pixel
    window = parse_window(options.window)
    if window:
        return (window[1] - window[0]) / COLUMNS
    end = max(max(_times(recording.memory), default=start),
              max((f[4] for f in recording.functions), default=start))
    return (end - start) / COLUMNS


def _draw_recording(
    ax: Any, recording: Recording, colour: str, options: argparse.Namespace, single: bool
) -> None:
    start = _start_time(recording)
    xs, ys = _xy(recording.memory, start)
    label = _start_label(recording, start)
    if not single:
        label = f"{literal(os.path.basename(recording.path))} ({label})"
    if options.slope:
        slope = _draw_slope(ax, xs, ys, "#00e3d8" if single else colour, recording, start)
        label += f" slope {slope:.5f} MiB/s"
    window = parse_window(options.window)
    xs, ys = thin_samples(xs, ys, window=window)
    marker = "" if options.flame else "+"
    children = sorted(recording.children.items())
    if children and options.children == "stacked":
        _draw_stacked(ax, xs, ys, children, start, label)
    else:
        ax.plot(xs, ys, marker + "-", color=colour, label=label, linewidth=1.2, markersize=4)
        for index, (child, samples) in enumerate(children):
            cx, cy = thin_samples(*_xy(samples, start), window=window)
            ax.plot(
                cx,
                cy,
                marker + "-",
                color=_SPAN_COLOURS[index % len(_SPAN_COLOURS)],
                label=f"child {literal(child)}",
                linewidth=1,
                markersize=3,
            )
    if single and not options.no_function_ts:
        peak_mem, peak_time = recording.peak
        ax.axhline(peak_mem, color="red", linestyle="--", linewidth=0.8)
        ax.axvline(peak_time - start, color="red", linestyle="--", linewidth=0.8)
        # The note goes on the side of the marker with more room, cut to the room there.
        low, high = ax.get_xlim()
        at = (peak_time - start - low) / (high - low) if high > low else 0.0
        right = at > 0.5
        room = (at if right else 1.0 - at) * ax.get_window_extent().width - 8
        width = max(12, int(room / (9 * 0.6 * ax.figure.dpi / 72)))  # characters, about
        note = peak_lines_note(recording, width=width)
        label = ax.annotate(
            f"peak {peak_mem:.1f} MiB" + note,
            (peak_time - start, peak_mem),
            textcoords="offset points",
            xytext=(-4 if right else 4, -4 if note else 4),
            color="red",
            fontsize=9,
            horizontalalignment="right" if right else "left",
            verticalalignment="top" if note else "baseline",
        )
        _fit_note(label, room, width, lambda chars: f"peak {peak_mem:.1f} MiB"
                  + peak_lines_note(recording, width=chars))
        if not options.flame:
            _draw_brackets(ax, recording, start, _pixel_seconds(recording, start, options))


def _fit_note(label: Any, room: float, width: int, text_of: Any) -> None:
    """Cut ``label`` (text_of(width)) until the font as drawn fits ``room`` pixels."""
    get_renderer = getattr(label.figure.canvas, "get_renderer", None)
    if get_renderer is None:
        return
    renderer = get_renderer()
    for _ in range(8):
        drawn = label.get_window_extent(renderer).width
        if drawn <= room or width <= 12:
            return
        width = max(12, int(width * room / drawn) - 1)
        label.set_text(text_of(width))


def peak_lines_note(recording: Recording, top: int = 3, width: int | None = None) -> str:
    """The top lines held at the peak (``run --peak``), one per line under the marker; "" without.

    Files are named relative to the recording's folder (else by their last two parts), and each
    line is cut to ``width`` characters.

    >>> peak_lines_note(Recording("none.dat", "", [(1.0, 0.0)]))
    ''
    """
    cached = _PEAK_NOTES.get((recording.path, width))
    if cached is not None:
        return cached
    from _memxx import MIB
    from _memxx_shared.peak_file import PeakFileError, load

    note = ""
    path = _profiles.peak_path(recording.path)
    if os.path.exists(path):
        try:
            table = load(path)[0]
        except PeakFileError as error:
            print(f"mprofxx: warning: no peak lines on the plot: {terminal_line(str(error))}",
                  file=sys.stderr)
        else:
            folder = os.path.dirname(os.path.abspath(recording.path))
            rows = [
                _cut(f"{row.bytes / MIB:,.1f} MiB  {literal(_near_name(row, folder))}", width)
                for row in table.lines()[:top]
            ]
            note = "".join("\n" + row for row in rows)
    _PEAK_NOTES[(recording.path, width)] = note
    return note


def _near_name(row: Any, folder: str) -> str:
    """``file:line`` with the file relative to ``folder`` when below it, else its last two parts."""
    if row.lineno == 0 and row.filename.startswith("("):
        return str(row.location())
    name = str(row.filename)
    if os.path.isabs(name):
        relative = os.path.relpath(name, folder)
        if not relative.startswith(".."):
            name = relative
        else:
            parts = name.split(os.sep)
            name = os.sep.join(["..."] + parts[-2:]) if len(parts) > 3 else name
    return f"{name}:{row.lineno}"


def _cut(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(1, width - 1)] + "…"


_PEAK_NOTES: dict[tuple[str, int | None], str] = {}


def _draw_stacked(
    ax: Any,
    xs: Any,
    ys: Any,
    children: list[tuple[str, Sequence[tuple[float, float]]]],
    start: float,
    label: str,
) -> None:
    import numpy as np

    layers = [np.asarray(ys)]
    names = ["main " + label]
    for child, samples in children:
        cx, cy = _xy(samples, start)
        # A child exists only between its first and last sample: zero outside.
        layer = np.interp(xs, cx, cy, left=0.0, right=0.0) if len(cx) else np.zeros(len(xs))
        layers.append(layer)
        names.append(f"child {literal(child)}")
    colours = ["#555555"] + [_SPAN_COLOURS[i % len(_SPAN_COLOURS)] for i in range(len(children))]
    ax.stackplot(xs, *layers, labels=names, colors=colours, alpha=0.7)
    ax.plot(xs, np.sum(layers, axis=0), "-", color="black", linewidth=1.2)


def _draw_brackets(ax: Any, recording: Recording, start: float, pixel: float) -> None:
    from matplotlib.collections import LineCollection

    totals: dict[str, tuple[int, float]] = {}
    if recording.drawn is not None:  # every call's, counted while the file streamed
        totals = dict(recording.drawn.totals)
    else:
        for name, _m0, t_start, _m1, t_end, _level in recording.functions:
            calls, seconds = totals.get(name, (0, 0.0))
            totals[name] = (calls + 1, seconds + (t_end - t_start))
    # With a window, a function may have no span in it and still be in the legend.
    names = [f[0] for f in recording.functions] + list(totals)
    labels = {name: literal(label) for name, label in function_labels(names).items()}
    colours = {n: _SPAN_COLOURS[i % len(_SPAN_COLOURS)] for i, n in enumerate(dict.fromkeys(names))}
    # Calls closer than a column of the picture are drawn as one bracket pair; one artist per
    # function and kind, not three per call (20,000 calls drew in 45 s).
    spans = merge_spans(recording.functions, pixel)
    named = len(spans) <= _MAX_NAMED_SPANS
    by_name: dict[str, list[tuple[float, float, float, float]]] = {}
    for name, mem_start, t_start, mem_end, t_end, _level, _calls in spans:
        by_name.setdefault(name, []).append((t_start - start, mem_start, t_end - start, mem_end))
        if named:
            ax.annotate(labels[name], (t_start - start, mem_start), textcoords="offset points",
                        xytext=(6, -12), color=colours[name], fontsize=8)
    for name, brackets in by_name.items():
        colour = colours[name]
        x0, m0, x1, m1 = zip(*brackets)
        ax.plot(x0, m0, marker="$[$", markersize=14, color=colour, linestyle="None")
        ax.plot(x1, m1, marker="$]$", markersize=14, color=colour, linestyle="None")
        ax.add_collection(LineCollection([((a, b), (c, d)) for a, b, c, d in brackets],
                                         colors=colour, linestyles=":", linewidths=0.8))
    shown = sorted(totals, key=lambda n: -totals[n][1])[:_MAX_LEGEND_FUNCTIONS]
    if len(totals) > len(shown):
        print(f"mprofxx: note: {len(totals):,} functions; the legend names the"
              f" {len(shown)} that ran longest", file=sys.stderr)
    for name in (n for n in totals if n in set(shown)):
        calls, seconds = totals[name]
        suffix = f" x{calls}" if calls > 1 else ""
        # matplotlib hides legend labels starting with "_" (as "__main__.f" does): lead with a space.
        ax.plot(
            [],
            [],
            marker="$[$",
            linestyle="None",
            color=colours[name],
            label=f" {labels[name]} {seconds:.3f}s{suffix}",
        )


def _draw_flame(ax: Any, recording: Recording, pixel: float) -> None:
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    start = _start_time(recording)
    names = [f[0] for f in recording.functions]
    labels = {name: literal(label) for name, label in function_labels(names).items()}
    levels = [f[5] for f in recording.functions] or [0]
    boxes, faces = [], []
    # Calls closer than a column merge into one box: boxes are bounded by the picture's width.
    spans = merge_spans(recording.functions, pixel)
    for index, (name, _m0, t_start, _m1, t_end, level, _calls) in enumerate(
        sorted(spans, key=lambda f: (f[5], f[2]))
    ):
        hue = ["#e4572e", "#f3a712"][index % 2]
        x0, width = t_start - start, max(t_end - t_start, 1e-6)
        boxes.append(Rectangle((x0, level), width, 0.9))
        faces.append(to_rgba(hue, max(0.35, 0.9 - 0.1 * level)))
        if width >= 20 * pixel:  # a label where a box is wide enough to hold some of it
            ax.text(x0 + width / 2, level + 0.45, labels[name], ha="center", va="center",
                    fontsize=8, clip_on=True)
    ax.add_collection(PatchCollection(boxes, facecolors=faces, edgecolors="white"))
    ax.set_ylim(min(0, min(levels)), max(levels) + 1)
    used = sorted(set(levels))
    if len(used) <= 40:  # a tick per level drawn, not per level up to the deepest (2e9 in a
        # damaged file); beyond 40 levels matplotlib's own ticks
        ax.set_yticks([lv + 0.45 for lv in used])
        ax.set_yticklabels([str(lv) for lv in used])
    ax.set_ylabel("call depth")
    ax.invert_yaxis()


def render(recordings: list[Recording], options: argparse.Namespace, output: str | None) -> None:
    """Draw ``recordings`` on one figure; save it to ``output`` or show it when None."""
    import matplotlib

    if options.backend:
        matplotlib.use(options.backend)
    elif output is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = draw(recordings, options)
    if output is None:
        plt.show()
    else:
        try:
            _save_figure(figure, output)
        finally:
            plt.close(figure)


def draw(recordings: list[Recording], options: argparse.Namespace) -> Any:
    """The matplotlib Figure of ``recordings``, drawn as ``mprofxx plot`` draws it."""
    import matplotlib.pyplot as plt

    single = len(recordings) == 1
    flame = options.flame and single
    if flame:
        figure, (ax, flame_ax) = plt.subplots(
            2, 1, figsize=(14, 7), dpi=90, sharex=True, gridspec_kw={"height_ratios": [3, 2]}
        )
    else:
        figure, ax = plt.subplots(figsize=(14, 6), dpi=90)
    # The final layout first: the peak's note is cut to the axes' width.
    figure.subplots_adjust(left=0.07, right=0.72, top=0.92, bottom=0.1)
    for index, recording in enumerate(recordings):
        _draw_recording(ax, recording, _FILE_COLOURS[index % len(_FILE_COLOURS)], options, single)
    if flame:
        recording = recordings[0]
        pixel = _pixel_seconds(recording, _start_time(recording), options)
        _draw_flame(flame_ax, recording, pixel)
        flame_ax.set_xlabel("time (in seconds)")
    else:
        ax.set_xlabel("time (in seconds)")
    ax.set_ylabel("memory used (in MiB)")
    title = options.title or (
        literal(recordings[0].cmdline) if single else f"{len(recordings)} profiles"
    )
    ax.set_title(title)
    ax.grid(True, alpha=0.4)
    window = parse_window(options.window)
    if window:
        ax.set_xlim(*window)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), framealpha=0.5, fontsize=9)
    return figure


def plot_options(
    title: str | None = None,
    flame: bool = False,
    slope: bool = False,
    window: str | None = None,
    children: str = "separate",
    function_spans: bool = True,
) -> argparse.Namespace:
    """The options ``mprofxx plot`` parses from its command line, given as arguments."""
    if children not in ("separate", "stacked"):
        raise ValueError(f"children must be 'separate' or 'stacked', not {children!r}")
    parse_window(window)
    return argparse.Namespace(title=title, flame=flame, slope=slope, window=window,
                              children=children, no_function_ts=not function_spans,
                              backend=None)


def _save_figure(figure: Any, output: str) -> None:
    """Save as the extension says, through the one safe output writer."""
    import io

    from _memxx import OutputFileError, write_output

    kind = os.path.splitext(output)[1][1:].lower() or "png"
    if kind not in figure.canvas.get_supported_filetypes():
        raise CliError(f"cannot write {output}: unknown image format {kind!r}")
    image = io.BytesIO()
    try:
        figure.savefig(image, format=kind)
        write_output(output, image.getvalue())
    except OutputFileError as error:
        raise CliError(str(error)) from None
    except (OSError, ValueError) as error:
        raise CliError(f"cannot write {output}: {error}") from None
