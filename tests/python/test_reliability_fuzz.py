"""Hostile profile files through the Python readers (mprofxx's ``peak``/``plot`` path): every
garbage file gives one clear ``mprofxx: error:`` line or a valid recording; never a traceback,
a crash or a hang. The C++ parser itself is fuzzed by tests/fuzz (ctest and
scripts/test-reliability.sh); this loop covers the bindings and the Python layer above it."""

from __future__ import annotations

import io
import os
import random
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from mprofxx import _profiles, cli

SEEDS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"
RUNS = 3000
TOKENS = [
    b"CMDLINE ",
    b"MEM ",
    b"CHLD ",
    b"FUNC ",
    b"\n",
    b" ",
    b"\r",
    b"\x00",
    b"\xff\xfe",
    b"nan",
    b"inf",
    b"1e309",
    b"-1",
    b"2147483648",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"memory"',
    b'"functions"',
    b'"children"',
    b'"level"',
    b"null",
    b"\xc3\xa9",
    b"\xe9",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randint(0, len(buf))
        choice = rng.randrange(6)
        if choice == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif choice == 1:
            buf[at:at] = rng.choice(TOKENS)
        elif choice == 2 and buf:
            del buf[at : at + rng.randint(1, 16)]
        elif choice == 3 and buf:
            start = rng.randrange(len(buf))
            buf[at:at] = buf[start : start + rng.randint(1, 64)]
        elif choice == 4:
            del buf[at:]
        else:
            buf[at:at] = bytes([rng.randrange(256)])
    return bytes(buf)


def check_one(path: Path) -> str:
    """Read as `mprofxx peak` does; return 'ok' or the error line. Fails on anything else."""
    try:
        recording = _profiles.read(str(path))
    except _profiles.CliError as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
        return message
    assert recording.memory
    assert all(isinstance(m, float) and isinstance(t, float) for m, t in recording.memory)
    assert isinstance(recording.cmdline, str)
    recording.peak  # noqa: B018 - computing it must work on whatever was read
    return "ok"


def test_mutated_profiles_give_a_recording_or_one_error_line(tmp_path: Path):
    seeds = [p.read_bytes() for p in sorted(SEEDS.iterdir())]
    assert len(seeds) >= 3
    rng = random.Random(20240101)
    outcomes = {"ok": 0, "error": 0}
    pool = list(seeds)
    started = time.monotonic()
    for n in range(RUNS):
        data = mutate(pool[n % len(pool)], rng)
        path = tmp_path / ("f.json" if n % 2 else "f.dat")
        path.write_bytes(data)
        outcomes["ok" if check_one(path) == "ok" else "error"] += 1
        if n % 7 == 0:
            pool.append(data)
            pool = seeds + pool[-64:]
    elapsed = time.monotonic() - started
    assert outcomes["ok"] > 0 and outcomes["error"] > 0, outcomes
    assert elapsed < 120, f"{RUNS} small files took {elapsed:.0f} s"


def one_error(args: list[str]) -> str:
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        code = cli.main(args)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("mprofxx: error: "), (
        code,
        err.getvalue(),
    )
    return lines[0]


@pytest.mark.parametrize(
    "case",
    ["empty", "nul", "deep-json", "huge-line", "not-utf8-json", "dir", "fifo", "dev-zero"],
)
def test_pathological_files_fail_fast_with_one_line(tmp_path: Path, case: str):
    path = tmp_path / "p.dat"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "nul":
        path.write_bytes(b"MEM 1.0 2.0\n\x00\x00\x00")
    elif case == "deep-json":
        path.write_bytes(b"{" + b'"memory":' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}")
    elif case == "huge-line":
        path.write_bytes(b"MEM " + b"9" * (20 << 20) + b" 1.0\n")
    elif case == "not-utf8-json":
        path.write_bytes(b'{"memory": [[1, 2]], "cmdline": "\xe9\xff"}')
    elif case == "dir":
        path.mkdir()
    elif case == "fifo":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    started = time.monotonic()
    message = one_error(["peak", str(path)])
    assert time.monotonic() - started < 30, "took too long"
    if case in ("fifo", "dev-zero"):
        assert "not a regular file" in message
