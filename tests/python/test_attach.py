"""``mprofxx attach --peak`` / ``--growth`` into a running CPython process that never imported us.

The target (TARGET below) leaks one 64 KiB bytes object at one line every 10 ms and logs each
one it made with the time: the truth the recorded bytes are compared against. On request (a file
``check-request``) it answers, from inside, whether anything of ours is still hooked: the PyMem
allocator slots read back as they were before the attach, our extension reports no hook installed
and no patched native slot, no trace/profile function is set, and it runs on as many threads as
before.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="attach reads /proc (Linux)")

BLOCK = 65536
# What one bytes(65536) asks the allocator for: the data, the object header and the final NUL.
BLOCK_ALLOCATED = BLOCK + sys.getsizeof(b"")

TARGET = r"""
import ctypes, json, os, sys, time

class Allocator(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]

def allocators():
    found = []
    for domain in (0, 1, 2):  # RAW, MEM, OBJ
        slot = Allocator()
        ctypes.pythonapi.PyMem_GetAllocator(ctypes.c_int(domain), ctypes.byref(slot))
        found.append([slot.ctx, slot.malloc, slot.calloc, slot.realloc, slot.free])
    return found

def threads():
    return len(os.listdir("/proc/self/task"))

def check(before):
    memxx = sys.modules.get("_memxx")
    stats = memxx.hook_stats() if memxx else None
    report = {
        "allocators_as_before": allocators() == before["allocators"],
        "threads": threads(),
        "threads_before": before["threads"],
        "trace": sys.gettrace() is not None or sys.getprofile() is not None,
        "memxx_loaded": memxx is not None,
        "mprofxx_loaded": "mprofxx" in sys.modules,
        "installed": bool(stats and stats["installed"]),
        "native": bool(stats and stats["native"]),
        "native_slots_now": stats["native_slots_now"] if stats else 0,
        "live_blocks": stats["live_blocks"] if stats else 0,
    }
    monitoring = getattr(sys, "monitoring", None)
    report["monitoring_tools"] = [] if monitoring is None else [
        i for i in range(6) if monitoring.get_tool(i) is not None]
    return report

def main():
    folder = sys.argv[1]
    end = time.time() + float(sys.argv[2]) if len(sys.argv) > 2 else None
    before = {"allocators": allocators(), "threads": threads()}
    held = []
    log = open(os.path.join(folder, "made.log"), "w", buffering=1)
    with open(os.path.join(folder, "ready"), "w") as ready:
        ready.write(str(os.getpid()))
    while True:
        held.append(bytes(65536))  # LEAK
        log.write(f"{time.time():.6f}\n")
        request = os.path.join(folder, "check-request")
        if os.path.exists(request):
            os.remove(request)
            with open(os.path.join(folder, "check.tmp"), "w") as out:
                json.dump(check(before), out)
            os.rename(os.path.join(folder, "check.tmp"), os.path.join(folder, "check.json"))
        if len(held) > 3000:
            del held[:1000]  # a long run stays below 200 MiB
        time.sleep(0.01)
        if end is not None and time.time() > end:
            break

main()
"""
LEAK_LINE = next(n for n, text in enumerate(TARGET.splitlines(), 1) if "# LEAK" in text)


def bytes_on_leak_line(entry: dict) -> int:
    """The bytes at the peak of the stacks whose innermost frame is the target's LEAK_LINE."""
    from _memxx_shared.peak_file import PeakTable

    table = PeakTable.from_json(entry, "peak file")
    return sum(s.bytes for s in table.stacks if s.frames and s.frames[0][2] == LEAK_LINE)


GROWTH_TARGET = r"""
import os, sys, time

class Session:
    def __init__(self, n):
        self.n = n

cache = {}
made = 0
with open(os.path.join(sys.argv[1], "ready"), "w") as ready:
    ready.write(str(os.getpid()))
while True:
    cache[made] = Session(made)  # LEAK
    made += 1
    time.sleep(0.01)
"""
GROWTH_LINE = next(n for n, text in enumerate(GROWTH_TARGET.splitlines(), 1) if "# LEAK" in text)


def _ptrace_permitted() -> str:
    if shutil.which("lldb") is None and sys.version_info < (3, 14):
        return "lldb is not installed (scripts/install-deps.sh installs it)"
    try:
        scope = int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text())
    except (OSError, ValueError):
        scope = 0
    if scope >= 3 or (scope >= 1 and os.geteuid() != 0):
        return f"kernel.yama.ptrace_scope is {scope}: this user may not trace a process"
    status = Path("/proc/self/status").read_text()
    if "CapEff:\t0000000000000000" in status and os.geteuid() == 0:
        return "no capabilities: ptrace is not permitted in this container"
    return ""


needs_ptrace = pytest.mark.skipif(bool(_ptrace_permitted()), reason=_ptrace_permitted() or "-")


def mprofxx(*args: str, cwd: Path, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mprofxx", *args], cwd=cwd, capture_output=True,
                          check=False, text=True, timeout=timeout, env=env)


class Target:
    """A leaking program started by the test; it never imports our project by itself."""

    def __init__(self, folder: Path, source: str = TARGET, python: list[str] | None = None,
                 env: dict[str, str] | None = None, seconds: float | None = None) -> None:
        self.folder = folder
        self.script = folder / "leaker.py"
        self.script.write_text(source)
        lifetime = [] if seconds is None else [str(seconds)]
        self.process = subprocess.Popen([*(python or [sys.executable]), str(self.script),
                                         str(folder), *lifetime], cwd=folder, env=env)
        deadline = time.monotonic() + 30
        while not (folder / "ready").exists():
            assert self.process.poll() is None, "the target did not start"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        self.pid = self.process.pid

    def made_between(self, start: float, end: float) -> int:
        times = [float(t) for t in (self.folder / "made.log").read_text().split()]
        return sum(1 for t in times if start <= t <= end)

    def check(self, timeout: float = 10.0) -> dict:
        """The target's own answer: is anything of ours still there?"""
        answer = self.folder / "check.json"
        if answer.exists():
            answer.unlink()
        (self.folder / "check-request").write_text("")
        deadline = time.monotonic() + timeout
        while not answer.exists():
            assert self.process.poll() is None, "the target died"
            assert time.monotonic() < deadline, "the target did not answer"
            time.sleep(0.02)
        return json.loads(answer.read_text())

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def target(tmp_path: Path):
    started = Target(tmp_path)
    yield started
    started.stop()


def assert_unhooked(report: dict) -> None:
    assert report["allocators_as_before"], report
    assert report["threads"] == report["threads_before"], report
    assert not report["trace"] and report["monitoring_tools"] == [], report
    assert not report["installed"] and not report["native"], report
    assert report["native_slots_now"] == 0, report


def one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mprofxx: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def assert_untouched(target: Target) -> None:
    report = target.check()
    assert not report["memxx_loaded"] and not report["mprofxx_loaded"], report
    assert report["threads"] == report["threads_before"], report


@needs_ptrace
def test_peak_names_the_leaking_line_with_the_bytes_it_made(target: Target, tmp_path: Path) -> None:
    # given a program leaking 64 KiB every 10 ms at one line, attached to for 3 seconds
    result = mprofxx("attach", "--peak", "-t", "3", "-o", "a.dat", str(target.pid), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.peak.json").exists() and (tmp_path / "a.dat").exists()
    # then the table names the line with the bytes the target made between start and peak
    document = json.loads((tmp_path / "a.peak.json").read_text())
    (table,) = document["processes"]
    made = target.made_between(table["start_time"], table["peak_time"])
    assert made > 100
    lines = mprofxx("peak", "--lines", "a.dat", cwd=tmp_path)
    assert lines.returncode == 0, lines.stderr
    rows = [row.split() for row in lines.stdout.splitlines()[2:]]
    assert rows[0][2] == f"leaker.py:{LEAK_LINE}", lines.stdout
    truth = made * BLOCK_ALLOCATED
    recorded = float(rows[0][0]) * 2**20
    assert abs(recorded - truth) <= 0.1 * truth, (recorded, truth, lines.stdout)
    # and the flame graph reads the same file
    flame = mprofxx("flame", "-o", "f.html", "a.dat", cwd=tmp_path)
    assert flame.returncode == 0 and "leaker.py" in (tmp_path / "f.html").read_text()
    # and the target runs on with nothing of ours hooked
    assert target.process.poll() is None
    assert_unhooked(target.check())


@needs_ptrace
def test_bytes_on_the_line_match_the_target_own_count_exactly(target: Target,
                                                              tmp_path: Path) -> None:
    # the JSON's own figure, not the rounded MiB: within 10 % of what the target logged
    result = mprofxx("attach", "--peak", "-t", "2", "-o", "b.dat", str(target.pid), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (table,) = json.loads((tmp_path / "b.peak.json").read_text())["processes"]
    on_line = bytes_on_leak_line(table)
    made = target.made_between(table["start_time"], table["peak_time"])
    assert abs(on_line - made * BLOCK_ALLOCATED) <= 0.1 * made * BLOCK_ALLOCATED


@needs_ptrace
def test_growth_names_the_type_its_line_and_a_chain(tmp_path: Path) -> None:
    target = Target(tmp_path, GROWTH_TARGET)
    try:
        result = mprofxx("attach", "--growth", "-t", "2", "-o", "g.dat", str(target.pid),
                         cwd=tmp_path)
    finally:
        target.stop()
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("Session "))
    name, count, delta = out[at].split()
    assert int(delta) >= 100  # 2 s at one per 10 ms, less the sleep's overshoot
    assert out[at + 1].split()[0] == f"leaker.py:{GROWTH_LINE}"
    chain = result.stdout.split("why is a Session alive:")[1]
    # the root is the script's module-level frame (its global), or the module itself
    assert ("global 'cache' of <module>()" in chain or
            ("module __main__" in chain and ".cache -> dict" in chain)), chain
    assert "-> Session" in chain


@needs_ptrace
def test_chains_option_limits_the_chains(tmp_path: Path) -> None:
    target = Target(tmp_path, GROWTH_TARGET)
    try:
        result = mprofxx("attach", "--growth", "--chains", "0", "-t", "1", "-o", "g.dat",
                         str(target.pid), cwd=tmp_path)
    finally:
        target.stop()
    assert result.returncode == 0, result.stderr
    assert "Session" in result.stdout and "why is a" not in result.stdout


@needs_ptrace
def test_killed_cli_leaves_the_target_unhooked_within_seconds(target: Target,
                                                              tmp_path: Path) -> None:
    cli = subprocess.Popen([sys.executable, "-m", "mprofxx", "attach", "--peak", "-t", "120",
                            "-o", "k.dat", str(target.pid)], cwd=tmp_path,
                           stdout=subprocess.PIPE, text=True)
    assert "attached to PID" in cli.stdout.readline()
    time.sleep(1.0)
    during = target.check()
    assert during["installed"] and during["native_slots_now"] > 0  # it was recording
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    killed = time.monotonic()
    while True:
        report = target.check()
        if not report["installed"] and report["threads"] == report["threads_before"]:
            break
        assert time.monotonic() - killed < 5, report
        time.sleep(0.1)
    assert_unhooked(report)


@needs_ptrace
def test_a_target_that_exits_while_recorded_writes_its_table(tmp_path: Path) -> None:
    target = Target(tmp_path, seconds=12)  # attaching takes seconds on a loaded machine
    try:
        result = mprofxx("attach", "--peak", "-o", "e.dat", str(target.pid), cwd=tmp_path)
        assert target.process.wait(timeout=30) == 0
    finally:
        target.stop()
    assert result.returncode == 0, result.stderr
    (table,) = json.loads((tmp_path / "e.peak.json").read_text())["processes"]
    made = target.made_between(table["start_time"], table["peak_time"])
    on_line = bytes_on_leak_line(table)
    assert made > 20 and abs(on_line - made * BLOCK_ALLOCATED) <= 0.1 * made * BLOCK_ALLOCATED


@needs_ptrace
def test_ctrl_c_stops_the_recording_and_writes_the_table(target: Target, tmp_path: Path) -> None:
    cli = subprocess.Popen([sys.executable, "-m", "mprofxx", "attach", "--peak", "-o", "c.dat",
                            str(target.pid)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert "attached to PID" in cli.stdout.readline()
    time.sleep(1.5)
    cli.send_signal(signal.SIGINT)
    assert cli.wait(timeout=60) == 0
    (table,) = json.loads((tmp_path / "c.peak.json").read_text())["processes"]
    made = target.made_between(table["start_time"], table["peak_time"])
    on_line = bytes_on_leak_line(table)
    assert made > 50 and abs(on_line - made * BLOCK_ALLOCATED) <= 0.1 * made * BLOCK_ALLOCATED
    assert_unhooked(target.check())


@needs_ptrace
def test_attach_twice_in_a_row(target: Target, tmp_path: Path) -> None:
    # the second session finds the target as the first found it
    for name in ("one.dat", "two.dat"):
        result = mprofxx("attach", "--peak", "-t", "1", "-o", name, str(target.pid), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert_unhooked(target.check())


# --- refusals: one line, non-zero exit, target untouched, no file written -----------------------
def test_refuses_a_pid_that_does_not_exist(tmp_path: Path) -> None:
    one_error_line(mprofxx("attach", "--peak", "999999999", cwd=tmp_path), "no running process")
    assert not list(tmp_path.iterdir())


def test_refuses_a_process_that_is_not_cpython(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        one_error_line(mprofxx("attach", "--peak", str(sleeper.pid), cwd=tmp_path),
                       "not a CPython process")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not list(tmp_path.iterdir())


def test_refuses_a_free_threaded_build() -> None:
    # No free-threaded interpreter here: the decision from what /proc shows of one.
    from mprofxx import _attach
    from mprofxx._profiles import CliError

    found = _attach._PYTHON_NAME.search("/usr/lib/x86_64-linux-gnu/libpython3.13t.so.1.0")
    assert found and found.group(3) == "t"
    with pytest.raises(CliError, match="free-threaded"):
        _attach._refuse_unsafe(_attach.Target(os.getpid(), (3, 13), True, sys.executable))


@pytest.mark.parametrize("how", ["environment", "option"])
def test_refuses_when_remote_debugging_is_disabled(tmp_path: Path, how: str) -> None:
    env = dict(os.environ)
    python = [sys.executable]
    if how == "environment":
        env["PYTHON_DISABLE_REMOTE_DEBUG"] = "1"
    else:
        python += ["-X", "disable_remote_debug"]
    target = Target(tmp_path, python=python, env=env)
    try:
        one_error_line(mprofxx("attach", "--peak", str(target.pid), cwd=tmp_path),
                       "remote debugging is disabled")
        assert_untouched(target)
    finally:
        target.stop()


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.14+ needs no debugger")
def test_refuses_without_lldb(target: Target, tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # no lldb on this PATH
    one_error_line(mprofxx("attach", "--peak", str(target.pid), cwd=tmp_path, env=env),
                   "needs lldb")
    assert_untouched(target)
    assert not list(tmp_path.glob("*.dat"))


@needs_ptrace
def test_refuses_a_target_that_cannot_import_the_package(tmp_path: Path) -> None:
    target = Target(tmp_path, python=[sys.executable, "-S"])  # no site-packages: no mprofxx
    try:
        one_error_line(mprofxx("attach", "--peak", str(target.pid), cwd=tmp_path),
                       "cannot import mprofxx")
        assert_untouched(target)
    finally:
        target.stop()
    assert not list(tmp_path.glob("*.dat"))


@needs_ptrace
def test_refuses_a_target_with_another_version(tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "mprofxx").mkdir(parents=True)
    (other / "mprofxx" / "__init__.py").write_text('__version__ = "0.0.1"\n')
    env = dict(os.environ, PYTHONPATH=str(other))
    target = Target(tmp_path, env=env)
    try:
        one_error_line(mprofxx("attach", "--peak", str(target.pid), cwd=tmp_path),
                       "has mprofxx 0.0.1")
        assert_untouched(target)
    finally:
        target.stop()
    assert not list(tmp_path.glob("*.dat"))


@needs_ptrace
@pytest.mark.skipif(shutil.which("lldb") is None, reason="lldb (the debugger holding the target)")
def test_refuses_a_target_already_under_a_debugger(target: Target, tmp_path: Path) -> None:
    holder = subprocess.Popen(["lldb", "--batch", "-p", str(target.pid), "-o", "process continue"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while "TracerPid:\t0\n" in Path(f"/proc/{target.pid}/status").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        one_error_line(mprofxx("attach", "--peak", str(target.pid), cwd=tmp_path),
                       "already traced")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the CLI as another user")
def test_refuses_another_users_process(target: Target, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    probe = subprocess.run(as_nobody + ["-c", "import mprofxx"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"user 65534 cannot run {sys.executable}: {probe.stderr.strip()[-120:]}")
    result = subprocess.run(as_nobody + ["-m", "mprofxx", "attach", "--peak", str(target.pid)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    one_error_line(result, "permission denied")
    assert_untouched(target)


def test_chains_without_growth_is_refused(tmp_path: Path) -> None:
    one_error_line(mprofxx("attach", "--peak", "--chains", "2", "1", cwd=tmp_path),
                   "--chains applies to --growth only")


def test_peak_and_growth_together_are_refused(tmp_path: Path) -> None:
    result = mprofxx("attach", "--peak", "--growth", "1", cwd=tmp_path)
    assert result.returncode != 0 and "not allowed with" in result.stderr
