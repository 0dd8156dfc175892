#!/usr/bin/env bash
# pip-installs the project (the _memxx extension and the three packages) into each interpreter.
# MEMXX_BUILD_DIR (set by scripts/sid-chroot.sh, whose checkout is read-only) moves the CMake
# build out of the checkout's build/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
pythons=("$@")
[ ${#pythons[@]} -gt 0 ] || mapfile -t pythons < <("$here/pythons.sh")
for py in "${pythons[@]}"; do
    echo "== pip install . for $py"
    "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
        --no-build-isolation ${MEMXX_BUILD_DIR:+-C "build-dir=$MEMXX_BUILD_DIR/{wheel_tag}"} "$top"
done
