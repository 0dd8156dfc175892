#!/usr/bin/env bash
# The sanitizer step of `make test` (also runnable alone, after scripts/install-deps.sh):
#   1. builds the C++ libraries, the extension and the Catch2 tests with ASan + UBSan (build/asan),
#   2. runs ctest under them (leak checking on),
#   3. fuzzes the .dat/JSON readers for MEMXX_FUZZ_RUNS mutated inputs (default 300,000),
#   4. runs pytest's core cases on python3 with the sanitizer runtime preloaded, with CPython's
#      own allocator and again with PYTHONMALLOC=malloc (every Python block an ASan-checked one).
# Any sanitizer report fails the step: UBSan findings are fatal (-fno-sanitize-recover), ASan
# halts on the first error, and every report is also logged to a file that must stay empty.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
py=${MEMXX_ASAN_PYTHON:-$(command -v python3)}
build="$top/build/asan"
runs=${MEMXX_FUZZ_RUNS:-300000}
start=$SECONDS

echo "== ASan + UBSan build ($build)"
cmake -S "$top" -B "$build" -DMEMXX_BUILD_TESTS=ON -DMEMXX_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython_EXECUTABLE="$py" >/dev/null
cmake --build "$build" -j2

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"

check_reports() {
    if compgen -G "$reports/*" >/dev/null; then
        echo "error: sanitizer reports ($1):" >&2
        cat "$reports"/* >&2
        exit 1
    fi
}

echo "== ctest under ASan + UBSan"
(cd "$build" && ctest --output-on-failure)
check_reports "ctest"

echo "== fuzz the profile readers: $runs inputs"
"$build/tests/fuzz/fuzz_profile_reader" --runs "$runs" --seed 20240101 "$top"/tests/fuzz/corpus/*
check_reports "fuzz"

# CPython is not instrumented and leaks by design at exit: no leak checking in Python processes.
asan_runtime=$(gcc -print-file-name=libasan.so)
ubsan_runtime=$(gcc -print-file-name=libubsan.so)
[ -f "$asan_runtime" ] && [ -f "$ubsan_runtime" ] || {
    echo "error: libasan/libubsan not found (gcc's runtime)" >&2
    exit 1
}
core_tests=(
    test_line_exact.py test_line_robust.py test_line_cli.py test_objgraph.py
    test_fork.py test_stress.py test_faults.py test_security.py
    test_reliability_objgraph.py test_reliability_fuzz.py test_mprof.py test_native.py
)
hook_tests=(test_line_exact.py test_line_robust.py test_stress.py test_fork.py test_reliability_objgraph.py
    test_native.py test_peak.py)
run_pytest() {
    local label=$1
    shift
    echo "== pytest under ASan + UBSan ($label)"
    (cd "$top/tests/python" &&
        LD_PRELOAD="$asan_runtime $ubsan_runtime" \
            ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
            PYTHONPATH="$top/python:$build/python" \
            "$@")
    check_reports "pytest, $label"
}
# RSS-based figures (test_mprof's plateaus) move under ASan's shadow memory: not run here.
run_pytest "pymalloc" "$py" -m pytest -q -p no:cacheprovider -k "not plateaus" "${core_tests[@]}"
# The browser would inherit the sanitizers' LD_PRELOAD: its test runs in the plain passes only.
run_pytest "PYTHONMALLOC=malloc" env PYTHONMALLOC=malloc \
    "$py" -m pytest -q -p no:cacheprovider -k "not headless_browser" "${hook_tests[@]}"
echo "== sanitizers: no report ($((SECONDS - start)) s)"
