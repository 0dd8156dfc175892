"""memory_profiler 0.61's own test scripts, run the way its Makefile runs them, against shims.

``memory_profiler`` and ``mprof`` are one-line re-export shims over memory_profilerxx and mprofxx
(with the classic report layout switched on, which test_tracemalloc parses). The scripts come
from the sdist on PyPI, downloaded at test time; without PyPI the tests are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

VERSION = "0.61.0"

# The Makefile's two lists, then the scripts it leaves out (run the same way).
CLI_SCRIPTS = ["test_func", "test_loop", "test_mprofile", "test_as", "test_global",
               "test_precision_command_line", "test_gen", "test_unicode",
               "test_nested", "test_loop_decorated"]
PLAIN_SCRIPTS = ["test_tracemalloc", "test_import", "test_memory_usage", "test_precision_import",
                 "test_exception", "test_exit_code", "test_mprof", "test_async",
                 "test_attributes", "test_stream_unicode", "test_increment_display"]

SHIM_MEMORY_PROFILER = """\
import os
import sys

os.environ.setdefault("MEMORY_PROFILERXX_LAYOUT", "classic")
from memory_profilerxx import *  # noqa: F401,F403
from memory_profilerxx import __version__, _get_memory, _TWO_20  # noqa: F401

if __name__ == "__main__":
    from memory_profilerxx.__main__ import main

    sys.exit(main())
"""

SHIM_MPROF = """\
import sys

from mprofxx import function_labels, run_action  # noqa: F401
from mprofxx.cli import main

if __name__ == "__main__":
    sys.exit(main())
"""

# unittest dropped assertRaisesRegexp in 3.12; test_exit_code still calls it.
EXIT_CODE_RUNNER = """\
import runpy, sys, unittest
if not hasattr(unittest.TestCase, "assertRaisesRegexp"):
    unittest.TestCase.assertRaisesRegexp = unittest.TestCase.assertRaisesRegex
sys.argv = ["test/test_exit_code.py"]
runpy.run_path("test/test_exit_code.py", run_name="__main__")
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("memory_profiler_upstream")
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "--disable-pip-version-check", "-q", f"memory_profiler=={VERSION}", "-d", str(root)],
        capture_output=True, text=True, check=False)
    archives = list(root.glob("memory_profiler-*.tar.gz"))
    if fetched.returncode != 0 or not archives:
        pytest.skip(f"memory_profiler {VERSION} sdist not downloadable: {fetched.stderr[-200:]}")
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if "/test/" in m.name and m.isfile()]
        for member in members:
            member.name = "test/" + member.name.split("/test/", 1)[1]
        tar.extractall(root, members=members, filter="data")
    shim = root / "shim"
    shim.mkdir()
    (shim / "memory_profiler.py").write_text(SHIM_MEMORY_PROFILER)
    (shim / "mprof.py").write_text(SHIM_MPROF)
    (shim / "mprof").write_text(f"#!{sys.executable}\n" + SHIM_MPROF)
    (shim / "mprof").chmod(0o755)
    return root


def run(upstream: Path, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    shim = str(upstream / "shim")
    env["PYTHONPATH"] = os.pathsep.join([shim, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = shim + os.pathsep + env.get("PATH", "")
    env.pop("MPROFXX_DAT", None)
    return subprocess.run(args, cwd=upstream, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def reports(text: str) -> list[str]:
    """The ``Filename:`` blocks of a classic report."""
    return ["Filename:" + block for block in text.split("Filename:")[1:]]


@pytest.mark.parametrize("name", CLI_SCRIPTS)
def test_cli_script(upstream, name):
    """``python -m memory_profiler test/X.py``: exit 0, no traceback, a classic report."""
    done = run(upstream, [sys.executable, "-m", "memory_profiler", f"test/{name}.py"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    blocks = reports(done.stdout)
    assert blocks or name == "test_global", done.stdout[-2000:]  # test_global profiles nothing
    header = "Line #    Mem usage    Increment  Occurrences   Line Contents"
    assert all(header + "\n" + "=" * 61 + "\n" in block for block in blocks)


def _row(block: str, contains: str) -> list[str]:
    line = next(line for line in block.splitlines() if contains in line)
    return line.split()


def test_func_occurrences_accumulate_over_two_calls(upstream):
    done = run(upstream, [sys.executable, "-m", "memory_profiler", "test/test_func.py"])
    (block,) = reports(done.stdout)  # called twice, one aggregated report at exit
    assert _row(block, "c[i] = 2")[5] == "10010"
    assert _row(block, "c = {}")[5] == "2"


def test_nested_function_called_later_is_reported(upstream):
    """test_nested: test_2, defined in test_1 and called after it returned, gets its lines."""
    done = run(upstream, [sys.executable, "-m", "memory_profiler", "test/test_nested.py"])
    rows = [line.split() for line in done.stdout.splitlines()
            if "b = [2] * (2 * 10 ** 7)" in line]
    assert len(rows) == 2, done.stdout[-2000:]  # test_1's line, then test_2's
    for row in rows:
        assert abs(float(row[3]) - 160_000_056 / 2**20) < 0.01, row


def test_gen_generator_and_with_profile(upstream):
    done = run(upstream, [sys.executable, "-m", "memory_profiler", "test/test_gen.py"])
    text = done.stdout
    assert "def my_func():" in text and "def test_generator():" in text
    # next(my_func()) under `with profile:` runs up to the first yield: its lines are measured.
    row = _row(text, "a = [1] * (10 ** 6)")
    assert row[0].isdigit() and row[2] == "MiB"


def test_precision_command_line_wins(upstream):
    done = run(upstream, [sys.executable, "-m", "memory_profiler", "--precision", "2",
                          "test/test_precision_command_line.py"])
    rows = [line.split() for line in done.stdout.splitlines()
            if line.strip()[:1].isdigit() and "MiB" in line]
    assert rows and all(len(row[1].split(".")[1]) == 2 for row in rows)


@pytest.mark.parametrize("name", PLAIN_SCRIPTS)
def test_plain_script(upstream, name):
    """``python test/X.py``: exit 0 and no traceback (the scripts assert what they check)."""
    args = [sys.executable, f"test/{name}.py"]
    if name == "test_exit_code":
        args = [sys.executable, "-c", EXIT_CODE_RUNNER]
    done = run(upstream, args)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    if name == "test_exit_code":  # its failing scripts print their own tracebacks
        assert done.stderr.rstrip().endswith("OK"), done.stderr[-3000:]
    else:
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
    if name == "test_exception":
        assert "Success" in done.stdout


def test_increment_display_passes_with_memory_profiler_itself_too(upstream):
    """The same script against the real memory_profiler (no shim): both read it the same way."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("MPROFXX_DAT", None)
    real = subprocess.run([sys.executable, "-c", "import memory_profiler, psutil; "
                           "print(memory_profiler.__file__)"], env=env, cwd=upstream,
                          capture_output=True, text=True, check=False)
    if real.returncode != 0 or "memory_profilerxx" in real.stdout:
        pytest.skip("memory_profiler (with psutil) is not installed here")
    done = subprocess.run([sys.executable, "test/test_increment_display.py"], env=env,
                          cwd=upstream, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Ran 4 tests" in done.stderr and done.stderr.rstrip().endswith("OK")
    ours = run(upstream, [sys.executable, "test/test_increment_display.py"])
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert "Ran 4 tests" in ours.stderr and ours.stderr.rstrip().endswith("OK")


def test_tracemalloc_increments_match_upstream_figures(upstream):
    """test_tracemalloc checks bytearray(n) increments to 1e-4 MiB; ours are the hook's."""
    done = run(upstream, [sys.executable, "test/test_tracemalloc.py"])
    assert done.returncode == 0, done.stderr[-3000:]


def test_async_reports_the_coroutine_lines(upstream):
    """memory_profiler fails this script on 3.12+ (create_task gets a generator)."""
    done = run(upstream, [sys.executable, "test/test_async.py"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "async def my_func():" in done.stdout
    row = _row(done.stdout, "a = [1] * (10 ** 6)")
    assert row[5] == "1" and abs(float(row[3]) - 7.6) < 0.1


def test_mprof_run_test_func(upstream):
    """The Makefile's last step: ``mprof run test/test_func.py`` writes MEM and FUNC lines."""
    done = run(upstream, ["mprof", "run", "-o", "func.dat", "test/test_func.py"])
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (upstream / "func.dat").read_text().splitlines()
    assert lines[0].startswith("CMDLINE")
    assert sum(line.startswith("MEM ") for line in lines) >= 1
    assert sum(line.startswith("FUNC ") for line in lines) == 2  # test_func is called twice
