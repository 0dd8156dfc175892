"""python -m memory_profilerxx, the classic layout against memory_profiler's, and bad input."""

import io
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from memory_profilerxx import LineProfiler, profile, show_results

SEED = textwrap.dedent("""\
    @profile
    def my_func():
        a = [1] * (10 ** 6)
        b = [2] * (2 * 10 ** 7)
        del b
        return a

    my_func()
""")


def run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def seed_script(tmp_path):
    path = tmp_path / "seed.py"
    path.write_text(SEED)
    return path


def test_cli_prints_exact_report(seed_script):
    done = run(["-m", "memory_profilerxx", "--precision", "4", str(seed_script)],
               seed_script.parent)
    assert done.returncode == 0, done.stderr
    rows = {int(line.split()[0]): line for line in done.stdout.splitlines()
            if re.match(r"\s+\d+ ", line)}
    assert rows[3].split()[3] == "7.6294"
    assert rows[4].split()[3] == "152.5879"
    assert rows[5].split()[3] == "-152.5879"
    header = next(line for line in done.stdout.splitlines() if line.startswith("Line #"))
    assert header.split() == ["Line", "#", "Mem", "usage", "Increment", "Peak", "Occurrences",
                              "Line", "Contents"]


def cells(line):
    """memory_profiler's row template '{0:>6} {1:>12} {2:>12}  {3:>10}   {4:<}' cut apart."""
    return line[:6], line[7:19], line[20:32], line[34:44], line[47:]


def test_classic_layout_matches_memory_profiler(seed_script):
    pytest.importorskip("memory_profiler")
    theirs = run(["-m", "memory_profiler", str(seed_script)], seed_script.parent)
    ours = run(["-m", "memory_profilerxx", "--layout", "classic", str(seed_script)],
               seed_script.parent)
    assert theirs.returncode == 0 and ours.returncode == 0, ours.stderr
    t_lines, o_lines = theirs.stdout.split("\n"), ours.stdout.split("\n")
    assert len(t_lines) == len(o_lines)
    assert o_lines[:4] == t_lines[:4]  # Filename, blank, header, rule
    assert ours.stdout.endswith("\n\n\n") and theirs.stdout.endswith("\n\n\n")
    cell = re.compile(r"^ *-?\d+\.\d{3} MiB$")
    for t, o in zip(t_lines[4:], o_lines[4:]):
        if not t.strip():
            assert o == t
            continue
        tc, oc = cells(t), cells(o)
        assert oc[0] == tc[0] and oc[4] == tc[4]  # line number, source
        assert oc[3] == tc[3]                     # occurrences
        for ours_cell, theirs_cell in zip(oc[1:3], tc[1:3]):
            assert bool(cell.match(ours_cell)) == bool(cell.match(theirs_cell)), (o, t)


def test_cli_output_file_json_and_precision(seed_script, tmp_path):
    out, js = tmp_path / "report.txt", tmp_path / "lines.json"
    out.write_text("previous\n")
    done = run(["-m", "memory_profilerxx", "-o", str(out), "--json", str(js), "--precision", "1",
                str(seed_script)], tmp_path)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("previous\n")  # appended, as memory_profiler does
    assert "  7.6 MiB" in text and "152.6 MiB" in text
    doc = json.loads(js.read_text())
    assert doc["unit"] == "bytes"
    by_line = {r["lineno"]: r for r in doc["lines"]}
    assert 8_000_000 <= by_line[3]["increment"] <= 8_000_056
    assert by_line[3]["function"] == "my_func"
    assert by_line[3]["source"].strip() == "a = [1] * (10 ** 6)"


def test_cli_module_mode_and_arguments(tmp_path):
    (tmp_path / "job.py").write_text(textwrap.dedent("""\
        import sys

        @profile
        def work(n):
            return bytearray(n)

        work(int(sys.argv[1]))
    """))
    done = run(["-m", "memory_profilerxx", "-m", "job", "3000000"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2.861 MiB" in done.stdout  # 3,000,057 bytes


def test_cli_missing_script_is_one_line_and_exit_2(tmp_path):
    done = run(["-m", "memory_profilerxx", "missing.py"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "missing.py" in done.stderr and "Traceback" not in done.stderr


def test_cli_program_that_raises_keeps_report_and_traceback(tmp_path):
    (tmp_path / "raises.py").write_text(textwrap.dedent("""\
        @profile
        def fails():
            kept = bytearray(10**6)
            raise KeyError("missing key")

        fails()
    """))
    done = run(["-m", "memory_profilerxx", "raises.py"], tmp_path)
    assert done.returncode == 1
    assert "KeyError: 'missing key'" in done.stderr
    assert 'raises.py", line 4, in fails' in done.stderr
    assert "kept = bytearray(10**6)" in done.stdout and "0.954 MiB" in done.stdout


def test_cli_program_exit_code_passes_through(tmp_path):
    (tmp_path / "exits.py").write_text(textwrap.dedent("""\
        import sys

        @profile
        def f():
            return [0] * 1000

        f()
        sys.exit(3)
    """))
    done = run(["-m", "memory_profilerxx", "exits.py"], tmp_path)
    assert done.returncode == 3
    assert "return [0] * 1000" in done.stdout


def test_profile_rejects_non_functions():
    with pytest.raises(TypeError, match="profile\\(\\) expects a function"):
        profile(42)
    with pytest.raises(ValueError, match="layout"):
        profile(layout="fancy")(lambda: None)


def test_line_profiler_has_memory_profiler_shape():
    def work():
        data = [0] * 100_000
        return data

    prof = LineProfiler()
    prof.add_function(work)
    with prof:
        work()
    (code, lines), = dict.items(prof.code_map)
    assert code is work.__code__
    first = work.__code__.co_firstlineno
    increment, _memory, occurrences = lines[first + 1]
    assert abs(increment - 800_056 / 2**20) < 1e-4 and occurrences == 1
    assert list(lines) == sorted(lines)
    filename, rows = next(iter(prof.code_map.items()))
    assert filename == work.__code__.co_filename
    assert [lineno for lineno, _ in rows] == [first, first + 1, first + 2]
    out = io.StringIO()
    show_results(prof, stream=out, precision=2, layout="classic")
    assert "   0.76 MiB" in out.getvalue()


def test_import_is_light():
    code = "import time; t=time.perf_counter(); import memory_profilerxx; " \
           "print(time.perf_counter()-t); import sys; print('IPython' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, check=False)
    seconds, ipython = done.stdout.split()
    assert ipython == "False"
    assert float(seconds) < 0.2


def test_imported_profile_writes_func_spans_under_mprofxx_run(tmp_path):
    """memory_profiler loses these when the script imports profile; we write them."""
    (tmp_path / "job.py").write_text(textwrap.dedent("""\
        from memory_profilerxx import profile

        @profile
        def grow():
            return len(bytearray(10**6))

        grow()
        grow()
    """))
    done = run(["-m", "mprofxx", "run", "-o", "out.dat", "job.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    spans = [line.split() for line in (tmp_path / "out.dat").read_text().splitlines()
             if line.startswith("FUNC ")]
    assert [s[1] for s in spans] == ["__main__.grow", "__main__.grow"]
    assert all(float(s[5]) >= float(s[3]) and s[6] == "0" for s in spans)
    assert "kept" not in done.stdout and "return len(bytearray(10**6))" in done.stdout
