#!/usr/bin/env bash
# Installs what is missing, then runs the line profiler on the examples.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
py=$(command -v python3)
"$here/install-deps.sh" "$py"
"$here/build.sh" "$py"
cd "$top/examples"
echo "== python -m memory_profilerxx seed.py"
"$py" -m memory_profilerxx seed.py
echo "== python -m memory_profilerxx word_index.py"
"$py" -m memory_profilerxx word_index.py
echo "== python -m memory_profilerxx native_memory.py"
"$py" -m memory_profilerxx native_memory.py
echo "== mprofxx run --peak peak_etl.py; mprofxx peak --lines"
record=$(mktemp -d)
(cd "$record" && "$py" -m mprofxx run --peak "$top/examples/peak_etl.py" && "$py" -m mprofxx peak --lines -n 6)
rm -rf "$record"
