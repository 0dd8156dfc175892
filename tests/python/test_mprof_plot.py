"""mprofxx plot renders real pictures; memory_profiler's mprof and mprofxx read each other's files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("_memxx")
pytest.importorskip("matplotlib")
import matplotlib.image as mpimg
import numpy as np


def run(module: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=env,
    )


def synthetic_dat(path: Path, children: bool = False, offset: float = 0.0) -> None:
    """A 4 s recording: 20 MiB, ramp to 220 MiB at t=2, back down; two FUNC spans."""
    lines = ["CMDLINE python synthetic.py"]
    t0 = 1_700_000_000.0
    for i in range(41):
        t = i * 0.1
        mem = 20 + 200 * max(0.0, 1 - abs(t - 2) / 1.5) + offset
        lines.append(f"MEM {mem:.6f} {t0 + t:.4f}")
        if children:
            lines.append(f"CHLD 4242 {30 + 10 * t:.6f} {t0 + t:.4f}")
            lines.append(f"CHLD 4243 {60.0:.6f} {t0 + t:.4f}")
    lines.append(f"FUNC __main__.load 20.0000 {t0 + 0.5:.4f} 220.0000 {t0 + 2.0:.4f} 0")
    lines.append(f"FUNC app.parse.load 120.0000 {t0 + 1.0:.4f} 140.0000 {t0 + 1.5:.4f} 1")
    path.write_text("\n".join(lines) + "\n")


def pixels(png: Path) -> np.ndarray:
    image = mpimg.imread(str(png))
    return image[:, :, :3]


def count_colour(image: np.ndarray, rgb: tuple[float, float, float], tol: float = 0.12) -> int:
    return int((np.abs(image - np.asarray(rgb)).max(axis=2) < tol).sum())


def test_png_has_the_curve_peak_and_size(tmp_path: Path) -> None:
    synthetic_dat(tmp_path / "s.dat")
    assert run("mprofxx", "plot", "-o", "full.png", "s.dat", cwd=tmp_path).returncode == 0
    # The same plot with the window moved past the data: no curve, no marks.
    assert (
        run("mprofxx", "plot", "-o", "empty.png", "-w", "100,101", "s.dat", cwd=tmp_path).returncode
        == 0
    )
    full, empty = pixels(tmp_path / "full.png"), pixels(tmp_path / "empty.png")
    assert full.shape == (540, 1260, 3)  # 14 x 6 in at 90 dpi, as mprof draws it
    black_full, black_empty = count_colour(full, (0, 0, 0)), count_colour(empty, (0, 0, 0))
    assert black_full > black_empty + 800, (black_full, black_empty)
    assert count_colour(full, (1, 0, 0)) > 500  # the red dashed peak lines
    assert (tmp_path / "full.png").stat().st_size > 20_000


def test_brackets_and_flame_chart(tmp_path: Path) -> None:
    synthetic_dat(tmp_path / "s.dat")
    assert run("mprofxx", "plot", "-o", "b.png", "s.dat", cwd=tmp_path).returncode == 0
    assert run("mprofxx", "plot", "-n", "-o", "n.png", "s.dat", cwd=tmp_path).returncode == 0
    cyan = (0x17 / 255, 0xBE / 255, 0xCF / 255)  # the first span colour
    assert count_colour(pixels(tmp_path / "b.png"), cyan, 0.08) > 100
    assert count_colour(pixels(tmp_path / "n.png"), cyan, 0.08) == 0
    assert run("mprofxx", "plot", "-f", "-o", "f.png", "s.dat", cwd=tmp_path).returncode == 0
    flame = pixels(tmp_path / "f.png")
    assert flame.shape == (630, 1260, 3)
    orange = count_colour(flame, (0xE4 / 255, 0x57 / 255, 0x2E / 255), 0.1)
    assert orange > 5000  # the load span: 1.5 s of a 4 s axis, one row deep


def test_children_and_overlay_and_formats(tmp_path: Path) -> None:
    synthetic_dat(tmp_path / "c.dat", children=True)
    synthetic_dat(tmp_path / "o.dat", offset=50)
    for args in (
        ["-o", "sep.png", "c.dat"],
        ["--children", "stacked", "-o", "st.png", "c.dat"],
        ["-s", "-o", "two.png", "c.dat", "o.dat"],
        ["-o", "v.svg", "c.dat"],
        ["-o", "v.pdf", "c.dat"],
    ):
        result = run("mprofxx", "plot", *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    blue = (0x1F / 255, 0x77 / 255, 0xB4 / 255)  # the second file's colour
    assert count_colour(pixels(tmp_path / "two.png"), blue, 0.08) > 300
    assert (
        count_colour(pixels(tmp_path / "sep.png"), (0x17 / 255, 0xBE / 255, 0xCF / 255), 0.08) > 300
    )  # child 4242's line
    assert "<svg" in (tmp_path / "v.svg").read_text()[:500]
    assert (tmp_path / "v.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "st.png").stat().st_size > 20_000


def test_without_display_writes_a_png_and_says_where(tmp_path: Path) -> None:
    synthetic_dat(tmp_path / "mprofile_20240101120000.dat")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run("mprofxx", "plot", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "mprofile_20240101120000.png" in result.stderr + result.stdout
    assert pixels(tmp_path / "mprofile_20240101120000.png").shape == (540, 1260, 3)


SCRIPT = """
    import time

    @profile
    def work():
        data = bytearray(80 << 20)
        data[::4096] = b"x" * len(range(0, len(data), 4096))
        time.sleep(0.4)
        return len(data)

    work()
"""


def test_mprof_reads_our_files(tmp_path: Path) -> None:
    pytest.importorskip("mprof")
    (tmp_path / "w.py").write_text(textwrap.dedent(SCRIPT))
    assert (
        run("mprofxx", "run", "-M", "-T", "0.02", "-o", "ours.dat", "w.py", cwd=tmp_path).returncode
        == 0
    )
    ours = run("mprofxx", "peak", "ours.dat", cwd=tmp_path).stdout
    theirs = run("mprof", "peak", "ours.dat", cwd=tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout == ours
    assert float(ours.split("\t")[1].split()[0]) > 80
    plot = run("mprof", "plot", "-o", "theirs.png", "ours.dat", cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    assert pixels(tmp_path / "theirs.png").shape[1] > 1000


def test_we_read_mprofs_files(tmp_path: Path) -> None:
    pytest.importorskip("mprof")
    (tmp_path / "w.py").write_text(textwrap.dedent(SCRIPT))
    recorded = run("mprof", "run", "-T", "0.02", "-o", "theirs.dat", "w.py", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    text = (tmp_path / "theirs.dat").read_text()
    assert "FUNC __main__.work" in text
    ours = run("mprofxx", "peak", "theirs.dat", cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == run("mprof", "peak", "theirs.dat", cwd=tmp_path).stdout
    plot = run("mprofxx", "plot", "-o", "ours.png", "theirs.dat", cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    cyan = (0x17 / 255, 0xBE / 255, 0xCF / 255)
    assert count_colour(pixels(tmp_path / "ours.png"), cyan, 0.08) > 50  # their FUNC bracket
