"""Hostile files, names and objects (issue 28): one clear line and a non-zero exit, never a
traceback, a hang, a raw escape sequence, an invalid page or picture, or a changed program."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("_memxx")

from _memxx_shared.peak_file import PeakStack, PeakTable, dumps  # noqa: E402

DAT = "mprofile_20240101120000.dat"
PEAK = "mprofile_20240101120000.peak.json"
ESC = "\x1b"
# Clear screen, window title, OSC 52 (set the clipboard), a C1 CSI, a bell.
TERMINAL_ATTACKS = f"{ESC}[2J{ESC}]0;pwned{ESC}\\{ESC}]52;c;aGk=\x07\x9b31m"


def mprofxx(*args: str | bytes, cwd: Path, timeout: float = 120,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mprofxx", *args], cwd=cwd,
                          capture_output=True, text=True, errors="surrogateescape",
                          timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mprofxx: error: "), result.stderr
    return lines[0]


def write_dat(folder: Path, body: str = "") -> None:
    (folder / DAT).write_text("CMDLINE python x.py\nMEM 1.0 1700000000.0\n"
                              "MEM 2.0 1700000001.0\n" + body)


def table(frames: tuple[tuple[str, str, int], ...], **fields: object) -> PeakTable:
    return PeakTable(pid=1, peak_bytes=10 << 20, peak_time=1700000000.5,
                     stacks=[PeakStack(10 << 20, frames)], **fields)  # type: ignore[arg-type]


# --- 1. The profiled program is never changed -------------------------------------------------

TIMESTAMP_PROGRAM = """
    import os
    name = os.fsdecode(b"caf\\xe9.txt")   # a Latin-1 file name: a lone surrogate
    with profile.timestamp(f"load {name}"):
        data = [0] * 100_000
    print("finished", ascii(name))
"""


def test_timestamp_with_an_undecodable_name_under_mprofxx_run(tmp_path: Path) -> None:
    (tmp_path / "ts.py").write_text(textwrap.dedent(TIMESTAMP_PROGRAM))
    result = mprofxx("run", "-E", "-o", "t.dat", "ts.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "finished 'caf\\udce9.txt'" in result.stdout  # the program ran to its end
    funcs = [line for line in (tmp_path / "t.dat").read_text().splitlines()
             if line.startswith("FUNC")]
    assert len(funcs) == 1 and funcs[0].split()[1] == ".load_caf\\xe9.txt"  # the byte, escaped


def test_timestamp_with_an_undecodable_name_under_python_m_memory_profilerxx(
        tmp_path: Path) -> None:
    (tmp_path / "ts.py").write_text(textwrap.dedent(TIMESTAMP_PROGRAM))
    result = subprocess.run([sys.executable, "-m", "memory_profilerxx", "--timestamp", "ts.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "finished 'caf\\udce9.txt'" in result.stdout
    funcs = [line for line in result.stdout.splitlines() if line.startswith("FUNC")]
    assert len(funcs) == 1 and funcs[0].startswith("FUNC .load caf\\xe9.txt ")  # report kept


ARGV_PROGRAM = "import os, sys\nprint([os.fsencode(a).hex() for a in sys.argv])\n"


def test_non_utf8_argument_and_script_name_reach_the_program_unchanged(tmp_path: Path) -> None:
    script = os.fsdecode(b"sc\xe9.py")
    (tmp_path / script).write_text(ARGV_PROGRAM)
    argument = os.fsdecode(b"caf\xe9.txt")
    result = mprofxx("run", "-E", "-o", "a.dat", script, argument, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert repr([b"sc\xe9.py".hex(), b"caf\xe9.txt".hex()]) in result.stdout
    cmdline = (tmp_path / "a.dat").read_bytes().splitlines()[0]
    assert cmdline == b"CMDLINE python sc\\xe9.py caf\\xe9.txt"


def test_profile_files_with_non_utf8_names(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("data = bytearray(1 << 20)\n")
    dat = os.fsdecode(b"r\xe9.dat")
    result = mprofxx("run", "--peak", "-o", dat, "s.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "into r\\xe9.dat" in result.stdout and "\udce9" not in result.stdout
    assert (tmp_path / dat).exists() and (tmp_path / os.fsdecode(b"r\xe9.peak.json")).exists()
    for command in (["peak"], ["peak", "--lines"], ["flame", "-o", "f.svg"],
                    ["plot", "-o", os.fsdecode(b"p\xe9.png")]):
        result = mprofxx(*command, dat, cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (command, result)
    assert (tmp_path / os.fsdecode(b"p\xe9.png")).stat().st_size > 10_000
    ET.parse(tmp_path / "f.svg")
    missing = os.fsdecode(b"gone\xe9/x.dat")
    line = one_error_line(mprofxx("run", "-o", missing, "s.py", cwd=tmp_path))
    assert "gone\\xe9/x.dat: cannot write" in line


def test_attach_to_a_process_with_a_non_utf8_command_line(tmp_path: Path) -> None:
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)",
                               b"caf\xe9"])
    try:
        time.sleep(0.3)
        result = mprofxx("attach", "-o", "at.dat", "-T", "0.05", "-t", "0.5", str(target.pid),
                         cwd=tmp_path)
    finally:
        target.kill()
        target.wait()
    assert result.returncode == 0, result.stderr
    cmdline = (tmp_path / "at.dat").read_text().splitlines()[0]
    assert cmdline.endswith(" caf\\xe9") and "time.sleep(3)" in cmdline


def test_attach_to_a_zombie_is_one_error_line(tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        line = one_error_line(mprofxx("attach", str(pid), cwd=tmp_path))
    finally:
        os.waitpid(pid, 0)
    assert f"PID {pid} has exited" in line
    assert not list(tmp_path.glob("mprofile_*.dat"))


# --- 2. Data files ------------------------------------------------------------------------------

def _hostile_peak_text(case: str) -> str:
    text = dumps([table((("x.py", "f", 1),))])
    if case == "nested":
        return ('{"format":"mprofxx-peak","version":1,"processes":'
                + "[" * 100_000 + "]" * 100_000 + "}")
    if case == "huge-int":
        return text.replace(f'"peak_bytes":{10 << 20}', '"peak_bytes":' + "1" * 401)
    if case == "infinity":
        return text.replace('"peak_time":1700000000.5', '"peak_time":Infinity')
    if case == "1e400":
        return text.replace('"peak_time":1700000000.5', '"peak_time":1e400')
    assert case == "huge-time"
    return text.replace('"peak_time":1700000000.5', '"peak_time":1' + "0" * 400)


@pytest.mark.parametrize("case", ["nested", "huge-int", "infinity", "1e400", "huge-time"])
def test_hostile_peak_files_are_one_error_line(tmp_path: Path, case: str) -> None:
    write_dat(tmp_path)
    (tmp_path / PEAK).write_text(_hostile_peak_text(case))
    for command in (["peak", "--lines"], ["flame", "-o", "f.html"], ["flame", "-o", "f.svg"]):
        line = one_error_line(mprofxx(*command, cwd=tmp_path))
        assert PEAK in line
    # plot draws the memory and says in one line why the peak's lines are left out
    result = mprofxx("plot", "-o", "p.png", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "no peak lines on the plot" in result.stderr


def test_a_3000_frame_stack_draws_in_the_flame_graph(tmp_path: Path) -> None:
    frames = tuple(("x.py", f"f{i}", i + 1) for i in range(3000))  # innermost first
    write_dat(tmp_path)
    (tmp_path / PEAK).write_text(dumps([table(frames)]))
    assert mprofxx("flame", "-o", "f.html", cwd=tmp_path).returncode == 0
    page = (tmp_path / "f.html").read_text()
    data = page.split('type="application/json">')[1].split("</script>")[0]
    rows = json.loads(data)
    assert len(rows) == 3001 and rows[-1][1] == "f0" and rows[1][1] == "f2999"
    assert [row[0] for row in rows] == list(range(-1, 3000))  # each frame under the one before
    assert mprofxx("flame", "-o", "f.svg", cwd=tmp_path).returncode == 0
    svg = ET.parse(tmp_path / "f.svg").getroot()
    assert len(svg.findall("{http://www.w3.org/2000/svg}g")) == 3001


def test_mem_time_that_is_no_date_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / DAT).write_text("CMDLINE x\nMEM 1.0 1e20\nMEM 2.0 1.00000001e20\n")
    line = one_error_line(mprofxx("plot", "-o", "p.png", cwd=tmp_path))
    assert "no date" in line and DAT in line


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_func_level_of_two_billion_plots_within_three_gib(tmp_path: Path) -> None:
    write_dat(tmp_path, "FUNC __main__.f 1.0 1700000000.1 2.0 1700000000.5 2000000000\n"
                        "FUNC __main__.g 1.0 1700000000.2 2.0 1700000000.3 0\n")
    assert (tmp_path / DAT).stat().st_size < 250
    started = time.monotonic()
    result = mprofxx("plot", "-f", "-o", "p.png", cwd=tmp_path, preexec_fn=_limit_address_space)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_list_skips_files_not_named_by_a_time(tmp_path: Path) -> None:
    write_dat(tmp_path)
    (tmp_path / "mprofile_abcdefghijklmn.dat").write_text("CMDLINE x\nMEM 1 1\n")
    (tmp_path / "mprofile_20241399000000.dat").write_text("CMDLINE x\nMEM 1 1\n")  # month 13
    result = mprofxx("list", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines() == [f"0 {DAT} 12:00:00 01/01/2024",
                                          "1 mprofile_20241399000000.dat (no date)"]


def test_clean_and_rm_with_a_folder_carrying_a_profiles_name(tmp_path: Path) -> None:
    write_dat(tmp_path)
    folder = tmp_path / "mprofile_20240102000000.dat"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result = mprofxx("clean", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / DAT).exists() and (folder / "keep.txt").exists()
    line = one_error_line(mprofxx("rm", folder.name, cwd=tmp_path))
    assert "is a directory" in line and (folder / "keep.txt").exists()
    write_dat(tmp_path)
    (tmp_path / PEAK).mkdir()  # a folder where the peak file would be
    line = one_error_line(mprofxx("clean", cwd=tmp_path))
    assert PEAK in line and (tmp_path / PEAK).is_dir()


def test_dollar_signs_in_names_are_drawn_as_text(tmp_path: Path) -> None:
    (tmp_path / DAT).write_text(
        "CMDLINE python $\\foo$.py\nMEM 1.0 1700000000.0\nMEM 2.0 1700000001.0\n"
        "CHLD $\\child$ 1.5 1700000000.5\n"
        "FUNC __main__.$\\bar$ 1.0 1700000000.1 2.0 1700000000.5 0\n")
    for flags in ([], ["-f"], ["--children", "stacked"]):
        result = mprofxx("plot", *flags, "-o", "p.svg", cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    from mprofxx import plot

    figure = plot(str(tmp_path / DAT))
    texts = [t.get_text() for t in figure.axes[0].findobj(
        lambda artist: hasattr(artist, "get_text"))]
    assert "python \\$\\foo\\$.py" in texts  # escaped: matplotlib shows "$\foo$" as it is
    figure.canvas.draw()  # mathtext would fail here


# --- 3. Terminal escapes --------------------------------------------------------------------

def test_peak_and_peak_lines_print_names_escaped(tmp_path: Path) -> None:
    (tmp_path / DAT).write_text(
        "CMDLINE python x.py\nMEM 1.0 1700000000.0\nMEM 2.0 1700000001.0\n"
        f"CHLD {ESC}[2J{ESC}]0;pwned{ESC}\\ 3.0 1700000000.5\n"
        f"CHLD {ESC}]52;c;aGk=\x07 3.0 1700000000.5\n")
    main = table(((f"evil{TERMINAL_ATTACKS}.py", "f", 1),))
    child = table((("x.py", "f", 1),), cmdline=f"python {TERMINAL_ATTACKS}")
    (tmp_path / PEAK).write_text(dumps([main, child]))
    for command in (["peak"], ["peak", "--lines"]):
        result = mprofxx(*command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        for raw in (ESC, "\x07", "\x9b"):
            assert raw not in result.stdout + result.stderr, command
        assert "\\x1b]52;c;aGk=\\x07" in result.stdout
    lines = mprofxx("peak", "--lines", cwd=tmp_path).stdout
    assert "evil\\x1b[2J\\x1b]0;pwned\\x1b\\\\x1b]52;c;aGk=\\x07\\x9b31m.py:1" in lines
    assert "child 1 (python \\x1b[2J" in lines


# --- 4. Pages and pictures --------------------------------------------------------------------

HOSTILE_NAME = "load<!--<script>alert(1)</script>\x1b\x00\x0c\ud800end"


def test_flame_svg_with_control_characters_is_valid_xml(tmp_path: Path) -> None:
    write_dat(tmp_path)
    frames = ((f"{HOSTILE_NAME}.py", HOSTILE_NAME, 3), ("x.py", "<module>", 1))
    (tmp_path / PEAK).write_text(dumps([table(frames)]))
    assert mprofxx("flame", "-o", "f.svg", cwd=tmp_path).returncode == 0
    root = ET.parse(tmp_path / "f.svg").getroot()
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any(t and t.startswith("load<!--<script>alert(1)</script>\\x1b\\x00\\x0c\\ud800end")
               for t in titles), titles


def test_flame_html_shows_a_hostile_name_as_text_in_a_browser(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-deps.sh installs it)")
    write_dat(tmp_path)
    frames = ((f"{HOSTILE_NAME}.py", HOSTILE_NAME, 3), ("x.py", "<module>", 1))
    (tmp_path / PEAK).write_text(dumps([table(frames)]))
    result = mprofxx("flame", "-o", "f.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "f.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace(
        "</body>",
        "<script>document.body.dataset.boxes = document.querySelectorAll('.box').length;"
        "document.body.dataset.texts = JSON.stringify("
        "[...document.querySelectorAll('.box')].map(b => b.textContent));</script></body>"))
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--dump-dom", probe.as_uri()],
                          check=True, capture_output=True, text=True, timeout=120)
    body = done.stdout.split("<body", 1)[1].split(">", 1)[0]
    assert 'data-boxes="3"' in body, body  # all, <module>, the hostile frame: none swallowed
    texts = json.loads(body.split('data-texts="')[1].split('"')[0].replace("&quot;", '"')
                       .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert texts[2].startswith("load<!--<script>alert(1)</script>")  # shown as text
    assert "alert" not in done.stderr


class _Evil:
    def __repr__(self) -> str:
        return "evil\x1b[2J\x00\x07\x0c\x9b<b>&\ud800\udce9\ufffe"


@pytest.mark.parametrize("suffix", [".svg", ".dot", ".png"])
def test_objgraph_pictures_of_control_characters_and_surrogates(
        tmp_path: Path, suffix: str) -> None:
    import objgraphxx

    holder = [_Evil()]
    path = tmp_path / f"g{suffix}"
    objgraphxx.show_refs([holder], filename=str(path))
    if suffix == ".svg":
        texts = "".join(t.text or "" for t in ET.parse(path).getroot().iter(
            "{http://www.w3.org/2000/svg}text"))
        assert "evil\\x1b[2J\\x00\\x07" in texts and "\\ud800\\xe9" in texts
    elif suffix == ".dot":
        text = path.read_text(encoding="utf-8")
        assert 'evil\\\\x1b[2J\\\\x00\\\\x07\\\\x0c\\\\x9b<b>&\\\\ud800\\\\xe9' in text
    else:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- 5. pytest plugin and memory_usage --------------------------------------------------------

pytest_plugins = ["pytester"]
PLUGIN = ("-p", "no:memray", "-p", "memory_profilerxx.pytest_plugin", "-p", "no:cacheprovider",
          "-W", "ignore::pytest.PytestAssertRewriteWarning")
HUGE = "1" * 401


def test_limit_memory_with_a_401_digit_size_is_a_collection_error(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_huge=f"""
        import pytest

        @pytest.mark.limit_memory("{HUGE} MB")
        def test_huge():
            pass
    """)
    pytester.makepyfile(test_fine="def test_fine():\n    pass\n")
    result = pytester.runpytest_subprocess(*PLUGIN)
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest stops on a collection error
    result.stdout.fnmatch_lines(["*ERROR collecting test_huge.py*",
                                 "*test_huge: @pytest.mark.limit_memory(*more memory than a"
                                 " 64-bit machine has*"])


def test_memxx_limit_with_a_401_digit_size_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fine="def test_fine():\n    pass\n")
    result = pytester.runpytest_subprocess(*PLUGIN, "--memxx-limit", f"{HUGE} MB")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stderr.str() + result.stdout.str()
    result.stderr.fnmatch_lines(["*--memxx-limit: '111*...' is more memory than a 64-bit*"])


def test_memxx_json_into_a_missing_folder_stops_before_any_test(
        pytester: pytest.Pytester) -> None:
    ran = pytester.path / "ran"
    pytester.makepyfile(test_x=f"def test_x():\n    open({str(ran)!r}, 'w').close()\n")
    result = pytester.runpytest_subprocess(*PLUGIN, "--memxx-json", "missing/figures.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--memxx-json missing/figures.json: no such folder*"])
    assert not ran.exists()


def test_memxx_json_onto_a_planted_link_is_refused_before_any_test(
        pytester: pytest.Pytester) -> None:
    victim = pytester.path / "victim.txt"
    victim.write_text("precious\n")
    (pytester.path / "figures.json").symlink_to(victim)
    ran = pytester.path / "ran"
    pytester.makepyfile(test_x=f"def test_x():\n    open({str(ran)!r}, 'w').close()\n")
    result = pytester.runpytest_subprocess(*PLUGIN, "--memxx-json", "figures.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--memxx-json: figures.json: cannot write: *symbolic link*"])
    assert not ran.exists() and victim.read_text() == "precious\n"


def test_memxx_json_link_planted_during_the_run_is_never_followed(
        pytester: pytest.Pytester) -> None:
    victim = pytester.path / "victim.txt"
    victim.write_text("precious\n")
    target = pytester.path / "figures.json"
    pytester.makepyfile(test_x=f"""
        import os

        def test_plants_a_link():
            data = bytearray(3 << 20)
            os.symlink({str(victim)!r}, {str(target)!r})
    """)
    result = pytester.runpytest_subprocess(*PLUGIN, "--memxx-json", "figures.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert victim.read_text() == "precious\n" and target.is_symlink()
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    result.stdout.fnmatch_lines(["memory-profilerxx: --memxx-json: figures.json: cannot write:"
                                 " is a symbolic link*", "*1 passed*"])


def test_memxx_json_whose_folder_went_away_is_one_line_and_a_failed_session(
        pytester: pytest.Pytester) -> None:
    folder = pytester.path / "out"
    folder.mkdir()
    pytester.makepyfile(test_x=f"""
        import shutil

        def test_removes_the_folder():
            shutil.rmtree({str(folder)!r})
    """)
    result = pytester.runpytest_subprocess(*PLUGIN, "--memxx-json", "out/figures.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    result.stdout.fnmatch_lines(["memory-profilerxx: --memxx-json: out/figures.json: cannot write*",
                                 "*1 passed*"])


def test_memory_usage_timeout_is_wall_clock_whatever_the_interval() -> None:
    from memory_profilerxx import memory_usage

    for interval, timeout in ((1e-6, 0.5), (0.1, 0.5)):
        started = time.monotonic()
        samples = memory_usage(-1, interval=interval, timeout=timeout)
        elapsed = time.monotonic() - started
        assert timeout * 0.8 <= elapsed <= timeout + 0.25, (interval, elapsed)
        assert samples and all(s > 0 for s in samples)
    assert len(memory_usage(-1, interval=0.1, timeout=0.5)) == 5  # memory_profiler's count


# --- 7. objgraphxx on objects that raise ------------------------------------------------------

class _RaisingClass:
    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: PLR0206
        raise RuntimeError("no class for you")


class _RaisingLen(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise RuntimeError("no len for you")


class _SurrogateRepr:
    def __repr__(self) -> str:
        return "s\ud800\x1b[2J"


class _Dead:
    pass


def _hostile_objects() -> dict[str, object]:
    import weakref

    dead = _Dead()
    proxy = weakref.proxy(dead)
    del dead
    return {"dead proxy": proxy, "raising __class__": _RaisingClass(),
            "surrogate repr": _SurrogateRepr()}


HOSTILE_HOLDER: dict[str, object] = {}


@pytest.mark.parametrize("kind", ["dead proxy", "raising __class__", "surrogate repr"])
def test_objgraph_describes_hostile_objects_and_never_raises(tmp_path: Path, kind: str) -> None:
    import io

    import objgraphxx

    HOSTILE_HOLDER.clear()
    HOSTILE_HOLDER.update(_hostile_objects())
    obj = HOSTILE_HOLDER[kind]
    text = io.StringIO()
    objgraphxx.why_alive(obj, file=text)
    assert "['" + kind + "']" in text.getvalue()  # the chain reaches the holder's key
    chain = objgraphxx.find_backref_chain(obj, objgraphxx.is_proper_module)
    assert chain[-1] is obj and objgraphxx.is_proper_module(chain[0])
    for show in (objgraphxx.show_refs, objgraphxx.show_backrefs):
        for suffix in (".dot", ".svg"):
            path = tmp_path / f"g{suffix}"
            show([obj], filename=str(path), max_depth=2)
            if suffix == ".svg":
                ET.parse(path)
            else:
                assert "digraph" in path.read_text(encoding="utf-8")
    objgraphxx.show_chain(chain, filename=str(tmp_path / "c.svg"))
    ET.parse(tmp_path / "c.svg")
    HOSTILE_HOLDER.clear()


def _why_alive_of_only_item(holder: list[object]) -> str:
    import io

    import objgraphxx

    text = io.StringIO()
    objgraphxx.why_alive(holder[0], file=text)
    return text.getvalue()


def test_why_alive_through_a_list_whose_len_raises() -> None:
    HOSTILE_HOLDER.clear()
    holder = _RaisingLen([object()])
    HOSTILE_HOLDER["bad len"] = holder
    try:
        shown = _why_alive_of_only_item(holder)
    finally:
        HOSTILE_HOLDER.clear()
    assert f"_RaisingLen at 0x{id(holder):x}" in shown, shown
    assert shown.endswith("    [0] -> object\n")


# --- 7b. why_alive at a prompt: the frames' variables are roots, named --------------------------

PROMPT_APP = """\
class Session:
    pass


def handle():
    sess = Session()
    breakpoint()
    return sess


handle()
"""


def _debug(script: Path, commands: str, *args: str) -> str:
    env = dict(os.environ, PYTHONBREAKPOINT="pdb.set_trace")
    run = subprocess.run([sys.executable, *args, str(script)], input=commands, cwd=script.parent,
                         capture_output=True, text=True, timeout=120, env=env, check=False)
    assert run.returncode == 0 and "Traceback" not in run.stdout + run.stderr, (run.stdout,
                                                                               run.stderr)
    return run.stdout.replace("(Pdb) ", "")


def test_why_alive_at_a_pdb_prompt_names_the_debugged_frames_local(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(PROMPT_APP)
    shown = _debug(app, "import objgraphxx\n"
                        "p objgraphxx.why_alive(sess)\n"
                        "!import objgraphxx; print(objgraphxx.why_alive(sess))\n"
                        "c\n")
    # The local, its function and the line pdb says the frame is stopped at (3.11, 3.12: 8,
    # after breakpoint(); 3.13+: 7, on it), once printed and once in the returned chain's
    # repr, for each of the two commands.
    stopped = re.search(r"app\.py\((\d+)\)handle\(\)", shown)
    assert stopped is not None and stopped.group(1) in ("7", "8"), shown
    root = f"local 'sess' of handle() at app.py:{stopped.group(1)} (MainThread)"
    assert shown.count(f"{root} -> Session\n") == 2, shown
    assert shown.count(f"<why_alive chain of 1 hops: {root} (Session)>") == 2, shown
    assert "garbage" not in shown and "bdb.py" not in shown and "pdb.py" not in shown


def test_why_alive_at_a_pdb_prompt_goes_past_the_debugged_frames_own_reference(
    tmp_path: Path,
) -> None:
    # A global cache holds the session too: that is why it lives on, not the local asked about.
    app = tmp_path / "app.py"
    app.write_text("CACHE = []\n" + PROMPT_APP.replace(
        "    sess = Session()\n", "    sess = Session()\n    CACHE.append(sess)\n"))
    shown = _debug(app, "import objgraphxx\np objgraphxx.why_alive(sess)\nc\n")
    # The script's global, named with the line its module-level frame is at (handle() call).
    assert ("global 'CACHE' of <module>() at app.py:13 (MainThread) -> list (1 items)\n"
            "    [0] -> Session\n") in shown, shown


MODULE_LEVEL_SCRIPT = """\
import objgraphxx


class Session:
    pass


sess = Session()
objgraphxx.why_alive(sess)
"""


@pytest.mark.parametrize("how", ["python", "runpy", "pdb", "memory_profilerxx", "mprofxx"])
def test_why_alive_at_a_scripts_module_level_names_the_users_global(tmp_path: Path,
                                                                     how: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(MODULE_LEVEL_SCRIPT)
    command = {
        "python": [str(script)],
        "runpy": ["-c", "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')",
                  str(script)],
        "pdb": ["-m", "pdb", str(script)],
        "memory_profilerxx": ["-m", "memory_profilerxx", str(script)],
        "mprofxx": ["-m", "mprofxx", "run", str(script)],
    }[how]
    run = subprocess.run([sys.executable, *command], input="c\nq\n", cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    # As run (python script.py), __main__ is the script's module; under runpy, pdb and the
    # profilers its globals are also the running <module> frame's namespace: either way the
    # user's own variable is named, never the runner's (run_globals, Bdb.run's globals).
    assert ("global 'sess' of <module>() at script.py:9 (MainThread) -> Session\n"
            in run.stdout), run.stdout
    assert "runpy" not in run.stdout and "bdb" not in run.stdout and "garbage" not in run.stdout


def test_why_alive_from_a_function_names_its_own_local_only_when_nothing_else_holds_it(
    tmp_path: Path,
) -> None:
    script = tmp_path / "own.py"
    script.write_text("import objgraphxx\n"
                      "KEEP = []\n"
                      "def ask():\n"
                      "    loc = object()\n"
                      "    objgraphxx.why_alive(loc)\n"
                      "    KEEP.append(loc)\n"
                      "    objgraphxx.why_alive(loc)\n"
                      "ask()\n")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=True)
    assert run.stdout == ("local 'loc' of ask() at own.py:5 (MainThread) -> object\n"
                          "global 'KEEP' of <module>() at own.py:8 (MainThread) -> list (1 items)\n"
                          "    [0] -> object\n")


def test_why_alive_in_a_code_interact_console_names_the_functions_local(tmp_path: Path) -> None:
    script = tmp_path / "console.py"
    script.write_text("import code\n"
                      "def serve():\n"
                      "    conn = bytearray(10)\n"
                      "    code.interact(local={'conn': conn}, banner='', exitmsg='')\n"
                      "serve()\n")
    run = subprocess.run([sys.executable, str(script)], input="import objgraphxx\n"
                         "_ = objgraphxx.why_alive(conn)\n", cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=True)
    assert "local 'conn' of serve() at console.py:4 (MainThread) -> bytearray" in run.stdout, (
        run.stdout, run.stderr)


# --- 6. Size: drawing costs in proportion to the picture -------------------------------------

def test_thinned_samples_keep_every_columns_extremes() -> None:
    import random

    from mprofxx._thinning import COLUMNS, thin_samples

    rng = random.Random(3)
    xs = [i * 1e-3 for i in range(1_000_000)]
    ys = [100 + 50 * ((i // 1000) % 7) + rng.random() for i in range(1_000_000)]
    ys[777_777] = 999.0  # a one-sample spike
    ys[123_456] = -5.0  # a one-sample dip
    kept_x, kept_y = thin_samples(xs, ys)
    assert len(kept_x) <= 4 * COLUMNS
    assert max(kept_y) == 999.0 and min(kept_y) == -5.0
    assert kept_x == sorted(kept_x) and kept_x[0] == xs[0] and kept_x[-1] == xs[-1]
    width = xs[-1] / COLUMNS
    for column in (0, 500, 1999):  # each column's own highest and lowest are kept
        inside = [y for x, y in zip(xs, ys) if column <= x / width < column + 1]
        drawn = [y for x, y in zip(kept_x, kept_y) if column <= x / width < column + 1]
        assert max(drawn) == max(inside) and min(drawn) == min(inside)


def _many_calls_dat(folder: Path, calls: int = 20_000) -> Path:
    t0 = 1700000000.0
    lines = ["CMDLINE python s.py"]
    lines += [f"MEM {10 + i * 0.1:.6f} {t0 + i * 0.01:.4f}" for i in range(31)]
    for i in range(calls):
        start = t0 + 0.3 * i / calls
        lines.append(f"FUNC __main__.work 10.0 {start:.6f} 10.5 {start + 5e-6:.6f} 0")
    lines.append(f"FUNC __main__.other 10.0 {t0 + 0.1:.6f} 11.0 {t0 + 0.2:.6f} 1")
    path = folder / DAT
    path.write_text("\n".join(lines) + "\n")
    return path


def test_twenty_thousand_calls_draw_as_a_few_artists(tmp_path: Path) -> None:
    from mprofxx import plot
    from mprofxx._thinning import COLUMNS, merge_spans

    path = _many_calls_dat(tmp_path)
    figure = plot(str(path))
    ax = figure.axes[0]
    assert len(ax.lines) + len(ax.collections) < 20  # was 60,000 lines (3 per call)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(text.startswith(" work 0.100s x20000") for text in legend), legend  # all calls
    from _memxx import read_profile

    spans = merge_spans(read_profile(str(path))["functions"], 0.3 / COLUMNS)
    assert len(spans) <= COLUMNS and sum(s[6] for s in spans) == 20_001
    flame = plot(str(path), flame=True)
    assert len(flame.axes[1].patches) + len(flame.axes[1].collections) <= 2
    started = time.monotonic()
    result = mprofxx("plot", "-f", "-o", "f.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30  # was 43-49 s


def test_the_legend_names_the_longest_functions_and_says_so(tmp_path: Path) -> None:
    write_dat(tmp_path, "".join(f"FUNC m.f{i} 1.0 1700000000.{i:03d} 2.0 1700000000.{i + 1:03d}"
                                f" 0\n" for i in range(100)))
    result = mprofxx("plot", "-o", "p.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "mprofxx: note: 100 functions; the legend names the 30 that ran longest"]


# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve (it would be pytest's own).
READ_AND_MEASURE = """
import sys, _memxx
from mprofxx import _profiles
if sys.argv[2] == "packed":
    recording = _profiles.read(sys.argv[1])
    peak = recording.peak
else:
    memory = _memxx.read_profile(sys.argv[1])["memory"]
    peak = max(memory, key=lambda s: s[0])
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(peak[0], peak[1], hwm.split()[1])
"""


def test_samples_are_read_packed_16_bytes_each(tmp_path: Path) -> None:
    samples = 1_000_000
    with open(tmp_path / DAT, "w") as out:
        out.write("CMDLINE python x.py\n")
        for i in range(samples):
            out.write(f"MEM {100 + (i % 1000) / 10:.6f} {1700000000 + i * 0.001:.4f}\n")
        out.write("MEM 777.5 1700009999.0\n")  # the peak, last
    figures = {}
    for how in ("packed", "tuples"):
        done = subprocess.run([sys.executable, "-c", READ_AND_MEASURE, str(tmp_path / DAT), how],
                              capture_output=True, text=True, check=True, timeout=300)
        mib, when, max_rss_kib = done.stdout.split()
        assert (float(mib), float(when)) == (777.5, 1700009999.0)
        figures[how] = int(max_rss_kib) * 1024
    # A million samples as tuples take ~110 MB; packed, 16 MB.
    assert figures["tuples"] - figures["packed"] > 70e6, figures
    result = mprofxx("peak", DAT, cwd=tmp_path)
    assert result.stdout.splitlines() == [f"{DAT}\t777.500 MiB"]


def _max_rss_of(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``command``; return its result and its own maximum resident set size in bytes (a
    wrapper runs it, so RUSAGE_CHILDREN holds this one process's figure alone)."""
    wrapped = subprocess.run(
        [sys.executable, "-c",
         "import resource, subprocess, sys\n"
         "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
         "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
         "sys.exit(r.returncode)", *command],
        cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    *stderr, max_rss_kib = wrapped.stderr.splitlines()
    wrapped.stderr = "\n".join(stderr)
    return wrapped, int(max_rss_kib) * 1024


def _ten_million_line_dat(path: Path) -> tuple[float, float]:
    """A 10 M-line .dat (MEM lines, a FUNC line in every 1,000): return its peak sample."""
    t0 = 1700000000.0
    with open(path, "w") as out:
        out.write("CMDLINE python big.py\n")
        for block in range(10_000):
            base = t0 + block * 10.0
            lines = [f"MEM {100 + (i * 7919 % 1000) / 10:.6f} {base + i * 0.01:.4f}\n"
                     for i in range(999)]
            lines.append(f"FUNC __main__.work 100.0 {base:.4f} 101.0 {base + 9.98:.4f} 0\n")
            if block == 5_000:
                lines[500] = f"MEM 777.250000 {base + 5.0:.4f}\n"
            out.write("".join(lines))
    return 777.25, t0 + 5_000 * 10.0 + 5.0


def test_peak_and_plot_of_a_ten_million_line_dat_stay_within_a_bound(tmp_path: Path) -> None:
    peak = _ten_million_line_dat(tmp_path / DAT)
    result, peak_rss = _max_rss_of([sys.executable, "-m", "mprofxx", "peak", DAT], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{DAT}\t{peak[0]:.3f} MiB"]
    # Streamed: the interpreter and the extension (~18 MiB), not the file (310 MB; read whole
    # it took 1.5 GB in the issue, 616 MB before this change).
    assert peak_rss < 64 << 20, peak_rss
    result, plot_rss = _max_rss_of([sys.executable, "-m", "mprofxx", "plot", "-o", "p.png", DAT],
                                   tmp_path)
    assert result.returncode == 0, result.stderr
    # matplotlib's own ~110 MiB and a picture's worth of samples (2,000 columns), not 2.4 GB.
    assert plot_rss < 256 << 20, plot_rss
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_drawn_samples_keep_each_columns_extremes_and_the_peak(tmp_path: Path) -> None:
    import random

    import numpy as np
    from _memxx import read_profile, read_profile_drawn

    rng = random.Random(5)
    lines = ["CMDLINE x"]
    for i in range(200_000):
        lines.append(f"MEM {rng.uniform(10, 90):.6f} {1700000000 + i * 0.001:.4f}")
        if i % 7 == 0:
            lines.append(f"CHLD 42 {rng.uniform(1, 5):.6f} {1700000000 + i * 0.001:.4f}")
    (tmp_path / DAT).write_text("\n".join(lines) + "\n")
    whole = read_profile(str(tmp_path / DAT))
    columns = 100
    drawn = read_profile_drawn(str(tmp_path / DAT), columns)
    assert drawn["samples"] == 200_000 and drawn["peak"] == max(whole["memory"],
                                                                key=lambda s: s[0])
    start, end = drawn["start"], drawn["end"]
    width = (end - start) / columns
    for series, packed in ((whole["memory"], drawn["memory"]),
                           (whole["children"]["42"], drawn["children"]["42"])):
        every = np.asarray(series)
        kept = np.frombuffer(packed, dtype=float).reshape(-1, 2)
        assert len(kept) <= 4 * (columns + 2)
        for name, values in (("every", every), ("kept", kept)):
            column = np.clip(np.floor((values[:, 1] - start) / width), 0, columns)
            extremes = [(values[column == c, 0].min(), values[column == c, 0].max())
                        for c in range(columns + 1) if (column == c).any()]
            if name == "every":
                expected = extremes
            else:
                assert extremes == expected  # each column's lowest and highest, exactly
        assert list(kept[:, 1]) == sorted(kept[:, 1])  # in time order
        assert tuple(kept[0]) == tuple(every[0]) and tuple(kept[-1]) == tuple(every[-1])


def test_a_dat_beyond_what_a_plot_can_draw_is_one_error_line(tmp_path: Path) -> None:
    # 1,001 functions; 257 child processes; 300,000 spans far apart on 300 levels.
    write_dat(tmp_path, "".join(f"FUNC m.f{i} 1.0 1700000000.0 2.0 1700000000.5 0\n"
                                for i in range(1001)))
    line = one_error_line(mprofxx("plot", "-o", "p.png", cwd=tmp_path))
    assert line == (f"mprofxx: error: {DAT}: more than 1,000 functions, beyond what a plot "
                    "can draw")
    write_dat(tmp_path, "".join(f"CHLD {pid} 1.0 1700000000.5\n" for pid in range(257)))
    line = one_error_line(mprofxx("plot", "-o", "p.png", cwd=tmp_path))
    assert line == (f"mprofxx: error: {DAT}: more than 256 child processes, beyond what a plot "
                    "can draw")
    assert mprofxx("peak", DAT, cwd=tmp_path).returncode == 0  # peak prints each child's
    write_dat(tmp_path, "".join(f"FUNC m.f 1.0 {1700000000 + i * 3000:.1f} 2.0 "
                                f"{1700000000 + i * 3000 + 1:.1f} {level}\n"
                                for level in range(300) for i in range(1000)))
    result = mprofxx("plot", "-o", "p.png", cwd=tmp_path)
    line = one_error_line(result)
    assert line == (f"mprofxx: error: {DAT}: more than 200,000 function spans even with calls "
                    "closer than a pixel merged, beyond what a plot can draw")
    assert not (tmp_path / "p.png").exists()
