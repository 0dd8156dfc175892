"""The frames' shadow (core/peak_shadow.cpp, 3.12 and 3.13) gives the stack keys of ``run --peak``
without walking every frame: the tables it leads to are the walks' tables, byte for byte.

The same program runs twice in a fresh interpreter, once with the shadow and once with
``MEMXX_PEAK_FRAME_WALKS=1`` (every key by a walk); each prints every stack it recorded, by its
frames' (file, function, line), with its bytes at the peak and now. The program has what could
fool a shadow: generators resumed from two callers, ``throw()`` and ``yield from``, an exception
unwinding through frames that allocate, recursion deeper than any recorded stack, threads, a
class body, a closure, a thread begun before the shadow, and a collection of the stack tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent("""
    import _thread, gc, json, sys, threading
    import _memxx

    kept = []

    # A thread whose first frames began before the shadow: its new frames' callers are found
    # by a walk once, then by the memos.
    ready, go, finished = threading.Event(), threading.Event(), threading.Event()

    def early_thread():
        ready.set()
        go.wait()
        early_calls()
        finished.set()

    def early_calls():
        for i in range(3):
            kept.append(str(i * 31337))
            kept.append([i] * 5)
        early_helper()
        kept.append(bytearray(91))

    def early_helper():
        kept.append(bytearray(77))
        kept.append({"h": 1})

    # 70,000 lines that allocate and free: the stack tree is collected (the nodes of stacks no
    # table holds are dropped, the others renumbered) while the frames above hold memos.
    BODY = "def body():\\n" + "".join(f"    x = [{i}]\\n" for i in range(70_000))
    namespace = {}
    exec(compile(BODY, "generated_body", "exec"), namespace)

    def many_lines():
        kept.append(bytearray(11))
        namespace["body"]()
        kept.append(bytearray(13))

    def numbers(n):
        for i in range(n):
            kept.append(str(i * 1000003))
            got = yield i
            kept.append([got])

    def left(gen):
        return gen.send(None), gen.send("left")

    def right(gen):
        kept.append(bytearray(100))
        return gen.send("right")

    def delegate():
        kept.append({"d": 1})
        result = yield from numbers(4)
        return result

    def thrown():
        try:
            yield 1
        except KeyError:
            kept.append(bytearray(333))
            yield 2

    def failing(depth):
        kept.append([depth] * 3)
        if depth == 0:
            raise ValueError("deep")
        failing(depth - 1)

    def deep(n):
        if n == 0:
            kept.append(bytearray(50))
            return
        kept.append((n, str(n * 7919)))
        deep(n - 1)
        kept.append([n])

    def in_thread(tag):
        for i in range(200):
            kept.append(f"{tag}-{i}-{'x' * 40}")

    def closure():
        held = [bytearray(64)]
        def inner():
            held.append(bytearray(128))
        for _ in range(3):
            inner()
        kept.append(held)

    def work():
        gen = numbers(50)
        for _ in range(10):
            left(gen)
            right(gen)
        d = delegate()
        kept.append(list(d))
        t = thrown()
        next(t)
        kept.append(t.throw(KeyError("k")))
        for depth in (5, 40):
            try:
                failing(depth)
            except ValueError:
                kept.append(bytearray(depth))
        deep(300)
        threads = [threading.Thread(target=in_thread, args=(tag,)) for tag in "ab"]
        for t in threads:
            t.start()
            t.join()
        class Body:
            rows = [bytearray(32) for _ in range(5)]
        kept.append(Body)
        closure()
        go.set()
        finished.wait()
        many_lines()
        kept.append([1, 2, 3])
        kept.append(bytearray(200_000))  # the peak

    def table(report, rows):
        nodes = report["nodes"]
        def chain(node):
            out = []
            while node >= 0:
                parent, code, line = nodes[node]
                out.append([code.co_filename, code.co_name, line])
                node = parent
            return [node] + out
        found = {}
        for size, node in report[rows]:
            key = json.dumps(chain(node))
            found[key] = found.get(key, 0) + size
        return found

    def main():
        gc.disable()
        sys.setrecursionlimit(5000)
        _thread.start_new_thread(early_thread, ())
        ready.wait()
        _memxx.peak_start(False)
        _memxx.peak_runner_frame(True)
        work()
        _memxx.peak_runner_frame(False)
        report = _memxx.peak_report(-1, True)
        _memxx.peak_stop()
        keys = _memxx._peak_shadow_keys()  # after the report: a count is an int it would hold
        stacks = _memxx._peak_shadow_stacks()
        print(json.dumps({"keys": keys, "stacks": stacks, "at_peak": table(report, "at_peak"),
                          "now": table(report, "live_now")}))

    main()
""")


def record(tmp_path, walks: bool) -> dict:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM, encoding="utf-8")
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("MEMXX_PEAK_FRAME_WALKS", None)
    if walks:
        env["MEMXX_PEAK_FRAME_WALKS"] = "1"
    # Without address randomization: where the blocks land decides, in CPython itself, whether
    # a statement gets all its blocks fresh (`class Body:` takes 18 or 19 blocks from run to
    # run on 3.14, and 19 every time under setarch -R), and both runs must see one program.
    fixed = ["setarch", "-R"] if shutil.which("setarch") else []
    done = subprocess.run([*fixed, sys.executable, str(script)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def program_rows(rows: dict[str, int]) -> dict[str, int]:
    return {stack: size for stack, size in rows.items() if "threading.py" not in stack}


def test_the_shadow_records_what_the_walks_record(tmp_path) -> None:
    shadowed = record(tmp_path, walks=False)
    walked = record(tmp_path, walks=True)
    assert walked["keys"] == walked["stacks"] == 0
    if sys.version_info[:2] in ((3, 12), (3, 13)):
        # Most keys came from the shadow (the others: frames begun before it, and the threads'
        # first frames, whose keys this thread does not count), and most new stacks were
        # interned from its memos, without a walk.
        assert shadowed["keys"] > 1000
        assert shadowed["stacks"] > 300
    else:
        # 3.11 has no sys.monitoring; 3.14+ allocate differently while its events are on.
        assert shadowed["keys"] == shadowed["stacks"] == 0
    # Starting a thread leaves the interpreter's own blocks (its state) for as long as the thread
    # takes to end after join(): the stacks through threading.py vary from run to run.
    assert program_rows(shadowed["at_peak"]) == program_rows(walked["at_peak"])
    assert program_rows(shadowed["now"]) == program_rows(walked["now"])
    # The lines the program allocated at are all there, the deep ones too, and those of the
    # thread begun before the shadow, and those after the tree's collection.
    lines = {tuple(frame) for key in walked["at_peak"] for frame in json.loads(key)[1:2]}
    names = {name for _, name, _ in lines}
    assert {"deep", "numbers", "early_calls", "early_helper", "many_lines", "work"} <= names


@pytest.mark.skipif(sys.version_info[:2] not in ((3, 12), (3, 13)),
                    reason="the shadow runs on 3.12 and 3.13 only")
def test_the_shadow_leaves_no_tool_behind(tmp_path) -> None:
    script = tmp_path / "tool.py"
    script.write_text(textwrap.dedent("""
        import sys, _memxx
        _memxx.peak_start(False)
        _memxx.peak_runner_frame(True)
        held = [sys.monitoring.get_tool(i) for i in range(6)]
        _memxx.peak_runner_frame(False)
        _memxx.peak_stop()
        print(held, [sys.monitoring.get_tool(i) for i in range(6)])
    """), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("] [")[0].count("mprofxx --peak") == 1
    assert "mprofxx" not in done.stdout.split("] [")[1]
