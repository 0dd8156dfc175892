"""%load_ext memory_profilerxx in a real IPython shell (``python -m IPython -c``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("IPython")

SEED = """\
def seed():
    a = [1] * (10 ** 6)
    b = [2] * (2 * 10 ** 7)
    del b
    return a
"""
SEED_PEAK_MIB = (8_000_056 + 160_000_056) / 2**20  # a and b alive at once: 160.22 MiB


def ipython(code: str, cwd, prelude: str = "") -> subprocess.CompletedProcess:
    """Runs ``code`` (IPython syntax) in a fresh IPython; ``prelude`` is plain Python first."""
    script = "import sys\n" + prelude + textwrap.dedent("""
        from IPython.terminal.ipapp import launch_new_instance
        sys.argv = ["ipython", "--no-banner", "--colors=NoColor", "-c", CODE]
        launch_new_instance()
    """)
    env = dict(os.environ, CODE=code)
    env.pop("MEMORY_PROFILERXX_LAYOUT", None)
    return subprocess.run([sys.executable, "-c", script.replace("CODE", "__import__('os')"
                                                                 ".environ['CODE']")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
                          check=False)


def memit_lines(text: str) -> list[tuple[float, float]]:
    return [(float(p), float(i)) for p, i in
            re.findall(r"peak memory: ([\d.]+) MiB, increment: ([\d.]+) MiB", text)]


def test_memit_line_cell_repeat_and_result(tmp_path):
    code = SEED + textwrap.dedent("""
        %load_ext memory_profilerxx
        runs = []
        def counted():
            runs.append(1)
            return seed()
        %memit seed()
        %memit -r 3 -i 0.5 counted()
        print("runs", len(runs))
        r = %memit -o -q seed()
        print("result", type(r).__name__, r.repeat, len(r.mem_usage), round(r.baseline) > 0)
        print("repr", repr(r).startswith("<MemitResult : peak memory:"))
    """)
    done = ipython(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    found = memit_lines(done.stdout)
    assert len(found) == 2  # -q printed nothing
    for _peak, increment in found:
        assert increment == pytest.approx(SEED_PEAK_MIB, abs=0.02)
    assert "runs 3" in done.stdout  # -r 3 runs it three times, never more
    assert "result MemitResult 1 1 True" in done.stdout


def test_cell_memit_measures_the_body_not_the_setup(tmp_path):
    # A -c program is one cell: the cell magic is called as IPython calls it for %%memit.
    code = textwrap.dedent("""
        %load_ext memory_profilerxx
        get_ipython().run_cell_magic("memit", "setup = [0] * (30 * 10**6)",
                                     "body = bytearray(50 * 2**20)\\ndel body\\n")
    """)
    done = ipython(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ((_peak, increment),) = memit_lines(done.stdout)
    assert increment == pytest.approx(50, abs=0.02)


def test_mprun_on_functions_defined_in_the_shell(tmp_path):
    """memory_profiler: "ERROR: Could not find file <ipython-input-...>"; we report them."""
    code = SEED + textwrap.dedent("""
        %load_ext memory_profilerxx
        def helper():
            return [0] * 10**6
        def caller():
            x = helper()
            return seed()
        prof = %mprun -r -T report.txt -f caller -f helper caller()
        print("profiler", type(prof).__name__)
    """)
    done = ipython(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("Filename: <ipython-input-") == 2
    row = next(line for line in out.splitlines() if "x = helper()" in line)
    assert float(row.split()[3]) == pytest.approx(8_000_056 / 2**20, abs=0.05)
    assert "*** Profile printout saved to text file report.txt." in out
    assert "x = helper()" in (tmp_path / "report.txt").read_text()
    assert "profiler LineProfiler" in out


def test_mprun_bad_function_name(tmp_path):
    done = ipython("%load_ext memory_profilerxx\n%mprun -f nowhere print(1)\n", tmp_path)
    assert "Could not find function 'nowhere'." in done.stdout + done.stderr
    assert "NameError: name 'nowhere' is not defined" in done.stdout + done.stderr


def test_mprun_reports_system_exit(tmp_path):
    code = textwrap.dedent("""
        %load_ext memory_profilerxx
        def leaves():
            raise SystemExit(3)
        %mprun -f leaves leaves()
    """)
    done = ipython(code, tmp_path)
    assert "*** SystemExit exception caught in code being profiled." in done.stdout


def test_extension_loads_without_setuptools_or_distutils(tmp_path):
    """memory_profiler's magics import distutils: ModuleNotFoundError on 3.12+."""
    prelude = "sys.modules['setuptools'] = None\nsys.modules['distutils'] = None\n"
    code = "%load_ext memory_profilerxx\n%memit bytearray(20 * 2**20)\n"
    done = ipython(code, tmp_path, prelude)
    assert done.returncode == 0, done.stderr[-3000:]
    ((_peak, increment),) = memit_lines(done.stdout)
    assert increment == pytest.approx(20, abs=0.02)
