"""Hostile profile files through the Python readers (mprofxx's ``peak``/``plot`` path): every
garbage file gives one clear ``mprofxx: error:`` line or a valid recording; never a traceback,
a crash or a hang. The C++ parser itself is fuzzed by tests/fuzz (ctest and
scripts/test-reliability.sh); this loop covers the bindings and the Python layer above it."""

from __future__ import annotations

import io
import json
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


# The .peak.json reader is Python (_memxx_shared.peak_file.loads): its fuzz loop is here, beside
# the .dat one, deterministic, and run in the sanitizer step with the other core tests.
PEAK_TOKENS = [
    b"1e400", b"-1e400", b"Infinity", b"-Infinity", b"NaN", b"1" * 401, b"-1", b"0.5",
    b"9223372036854775808", b"null", b"true", b'"x"', b"[", b"]", b"{", b"}", b",", b":",
    b'"\\ud800"', b'"\\u0000"', b'"\\u001b]52;c;aGk=\\u0007"', b'"<!--<script>"', b"[" * 3000,
    b'"frames"', b'"stacks"', b'"bytes"', b'"deeper"', b'"processes"', b'"peak_time"',
]


def _peak_seeds() -> list[bytes]:
    from _memxx_shared.peak_file import PeakStack, PeakTable, dumps

    frames = [("/app/a.py", "<module>", 1), ("/app/a.py", "load", 7), ("/lib/np.py", "ones", 3)]
    main = PeakTable(pid=10, peak_bytes=5 << 20, peak_time=1700000000.25, start_time=1.7e9,
                     stacks=[PeakStack(3 << 20, tuple(frames[::-1])),
                             PeakStack(2 << 20, (frames[0],), deeper=True),
                             PeakStack(1024, ())],
                     cmdline="python a.py", library_paths=["/lib/"])
    child = PeakTable(pid=11, peak_bytes=1 << 20, peak_time=1700000001.0, parent=10,
                      stacks=[PeakStack(1 << 20, (frames[1],))], cmdline="worker")
    return [dumps([main], "mprofile_20240101120000.dat").encode(),
            dumps([main, child]).encode(), dumps([]).encode()]


HOSTILE_VALUES: list[object] = [
    10**400, -1, 2**63, 1e300, 0.5, None, True, "x", "\ud800", "\x1b]52;c;aGk=\x07",
    "<!--<script>", [], {}, [[[]]], [1, 2], [0] * 3000, ["a.py", "f", 10**30],
]


def replace_a_value(seed: bytes, rng: random.Random) -> bytes:
    """The seed's JSON with one value (anywhere in the tree) replaced by a hostile one."""
    document = json.loads(seed)
    spots: list[tuple[object, object]] = []
    todo: list[object] = [document]
    while todo:
        node = todo.pop()
        keys = range(len(node)) if isinstance(node, list) else (
            node.keys() if isinstance(node, dict) else ())
        for key in keys:
            spots.append((node, key))
            todo.append(node[key])  # type: ignore[index]
    node, key = rng.choice(spots)
    node[key] = rng.choice(HOSTILE_VALUES)  # type: ignore[index]
    return json.dumps(document).encode()


def check_one_peak(path: Path) -> str:
    """Read as `peak --lines`/`flame` do; return 'ok' or the error line. Fails on anything else."""
    import xml.etree.ElementTree as ET

    from _memxx_shared.peak_file import PeakFileError, load
    from mprofxx._flame import flame_html, flame_svg

    try:
        tables = load(str(path))
    except PeakFileError as error:
        message = str(error)
        assert message.startswith(f"{path}: ") and "\n" not in message, repr(message)
        return message
    for table in tables:
        for row in table.lines():
            row.location()
        table.format(5)
        page = flame_html(table, "t")
        data = page.split('type="application/json">')[1].split("</script>")[0]
        assert "<" not in data and len(json.loads(data)) >= 1  # script data that cannot end early
        ET.fromstring(flame_svg(table, "t"))  # valid XML 1.0, whatever the names hold
    return "ok"


def test_mutated_peak_files_give_tables_or_one_error_line(tmp_path: Path):
    seeds = _peak_seeds()
    rng = random.Random(20240228)
    outcomes = {"ok": 0, "error": 0}
    pool = list(seeds)
    started = time.monotonic()
    for n in range(RUNS):
        if n % 2:  # bytes: broken JSON, odd tokens
            data = bytearray(mutate(pool[n % len(pool)], rng))
            if n % 3 == 0:
                at = rng.randrange(len(data) + 1)
                data[at:at] = rng.choice(PEAK_TOKENS)
        else:  # valid JSON with one value replaced by a hostile one: the schema's checks
            data = bytearray(replace_a_value(seeds[n % len(seeds)], rng))
        path = tmp_path / "p.peak.json"
        path.write_bytes(data)
        outcomes["ok" if check_one_peak(path) == "ok" else "error"] += 1
        if n % 7 == 0:
            pool.append(bytes(data))
            pool = seeds + pool[-64:]
    elapsed = time.monotonic() - started
    assert outcomes["ok"] > RUNS // 20 and outcomes["error"] > RUNS // 4, outcomes
    assert elapsed < 120, f"{RUNS} small peak files took {elapsed:.0f} s"
