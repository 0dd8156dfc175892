#!/usr/bin/env bash
# pip-installs the project (the _memxx extension and the three packages) into each interpreter.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
pythons=("$@")
[ ${#pythons[@]} -gt 0 ] || mapfile -t pythons < <("$here/pythons.sh")
for py in "${pythons[@]}"; do
    echo "== pip install . for $py"
    "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
        --no-build-isolation "$top"
done
