#!/usr/bin/env bash
# Prints the interpreters the project is built and tested on: CPython 3.11 (python3), 3.12, 3.13.
# MEMXX_PYTHONS="py1 py2" overrides the list.
set -euo pipefail
if [ -n "${MEMXX_PYTHONS:-}" ]; then
    printf '%s\n' $MEMXX_PYTHONS
    exit 0
fi
command -v python3
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for minor in 3.12 3.13; do
    found=$(ls -d "$root"/versions/"$minor".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$found" ]; then
        echo "$found"
    elif [ "${CI:-}" = "true" ]; then
        echo "error: CPython $minor is not installed (pyenv install $minor)" >&2
        exit 1
    else
        echo "note: CPython $minor not found; skipping it" >&2
    fi
done
