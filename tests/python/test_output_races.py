"""Every output of the three tools, written while another thread keeps planting a symbolic link
at its path (and taking it away again): whatever the interleaving, the link's target is never
written. Refusals (OutputFileError, one error line from a CLI) are allowed; writing through the
link is not."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

_memxx = pytest.importorskip("_memxx")

PRECIOUS = "precious\n"
ROUNDS = 40


class LinkPlanter(threading.Thread):
    """Puts a link to `victim` at each path (atomically, by rename), then removes it, in a loop."""

    def __init__(self, paths: list[Path], victim: Path) -> None:
        super().__init__(daemon=True)
        self.paths = paths
        self.victim = victim
        self.planted = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for path in self.paths:
                spare = path.with_name(path.name + ".link")
                try:
                    os.symlink(self.victim, spare)
                    os.replace(spare, path)
                    self.planted += 1
                    os.unlink(path)
                except OSError:
                    pass


@pytest.fixture
def planting(tmp_path: Path) -> Iterator[Callable[..., LinkPlanter]]:
    victim = tmp_path / "victim.txt"
    victim.write_text(PRECIOUS)
    started: list[LinkPlanter] = []

    def start(*names: str) -> LinkPlanter:
        planter = LinkPlanter([tmp_path / n for n in names], victim)
        planter.start()
        started.append(planter)
        return planter

    yield start
    for planter in started:
        planter.done.set()
        planter.join()
        assert planter.planted > 0
    assert victim.read_text() == PRECIOUS
    assert victim.stat().st_nlink == 1


def attempt(write: Callable[[], object]) -> None:
    """Run one write; a refusal is fine (that is the point), as is a path that vanished."""
    from mprofxx._profiles import CliError

    try:
        write()
    except (ValueError, OSError, CliError):
        pass


def test_write_output_and_open_output(tmp_path: Path, planting) -> None:
    planting("whole.txt", "appended.txt", "profile.dat")
    for _ in range(ROUNDS * 5):
        attempt(lambda: _memxx.write_output(str(tmp_path / "whole.txt"), "overwritten\n"))

        def append() -> None:
            fd = _memxx.open_output(str(tmp_path / "appended.txt"), append=True)
            os.write(fd, b"appended\n")
            os.close(fd)

        attempt(append)
        attempt(lambda: _memxx.create_dat(str(tmp_path / "profile.dat"), "python x.py"))


def test_objgraphxx_graphs_and_snapshots(tmp_path: Path, planting) -> None:
    import objgraphxx

    planting("graph.dot", "graph.png", "heap.json", "chain.svg")
    target = [[1, 2], {"k": 3}]
    snap = objgraphxx.snapshot()
    with io.StringIO() as quiet:
        sys.stdout, saved = quiet, sys.stdout
        try:
            for _ in range(ROUNDS):
                attempt(lambda: objgraphxx.show_refs([target], filename=str(tmp_path / "graph.dot")))
                attempt(lambda: objgraphxx.show_refs([target], filename=str(tmp_path / "graph.png")))
                attempt(lambda: snap.save(str(tmp_path / "heap.json")))
                attempt(lambda: objgraphxx.show_chain([target, target[0]], backrefs=False,
                                                      filename=str(tmp_path / "chain.svg")))
        finally:
            sys.stdout = saved


def test_mprofxx_plot_image(tmp_path: Path, planting) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mprofxx import _plot

    figure = plt.figure()
    figure.gca().plot([0, 1], [1, 2])
    planting("plot.png")
    for _ in range(ROUNDS):
        attempt(lambda: _plot._save_figure(figure, str(tmp_path / "plot.png")))
    plt.close(figure)


SCRIPT = """
from memory_profilerxx import profile

@profile
def work():
    data = [0] * 100000
    return len(data)

work()
"""


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_mprofxx_run_dat_and_json(tmp_path: Path, planting) -> None:
    (tmp_path / "s.py").write_text(textwrap.dedent(SCRIPT))
    planting("r.dat", "r.json")
    for _ in range(3):
        done = run(["-m", "mprofxx", "run", "--json", "-o", "r.dat", "s.py"], tmp_path)
        assert "Traceback" not in done.stderr, done.stderr


def test_mprofxx_peak_file_and_flame_graph(tmp_path: Path, planting) -> None:
    (tmp_path / "s.py").write_text(textwrap.dedent(SCRIPT))
    first = run(["-m", "mprofxx", "run", "--peak", "-o", "p.dat", "s.py"], tmp_path)
    assert first.returncode == 0, first.stderr
    planting("r.peak.json", "peak.html", "peak.svg")
    for _ in range(3):
        run(["-m", "mprofxx", "run", "--peak", "-o", "r.dat", "s.py"], tmp_path)
    for _ in range(ROUNDS // 4):
        run(["-m", "mprofxx", "flame", "-o", "peak.html", "p.dat"], tmp_path)
        run(["-m", "mprofxx", "flame", "-o", "peak.svg", "p.dat"], tmp_path)


def test_memory_profilerxx_report_and_json(tmp_path: Path, planting) -> None:
    (tmp_path / "s.py").write_text(textwrap.dedent(SCRIPT))
    planting("report.txt", "report.json")
    for _ in range(3):
        done = run(["-m", "memory_profilerxx", "-o", "report.txt", "--json", "report.json",
                    "s.py"], tmp_path)
        assert "Traceback" not in done.stderr, done.stderr


def test_pytest_plugin_json(tmp_path: Path, planting) -> None:
    (tmp_path / "test_small.py").write_text("def test_one():\n    assert [0] * 1000\n")
    planting("figures.json")
    for _ in range(2):
        done = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                    "memory_profilerxx.pytest_plugin", "--memxx", "--memxx-json", "figures.json",
                    "test_small.py"], tmp_path)
        assert "INTERNALERROR" not in done.stdout + done.stderr, done.stdout + done.stderr
