"""mprofxx run --peak keeps the table whatever ends the program, and trusts no folder it did not
make.

Real runs in child processes, real signals (GNU timeout's, a closed terminal's, Ctrl-C's to the
process group), real fork/spawn/forkserver workers; each figure is checked against the bytes the
program held.
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

_memxx = pytest.importorskip("_memxx")

from _memxx_shared.peak_file import load  # noqa: E402

MB = 10**6

HOLD = """
    import os, time
    held = [bytearray(1000) for _ in range(20_000)]   # line 3: 20 MB
    print("ready", os.getpid(), flush=True)
    time.sleep(60)
"""


def mprofxx(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mprofxx", *args], cwd=cwd, capture_output=True,
                          check=False, text=True, timeout=timeout)


def write(folder: Path, name: str, code: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(code))


def held_by_line(folder: Path, script: str) -> dict[int, int]:
    (path,) = folder.glob("*.peak.json")
    main = load(str(path))[0]
    return {row.lineno: row.bytes for row in main.lines() if row.filename.endswith(script)}


def start_run(folder: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    process = subprocess.Popen([*prefix, sys.executable, "-m", "mprofxx", "run", "--peak", *args],
                               cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    return process


def wait_ready(process: subprocess.Popen) -> int:
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        assert line, "the program ended before it was ready"
        if line.startswith("ready"):
            return int(line.split()[1])


@pytest.mark.skipif(shutil.which("timeout") is None, reason="GNU coreutils' timeout is missing")
def test_gnu_timeout_two_sigterms_keep_the_table(tmp_path: Path) -> None:
    # timeout(1) sends SIGTERM to mprofxx run and then to its whole process group: the run gets
    # two, the program two (one forwarded). Three tries: the second used to hit _stop_program.
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        write(folder, "hold.py", HOLD)
        done = subprocess.run(["timeout", "4", sys.executable, "-m", "mprofxx", "run", "--peak",
                               "hold.py"], cwd=folder, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 124  # timeout's own status: the command timed out
        assert "Traceback" not in done.stderr, done.stderr
        assert "stopped by SIGTERM" in done.stderr
        assert held_by_line(folder, "hold.py")[3] >= 20_000 * 1000
        assert not list(folder.glob("*.peak.parts"))


@pytest.mark.parametrize("how", ["SIGINT to the group", "SIGINT to the run",
                                 "SIGTERM twice to the run", "SIGHUP to the group",
                                 "SIGHUP to the run"])
def test_signals_keep_the_table(tmp_path: Path, how: str) -> None:
    write(tmp_path, "hold.py", HOLD)
    process = start_run(tmp_path, "hold.py")
    wait_ready(process)
    name, target = how.split(" to the ")
    signum = getattr(signal, name.split()[0])
    if target == "group":  # Ctrl-C, or a closed terminal: every process of the group
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
        if "twice" in name:
            time.sleep(0.05)
            process.send_signal(signum)
    _out, err = process.communicate(timeout=120)
    if signum == signal.SIGINT:  # the program's own KeyboardInterrupt, as python prints it
        assert err.count("Traceback") <= 1 and "cli.py" not in err, err
    else:
        assert "Traceback" not in err, err
    assert process.returncode == 128 + signum
    assert held_by_line(tmp_path, "hold.py")[3] >= 20_000 * 1000
    assert "no peak table" not in err


def test_a_ctrl_c_that_comes_after_the_program_ended_waits_for_the_write(tmp_path: Path) -> None:
    # A second Ctrl-C to the process group (the run passes the first on as well) can come once
    # the program has ended, when its exit handlers run and before the table's write has put
    # its own handlers in place. Made certain here: while the program's last exit handler
    # sleeps, a thread it started takes SIGINT, which Python then raises in the main thread at
    # the next Python line it runs: the write's first.
    program = """
        import atexit, signal, threading, time
        held = [bytearray(1000) for _ in range(20_000)]   # line 3: 20 MB

        def poke():
            time.sleep(0.1)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)

        atexit.register(time.sleep, 0.5)
        atexit.register(threading.Thread(target=poke).start)   # runs first
    """
    write(tmp_path, "late.py", program)
    plain = subprocess.run([sys.executable, "late.py"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, check=False)
    done = mprofxx("run", "--peak", "late.py", cwd=tmp_path)
    assert "no peak table" not in done.stderr, done.stderr
    assert "cannot write" not in done.stderr, done.stderr
    assert held_by_line(tmp_path, "late.py")[3] >= 20_000 * 1000
    assert not list(tmp_path.glob("*.peak.parts"))
    assert (done.returncode == 0) == (plain.returncode == 0), (plain, done)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_another_thread_takes_still_reaches_the_blocked_main_thread(
        tmp_path: Path, signum: signal.Signals) -> None:
    # Python runs a handler in the main thread, when its eval loop looks: a signal that another
    # thread takes (or that comes just before the main thread blocks: a Pool worker entering the
    # queue's lock as the pool terminates it) leaves the handler pending while the main thread
    # waits for good. The recorder sends it again to the main thread, whose wait it interrupts.
    write(tmp_path, "blocked.py", f"""
        import os, signal, threading, time
        held = [bytearray(1000) for _ in range(20_000)]   # line 3: 20 MB
        never = threading.Lock()
        never.acquire()
        main = threading.get_native_id()

        def poke():
            # Once the main thread sleeps in the lock's wait (it has nothing else to wait for):
            # the signal goes to this thread, whose eval loop does not run the handler.
            time.sleep(0.2)
            for _ in range(1000):
                with open(f"/proc/self/task/{{main}}/stat") as stat:
                    if stat.read().rsplit(")", 1)[1].split()[0] == "S":
                        break
                time.sleep(0.01)
            signal.pthread_kill(threading.get_ident(), {int(signum)})

        threading.Thread(target=poke).start()
        never.acquire()                                    # only a signal ends this wait
    """)
    process = start_run(tmp_path, "--exit-code", "blocked.py")
    try:
        _out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("the handler never ran: the program still waits")
    assert process.returncode == 128 + signum, err
    assert f"killed by {signum.name}" in err and "Traceback" not in err, err
    assert held_by_line(tmp_path, "blocked.py")[3] >= 20_000 * 1000


def test_os_exit_in_the_main_program_keeps_the_table(tmp_path: Path) -> None:
    write(tmp_path, "quits.py", """
        import os
        held = bytearray(30_000_000)   # line 3
        os._exit(7)
    """)
    done = mprofxx("run", "--peak", "-E", "quits.py", cwd=tmp_path)
    assert done.returncode == 7, done.stderr
    assert held_by_line(tmp_path, "quits.py")[3] == pytest.approx(30_000_000, rel=0.001)


def test_a_signal_during_the_write_waits_for_it(tmp_path: Path) -> None:
    # A thread of the program waits until the table is being written at exit, then sends
    # SIGTERM and SIGINT to the program: the write finishes, then one of them takes its default
    # action.
    write(tmp_path, "slow_write.py", """
        import os, signal, sys, threading, time

        def many(depth, bits):
            if depth == 0:
                kept.append(bytearray(100))          # line 6: 2 ** 16 stacks
            elif bits & 1:
                many(depth - 1, bits >> 1)
            else:
                many(depth - 1, bits >> 1)

        kept = []
        for i in range(2 ** 16):
            many(16, i)
        big = bytearray(40_000_000)                  # line 15

        def signal_during_the_write():
            # __main__ is this script while it runs, mprofxx's runner again at exit
            while not getattr(sys.modules["__main__"], "_peak_written", False):
                time.sleep(0.0005)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            with open("signalled", "w") as out:
                out.write("yes")

        # Started now: 3.12 refuses a new thread at shutdown. The main thread writes with the
        # GIL: this one gets a turn often enough to send both signals while the write runs.
        sys.setswitchinterval(0.0001)
        threading.Thread(target=signal_during_the_write, daemon=True).start()
    """)
    done = mprofxx("run", "--peak", "slow_write.py", cwd=tmp_path)
    assert (tmp_path / "signalled").exists()
    # Python runs pending handlers by signal number: SIGINT's default action comes first.
    assert "killed by SIGINT" in done.stderr or "killed by SIGTERM" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    held = held_by_line(tmp_path, "slow_write.py")
    assert held[15] == pytest.approx(40_000_000, rel=0.001)
    assert held[6] >= 2**16 * 100


def test_out_of_memory_while_writing_keeps_the_largest_and_says_what_was_cut(
        tmp_path: Path) -> None:
    # The program leaves with its address space capped a little above what it uses: the full
    # table cannot be made (24 MiB: its 2 ** 19 nodes are copied and grouped in about 30); the
    # largest stacks are written (their nodes alone are copied) and the rest summed in one row.
    write(tmp_path, "short.py", """
        import resource

        def many(depth, bits):
            if depth == 0:
                kept.append(bytearray(200))          # line 6: 2 ** 18 small stacks
            elif bits & 1:
                many(depth - 1, bits >> 1)
            else:
                many(depth - 1, bits >> 1)

        kept = []
        for i in range(2 ** 18):
            many(18, i)
        big = bytearray(60_000_000)                  # line 15
        with open("/proc/self/status") as status:
            size = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + 24 * 2**20, resource.RLIM_INFINITY))
    """)
    done = mprofxx("run", "--peak", "short.py", cwd=tmp_path)
    assert "out of memory while writing the peak table" in done.stderr, done.stderr
    (path,) = tmp_path.glob("*.peak.json")
    (table,) = load(str(path))
    assert table.cut_reason == "out of memory while writing" and table.cut_stacks > 100_000
    held = {row.lineno: row.bytes for row in table.lines() if row.filename.endswith("short.py")}
    assert held[15] == pytest.approx(60_000_000, rel=0.001)
    # Nothing lost: the rows add up to the peak, the cut ones in their own row.
    assert sum(stack.bytes for stack in table.stacks) == table.peak_bytes
    (cut,) = [row for row in table.lines() if row.filename.startswith("(cut: ")]
    assert cut.bytes == table.cut_bytes >= 2**18 * 200


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_every_start_method_records_its_workers(tmp_path: Path, method: str) -> None:
    write(tmp_path, "workers.py", f"""
        import multiprocessing as mp

        def work(n):
            block = bytearray(n)          # line 5
            both.wait(120)                # each task in a worker of its own
            return len(block)

        def start(barrier):
            global both
            both = barrier

        if __name__ == "__main__":
            context = mp.get_context("{method}")
            barrier = context.Barrier(2)
            with context.Pool(2, initializer=start, initargs=(barrier,)) as pool:
                assert pool.map(work, [20_000_000, 30_000_000], chunksize=1) == [
                    20_000_000, 30_000_000]
    """)
    done = mprofxx("run", "--peak", "workers.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (path,) = tmp_path.glob("*.peak.json")
    main, *workers = load(str(path))
    assert main.cmdline.endswith("workers.py")
    peaks = sorted(
        {r.lineno: r.bytes for r in t.lines() if r.filename.endswith("workers.py")}.get(5, 0)
        for t in workers)
    assert len(workers) == 2, ([t.pid for t in [main, *workers]], done.stderr)  # not the forkserver
    assert peaks == [pytest.approx(20_000_000, rel=0.01), pytest.approx(30_000_000, rel=0.01)]


# --- the parts folder ----------------------------------------------------------------------------

def test_a_planted_link_as_the_parts_folder_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "secret.py", "x = bytearray(1000)\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o777)
    (tmp_path / "out.peak.parts").symlink_to(elsewhere)
    done = mprofxx("run", "--peak", "-o", "out.dat", "secret.py", "--password=hunter2",
                   cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mprofxx: error: out.peak.parts exists")
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "out.dat").exists()  # refused before anything was recorded


def test_a_folder_that_is_not_private_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "prog.py", "x = bytearray(1000)\n")
    (tmp_path / "out.peak.parts").mkdir(mode=0o755)
    os.chmod(tmp_path / "out.peak.parts", 0o755)
    done = mprofxx("run", "--peak", "-o", "out.dat", "prog.py", cwd=tmp_path)
    assert done.returncode == 1
    assert "not a private folder of this user" in done.stderr
    assert done.stderr.count("\n") == 1


def test_planted_tables_are_never_merged_nor_removed(tmp_path: Path) -> None:
    write(tmp_path, "prog.py", "x = bytearray(5_000_000)\n")
    parts = tmp_path / "out.peak.parts"
    parts.mkdir(mode=0o700)
    planted = {"format": "mprofxx-peak", "version": 1, "dat": None, "processes": [
        {"pid": 1, "peak_bytes": 999 * MB, "peak_time": 1.0, "frames": [], "stacks": [],
         "run": "0123456789abcdef"}]}
    for name in ("1.json", "2.json"):
        (parts / name).write_text(json.dumps(planted))
    planted["processes"][0].pop("run")
    (parts / "2.json").write_text(json.dumps(planted))  # no run id at all
    (parts / "3.json").symlink_to(tmp_path / "prog.py")  # a link: never read through
    done = mprofxx("run", "--peak", "-o", "out.dat", "prog.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    tables = load(str(tmp_path / "out.peak.json"))
    assert len(tables) == 1 and tables[0].peak_bytes < 100 * MB
    assert "skipped 2 peak tables of another run" in done.stderr
    # The folder is left with what the run did not make, and only that.
    assert sorted(p.name for p in parts.iterdir()) == ["1.json", "2.json", "3.json"]


def test_an_orphan_child_never_reaches_a_later_run(tmp_path: Path) -> None:
    # The first run's program forks a child that outlives it; the child ends during the second
    # run with the same -o. Its table goes nowhere: not into the second run's peak file.
    write(tmp_path, "orphan.py", """
        import os, time
        if os.fork() == 0:
            quiet = os.open(os.devnull, os.O_WRONLY)  # the test reads the run's output to EOF
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            while not os.path.exists("go"):
                time.sleep(0.02)
            held = bytearray(70_000_000)
            time.sleep(0.3)
            open("orphan-done", "w").close()
            raise SystemExit(0)
        x = bytearray(1_000_000)
    """)
    write(tmp_path, "second.py", """
        import os, time
        open("go", "w").close()
        while not os.path.exists("orphan-done"):
            time.sleep(0.02)
        time.sleep(0.5)
        y = bytearray(2_000_000)     # line 7
    """)
    first = mprofxx("run", "--peak", "-o", "out.dat", "orphan.py", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert not (tmp_path / "out.peak.parts").exists()
    second = mprofxx("run", "--peak", "-o", "out.dat", "second.py", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    tables = load(str(tmp_path / "out.peak.json"))
    assert [t.cmdline for t in tables] == ["second.py"]
    assert all(t.peak_bytes < 50 * MB for t in tables)
    assert held_by_line(tmp_path, "second.py")[7] == pytest.approx(2_000_000, rel=0.01)
    assert not (tmp_path / "out.peak.parts").exists()


# --- the recorder never counts itself ------------------------------------------------------------

MANY_STACKS = """
    import sys
    DEPTH = 19
    SIDES = [[(i >> d) & 1 == 1 for d in range(DEPTH + 1)] for i in range(400_000)]
    kept = []

    def walk(depth, sides):
        if depth == 0:
            kept.append([0] * 40)              # line 9: 200,000 distinct stacks by line
        elif sides[depth]:
            walk(depth - 1, sides)
        else:
            walk(depth - 1, sides)

    for sides in SIDES:
        walk(DEPTH, sides)
    del kept, SIDES
    with open("/proc/self/status") as status:  # the high-water mark of this very process
        print(next(line for line in status if line.startswith("VmHWM")).split()[1])
"""


def test_the_recorded_peak_is_the_programs_with_400k_stacks(tmp_path: Path) -> None:
    write(tmp_path, "stacks.py", MANY_STACKS)
    plain = subprocess.run([sys.executable, "stacks.py"], cwd=tmp_path, capture_output=True,
                           text=True, check=True, timeout=300)
    plain_peak = int(plain.stdout.split()[-1]) * 1024  # VmHWM, read by the process at its exit
    done = mprofxx("run", "--peak", "-o", "out.dat", "stacks.py", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    recorded = max(value for value, _when in _memxx.read_profile(str(tmp_path / "out.dat"))[
        "memory"]) * 2**20
    # The recorder's tables (here about 85 MiB: 600 k nodes, a 32 MiB block table) are left out
    # of the samples; what stays is our code and what mimalloc keeps after the tables grew.
    assert recorded <= plain_peak * 1.1 + 20 * 2**20, (recorded / 2**20, plain_peak / 2**20)
    # ... and no more than that is left out: the program's own peak is still there.
    assert recorded >= plain_peak * 0.9 - 20 * 2**20, (recorded / 2**20, plain_peak / 2**20)


def test_the_table_write_is_not_sampled(tmp_path: Path) -> None:
    # 400 k stacks make a table write of hundreds of MiB at exit: the .dat stops before it, so
    # its peak stays below the program's own high-water mark plus the recorder's tables.
    write(tmp_path, "stacks.py", MANY_STACKS)
    done = mprofxx("run", "--peak", "-o", "out.dat", "stacks.py", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    program_hwm = int(done.stdout.split("\n")[1].split()[-1]) * 1024  # printed before the write
    recorded = max(value for value, _when in _memxx.read_profile(str(tmp_path / "out.dat"))[
        "memory"]) * 2**20
    assert recorded <= program_hwm + 5 * 2**20, (recorded / 2**20, program_hwm / 2**20)
    (table,) = load(str(tmp_path / "out.peak.json"))
    rows = {row.lineno: row.bytes for row in table.lines() if row.filename.endswith("stacks.py")}
    assert rows[9] >= 400_000 * sys.getsizeof([0] * 40)
    assert (tmp_path / "out.peak.json").stat().st_size < 200_000  # the small stacks merged per line


def test_peak_lines_header_and_the_plot_marker_give_one_moment(tmp_path: Path) -> None:
    write(tmp_path, "moments.py", """
        import time
        early = bytearray(50_000_000)    # line 3: the tracked peak
        del early
        time.sleep(0.5)
        late = [bytearray(100) for _ in range(200_000)]
        time.sleep(0.5)
    """)
    done = mprofxx("run", "--peak", "-T", "0.02", "-o", "out.dat", "moments.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from mprofxx._profiles import read

    recording = read(str(tmp_path / "out.dat"))
    start = recording.memory[0][1]
    rss, when = recording.peak  # where mprofxx plot draws its marker
    (table,) = load(str(tmp_path / "out.peak.json"))
    head = mprofxx("peak", "--lines", "out.dat", cwd=tmp_path).stdout.splitlines()[0]
    assert head == (f"peak {rss:,.1f} MiB at {when - start:.2f} s (tracked:"
                    f" {table.peak_bytes / 2**20:,.1f} MiB at {table.peak_time - start:.2f} s)")


def test_the_plot_names_lines_near_and_keeps_them_inside_the_axes(tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    deep = tmp_path / ("far" * 30) / ("away" * 25)
    write(deep, "late_peak.py", """
        import time
        time.sleep(0.8)
        held = bytearray(80_000_000)   # line 4: the peak comes last, the marker at the right
        time.sleep(0.2)
    """)
    here = tmp_path / "here"
    here.mkdir()
    done = mprofxx("run", "--peak", "-T", "0.05", "-o", "out.dat", str(deep / "late_peak.py"),
                   cwd=here)
    assert done.returncode == 0, done.stderr
    from mprofxx._plot import draw, plot_options
    from mprofxx._profiles import read

    figure = draw([read(str(here / "out.dat"))], plot_options())
    figure.canvas.draw()
    (ax,) = figure.axes
    (note,) = [text for text in ax.texts if text.get_text().startswith("peak ")]
    lines = note.get_text().splitlines()
    assert lines[1].endswith(f"...{os.sep}{'away' * 25}{os.sep}late_peak.py:4") or lines[1].endswith("\u2026")
    assert str(tmp_path) not in note.get_text()  # no absolute path
    box = note.get_window_extent()
    frame = ax.get_window_extent()
    assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1, (box, frame)


def test_include_children_counts_pages_shared_after_fork_once(tmp_path: Path) -> None:
    # The parent fills 300 MB, then four forked workers only read it: the true total is about
    # 300 MB (plus the interpreters), while their RSS summed would count it five times.
    write(tmp_path, "shared.py", """
        import multiprocessing as mp, time
        buffer = bytearray(300_000_000)
        for page in range(0, len(buffer), 4096):
            buffer[page] = 1                   # resident in the parent, once

        def look(i):
            total = sum(buffer[::4096])        # touches every page: each is in the worker's RSS
            time.sleep(1.5)
            return total

        if __name__ == "__main__":
            with mp.get_context("fork").Pool(4) as pool:
                pool.map(look, range(4), chunksize=1)
    """)
    done = mprofxx("run", "-C", "-M", "-T", "0.05", "-o", "out.dat", "shared.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from mprofxx._profiles import read

    recording = read(str(tmp_path / "out.dat"))
    total = recording.peak[0]  # MiB
    # What summed RSS would say at the moment of the children's highest figures.
    assert len(recording.children) == 4
    children_peaks = [max(v for v, _t in samples) for samples in recording.children.values()]
    assert min(children_peaks) < 150  # each worker's share of the buffer, not the whole of it
    buffer = 300_000_000 / 2**20
    assert buffer < total < buffer * 1.3 + 60, (total, children_peaks)
    # The same program with RSS summed (mprof's way) counts the buffer in every worker.
    rss = mprofxx("run", "-C", "--backend", "rss", "-T", "0.05", "-o", "rss.dat", "shared.py",
                  cwd=tmp_path)
    assert rss.returncode == 0, rss.stderr
    assert read(str(tmp_path / "rss.dat")).peak[0] > 3 * buffer
