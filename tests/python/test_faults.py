"""Faults around ``mprofxx run``: the data taken so far stays valid on disk and the exit code
says what happened.

- the target killed from outside with SIGKILL: 128 + 9 with -E, a message either way;
- SIGTERM / SIGHUP to ``mprofxx run`` (SIGINT is in test_mprof.py): the program is stopped
  with the same signal, exit 128 + signal;
- a full disk: a 4 KiB tmpfs when this user may mount one (root in CI), else RLIMIT_FSIZE
  (writes then fail with EFBIG, as they would with ENOSPC): exit 3, the file ends with the
  last complete record, the program runs to its end;
- a target that closes its stdout, while the reader of mprofxx's own stdout has gone too.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

_memxx = pytest.importorskip("_memxx")

HOLDER = """
    import os, sys, time
    data = bytearray(30 << 20)
    data[::4096] = b"x" * len(range(0, len(data), 4096))
    time.sleep(60)
"""


def write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


def start_run(tmp_path: Path, *args: str, **popen: object) -> subprocess.Popen:
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "mprofxx", "run", *args], cwd=tmp_path, text=True, **popen
    )


def mem_records(dat: Path) -> list[list[str]]:
    if not dat.exists():
        return []
    return [line.split() for line in dat.read_text().splitlines() if line.startswith("MEM ")]


def wait_for_memory(dat: Path, mib: float, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(len(r) == 3 and float(r[1]) > mib for r in mem_records(dat)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{dat} never showed {mib} MiB")


def child_of(pid: int) -> int:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(text) == 1, text
    return int(text[0])


def assert_valid(dat: Path, at_least: int) -> dict:
    """The file reads back (no partial line), with at least `at_least` samples."""
    text = dat.read_text()
    assert text.endswith("\n"), text[-80:]
    profile = _memxx.read_profile(str(dat))
    assert len(profile["memory"]) >= at_least
    return profile


def test_target_killed_from_outside_keeps_every_sample(tmp_path: Path) -> None:
    write_script(tmp_path, "holder.py", HOLDER)
    dat = tmp_path / "k.dat"
    run = start_run(tmp_path, "-E", "-T", "0.02", "-o", "k.dat", "holder.py")
    wait_for_memory(dat, 30)
    os.kill(child_of(run.pid), signal.SIGKILL)
    _out, err = run.communicate(timeout=30)
    assert run.returncode == 128 + signal.SIGKILL
    assert "the program was killed by SIGKILL" in err
    assert "Traceback" not in err
    profile = assert_valid(dat, 3)
    assert max(m for m, _ in profile["memory"]) > 30


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_mprofxx_run_stops_the_program_and_keeps_the_data(
    tmp_path: Path, signum: int
) -> None:
    write_script(tmp_path, "holder.py", HOLDER)
    dat = tmp_path / "t.dat"
    run = start_run(tmp_path, "-T", "0.02", "-o", "t.dat", "holder.py")
    wait_for_memory(dat, 30)
    target = child_of(run.pid)
    run.send_signal(signum)
    _out, err = run.communicate(timeout=30)
    assert run.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert f"stopped by {name}; the recording up to now is in t.dat" in err
    assert "Traceback" not in err
    assert not Path(f"/proc/{target}").exists() or "Z" in Path(f"/proc/{target}/stat").read_text()
    assert_valid(dat, 3)


FILLER = """
    import time

    @profile
    def step(i):
        return bytearray(1 << 16)

    end = time.monotonic() + 4
    i = 0
    while time.monotonic() < end:
        step(i)
        i += 1
        time.sleep(0.005)
    open({marker!r}, "w").write("finished")
"""


def _mount_small_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4k,mode=0777", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


@pytest.mark.parametrize("full_by", ["tmpfs", "rlimit"])
def test_full_disk_keeps_complete_records_and_says_so(tmp_path: Path, full_by: str) -> None:
    marker = tmp_path / "finished"
    write_script(tmp_path, "filler.py", FILLER.format(marker=str(marker)))
    small = tmp_path / "small"
    small.mkdir()
    mounted = full_by == "tmpfs" and _mount_small_tmpfs(small)
    if full_by == "tmpfs" and not mounted:
        pytest.skip("cannot mount a tmpfs here (not root): the rlimit case covers the path")
    try:
        dat = small / "f.dat"
        # Without a tmpfs, the 4 KiB RLIMIT_FSIZE makes every write past 4 KiB fail (EFBIG;
        # Python ignores SIGXFSZ), the same path as ENOSPC.
        run = start_run(
            tmp_path,
            "-T",
            "0.005",
            "-o",
            str(dat),
            "filler.py",
            preexec_fn=None if mounted else _limit_file_size,
        )
        out, err = run.communicate(timeout=60)
        print(
            f"full disk by {'a 4 KiB tmpfs' if mounted else 'RLIMIT_FSIZE=4096'}", file=sys.stderr
        )
        assert run.returncode == 3, (out, err)
        reason = "No space left on device" if mounted else "File too large"
        assert "recording stopped early" in err and reason in err, err
        assert "Traceback" not in err
        assert marker.read_text() == "finished"  # the program was not harmed
        assert dat.stat().st_size <= 4096
        profile = assert_valid(dat, 20)
        assert profile["functions"], "FUNC lines written before the disk filled up are kept"
    finally:
        if mounted:
            subprocess.run(["umount", str(small)], check=False)


def test_target_closing_stdout_and_a_gone_reader_of_mprofxx(tmp_path: Path) -> None:
    write_script(
        tmp_path,
        "closer.py",
        """
        import os, sys, time
        os.close(1)
        data = bytearray(20 << 20)
        data[::4096] = b"x" * len(range(0, len(data), 4096))
        time.sleep(0.5)
        print("still running", file=sys.stderr)
        """,
    )
    read_end, write_end = os.pipe()
    os.close(read_end)  # whoever reads mprofxx's stdout has gone (`mprofxx run ... | head -0`)
    try:
        run = start_run(tmp_path, "-T", "0.02", "-o", "c.dat", "closer.py", stdout=write_end)
    finally:
        os.close(write_end)
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert "still running" in err and "Traceback" not in err
    profile = assert_valid(tmp_path / "c.dat", 10)
    assert max(m for m, _ in profile["memory"]) > 20
