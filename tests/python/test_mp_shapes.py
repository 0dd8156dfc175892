"""Shapes of code @profile must measure: coroutines, generators, methods, nested and exec'd
functions, threads; and the decorator's forms (bare, with keywords, `with profile:`)."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from memory_profilerxx import LineProfiler, profile

ITEMS = 10**6
LIST_BYTES = 8 * ITEMS  # the item array of [x] * 10**6; the 56-byte header may be recycled


def rows(text: str) -> dict[str, list[str]]:
    """Measured report rows by their source text (stripped): [line, mem, MiB, increment, MiB,
    peak, MiB, occurrences]; the source starts at column 60 of the default layout."""
    out = {}
    for line in text.splitlines():
        cells = line[:60].split()
        if len(cells) == 8 and cells[0].isdigit() and cells[2] == "MiB":
            out[line[60:].strip()] = cells
    return out


def increment_mib(cells: list[str]) -> float:
    return float(cells[3])


def test_async_def_under_asyncio_run_and_create_task():
    """memory_profiler's wrapper is a generator: create_task rejects it on 3.12+."""
    out = io.StringIO()

    @profile(stream=out, precision=3)
    async def fetch():
        a = [1] * ITEMS
        await asyncio.sleep(0.01)
        b = [2] * (2 * ITEMS)
        return len(a) + len(b)

    async def main():
        return await asyncio.create_task(fetch())

    assert asyncio.run(main()) == 3 * ITEMS
    assert asyncio.run(fetch()) == 3 * ITEMS
    report = out.getvalue()
    assert report.count("Filename:") == 2  # one report per finished coroutine
    table = rows(report.split("Filename:")[2])
    assert increment_mib(table["a = [1] * ITEMS"]) == pytest.approx(LIST_BYTES / 2**20, abs=1e-3)
    assert increment_mib(table["b = [2] * (2 * ITEMS)"]) == pytest.approx(
        2 * LIST_BYTES / 2**20, abs=1e-3)
    assert table["await asyncio.sleep(0.01)"][7] == "1"


def test_work_of_other_tasks_between_awaits_is_not_charged():
    out = io.StringIO()
    hold = []

    @profile(stream=out, precision=3)
    async def waits():
        await asyncio.sleep(0.05)
        return 1

    async def other():
        await asyncio.sleep(0.01)
        hold.append([0] * (5 * ITEMS))  # 40 MB while waits() is suspended

    async def main():
        await asyncio.gather(waits(), other())

    asyncio.run(main())
    table = rows(out.getvalue())
    assert abs(increment_mib(table["await asyncio.sleep(0.05)"])) < 0.1


def test_generator_reports_when_exhausted():
    out = io.StringIO()

    @profile(stream=out, precision=3)
    def chunks(n):
        for _ in range(n):
            chunk = [0] * ITEMS
            yield chunk

    total = 0
    for chunk in chunks(3):
        total += len(chunk)
        assert out.getvalue() == ""  # not before it is exhausted
    assert total == 3 * ITEMS
    table = rows(out.getvalue())
    assert table["chunk = [0] * ITEMS"][7] == "3"
    assert table["yield chunk"][7] == "3"


def test_generator_reports_when_closed_early_and_consumer_work_is_not_charged():
    out = io.StringIO()
    consumer = []

    @profile(stream=out, precision=3)
    def numbers():
        yield 1
        yield 2
        yield 3

    gen = numbers()
    next(gen)
    consumer.append([0] * (4 * ITEMS))  # the consumer's 32 MB between two steps
    next(gen)
    gen.close()
    table = rows(out.getvalue())
    assert table["yield 1"][7] == "1" and table["yield 2"][7] == "1"
    assert "yield 3" not in table
    assert all(abs(increment_mib(cells)) < 0.01 for cells in table.values())


def test_generator_send_and_throw_reach_the_body():
    out = io.StringIO()

    @profile(stream=out)
    def echo():
        received = []
        try:
            while True:
                received.append((yield len(received)))
        except ValueError:
            yield received

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.throw(ValueError) == ["a"]
    gen.close()
    assert "received.append((yield len(received)))" in out.getvalue()


def test_methods_classmethods_staticmethods():
    out = io.StringIO()

    class Cart:
        @profile(stream=out, precision=3)
        def method(self):
            items = [0] * ITEMS
            return items

        @classmethod
        @profile(stream=out, precision=3)
        def build(cls):
            items = [0] * ITEMS
            return items

        @staticmethod
        @profile(stream=out, precision=3)
        def helper():
            items = [0] * ITEMS
            return items

    Cart().method()
    Cart.build()
    Cart.helper()
    reports = out.getvalue().split("Filename:")[1:]
    assert len(reports) == 3
    for report in reports:
        cells = rows(report)["items = [0] * ITEMS"]
        assert increment_mib(cells) == pytest.approx(LIST_BYTES / 2**20, abs=1e-3)


def test_nested_function_returned_and_called_later():
    prof = LineProfiler()

    def outer():
        def inner():
            kept = [0] * ITEMS
            return kept

        return inner

    inner = prof(outer)()
    with prof:
        inner()
    lines = {r.source.strip(): r for r in prof.records()}
    assert LIST_BYTES <= lines["kept = [0] * ITEMS"].increment <= LIST_BYTES + 56


def test_function_defined_in_exec():
    out = io.StringIO()
    namespace = {"profile": profile, "out": out}
    exec(compile(  # noqa: S102 - a function made by exec is one of the shapes
        "@profile(stream=out, precision=3)\n"
                 "def made():\n"
                 "    data = [0] * 10**6\n"
                 "    return data\n", "<exec-cell>", "exec"), namespace)
    namespace["made"]()
    assert "Filename: <exec-cell>" in out.getvalue()
    # No source for <exec-cell>: the rows still carry their figures.
    measured = [line.split() for line in out.getvalue().splitlines() if "MiB" in line]
    assert any(float(cells[3]) == pytest.approx(LIST_BYTES / 2**20, abs=1e-3)
               for cells in measured if len(cells) >= 8)


def test_threads_running_the_function_at_once_give_one_merged_report():
    out = io.StringIO()
    started = threading.Barrier(4)

    @profile(stream=out, precision=3)
    def work():
        started.wait()
        block = [0] * ITEMS
        started.wait()
        return len(block)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert out.getvalue().count("Filename:") == 1
    cells = rows(out.getvalue())["block = [0] * ITEMS"]
    assert cells[7] == "4"
    assert increment_mib(cells) == pytest.approx(4 * LIST_BYTES / 2**20, abs=1e-3)


def test_allocations_of_an_unprofiled_thread_are_never_charged():
    out = io.StringIO()
    go, done = threading.Event(), threading.Event()
    kept = []

    def other():
        go.wait()
        kept.append([0] * (10 * ITEMS))  # 80 MB on another thread, during the profiled line
        done.set()

    @profile(stream=out, precision=3)
    def waits():
        go.set(); done.wait()
        return 1

    thread = threading.Thread(target=other)
    thread.start()
    waits()
    thread.join()
    cells = rows(out.getvalue())["go.set(); done.wait()"]
    assert abs(increment_mib(cells)) < 0.01


def test_decorator_forms_and_with_profile():
    out = io.StringIO()

    @profile
    def bare():
        return 1

    assert bare.__name__ == "bare" and bare() == 1
    keyword = profile(stream=out, precision=4)(lambda: [0] * ITEMS)
    keyword()
    assert f"{LIST_BYTES / 2**20:.4f} MiB" in out.getvalue()

    prof = LineProfiler()

    def body():
        return [0] * ITEMS

    prof.add_function(body)
    with prof:
        body()
    prof.enable_by_count()
    body()
    prof.disable_by_count()
    record = next(r for r in prof.records() if "return" in r.source)
    assert record.occurrences == 2
    assert abs(record.increment - 2 * LIST_BYTES) <= 128  # headers: free lists, frames


def test_bad_backend_or_non_function():
    with pytest.raises(ValueError, match="unknown backend"):
        profile(lambda: 1, backend="bogus")
    with pytest.raises(TypeError):
        profile(42)
