"""What held the memory at the peak: a small load-and-transform job, recorded whole.

    mprofxx run --peak examples/peak_etl.py
    mprofxx peak --lines          # the lines that held the memory at the peak
    mprofxx flame -o peak.html    # the same as a flame graph
"""

import csv
import io

import numpy as np


def read_rows(n):
    text = io.StringIO("".join(f"{i},{i * 0.5},name-{i}\n" for i in range(n)))
    return [parse(r) for r in csv.reader(text)]


def parse(record):
    return {"id": int(record[0]), "value": float(record[1]), "name": record[2]}


def to_matrix(rows):
    parts = [np.array([r["id"], r["value"]] * 64) for r in rows[:20_000]]
    return np.vstack(parts)


def main():
    scratch = read_rows(100_000)  # a first pass, dropped before the peak
    del scratch
    rows = read_rows(200_000)
    matrix = to_matrix(rows)
    return len(rows), matrix.shape


if __name__ == "__main__":
    print(main())
