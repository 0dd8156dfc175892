"""python -m memory_profilerxx: memory_profiler 0.61's flags (--timestamp, --backend,
--include-children, --pdb-mmem, --version) on real child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

JOB = """\
import time

@profile
def grow():
    data = bytearray(30 * 2**20)
    time.sleep(0.05)
    return len(data)

@profile
def outer():
    return grow()

outer()
with profile.timestamp("phase") if hasattr(profile, "timestamp") else open(__file__):
    kept = bytearray(10 * 2**20)
"""


def run(args, cwd, stdin=None):
    env = {k: v for k, v in os.environ.items() if k != "MEMORY_PROFILERXX_LAYOUT"}
    return subprocess.run([sys.executable, "-m", "memory_profilerxx", *args], cwd=cwd,
                          input=stdin, capture_output=True, text=True, env=env, timeout=120,
                          check=False)


@pytest.fixture
def job(tmp_path):
    (tmp_path / "job.py").write_text(JOB)
    return tmp_path


def test_timestamp_writes_func_lines_with_levels(job):
    done = run(["--timestamp", "-o", "spans.dat", "job.py"], job)
    assert done.returncode == 0, done.stderr
    spans = [line.split() for line in (job / "spans.dat").read_text().splitlines()]
    assert [s[0] for s in spans] == ["FUNC"] * 3
    by_name = {s[1]: s for s in spans}
    assert set(by_name) == {"__main__.grow", "__main__.outer", ".phase"}
    assert by_name["__main__.outer"][6] == "0" and by_name["__main__.grow"][6] == "1"
    grow = by_name["__main__.grow"]
    # FUNC name MiB-start t-start MiB-end t-end level
    assert float(grow[5]) - float(grow[3]) >= 0.05  # it slept 50 ms
    phase = by_name[".phase"]
    assert float(phase[4]) - float(phase[2]) >= 9  # the block keeps its 10 MiB


def test_timestamp_include_children_and_backends(job):
    for flags in (["--include-children"], ["--backend", "psutil_uss"], ["--backend", "posix"]):
        done = run(["--timestamp", *flags, "job.py"], job)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("FUNC ") == 3


def test_backend_flag_keeps_the_exact_line_figures(job):
    for backend in ("psutil", "tracemalloc", "hook"):
        done = run(["--backend", backend, "--precision", "4", "job.py"], job)
        assert done.returncode == 0, done.stderr
        row = next(line for line in done.stdout.splitlines() if "data = bytearray" in line)
        assert abs(float(row.split()[3]) - 30) < 0.001
    done = run(["--backend", "bogus", "job.py"], job)
    assert done.returncode == 2 and "invalid choice: 'bogus'" in done.stderr


def test_pdb_mmem_steps_into_the_debugger(job):
    done = run(["--pdb-mmem", "1", "job.py"], job, stdin="p len(data) if 'data' in dir() else 0\nc\n"
               "c\nc\nc\nc\nc\n")
    assert done.returncode == 0, done.stderr
    assert "exceeded the maximum of 1.00 MiB" in done.stdout
    assert "Stepping into the debugger" in done.stdout
    assert "(Pdb)" in done.stdout


def test_version_and_usage(job):
    done = run(["--version"], job)
    assert done.returncode == 0 and done.stdout.strip() == "0.1.0"
    done = run([], job)
    assert done.returncode == 2 and "no program given" in done.stderr


def test_classic_layout_switch_from_the_environment(job):
    env = dict(os.environ, MEMORY_PROFILERXX_LAYOUT="classic")
    done = subprocess.run([sys.executable, "-m", "memory_profilerxx", "job.py"], cwd=job,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "Line #    Mem usage    Increment  Occurrences   Line Contents\n" + "=" * 61 \
        in done.stdout
    bad = subprocess.run([sys.executable, "-m", "memory_profilerxx", "job.py"], cwd=job,
                         env=dict(env, MEMORY_PROFILERXX_LAYOUT="wide"), capture_output=True,
                         text=True, timeout=120, check=False)
    assert "layout must be one of peak, classic, not 'wide'" in bad.stderr


def test_script_runs_as_real_main_for_multiprocessing(tmp_path):
    """memory_profiler execs scripts into a dict: a Pool cannot pickle their functions."""
    (tmp_path / "pool.py").write_text(textwrap.dedent("""\
        import multiprocessing

        def square(x):
            return x * x

        if __name__ == "__main__":
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                print(sum(pool.map(square, range(10))))
    """))
    done = run(["pool.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "285" in done.stdout


def test_report_files_never_follow_a_planted_symlink(job):
    victim = job / "victim.txt"
    victim.write_text("precious\n")
    for flag in ("-o", "--json"):
        link = job / f"link{flag}"
        link.symlink_to(victim)
        done = run([flag, str(link), "job.py"], job)
        assert done.returncode == 2
        assert "is a symbolic link" in done.stderr and len(done.stderr.splitlines()) == 1
    assert victim.read_text() == "precious\n"
