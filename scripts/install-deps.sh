#!/usr/bin/env bash
# Installs what is missing: the Debian build packages, then the Python packages for each
# interpreter given (default: every one scripts/pythons.sh lists). pytest-xdist and pytest-memray:
# the pytest plugin's xdist tests and benchmark; toolz: the third-party suite it times; coverage:
# the line profiler's test with coverage.py running (they share sys.monitoring's tool ids);
# mypy: the typing step of test.sh. pandas, pyarrow, polars, lxml, scikit-learn: the exactness tests
# on the libraries people profile (their own counts are the truth those tests compare against).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# gcc + libasan8/libubsan1: the sanitizer build of test-reliability.sh, and the C churn helper the
# stress tests compile.
debs="g++ gcc cmake make pkg-config libmimalloc-dev libgraphviz-dev nlohmann-json3-dev catch2"
# debootstrap: scripts/sid-chroot.sh makes the Debian sid chroot the 3.14 and 3.15 tests run in.
debs="$debs debootstrap"
debs="$debs libasan8 libubsan1"
# lldb: mprofxx attach --peak/--growth gets into 3.11-3.13 processes through it (gdb 13 cannot call
# functions on CPUs with AMX state).
debs="$debs lldb"
# graphviz: its `dot -c` writes the plugin list libgvc reads (without it, in a fresh sid chroot,
# libgraphviz-dev alone left Graphviz able to write no format at all).
debs="$debs graphviz"
# chromium: the notebook tests look at a rendered HTML table in a real headless browser.
debs="$debs chromium"
# valgrind: tests/bench/bench_line_instructions.py counts the line loop's instructions (callgrind).
debs="$debs valgrind"
missing=""
for p in $debs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "== apt-get install$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    $sudo apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $missing
fi
# The plugin list, when the package's own configuration did not write it.
plugins="$(pkg-config --variable=libdir libgvc)/graphviz"
if command -v dot >/dev/null && ! ls "$plugins"/config* >/dev/null 2>&1; then
    echo "== dot -c (Graphviz's plugin list in $plugins)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo dot -c
fi

pythons=("$@")
[ ${#pythons[@]} -gt 0 ] || mapfile -t pythons < <("$here/pythons.sh")
packages=("scikit-build-core>=0.10" "pybind11>=2.10" pytest numpy memory_profiler objgraph
    ipython matplotlib psutil setuptools pillow memray
    ipykernel nbclient nbformat
    pytest-xdist pytest-memray pytest-asyncio anyio toolz coverage mypy
    pandas pyarrow polars lxml scikit-learn)
# Wheels only: every package here ships them for the interpreters it supports, and a source build
# (pandas, pyarrow on an interpreter they do not support yet) takes many minutes, then fails.
pip_install() {
    "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
        --only-binary :all: "$@"
}
for py in "${pythons[@]}"; do
    echo "== pip install (build and test packages) for $py"
    pip_install "${packages[@]}" && continue
    # A package with no wheel for this interpreter yet (a peer on a new CPython: memray,
    # pytest-memray): install the others one by one; the tests that need a missing one skip,
    # naming it.
    echo "note: not all of them install on $py; one at a time" >&2
    for package in "${packages[@]}"; do
        pip_install "$package" ||
            echo "note: $package has no wheel for $py: the tests that need it skip" >&2
    done
done
