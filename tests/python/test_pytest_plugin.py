"""The pytest plugin (memory_profilerxx.pytest_plugin), driven through real pytest sessions.

Each test writes a small suite with pytester and runs it with the plugin loaded by ``-p`` (the
project is not pip-installed in development); pytest-memray, when installed, is switched off
with ``-p no:memray`` since it acts on the same marker names.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

import _native
from memory_profilerxx.pytest_plugin import format_size, parse_size
from _plugin_runs import PLUGIN, failure_text, run

pytest_plugins = ["pytester"]

MiB = 2**20


def test_parse_size_reads_pytest_memrays_sizes():
    assert parse_size("24 MB") == 24 * MiB
    assert parse_size("1.5 MiB") == 3 * MiB // 2
    assert parse_size("100 KB") == parse_size("100 KiB") == parse_size("100kb") == 102400
    assert parse_size("+512B") == 512
    assert format_size(3 * MiB + MiB // 10) == "3.1 MiB"
    for bad in ("lots", "-1 MB", "", "12", "3 XB"):
        with pytest.raises(ValueError, match="is not a memory size"):
            parse_size(bad)


def test_one_planted_allocation_over_the_budget_fails_and_names_its_line(pytester):
    pytester.makepyfile(test_budget="""
        import pytest

        @pytest.mark.limit_memory("1 MiB")
        def test_load():
            small = bytearray(1000)
            big = bytearray(3 * 2**19)
            del big

        @pytest.mark.limit_memory("2 MiB", current_thread_only=True)
        def test_fits():
            big = bytearray(3 * 2**19)
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    text = failure_text(result, "test_load")
    assert "test_load used 1.5 MiB at its peak (limit 1.0 MiB), reached on:" in text
    assert "test_budget.py:6   big = bytearray(3 * 2**19)" in text


def test_a_leak_through_a_module_cache_fails_with_its_line_and_chain(pytester):
    pytester.makepyfile(test_leaky="""
        import pytest

        CACHE = {}

        class Session:
            pass

        @pytest.mark.limit_leaks("1 MB")
        def test_cache():
            for i in range(1000):
                CACHE["k%d" % len(CACHE)] = Session()
            CACHE["payload%d" % len(CACHE)] = bytearray(2 * 2**20)
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    text = failure_text(result, "test_cache")
    # Per allocation site, as pytest-memray: the payload's site is over, the sessions' is not.
    assert ("test_cache was allowed to leak 1.0 MiB per location but 1 location(s) kept more by "
            "its last run (of 3):\n    - 2.0 MiB allocated here, on the test's thread:\n"
            "        test_cache:test_leaky.py:12\n") in text
    assert "test_leaky.py:11" not in text.split("Session x")[0]
    assert "Session x 3000 still alive after 3 runs; one of them:" in text
    assert "made at test_leaky.py:11" in text
    # One of the last run's sessions: keys k2002 .. k3001.
    (key,) = re.findall(r"module test_leaky -> \.CACHE -> dict \(3003 items\) -> \['k(\d+)'\] -> "
                        r"Session", text)
    assert 2002 <= int(key) <= 3001


def test_a_leak_inside_a_library_names_the_calling_line_and_where_objects_were_made(pytester):
    pytester.makepyfile(shop_cache="""
        class Session:
            def __init__(self, key):
                self.key = key

        class Cache:
            def __init__(self):
                self._store = {}

            def put(self, key):
                self._store[key] = Session(key)

        CACHE = Cache()
    """, test_shop="""
        import pytest
        import shop_cache

        @pytest.mark.no_leaked_objects(types=["Session"])
        def test_sessions():
            for i in range(50):
                shop_cache.CACHE.put("k%d" % len(shop_cache.CACHE._store))
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    text = failure_text(result, "test_sessions")
    assert "Session x 150 still alive after 3 runs; one of them:" in text
    assert "made at shop_cache.py:10" in text
    result.stdout.re_match_lines([r" +module shop_cache -> \.CACHE -> Cache -> \._store -> "
                                  r"dict \(150 items\) -> \['k1\d\d'\] -> Session"])


def test_a_warm_up_cache_filled_on_the_first_run_only_passes(pytester):
    pytester.makepyfile(test_warm="""
        import functools
        import pytest

        @functools.lru_cache(maxsize=None)
        def table():
            return [bytearray(1024) for _ in range(4096)]

        @pytest.mark.limit_leaks("64 KB")
        @pytest.mark.no_leaked_objects()
        def test_uses_a_cache():
            assert len(table()) == 4096
    """)
    run(pytester).assert_outcomes(passed=1)
    # With one run there is no telling warm-up from a leak: the same test then fails.
    once = run(pytester, "--memxx-leak-runs", "1")
    once.assert_outcomes(failed=1)
    text = failure_text(once, "test_uses_a_cache")
    assert "test_uses_a_cache was allowed to leak 64.0 KiB per location but 1 location(s)" in text
    assert re.search(r"    - 4\.\d MiB allocated here, on the test's thread:\n"
                     r"(        table\.<locals>\.<listcomp>:test_warm\.py:6\n)?"  # 3.11: its own frame
                     r"        table:test_warm\.py:6\n"
                     r"        test_uses_a_cache:test_warm\.py:11\n", text)


def test_no_leaked_objects_counts_only_the_types_asked_for(pytester):
    pytester.makepyfile(test_types="""
        import pytest

        KEPT = []

        class Session:
            pass

        class Row:
            pass

        @pytest.mark.no_leaked_objects(types=["Session"])
        def test_rows_pile_up_but_are_not_watched():
            KEPT.append(Row())

        @pytest.mark.no_leaked_objects(types=["Session"], runs=4)
        def test_sessions_pile_up():
            KEPT.append(Session())
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    text = failure_text(result, "test_sessions_pile_up")
    assert "Session x 4 still alive after 4 runs; one of them:" in text
    assert "module test_types -> .KEPT -> list (" in text


def test_native_memory_counts_towards_both_budgets(pytester):
    pytester.makepyfile(test_native_budget=f"""
        import sys
        import pytest
        sys.path.insert(0, {_native.path()!r})
        import memxx_native_ext as ext

        HELD = []

        @pytest.mark.limit_memory("2 MiB")
        def test_native_peak():
            ext.temporary(3 * 2**20)

        @pytest.mark.limit_leaks("1 MiB")
        def test_native_leak():
            HELD.append(ext.alloc("malloc", 2 * 2**20))
    """)
    result = run(pytester)
    result.assert_outcomes(failed=2)
    assert "test_native_peak used 3.0 MiB at its peak" in failure_text(result, "test_native_peak")
    text = failure_text(result, "test_native_leak")
    assert "test_native_leak was allowed to leak 1.0 MiB per location" in text
    assert ("    - 2.0 MiB allocated here, on the test's thread:\n"
            "        test_native_leak:test_native_budget.py:14") in text


def test_a_test_failing_for_its_own_reasons_keeps_its_own_failure(pytester):
    pytester.makepyfile(test_own="""
        import pytest

        @pytest.mark.limit_memory("1 KB")
        @pytest.mark.limit_leaks("1 KB")
        def test_broken():
            data = bytearray(2**20)
            assert len(data) == 0
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    text = failure_text(result, "test_broken")
    assert "assert 1048576 == 0" in text
    assert "at its peak" not in text and "leaked" not in text


@pytest.mark.parametrize(("marker", "says"), [
    ('limit_memory("lots")', "@pytest.mark.limit_memory('lots'): 'lots' is not a memory size"),
    ('limit_leaks("-1 MB")', "@pytest.mark.limit_leaks('-1 MB'): '-1 MB' is not a memory size"),
    ("no_leaked_objects(runs=0)", "@pytest.mark.no_leaked_objects(runs=0): runs must be an int"),
])
def test_bad_marker_arguments_are_a_collection_error_naming_the_test(pytester, marker, says):
    pytester.makepyfile(test_bad=f"""
        import pytest

        @pytest.mark.{marker}
        def test_wrong():
            pass
    """)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting test_bad.py*",
                                 f"test_bad.py::test_wrong: {says}*"])


SUITE = """
    import pytest

    HELD = []

    @pytest.mark.limit_memory("1 MiB")
    def test_over():
        big = bytearray(2 * 2**20)

    @pytest.mark.limit_leaks("1 MiB")
    def test_leak():
        HELD.append(bytearray(2 * 2**20))

    @pytest.mark.parametrize("n", range(4))
    def test_sizes(n):
        data = bytearray((n + 1) * 2**20)
"""


def test_memxx_summary_lists_the_top_tests_and_writes_json(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = run(pytester, "--memxx", "--memxx-top", "2", "--memxx-json", "figures.json",
                 "--memxx-limit", "3.5 MiB")
    result.assert_outcomes(passed=3, failed=3)
    assert "test_sizes[3] used 4.0 MiB at its peak (limit 3.5 MiB, --memxx-limit)" in \
        failure_text(result, "test_sizes[3]")
    result.stdout.fnmatch_lines([
        "*= memory-profilerxx: memory per test =*",
        "2 tests with the highest peak:",
        "*4.0 MiB  test_suite.py::test_sizes[[]3[]]",
        "*3.0 MiB  test_suite.py::test_sizes[[]2[]]",
        "2 tests with the most leaked:",
        "*2.0 MiB  test_suite.py::test_leak",
    ])
    with open(pytester.path / "figures.json") as f:
        figures = {t["nodeid"]: t for t in json.load(f)["tests"]}
    assert len(figures) == 6
    assert figures["test_suite.py::test_sizes[1]"]["peak"] >= 2 * 2**20
    assert figures["test_suite.py::test_leak"]["runs"] == 3
    assert figures["test_suite.py::test_leak"]["leaked"] >= 2 * 2**20


def test_memxx_measures_unittest_tests_and_honours_markers_on_them(pytester):
    pytester.makepyfile(test_old="""
        import unittest

        class Old(unittest.TestCase):
            def test_builds(self):
                data = bytearray(3 * 2**20)
    """)
    result = run(pytester, "--memxx")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 tests with the highest peak:", "*3.0 MiB  test_old.py::Old::test_builds"])
    pytester.makepyfile(test_old="""
        import unittest
        import pytest

        KEPT = []

        class Old(unittest.TestCase):
            def setUp(self):
                self.scratch = bytearray(4 * 2**20)  # setUp is not the test's call

            @pytest.mark.limit_memory("1 MB")
            def test_builds(self):
                data = bytearray(3 * 2**20)

            @pytest.mark.limit_memory("4 MB")
            def test_fits(self):
                data = bytearray(3 * 2**20)

            @pytest.mark.limit_leaks("1 MB")
            def test_keeps(self):
                KEPT.append(bytearray(2 * 2**20))

            @pytest.mark.limit_memory("1 MB")
            def test_own_failure(self):
                self.assertEqual(1, 2)
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=3)
    assert "test_builds used 3.0 MiB at its peak (limit 1.0 MiB), reached on:" in \
        failure_text(result, "Old.test_builds")
    assert "test_old.py:12   data = bytearray(3 * 2**20)" in failure_text(result, "Old.test_builds")
    text = failure_text(result, "Old.test_keeps")
    assert ("    - 2.0 MiB allocated here, on the test's thread:\n"
            "        Old.test_keeps:test_old.py:20") in text
    assert "AssertionError: 1 != 2" in failure_text(result, "Old.test_own_failure")


def test_xdist_workers_give_the_same_verdicts_and_one_summary(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(*PLUGIN, "-n", "2", "--memxx", "--memxx-top", "6")
    result.assert_outcomes(passed=4, failed=2)
    out = result.stdout.str()
    assert out.count("memory-profilerxx: memory per test") == 1
    assert "test_over used 2.0 MiB at its peak (limit 1.0 MiB)" in out
    assert "test_leak was allowed to leak 1.0 MiB per location but 1 location(s)" in out
    result.stdout.fnmatch_lines(["6 tests with the highest peak:"])
    for n in range(4):
        assert f"{n + 1}.0 MiB  test_suite.py::test_sizes[{n}]" in out


@pytest.mark.parametrize(("option", "says"), [
    (("--memxx-limit", "lots"), "--memxx-limit: 'lots' is not a memory size"),
    (("--memxx-leak-runs", "0"), "--memxx-leak-runs must be >= 1, not 0"),
    (("--memxx-top", "0"), "--memxx-top must be >= 1, not 0"),
])
def test_bad_options_are_one_usage_error(pytester, option, says):
    pytester.makepyfile(test_any="def test_ok(): pass")
    result = run(pytester, *option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {says}*"])


def test_installed_but_unused_leaves_outcome_and_output_unchanged(pytester):
    pytester.makepyfile(test_plain="""
        import pytest

        def test_ok():
            assert sum(range(10)) == 45

        def test_fail():
            assert [1, 2] == [1, 3]

        @pytest.mark.skip(reason="later")
        def test_skip():
            pass
    """)
    common = ("-p", "no:memray", "-p", "no:cacheprovider", "-rA")
    without = pytester.runpytest_subprocess(*common, "-p", "no:memory_profilerxx.pytest_plugin")
    with_plugin = pytester.runpytest_subprocess(*common, "-p", "memory_profilerxx.pytest_plugin")

    def lines(result):
        # The header's "plugins:" line names the installed plugin's distribution when it is
        # loaded: the one line that must differ. The timing line differs by nature.
        return [line for line in result.outlines
                if (" in " not in line or "==" not in line) and not line.startswith("plugins:")]

    assert with_plugin.ret == without.ret == pytest.ExitCode.TESTS_FAILED
    with_plugin.assert_outcomes(passed=1, failed=1, skipped=1)
    assert lines(with_plugin) == lines(without)


def test_the_pytest11_entry_point_is_declared():
    here = os.path.dirname(os.path.abspath(__file__))
    pyproject = os.path.join(here, "..", "..", "pyproject.toml")
    if os.path.exists(pyproject):
        import tomllib

        with open(pyproject, "rb") as f:
            points = tomllib.load(f)["project"]["entry-points"]["pytest11"]
        assert points == {"memory_profilerxx.pytest_plugin": "memory_profilerxx.pytest_plugin"}
    from importlib import metadata

    try:
        dist = metadata.distribution("memory-profilerxx")
    except metadata.PackageNotFoundError:
        pytest.skip("memory-profilerxx is not installed in " + sys.executable)
    if not any(str(f).endswith("memory_profilerxx/pytest_plugin.py") for f in dist.files or ()):
        pytest.skip("the installed memory-profilerxx predates the plugin")
    found = [ep.value for ep in dist.entry_points if ep.group == "pytest11"]
    assert found == ["memory_profilerxx.pytest_plugin"]
