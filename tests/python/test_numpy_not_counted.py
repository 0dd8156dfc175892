"""numpy imported but its allocator handler out of reach: one line saying numpy's arrays are not
counted and why, once per process; profiling goes on, exact for everything else (issue 30)."""

import subprocess
import sys
import textwrap


def test_an_unreadable_numpy_api_is_said_once_and_profiling_goes_on():
    code = textwrap.dedent("""
        import sys, types
        # A numpy whose C API table cannot be read: the module is there, its _ARRAY_API is not.
        sys.modules["numpy._core._multiarray_umath"] = types.ModuleType("_multiarray_umath")
        from memory_profilerxx import LineProfiler

        def work():
            data = bytearray(10 * 2**20)
            return data

        for _ in range(3):
            prof = LineProfiler()
            prof(work)()
        line = [r for r in prof.records() if r.function == "work"][1]
        print(line.increment)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "numpy" in line]
    assert said == ["memory_profilerxx: numpy's arrays are not counted: its C API table "
                    "(_ARRAY_API) cannot be read (module '_multiarray_umath' has no attribute "
                    "'_ARRAY_API')"], done.stderr
    assert abs(int(done.stdout.split()[-1]) - 10 * 2**20) <= 256
