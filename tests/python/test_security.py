"""Security: data files are parsed, never unpickled or evaluated; output files are never
written through a symbolic link planted in a shared directory; temporary files come from
mkstemp; attaching to another user's process fails with a permission error; nothing listens on
a socket."""

from __future__ import annotations

import ctypes
import io
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

_memxx = pytest.importorskip("_memxx")

TOP = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ["python", "core", "gc_walker", "mprof"]


def mprofxx(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mprofxx", *args],
        cwd=cwd,
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mprofxx: error: "), result.stderr
    return lines[0]


def source_files() -> list[Path]:
    files = []
    for directory in SOURCE_DIRS:
        for path in sorted((TOP / directory).rglob("*")):
            if path.suffix in {".py", ".cpp", ".hpp", ".c", ".h"}:
                files.append(path)
    assert len(files) > 20
    return files


# What may look like evaluation, and why it is not evaluating data: (file, text in the line).
ALLOWED = {
    ("python/memory_profilerxx/_line_profiler.py", "exec(cmd"): "runctx(cmd): the caller's code",
    ("python/memory_profilerxx/_magics.py", "exec(compile(stmt"): "%memit: the user's statement",
    ("python/memory_profilerxx/_magics.py", "eval(name"): "%mprun -f NAME: the user's expression",
    ("python/memory_profilerxx/_magics.py", "exec(code, self.shell"): "%peak: the user's statement",
    ("python/mprofxx/_child.py", "exec()s the script"): "a docstring",
    ("python/mprofxx/_attach.py", "exec(open({boot_path"): (
        "attach: the target runs our boot code, written by the CLI into its own new 0700 folder "
        "(O_EXCL, O_NOFOLLOW), as sys.remote_exec runs a file"),
}
FORBIDDEN = [
    r"\bpickle\b",
    r"\bcPickle\b",
    r"\bmarshal\.loads?\b",
    r"\bshelve\b",
    r"\byaml\.(unsafe_)?load\b",
    r"\bliteral_eval\b",
    r"\btempfile\.mktemp\b",
    r"\bos\.tempnam\b",
    r"\btmpnam\b",
    r"\bmktemp\(",
]
PYTHON_ONLY = [r"(?<![\w.])eval\(", r"(?<![\w.])exec\("]


def test_no_source_unpickles_evaluates_or_makes_guessable_temp_names():
    found = []
    for path in source_files():
        relative = path.relative_to(TOP).as_posix()
        patterns = FORBIDDEN + (PYTHON_ONLY if path.suffix == ".py" else [])
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if any(relative == f and snippet in line for f, snippet in ALLOWED):
                continue
            code = line.split("#", 1)[0] if path.suffix == ".py" else line.split("//", 1)[0]
            if any(re.search(pattern, code) for pattern in patterns):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


class _Planted:
    """Unpickling this creates the file named: proof that something unpickled the data."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("kind", ["pickle", "python", "json-python"])
def test_hostile_data_files_are_parsed_never_executed(tmp_path: Path, kind: str):
    sentinel = tmp_path / "executed"
    if kind == "pickle":
        payload = pickle.dumps(_Planted(str(sentinel)), protocol=0)
    elif kind == "python":
        payload = f"MEM __import__('pathlib').Path({str(sentinel)!r}).touch() 1.0\n".encode()
    else:
        code = f"__import__('pathlib').Path({str(sentinel)!r}).touch()"
        payload = ('{"memory": [["' + code + '", 1.0]], "cmdline": "x"}').encode()
    (tmp_path / "mprofile_20240101120000.dat").write_bytes(payload)
    for command in (["peak"], ["plot", "-o", "out.png"], ["list"]):
        result = mprofxx(*command, cwd=tmp_path)
        if command != ["list"]:
            one_error_line(result)
    assert not sentinel.exists()


SCRIPT = """
    import time
    data = bytearray(1 << 20)
    time.sleep(0.2)
"""


def plant_link(tmp_path: Path, name: str) -> tuple[Path, Path]:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / name
    link.symlink_to(victim)
    return link, victim


@pytest.mark.parametrize("target", ["dat", "json", "plot"])
def test_outputs_are_not_written_through_a_planted_symlink(tmp_path: Path, target: str):
    (tmp_path / "s.py").write_text(textwrap.dedent(SCRIPT))
    if target == "dat":
        # Someone planted the name the next run will write (the default is guessable).
        link, victim = plant_link(tmp_path, "mprofile_planted.dat")
        message = one_error_line(mprofxx("run", "-o", link.name, "s.py", cwd=tmp_path))
        assert "symbolic link" in message
    elif target == "json":
        link, victim = plant_link(tmp_path, "r.json")
        result = mprofxx("run", "--json", "-o", "r.dat", "s.py", cwd=tmp_path)
        assert (
            result.returncode == 1 and "r.json: cannot write: is a symbolic link" in result.stderr
        )
        assert _memxx.read_profile(str(tmp_path / "r.dat"))["memory"]  # the .dat is intact
    else:
        (tmp_path / "p.dat").write_text("CMDLINE x\nMEM 1.0 2.0\nMEM 2.0 3.0\n")
        link, victim = plant_link(tmp_path, "p.png")
        message = one_error_line(mprofxx("plot", "-o", "p.png", "p.dat", cwd=tmp_path))
        assert "symbolic link" in message
    assert victim.read_text() == "precious\n"
    assert link.is_symlink()


def test_dat_writer_refuses_fifos_and_other_users_files(tmp_path: Path):
    fifo = tmp_path / "fifo.dat"
    os.mkfifo(fifo)
    with pytest.raises(_memxx.ProfileFileError, match="not a regular file"):
        _memxx.create_dat(str(fifo), "x")  # and does not block waiting for a reader
    with pytest.raises(_memxx.ProfileFileError, match="not a regular file"):
        _memxx.read_profile(str(fifo))
    if os.geteuid() == 0:
        owned = tmp_path / "theirs.dat"
        owned.write_text("theirs\n")
        os.chown(owned, 65534, 65534)
        with pytest.raises(_memxx.ProfileFileError, match="owned by another user"):
            _memxx.create_dat(str(owned), "x")
        assert owned.read_text() == "theirs\n"


def _run_as_nobody(function) -> tuple[int, str]:
    """Fork, drop to uid/gid 65534, run function() -> exit code; return (code, stderr)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            err = io.StringIO()
            with redirect_stderr(err), redirect_stdout(io.StringIO()):
                code = function()
            os.write(write_end, err.getvalue().encode())
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_attach_to_another_users_process_is_a_permission_error(tmp_path: Path):
    from mprofxx import cli

    os.chmod(tmp_path, 0o777)
    owner_process = subprocess.Popen(["sleep", "30"])  # runs as root
    try:
        code, err = _run_as_nobody(
            lambda: cli.main(["attach", "-o", str(tmp_path / "a.dat"), str(owner_process.pid)])
        )
    finally:
        owner_process.kill()
        owner_process.wait()
    assert code == 1
    assert err.strip() == (
        f"mprofxx: error: permission denied: PID {owner_process.pid} belongs to another user"
        " (attach as that user or root)"
    )
    assert not (tmp_path / "a.dat").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_attach_to_a_process_whose_proc_entry_cannot_be_read(tmp_path: Path):
    # A process of the same user that made itself non-dumpable (as setuid programs are): its
    # /proc/PID/smaps_rollup belongs to root, so its memory cannot be read.
    from mprofxx import cli

    os.chmod(tmp_path, 0o777)
    ready_read, ready_write = os.pipe()
    target = os.fork()
    if target == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            pr_set_dumpable = 4
            ctypes.CDLL(None).prctl(pr_set_dumpable, 0, 0, 0, 0)
            os.write(ready_write, b"x")
            time.sleep(30)
        finally:
            os._exit(0)
    os.close(ready_write)
    try:
        assert os.read(ready_read, 1) == b"x"
        code, err = _run_as_nobody(
            lambda: cli.main(["attach", "-o", str(tmp_path / "b.dat"), str(target)])
        )
    finally:
        os.close(ready_read)
        os.kill(target, signal.SIGKILL)
        os.waitpid(target, 0)
    assert code == 1
    assert err.startswith(f"mprofxx: error: permission denied: cannot read /proc/{target}/"), err
    assert not (tmp_path / "b.dat").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may attach to anything")
def test_attach_to_pid_1_as_a_normal_user(tmp_path: Path):
    if os.stat("/proc/1").st_uid == os.geteuid():
        pytest.skip("PID 1 belongs to this user here")
    message = one_error_line(mprofxx("attach", "-o", "a.dat", "1", cwd=tmp_path))
    assert "permission denied" in message


def socket_fds(pid: int) -> list[str]:
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.append(target)
    return found


def test_nothing_opens_a_socket(tmp_path: Path):
    # In the profiled process: all three tools used, no socket appears.
    import objgraphxx
    from memory_profilerxx import profile

    before = socket_fds(os.getpid())

    @profile(stream=io.StringIO())
    def work():
        return [bytes(100) for _ in range(1000)]

    work()
    objgraphxx.show_growth(file=io.StringIO())
    assert socket_fds(os.getpid()) == before
    # mprofxx run and the program it records: no socket in either, while recording.
    (tmp_path / "s.py").write_text("import time\ntime.sleep(1.5)\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "mprofxx", "run", "-o", "n.dat", "s.py"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        children: list[str] = []
        while time.monotonic() < deadline and not children:
            time.sleep(0.1)
            children = Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()
        assert children, "the program never started"
        time.sleep(0.3)
        assert socket_fds(run.pid) == []
        assert socket_fds(int(children[0])) == []
    finally:
        assert run.wait(timeout=30) == 0


def test_objgraphxx_outputs_refuse_a_planted_symlink(tmp_path):
    import objgraphxx

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("graph.dot", "graph.png", "heap.json"):
        link = tmp_path / name
        link.symlink_to(victim)
        with pytest.raises(ValueError, match="is a symbolic link"):
            if name == "heap.json":
                objgraphxx.snapshot().save(str(link))
            else:
                objgraphxx.show_refs([[1, 2]], filename=str(link))
    assert victim.read_text() == "precious\n"
