#!/usr/bin/env bash
# Installs what is missing, then runs every test: Catch2 (ctest), then pytest on each interpreter,
# then pytest on 3.14 and 3.15 in the Debian sid chroot (scripts/sid-chroot.sh), then mypy --strict
# and stubtest, then the sanitizer step (scripts/test-reliability.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
mapfile -t pythons < <("$here/pythons.sh")
"$here/install-deps.sh" "${pythons[@]}"
"$here/build.sh" "${pythons[@]}"

echo "== Catch2 (ctest)"
py=$(command -v python3)
cmake -S "$top" -B "$top/build/ctest" -DMEMXX_BUILD_TESTS=ON -DPython_EXECUTABLE="$py" >/dev/null
cmake --build "$top/build/ctest" -j2
(cd "$top/build/ctest" && ctest --output-on-failure)

for py in "${pythons[@]}"; do
    echo "== pytest on $("$py" -c 'import sys; print(sys.version.split()[0])')"
    # Run from outside the checkout so the installed packages are the ones tested.
    (cd "$top/tests" && "$py" -m pytest -q -p no:cacheprovider "$top/tests/python")
done
# CPython 3.14 and 3.15: Debian's builds, in a Debian sid chroot outside the checkout, which
# scripts/sid-chroot.sh makes on first use and reuses after; the build there has its own folder.
for minor in 3.14 3.15; do
    echo "== pytest on $minor (Debian sid chroot: scripts/sid-chroot.sh)"
    start=$SECONDS
    "$here/sid-chroot.sh" run "$minor" -- "$here/build.sh" python
    (cd "$top/tests" && "$here/sid-chroot.sh" run "$minor" -- \
        python -m pytest -q -p no:cacheprovider "$top/tests/python")
    echo "== $minor in the chroot: $((SECONDS - start)) s"
done
echo "== mypy --strict on the packages; stubtest: _memxx.pyi against the built module"
(cd "$top" && "${pythons[0]}" -m mypy)
(cd "$top/tests" && "${pythons[0]}" -m mypy.stubtest _memxx --mypy-config-file "$top/pyproject.toml" \
    --allowlist "$top/python/bindings/_memxx.stubtest-allowlist")
# Reliability: ASan + UBSan build, ctest and pytest's core cases under them, the fuzz run.
"$here/test-reliability.sh"
echo "== all tests passed"
