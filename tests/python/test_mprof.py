"""mprofxx end to end: real child processes, real .dat files, real pictures."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

_memxx = pytest.importorskip("_memxx")


def mprofxx(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mprofxx", *args],
        cwd=cwd,
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
    )


def write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


def records(path: Path, tag: str) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.startswith(tag + " ")]


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mprofxx: error: "), result.stderr


PLATEAUS = """
    import time

    def touch(n):
        b = bytearray(n)
        b[::4096] = b"x" * len(range(0, n, 4096))
        return b

    def hold(name):
        with profile.timestamp(name):
            time.sleep(0.4)

    @profile
    def allocate():
        hold("base")
        a = touch(100 << 20)
        hold("first")
        b = touch(200 << 20)
        hold("second")
        del a, b
        hold("freed")

    allocate()
"""


def test_plateaus_follow_allocations_within_2_mib(tmp_path: Path) -> None:
    write_script(tmp_path, "plateaus.py", PLATEAUS)
    result = mprofxx("run", "-T", "0.02", "-o", "p.dat", "plateaus.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    profile = _memxx.read_profile(str(tmp_path / "p.dat"))
    spans = {f[0]: f for f in profile["functions"]}
    assert spans["__main__.allocate"][5] == 0 and spans[".base"][5] == 1

    def plateau(name: str) -> float:
        t0, t1 = spans[name][2], spans[name][4]
        values = sorted(m for m, t in profile["memory"] if t0 + 0.05 <= t <= t1 - 0.05)
        assert len(values) >= 5
        assert values[-1] - values[0] <= 2  # flat while it sleeps
        return values[len(values) // 2]

    base = plateau(".base")
    assert abs((plateau(".first") - base) - 100) <= 2
    assert abs((plateau(".second") - base) - 300) <= 2
    assert abs(plateau(".freed") - base) <= 2
    assert profile["cmdline"] == "python plateaus.py"


def test_samples_keep_their_period_at_10_ms(tmp_path: Path) -> None:
    write_script(tmp_path, "sleepy.py", "import time\ntime.sleep(1.0)\n")
    assert mprofxx("run", "-T", "0.01", "-o", "s.dat", "sleepy.py", cwd=tmp_path).returncode == 0
    times = [float(r[2]) for r in records(tmp_path / "s.dat", "MEM")]
    assert len(times) >= 80
    periods = sorted(b - a for a, b in itertools.pairwise(times))
    median = periods[len(periods) // 2]
    assert abs(median - 0.01) <= 0.001
    # Absolute deadlines: no drift, the samples sit near one phase of the 10 ms grid (sleeping
    # 10 ms after each sample would spread them across the period). The phase is the one that
    # fits best, not the first sample's: that one may itself be late on a loaded machine.
    phases = [((t - times[0]) / 0.01) % 1.0 for t in times]

    def median_residual(reference: float) -> float:
        off = sorted(abs((phase - reference + 0.5) % 1.0 - 0.5) * 0.01 for phase in phases)
        return off[len(off) // 2]

    assert min(median_residual(reference) for reference in phases) <= 0.001


POOL = """
    import multiprocessing as mp
    import time

    def work(i):
        block = bytearray(60 << 20)
        block[::4096] = b"x" * len(range(0, len(block), 4096))
        time.sleep(1.0)
        return len(block)

    if __name__ == "__main__":
        mp.set_start_method("spawn")
        with mp.Pool(3) as pool:
            print(sum(pool.map(work, range(3))))
"""


def test_multiprocess_records_three_spawned_workers(tmp_path: Path) -> None:
    write_script(tmp_path, "pool.py", POOL)
    result = mprofxx("run", "-M", "-T", "0.05", "-o", "m.dat", "pool.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(3 * (60 << 20)) in result.stdout  # the workers pickled a script-level function
    profile = _memxx.read_profile(str(tmp_path / "m.dat"))
    workers = [c for c, s in profile["children"].items() if max(m for m, _ in s) > 60]
    assert len(workers) == 3, {c: max(m for m, _ in s) for c, s in profile["children"].items()}


def test_spawned_workers_have_the_profile_builtin(tmp_path: Path) -> None:
    write_script(
        tmp_path,
        "workers.py",
        """
        import multiprocessing as mp

        @profile
        def work(i):
            return i * 2

        if __name__ == "__main__":
            mp.set_start_method("spawn")
            with mp.Pool(2) as pool:
                print(pool.map(work, range(4)))
    """,
    )
    result = mprofxx("run", "-o", "w.dat", "workers.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[0, 2, 4, 6]" in result.stdout
    assert [r[1] for r in records(tmp_path / "w.dat", "FUNC")] == ["__main__.work"] * 4


def test_status_line_on_a_terminal_only(tmp_path: Path) -> None:
    import pty

    write_script(tmp_path, "short.py", "import time\ntime.sleep(0.8)\n")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mprofxx", "run", "-o", "t.dat", "short.py"],
        cwd=tmp_path,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=30)
    os.close(leader)
    assert b"[mprofxx]" in output and b"peak" in output and b"MiB" in output
    piped = mprofxx("run", "-o", "t.dat", "short.py", cwd=tmp_path)
    assert "[mprofxx]" not in piped.stdout


def test_include_children_adds_the_workers(tmp_path: Path) -> None:
    write_script(tmp_path, "pool.py", POOL)
    result = mprofxx("run", "-C", "-T", "0.05", "-o", "c.dat", "pool.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    profile = _memxx.read_profile(str(tmp_path / "c.dat"))
    assert max(m for m, _ in profile["memory"]) > 3 * 60
    assert profile["children"] == {}


def test_exit_code_passes_through_with_E(tmp_path: Path) -> None:
    write_script(tmp_path, "fails.py", "import sys\nsys.exit(3)\n")
    assert mprofxx("run", "-E", "-o", "e.dat", "fails.py", cwd=tmp_path).returncode == 3
    assert mprofxx("run", "-o", "e.dat", "fails.py", cwd=tmp_path).returncode == 0
    assert records(tmp_path / "e.dat", "MEM")


def test_sigint_during_run_leaves_a_valid_file(tmp_path: Path) -> None:
    write_script(
        tmp_path,
        "long.py",
        """
        import time
        data = bytearray(50 << 20)
        data[::4096] = b"x" * len(range(0, len(data), 4096))
        time.sleep(30)
    """,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mprofxx", "run", "-T", "0.02", "-o", "i.dat", "long.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    dat = tmp_path / "i.dat"
    while time.monotonic() < deadline:
        if dat.exists() and any(float(r[1]) > 50 for r in records(dat, "MEM")):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    # The program's own KeyboardInterrupt traceback passes through; mprofxx adds none.
    assert "cli.py" not in err and "interrupted; the recording up to now is in i.dat" in err
    profile = _memxx.read_profile(str(dat))
    assert max(m for m, _ in profile["memory"]) > 50
    assert dat.read_text().endswith("\n")


def test_killed_target_keeps_every_sample(tmp_path: Path) -> None:
    write_script(
        tmp_path,
        "victim.py",
        """
        import os, signal, time
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    """,
    )
    result = mprofxx("run", "-E", "-T", "0.02", "-o", "k.dat", "victim.py", cwd=tmp_path)
    assert result.returncode == 128 + signal.SIGKILL
    assert len(_memxx.read_profile(str(tmp_path / "k.dat"))["memory"]) >= 15


def test_func_spans_nest_and_name_blocks(tmp_path: Path) -> None:
    write_script(
        tmp_path,
        "nested.py",
        """
        import time

        @profile
        def inner():
            time.sleep(0.05)

        @profile
        def outer():
            inner()
            with profile.timestamp("block"):
                time.sleep(0.05)

        outer()
    """,
    )
    assert mprofxx("run", "-o", "n.dat", "nested.py", cwd=tmp_path).returncode == 0
    spans = {r[1]: r for r in records(tmp_path / "n.dat", "FUNC")}
    assert set(spans) == {"__main__.inner", "__main__.outer", ".block"}
    assert spans["__main__.outer"][6] == "0" and spans["__main__.inner"][6] == "1"
    assert float(spans["__main__.outer"][3]) <= float(spans["__main__.inner"][3])
    assert float(spans["__main__.inner"][5]) <= float(spans["__main__.outer"][5])


def test_imported_span_api_records_inside_a_run(tmp_path: Path) -> None:
    write_script(
        tmp_path,
        "imported.py",
        """
        from mprofxx._spans import function_span, enabled
        assert enabled()
        with function_span("app.load"):
            pass
    """,
    )
    assert mprofxx("run", "-o", "x.dat", "imported.py", cwd=tmp_path).returncode == 0
    assert [r[1] for r in records(tmp_path / "x.dat", "FUNC")] == ["app.load"]


def test_module_target_and_json(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tool.py").write_text("import sys\nprint('args', sys.argv[1:])\n")
    result = mprofxx(
        "run", "--json", "-o", "mod.dat", "-m", "pkg.tool", "--flag", "x", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "args ['--flag', 'x']" in result.stdout
    import json

    doc = json.loads((tmp_path / "mod.json").read_text())
    dat = _memxx.read_profile(str(tmp_path / "mod.dat"))
    assert doc["cmdline"] == "python -m pkg.tool --flag x"
    assert [tuple(s) for s in doc["memory"]] == [tuple(s) for s in dat["memory"]]
    assert _memxx.read_profile(str(tmp_path / "mod.json"))["memory"] == dat["memory"]


def test_executable_target(tmp_path: Path) -> None:
    result = mprofxx("run", "-T", "0.02", "-o", "sh.dat", "sleep", "0.3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert records(tmp_path / "sh.dat", "CMDLINE") == [["CMDLINE", "sleep", "0.3"]]
    assert len(records(tmp_path / "sh.dat", "MEM")) >= 5


def test_attach_records_until_the_process_exits(tmp_path: Path) -> None:
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    try:
        result = mprofxx("attach", "-T", "0.02", "-o", "a.dat", str(target.pid), cwd=tmp_path)
    finally:
        target.wait()
    assert result.returncode == 0, result.stderr
    assert len(records(tmp_path / "a.dat", "MEM")) >= 20
    assert "time.sleep(1.0)" in (tmp_path / "a.dat").read_text().splitlines()[0]


def test_list_peak_rm_clean(tmp_path: Path) -> None:
    for stamp, peak in (("20240101120000", 10.0), ("20240102130000", 42.5)):
        (tmp_path / (f"mprofile_{stamp}.dat")).write_text(
            f"CMDLINE python x.py\nMEM 1.000000 100.0000\nMEM {peak:.6f} 100.1000\n"
            "CHLD 77 5.500000 100.1000\n"
        )
    listing = mprofxx("list", cwd=tmp_path).stdout.splitlines()
    assert listing == [
        "0 mprofile_20240101120000.dat 12:00:00 01/01/2024",
        "1 mprofile_20240102130000.dat 13:00:00 02/01/2024",
    ]
    peak = mprofxx("peak", cwd=tmp_path).stdout.splitlines()
    assert peak == [
        "Using last profile data.",
        "mprofile_20240102130000.dat\t42.500 MiB",
        "  Child 77\t\t\t5.500 MiB",
    ]
    assert mprofxx("peak", "0", cwd=tmp_path).stdout.splitlines()[0].endswith("\t10.000 MiB")
    dry = mprofxx("rm", "--dry-run", "-1", cwd=tmp_path)
    assert "mprofile_20240102130000.dat" in dry.stdout
    assert (tmp_path / "mprofile_20240102130000.dat").exists()
    assert mprofxx("rm", "-1", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "mprofile_20240102130000.dat").exists()
    assert mprofxx("clean", cwd=tmp_path).returncode == 0
    assert not list(tmp_path.glob("mprofile_*.dat"))


def test_peak_of_a_function(tmp_path: Path) -> None:
    (tmp_path / "f.dat").write_text(
        "MEM 5.0 10.0\nMEM 50.0 11.0\nMEM 20.0 12.0\nMEM 90.0 13.0\n"
        "FUNC __main__.load 5.0 10.5 20.0 12.5 0\n"
    )
    out = mprofxx("peak", "--func", "__main__.load", "f.dat", cwd=tmp_path).stdout
    assert out == "f.dat\t50.000 MiB\n"
    assert mprofxx("peak", "--func", "nope", "f.dat", cwd=tmp_path).stdout == "f.dat\tNaN MiB\n"


@pytest.mark.parametrize(
    "case,args,setup",
    [
        ("missing script", ["run", "nothere.py"], None),
        ("missing program", ["run", "no-such-program-xyz"], None),
        ("garbage dat", ["peak", "bad.dat"], b"\x00\x01garbage\xff\n"),
        ("truncated dat", ["plot", "-o", "t.png", "bad.dat"], b"CMDLINE x\nMEM 1.0 2.0\nMEM 1."),
        ("empty dat", ["peak", "bad.dat"], b""),
        ("rm absent", ["rm", "mprofile_20990101000000.dat"], None),
        ("attach absent pid", ["attach", "999999999"], None),
        ("bad interval", ["run", "-T", "0", "x.py"], None),
        ("bad plot ext", ["plot", "-o", "x.gif", "bad.dat"], b"MEM 1.0 2.0\n"),
    ],
)
def test_bad_input_gives_one_clear_line(
    tmp_path: Path, case: str, args: list[str], setup: bytes | None
) -> None:
    if setup is not None:
        (tmp_path / "bad.dat").write_bytes(setup)
    no_traceback(mprofxx(*args, cwd=tmp_path))


def test_truncated_file_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "t.dat").write_text("CMDLINE x\nMEM 1.0 2.0\nMEM 1.")
    err = mprofxx("peak", "t.dat", cwd=tmp_path).stderr
    assert "t.dat: line 3: truncated record" in err


def test_function_labels_shortest_unambiguous_suffix() -> None:
    from mprofxx._plot import function_labels

    assert function_labels(["pkg.a.run", "pkg.b.run", "pkg.load", ".block"]) == {
        "pkg.a.run": "a.run",
        "pkg.b.run": "b.run",
        "pkg.load": "load",
        ".block": "block",
    }


def test_pss_and_uss_backends_count_less_than_rss(tmp_path: Path) -> None:
    peaks = {}
    for backend in ("rss", "pss", "uss"):
        out = f"{backend}.dat"
        result = mprofxx(
            "run", "--backend", backend, "-T", "0.02", "-o", out, "sleep", "0.3", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        peaks[backend] = max(float(r[1]) for r in records(tmp_path / out, "MEM"))
    # sleep's pages are mostly the shared C library: counted whole in RSS, shared in PSS.
    assert 0 < peaks["uss"] <= peaks["pss"] < peaks["rss"]
