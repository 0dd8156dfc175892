"""Configure refuses an interpreter the compat layer was not written for, in one message."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_free_threaded_build_is_refused_naming_the_supported_versions(tmp_path):
    # This interpreter, except that its sysconfig says Py_GIL_DISABLED (a free-threaded build).
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\n"
                    'case "$*" in *Py_GIL_DISABLED*) echo 1; exit 0;; esac\n'
                    f'exec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    done = subprocess.run(["cmake", "-S", str(TOP), "-B", str(tmp_path / "build"),
                           f"-DPython_EXECUTABLE={fake}"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "1"})
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    version = ".".join(map(str, sys.version_info[:3]))
    assert (f"free-threaded CPython {version} ({fake}) is not supported: memory-profilerxx needs "
            "a GIL build of CPython 3.11 to 3.15") in message
    assert not (tmp_path / "build" / "Makefile").exists()
