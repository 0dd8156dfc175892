"""What held the memory at the peak: mprofxx run --peak, peak --lines, flame, plot, peak_report.

Every figure is checked against what the planted program made (list sizes from sys.getsizeof,
numpy's nbytes, Pillow's width x height x 4), in real child processes, a real IPython shell and
a real headless browser.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

_memxx = pytest.importorskip("_memxx")

from memory_profilerxx import peak_report  # noqa: E402
from _memxx_shared.peak_file import (  # noqa: E402
    PeakFileError,
    PeakStack,
    PeakTable,
    dumps,
    load,
    loads,
)

MB = 10**6

PLANTED = """
    import json
    import sys

    import numpy as np
    from PIL import Image

    def dicts(n):
        return [{} for _ in range(n)]                     # line 9: 2 x 25 MB, two stacks

    def first():
        return dicts(N_DICTS)

    def second():
        return dicts(N_DICTS)

    N_LISTS = 300 * 10**6 // 8056
    N_DICTS = 25 * 10**6 // 72

    def main():
        temporary = [[0] * 1000 for _ in range(500 * 10**6 // 8056)]   # line 21: not at the peak
        del temporary
        lists = [[0] * 1000 for _ in range(N_LISTS)]                   # line 23: 300 MB
        array = np.ones(100 * 10**6 // 8)                                # line 24: 100 MB
        image = Image.new("RGB", (4000, 4000))                           # line 25: 64 MB native
        a = first()
        b = second()
        truth = {
            "lists": sys.getsizeof(lists) + sum(sys.getsizeof(x) for x in lists),
            "numpy": array.nbytes,
            "native": 4000 * 4000 * 4,
            "dicts": sum(sys.getsizeof(d) for d in a) + sys.getsizeof(a),
        }
        with open("truth.json", "w") as out:
            json.dump(truth, out)
        del lists, array, image, a, b

    main()
"""


def mprofxx(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mprofxx", *args], cwd=cwd, capture_output=True,
                          check=False, text=True, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mprofxx: error: "), result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def only(folder: Path, pattern: str) -> Path:
    (path,) = folder.glob(pattern)
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("numpy")
    pytest.importorskip("PIL.Image")
    folder = tmp_path_factory.mktemp("planted")
    (folder / "planted.py").write_text(textwrap.dedent(PLANTED))
    result = mprofxx("run", "--peak", "planted.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert ".peak.json" in result.stdout
    return folder


def stack_names(stack) -> list[str]:
    return [function for _file, function, _line in stack.frames]


def test_the_peak_table_holds_what_the_planted_program_held(planted: Path) -> None:
    truth = json.loads((planted / "truth.json").read_text())
    (table,) = load(str(only(planted, "mprofile_*.peak.json")))
    rows = {row.lineno: row.bytes for row in table.lines() if row.filename.endswith("planted.py")}
    assert rows[23] == pytest.approx(truth["lists"], rel=0.01)
    assert rows[24] == pytest.approx(truth["numpy"], rel=0.01)
    assert rows[25] == pytest.approx(truth["native"], rel=0.01)
    assert rows[9] == pytest.approx(2 * truth["dicts"], rel=0.01)
    assert rows.get(21, 0) < MB  # the 500 MB temporary was gone before the peak
    # The helper's line came from two places: two stacks of half the bytes each.
    helper = [s for s in table.stacks if s.frames and s.frames[0][2] == 9 and s.bytes > MB]
    callers = sorted({name for s in helper for name in stack_names(s) if name in ("first", "second")})
    assert callers == ["first", "second"]
    for caller in callers:
        held = sum(s.bytes for s in helper if caller in stack_names(s))
        assert held == pytest.approx(truth["dicts"], rel=0.01)
    # The peak is the sum of what was live then; the runner's own frames are not in the stacks.
    assert table.peak_bytes >= sum(truth.values()) + truth["dicts"]
    # The recorder's block table at the peak: at most 24 B per live block.
    assert table.peak_live_blocks > 800_000
    assert table.peak_block_table_bytes <= 24 * table.peak_live_blocks
    assert not any(f.endswith(("runpy.py", "_child.py")) for s in table.stacks for f, _n, _l in s.frames)


def test_peak_lines_prints_the_table_with_the_recorded_peak(planted: Path) -> None:
    result = mprofxx("peak", "--lines", "-n", "4", cwd=planted)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Using last profile data."
    assert lines[1].startswith("peak ") and "(tracked: " in lines[1]
    assert lines[2] == "   MiB      %  line"
    body = lines[3:7]
    assert [row.split()[2] for row in body] == [
        "planted.py:23", "planted.py:24", "planted.py:25", "planted.py:9"]
    assert body[1].endswith("array = np.ones(100 * 10**6 // 8)                                # line 24: 100 MB")
    mib = float(body[0].split()[0])
    truth = json.loads((planted / "truth.json").read_text())
    assert mib == pytest.approx(truth["lists"] / 2**20, abs=0.1)


def test_the_peak_json_is_documented_and_rm_removes_it(planted: Path, tmp_path: Path) -> None:
    peak_file = only(planted, "mprofile_*.peak.json")
    document = json.loads(peak_file.read_text())
    assert document["format"] == "mprofxx-peak" and document["version"] == 2
    assert document["dat"] == peak_file.name.replace(".peak.json", ".dat")
    (process,) = document["processes"]
    assert set(process) >= {"pid", "peak_bytes", "peak_time", "frames", "nodes", "stacks"}
    # The stacks as one tree: each node once, after its caller; a stack names its innermost node.
    nodes = process["nodes"]
    assert all(-1 <= caller < index for index, (caller, _frame) in enumerate(nodes))
    assert len({tuple(node) for node in nodes}) == len(nodes)
    (table,) = load(str(peak_file))
    assert len(nodes) < sum(len(stack.frames) for stack in table.stacks)  # callers shared
    # A copy, so the module's other tests keep theirs.
    copy = tmp_path / "copy"
    shutil.copytree(planted, copy)
    dat = only(copy, "mprofile_*.dat")
    dry = mprofxx("rm", "--dry-run", dat.name, cwd=copy)
    assert peak_file.name in dry.stdout
    assert mprofxx("rm", dat.name, cwd=copy).returncode == 0
    assert not list(copy.glob("mprofile_*"))


def test_the_table_uses_at_most_24_bytes_per_live_block() -> None:
    with peak_report() as peak:
        held = [[i] for i in range(400_000)]
        table_bytes = _memxx.peak_report()["block_table_bytes"]
        live = _memxx.peak_report()["live_blocks"]
    assert live >= 400_000
    assert table_bytes / live <= 24
    assert peak.table is not None and peak.table.peak_bytes >= 400_000 * sys.getsizeof([0])
    del held


def test_peak_report_in_python_sees_threads_and_not_what_was_freed_before() -> None:
    def worker(out: list) -> None:
        out.append(bytearray(30 * MB))

    out: list = []
    with peak_report() as peak:
        scratch = bytearray(80 * MB)
        del scratch
        thread = threading.Thread(target=worker, args=(out,))
        thread.start()
        thread.join()
        kept = [bytearray(1000) for _ in range(10_000)]
    table = peak.table
    assert table is not None
    rows = {row.lineno: row.bytes for row in table.lines() if row.filename == __file__}
    # The peak is the 80 MB scratch alone: it was freed before the rest was allocated.
    assert table.peak_bytes == pytest.approx(80 * MB, rel=0.01)
    top = table.lines()[0]
    assert top.filename == __file__ and top.source == "scratch = bytearray(80 * MB)"
    assert rows[top.lineno] == pytest.approx(80 * MB, rel=0.001)
    with peak_report() as later:
        again = [bytearray(1000) for _ in range(10_000)]
        thread = threading.Thread(target=worker, args=(out,))
        thread.start()
        thread.join()
    assert later.table is not None
    held = {row.source: row.bytes for row in later.table.lines()}
    assert held["out.append(bytearray(30 * MB))"] == pytest.approx(30 * MB, rel=0.01)
    assert later.table.peak_bytes == pytest.approx(30 * MB + sum(map(sys.getsizeof, again)), rel=0.01)
    del kept, again


def test_kept_gives_the_bytes_each_stack_still_holds_at_the_capture() -> None:
    def keep(out: list) -> None:
        out.append(bytearray(3 * MB))

    out: list = []
    with peak_report() as peak:
        scratch = bytearray(20 * MB)
        del scratch
        keep(out)
        thread = threading.Thread(target=keep, args=(out,))
        thread.start()
        thread.join()
    assert peak.table is not None
    kept = [stack for stack in peak.table.kept if stack.frames]
    held = [stack for stack in kept if stack.frames[0][1].endswith("keep") and stack.bytes > MB]
    # One stack through this test's line, one through the thread's bootstrap: 3 MB each, and the
    # first also the list's growth to its first items (the same line: stacks are by line).
    growth = sys.getsizeof(out) - sys.getsizeof([])
    assert sorted(stack.bytes for stack in held) == [sys.getsizeof(out[0]),
                                                     sys.getsizeof(out[0]) + growth]
    assert {stack.frames[1][1] for stack in held} == {
        "test_kept_gives_the_bytes_each_stack_still_holds_at_the_capture", "Thread.run"}
    assert not any(stack.bytes >= 20 * MB for stack in kept)  # freed before the capture
    del out


def test_the_recorder_is_stopped_after_the_block_and_its_error_passes_through() -> None:
    with pytest.raises(ZeroDivisionError):
        with peak_report():
            1 / 0
    assert _memxx.hook_stats()["active"] is False
    with pytest.raises(ValueError, match="not running"):
        _memxx.peak_report()


def test_peak_file_on_sigint_and_sigterm_and_never_half_written_on_sigkill(tmp_path: Path) -> None:
    (tmp_path / "hold.py").write_text(textwrap.dedent("""
        import time
        held = [bytearray(1000) for _ in range(20_000)]
        print("ready", flush=True)
        time.sleep(60)
    """))
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        folder = tmp_path / signal.Signals(signum).name
        folder.mkdir()
        shutil.copy(tmp_path / "hold.py", folder)
        process = subprocess.Popen([sys.executable, "-m", "mprofxx", "run", "--peak", "hold.py"],
                                   cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        assert process.stdout is not None
        while "ready" not in process.stdout.readline():
            pass
        if signum == signal.SIGKILL:
            os.killpg(process.pid, signum)  # the recorder and the program, at once
        else:
            process.send_signal(signum)
        process.communicate(timeout=60)
        dat = only(folder, "mprofile_*.dat")
        assert dat.read_text().startswith("CMDLINE ")
        assert _memxx.read_profile(str(dat))["memory"]
        peak_files = list(folder.glob("mprofile_*.peak.json"))
        if signum == signal.SIGKILL:
            assert peak_files == []  # absent: nothing half written either
            leftovers = [p for p in folder.rglob("*") if p.suffix == ".json"]
            for path in leftovers:
                json.loads(path.read_text())
            assert mprofxx("clean", cwd=folder).returncode == 0
            assert not list(folder.glob("mprofile_*"))
            continue
        (table,) = load(str(peak_files[0]))
        held = {row.lineno: row.bytes for row in table.lines() if row.filename.endswith("hold.py")}
        assert held[3] >= 20_000 * 1000


def test_each_worker_gets_its_own_table(tmp_path: Path) -> None:
    (tmp_path / "workers.py").write_text(textwrap.dedent("""
        import multiprocessing as mp

        def work(n):
            block = bytearray(n)          # line 5
            return len(block)

        if __name__ == "__main__":
            for method in ("fork", "spawn"):
                with mp.get_context(method).Pool(1) as pool:
                    assert pool.map(work, [20_000_000]) == [20_000_000]
            kept = bytearray(5_000_000)   # line 12
    """))
    result = mprofxx("run", "-M", "--peak", "workers.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    tables = load(str(only(tmp_path, "mprofile_*.peak.json")))
    main, *workers = tables
    assert main.parent is not None and main.cmdline.endswith("workers.py")
    main_rows = {r.lineno: r.bytes for r in main.lines() if r.filename.endswith("workers.py")}
    assert main_rows[12] == pytest.approx(5_000_000, rel=0.01)
    assert main_rows.get(5, 0) == 0
    worker_peaks = [
        {r.lineno: r.bytes for r in t.lines() if r.filename.endswith("workers.py")}.get(5, 0)
        for t in workers
    ]
    assert len(workers) >= 2  # a fork worker and a spawn worker
    assert sorted(worker_peaks)[-2:] == [pytest.approx(20_000_000, rel=0.01)] * 2
    lines = mprofxx("peak", "--lines", cwd=tmp_path).stdout
    assert lines.count("\nchild ") == len(workers)


def test_flame_graph_in_a_headless_browser(planted: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-deps.sh installs it)")
    result = mprofxx("flame", "-o", str(tmp_path / "peak.html"), cwd=planted)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "peak.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]

    def dom(extra_script: str) -> str:
        probe = tmp_path / "probe.html"
        probe.write_text(page.replace("</body>", f"<script>{extra_script}</script></body>"))
        done = subprocess.run(flags + ["--dump-dom", probe.as_uri()], check=True,
                              capture_output=True, text=True, timeout=120)
        return done.stdout

    # The top box is the whole peak; the widest box under the script's frames is main's lists.
    shown = dom("document.body.dataset.top = document.querySelector('.box').textContent;"
                "document.body.dataset.info = document.getElementById('info').textContent;")
    assert 'data-top="all"' in shown
    # Click the innermost box of line 23 (main's listcomp on 3.11; inlined in main on 3.12+):
    # the view zooms to it.
    clicked = dom(
        "const boxes = [...document.querySelectorAll('.box')]"
        "  .filter(b => b.textContent.endsWith('planted.py:23'));"
        "const target = boxes[boxes.length - 1];"
        "document.body.dataset.clicked = target.textContent;"
        "target.click();"
        "document.body.dataset.top = document.querySelector('.box').textContent;"
        "document.body.dataset.width = document.querySelector('.box').style.width;"
        "document.body.dataset.info = document.getElementById('info').textContent;")
    label = clicked.split('data-clicked="')[1].split('"')[0]
    assert label.endswith("planted.py:23") and label.startswith("main")
    assert f'data-top="{label}"' in clicked
    assert 'data-width="100%"' in clicked
    assert "MiB" in clicked.split('data-info="')[1].split('"')[0]
    # A screenshot: the boxes are drawn.
    image = pytest.importorskip("PIL.Image")
    import numpy as np

    shot = tmp_path / "flame.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,500",
                            (tmp_path / "peak.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(image.open(shot).convert("RGB")).astype(int)
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    # Three rows of boxes, less the import lines' stacks (under 0.1 % each, merged per line:
    # one frame deep) that leave the third row short by their ~1 %.
    assert coloured[:, :].sum() > 1200 * 18 * 3 * 0.97


def test_svg_flame_and_plot_annotation(planted: Path, tmp_path: Path) -> None:
    result = mprofxx("flame", "-o", str(tmp_path / "peak.svg"), cwd=planted)
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "peak.svg").read_text()
    assert svg.startswith("<svg") and "planted.py:23" in svg
    pytest.importorskip("matplotlib")
    from mprofxx._plot import peak_lines_note
    from mprofxx._profiles import read

    note = peak_lines_note(read(str(only(planted, "mprofile_*.dat"))))
    assert [line.split()[-1] for line in note.strip().splitlines()] == [
        "planted.py:23", "planted.py:24", "planted.py:25"]


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text("x = 1\n")
    assert mprofxx("run", "tiny.py", cwd=tmp_path).returncode == 0  # no --peak: no peak file
    one_error_line(mprofxx("flame", cwd=tmp_path), "no peak file", "--peak")
    one_error_line(mprofxx("peak", "--lines", cwd=tmp_path), "no peak file")
    dat = only(tmp_path, "mprofile_*.dat")
    peak_file = tmp_path / dat.name.replace(".dat", ".peak.json")
    for corrupt, words in (("{\"format\": \"mprofxx-peak\", \"vers", ("not JSON",)),
                           ("[1, 2]", ("not an mprofxx-peak file",)),
                           ('{"format": "mprofxx-peak", "version": 1, "processes": [{"pid": 1}]}',
                            ("not a peak table",))):
        peak_file.write_text(corrupt)
        for command in (("flame",), ("peak", "--lines")):
            one_error_line(mprofxx(*command, cwd=tmp_path), peak_file.name, *words)
    one_error_line(mprofxx("flame", "-o", "peak.png", cwd=tmp_path), "peak.png", ".html or .svg")
    one_error_line(mprofxx("run", "--peak", "true", cwd=tmp_path), "--peak", "Python programs")
    with pytest.raises(PeakFileError, match="version 9"):
        loads('{"format": "mprofxx-peak", "version": 9, "processes": []}', "x.peak.json")


def test_the_tree_in_the_file_gives_back_every_stack_and_version_1_files_still_read() -> None:
    main = ("app.py", "<module>", 1)
    stacks = [PeakStack(300, (("lib.py", "f", 5), ("app.py", "run", 9), main)),
              PeakStack(200, (("lib.py", "g", 7), ("app.py", "run", 9), main)),
              PeakStack(100, (("app.py", "run", 10), main), deeper=True),
              PeakStack(50, ())]
    table = PeakTable(pid=1, peak_bytes=650, peak_time=2.0, stacks=stacks)
    entry = table.to_json()
    assert len(entry["nodes"]) == 5  # main, run:9, f, g, run:10: the shared callers once
    (back,) = loads(dumps([table]), "x.peak.json")
    assert back.stacks == stacks
    # Version 1: a frame list per stack, innermost first.
    old = {"pid": 1, "peak_bytes": 650, "peak_time": 2.0,
           "frames": [list(frame) for frame in stacks[0].frames],
           "stacks": [{"bytes": 300, "frames": [0, 1, 2]}]}
    (read,) = loads(json.dumps({"format": "mprofxx-peak", "version": 1, "processes": [old]}), "v1")
    assert read.stacks == stacks[:1]
    # A node called from a later one, or a stack naming no node, is not a peak table.
    for nodes, node in (([[1, 0], [-1, 0]], 0), ([[-1, 0]], 3), ([[-1, -2]], 0)):
        bad = dict(entry, nodes=nodes, stacks=[{"bytes": 1, "node": node}])
        with pytest.raises(PeakFileError, match="not a peak table"):
            loads(json.dumps({"format": "mprofxx-peak", "version": 2, "processes": [bad]}), "x")


def _walk(depth: int, sides: list[bool], kept: list) -> None:
    if depth == 0:
        kept.append(bytearray(100))  # one stack per path down
    elif sides[depth]:
        _walk(depth - 1, sides, kept)  # the path goes through one of these two lines
    else:
        _walk(depth - 1, sides, kept)


def test_stacks_are_interned_as_a_tree_of_lines() -> None:
    depth = 12
    paths = [[False] + [(bits >> d) & 1 == 1 for d in range(depth)] for bits in range(2**depth)]
    kept: list = [None]
    kept.pop()  # its items array made before recording
    _memxx.peak_start(False)
    try:
        for sides in paths:
            _walk(depth, sides, kept)
        report = _memxx.peak_report(0, False)
    finally:
        _memxx.peak_stop()
    # _walk's nodes: two per level above the leaves (the two call lines) times the paths there,
    # and the leaf line under each path: 2 + 4 + ... + 2^depth, plus 2^depth. The frames above
    # (this test's line, pytest's) add a few; a node per frame of every stack would be
    # depth * 2^depth.
    walk_nodes = 2 ** (depth + 1) - 2 + 2**depth
    assert walk_nodes <= report["stack_nodes"] <= walk_nodes + 200
    assert 2**depth <= report["stacks"] <= 2**depth + 20  # stacks that allocated
    assert report["stack_table_bytes"] <= 256 * report["stack_nodes"]


def _leaf(depth: int, sides: list[bool], kept: list, size: int) -> None:
    if depth == 0:
        kept.append(bytearray(size))  # the one line of many small stacks
    elif sides[depth]:
        _leaf(depth - 1, sides, kept, size)
    else:
        _leaf(depth - 1, sides, kept, size)


def test_small_stacks_are_grouped_by_their_line() -> None:
    # capture(merge_below=...) as a run writes it: the stacks below the floor add up by line.
    # The truth is the same recorder's table without merging: every line kept holds what its
    # stacks held, the lines cut are in the one cut row, and nothing is lost or counted twice.
    from _memxx_shared.peak_capture import capture

    depth = 9
    paths = [[False] + [(bits >> d) & 1 == 1 for d in range(depth)] for bits in range(2**depth)]
    kept: list = [None] * 3000
    del kept[:]
    _memxx.peak_start(False)
    try:
        big = bytearray(3_000_000)
        for sides in paths:  # 512 stacks of ~150 B: together above the floor
            _walk(depth, sides, kept)
        _leaf(depth, paths[0], kept, 2_000_000)  # one stack above the floor at _leaf's line
        for sides in paths[1:100]:  # small ones at that line, below the floor together
            _leaf(depth, sides, kept, 10)
        tiny = [bytearray(20) for _ in range(3)]  # below the floor, shown by nothing: TINY
        merged = capture(merge_below=0.01)
        whole = capture()
    finally:
        _memxx.peak_stop()
    del big, tiny

    def by_line(table: PeakTable) -> dict[int, int]:
        return {row.lineno: row.bytes for row in table.lines()
                if row.filename == __file__ and row.function.startswith(("_walk", "_leaf"))}

    walk_line = _walk.__code__.co_firstlineno + 2
    leaf_line = _leaf.__code__.co_firstlineno + 2
    with open(__file__, encoding="utf-8") as source:
        tiny_line = next(number for number, text in enumerate(source, 1)
                         if text.rstrip().endswith("shown by nothing: TINY"))
    truth = by_line(whole)
    assert truth[walk_line] > 512 * 100 and truth[leaf_line] > 2_000_000 + 99 * 10
    assert by_line(merged) == truth
    # The 512 small stacks are one row: the line over the caller they share (this test's loop).
    (row,) = [s for s in merged.stacks if s.frames and s.frames[0][2] == walk_line]
    assert row.bytes == truth[walk_line]
    caller = row.frames[1]
    assert caller[0] == __file__ and caller[1] == "test_small_stacks_are_grouped_by_their_line"
    # The tiny line is cut, and the cut row holds exactly what the rows left out held.
    whole_tiny = sum(s.bytes for s in whole.stacks if s.frames and s.frames[0][2] == tiny_line
                     and s.frames[0][0] == __file__)
    assert whole_tiny > 3 * 20
    assert not any(s.frames and s.frames[0][0] == __file__ and s.frames[0][2] == tiny_line
                   for s in merged.stacks)
    assert merged.cut_stacks >= 1 and merged.cut_bytes >= whole_tiny
    # Each capture's own allocations may move the peak: each table is checked against its own.
    assert sum(s.bytes for s in merged.stacks) == merged.peak_bytes
    assert sum(s.bytes for s in whole.stacks) == whole.peak_bytes
    assert len(merged.stacks) < len(whole.stacks) - 500


def _branch(depth: int, sides: list[bool], kept: list, keep: bool) -> None:
    if depth == 0:
        block = bytearray(100)  # one stack per path down
        if keep:
            kept.append(block)
    elif sides[depth]:
        _branch(depth - 1, sides, kept, keep)  # the path goes through one of these two lines
    else:
        _branch(depth - 1, sides, kept, keep)


def _branch_paths(report: dict, rows: list) -> dict[tuple[bool, ...], int]:
    """The sides each row's stack took through _branch, read back from the tree: its bytes."""
    code = _branch.__code__
    leaf, first_side, other_side = (code.co_firstlineno + n for n in (2, 6, 8))
    paths: dict[tuple[bool, ...], int] = {}
    for size, node in rows:
        parent, frame_code, line = report["nodes"][node]
        if frame_code is not code or line != leaf:
            continue
        sides = []
        while parent >= 0 and report["nodes"][parent][1] is code:
            parent, _code, line = report["nodes"][parent]
            assert line in (first_side, other_side)
            sides.append(line == first_side)  # depth 1 first
        paths[tuple(sides)] = size
    return paths


def _record_branches(depth: int, keep_every: int) -> tuple[dict, list[list[bool]]]:
    paths = [[False] + [(bits >> d) & 1 == 1 for d in range(depth)] for bits in range(2**depth)]
    kept: list = [None]
    kept.pop()  # its items array made before recording
    _memxx.peak_start(False)
    try:
        for n, sides in enumerate(paths):
            _branch(depth, sides, kept, n % keep_every == 0)
        report = _memxx.peak_report(-1, True)
    finally:
        _memxx.peak_stop()
    return report, [sides for n, sides in enumerate(paths) if n % keep_every == 0]


def test_the_stack_table_costs_a_few_bytes_per_node_with_every_stack_held() -> None:
    # 65,536 stacks that each hold a block, through 196,606 nodes of _branch: the tree, its
    # index, the figures per stack and two tags per stack (a bytearray's object and its
    # buffer), 26 bytes a node in all (it was 92; 31 with 12-byte nodes and every tag in the
    # tag index, though each is held by one block).
    depth = 16
    report, kept_paths = _record_branches(depth, keep_every=1)
    branch_nodes = 2 ** (depth + 1) - 2 + 2**depth
    assert branch_nodes <= report["stack_nodes"] <= branch_nodes + 500
    assert report["stack_table_bytes"] <= 28 * report["stack_nodes"], (
        report["stack_table_bytes"] / report["stack_nodes"])
    held = _branch_paths(report, report["live_now"])
    assert set(held) == {tuple(sides[1:]) for sides in kept_paths}


def test_stacks_that_hold_nothing_are_forgotten_and_the_others_stay_exact() -> None:
    # 65,536 stacks, one in 64 holding its block: the other 64,512 hold nothing now and held
    # nothing at the peak, so the tree forgets them once it has 65,536 nodes (it kept all
    # 196,606, 13.4 MB); what the kept ones hold is still theirs, path by path.
    depth = 16
    report, kept_paths = _record_branches(depth, keep_every=64)
    assert report["stack_nodes"] <= 70_000
    assert report["stack_table_bytes"] < 2.5 * 2**20
    held = _branch_paths(report, report["live_now"])
    assert set(held) == {tuple(sides[1:]) for sides in kept_paths}
    # A bytearray(100) each. On 3.12 the first run of the leaf line also leaves one small block
    # of the interpreter's own there (48 B): one path may hold a little more, never less.
    block = sys.getsizeof(bytearray(100))
    figures = sorted(held.values())
    assert figures[:-1] == [block] * (len(figures) - 1)
    assert block <= figures[-1] <= block + 64
    at_peak = _branch_paths(report, report["at_peak"])
    assert at_peak.keys() >= held.keys()


def test_a_failing_program_keeps_its_exception_and_its_peak(tmp_path: Path) -> None:
    (tmp_path / "fails.py").write_text("held = bytearray(3_000_000)\nraise RuntimeError('own')\n")
    result = mprofxx("run", "--peak", "-E", "fails.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "RuntimeError: own" in result.stderr
    (table,) = load(str(only(tmp_path, "mprofile_*.peak.json")))
    assert table.lines()[0].lineno == 1 and table.lines()[0].bytes >= 3_000_000


def test_peak_magic_in_a_real_ipython(tmp_path: Path) -> None:
    pytest.importorskip("IPython")
    code = textwrap.dedent("""
        %load_ext memory_profilerxx
        big = [bytearray(1000) for _ in range(10)]
        %peak -n 3 x = [bytearray(2_000_000) for _ in range(5)]; del x; y = bytearray(1_000_000)
        t = %peak -o -N z = bytearray(4_000_000)
        print("PEAK", t.peak_bytes)
    """)
    script = ("import sys, os\nfrom IPython.terminal.ipapp import launch_new_instance\n"
              "sys.argv = ['ipython', '--no-banner', '--colors=NoColor', '-c', os.environ['CODE']]\n"
              "launch_new_instance()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180, env=dict(os.environ, CODE=code), check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    head = next(i for i, line in enumerate(out) if line.startswith("peak "))
    assert out[head + 1] == "   MiB      %  line"
    assert "<peak-1>:1  x = [bytearray(2_000_000)" in out[head + 2]
    assert float(out[head + 2].split()[0]) == pytest.approx(5 * 2_000_000 / 2**20, abs=0.1)
    peak_line = next(line for line in out if line.startswith("PEAK "))
    assert int(peak_line.split()[1]) == pytest.approx(4_000_000, rel=0.01)


def test_allocation_sites_and_the_peak_recorder_at_once_each_get_their_events() -> None:
    # Two consumers of the allocation stream subscribed together (core/alloc_stream.hpp): the
    # sites get the objects, the recorder every block, neither at the other's expense.
    objgraphxx = pytest.importorskip("objgraphxx")
    with objgraphxx.track_allocations():
        with peak_report(native=False) as peak:
            held = [bytearray(1000) for _ in range(10_000)]
            line = sys._getframe().f_lineno - 1
            scratch = bytearray(8 * MB)
            del scratch
        site = objgraphxx.allocation_site(held[1234])
    objgraphxx.track_allocations().stop(forget=True)
    assert site == (__file__, line)
    assert peak.table is not None
    rows = {row.lineno: row.bytes for row in peak.table.lines() if row.filename == __file__}
    items = sum(map(sys.getsizeof, held))
    assert rows[line] == pytest.approx(items + sys.getsizeof(held), rel=0.01)
    assert peak.table.peak_bytes == pytest.approx(items + 8 * MB, rel=0.01)
    del held
