"""Native memory: a Pillow image, an in-memory sqlite table and numpy arrays, line by line.

    python -m memory_profilerxx examples/native_memory.py
"""

import sqlite3

import numpy as np
from PIL import Image


@profile  # noqa: F821 - put in builtins by python -m memory_profilerxx
def build():
    img = Image.new("RGB", (4000, 4000))
    con = sqlite3.connect(":memory:")
    con.execute("create table t (a integer, b text)")
    con.executemany("insert into t values (?, ?)", ((i, "x" * 40) for i in range(200_000)))
    arr2 = np.ones((2000, 2000))
    del img
    con.close()
    return arr2


if __name__ == "__main__":
    build()
