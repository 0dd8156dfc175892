"""Standard-library workloads for the teardown tests: each builds what it returns and drops the
rest when it returns, so that part of its memory is released by the frame's teardown."""

from __future__ import annotations

import collections
import csv
import difflib
import io
import json
import re
import xml.etree.ElementTree as ET

_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
          "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi",
          "chi", "psi", "omega")


def _text(n: int) -> str:
    return " ".join(f"{_WORDS[i % 24]}{i % 97}" for i in range(n))


JSON_TEXT = json.dumps([{"id": i, "name": _WORDS[i % 24], "tags": [_WORDS[(i + k) % 24]
                         for k in range(4)], "score": i * 0.5} for i in range(6000)])
CSV_TEXT = "id,name,score\n" + "".join(f"{i},{_WORDS[i % 24]}{i},{i * 3}\n" for i in range(8000))
XML_TEXT = "<root>" + "".join(f"<item id='{i}'><v>{_WORDS[i % 24]}</v><n>{i}</n></item>"
                              for i in range(4000)) + "</root>"
PROSE = _text(40000)
LINES_A = [f"line {i} {_WORDS[i % 24]}\n" for i in range(3000)]
LINES_B = [f"line {i} {_WORDS[(i * 7) % 24]}\n" if i % 5 else f"changed {i}\n"
           for i in range(3000)]


def json_workload():
    data = json.loads(JSON_TEXT)
    names = [row["name"] for row in data]
    by_name = {name: len(name) for name in names}
    return data, len(by_name)


def csv_workload():
    rows = list(csv.DictReader(io.StringIO(CSV_TEXT)))
    scores = [int(row["score"]) for row in rows]
    index = {row["id"]: row for row in rows if int(row["score"]) % 2 == 0}
    return index, sum(scores)


def etree_workload():
    root = ET.fromstring(XML_TEXT)
    values = [item.findtext("v") for item in root.iter("item")]
    counts = collections.Counter(values)
    return root, counts.most_common(1)


def re_workload():
    pattern = re.compile(r"([a-z]+)(\d+)")
    matches = pattern.findall(PROSE)
    numbers = [int(digits) for _, digits in matches]
    words = collections.Counter(word for word, _ in matches)
    return sorted(words), sum(numbers)


def difflib_workload():
    matcher = difflib.SequenceMatcher(None, LINES_A, LINES_B)
    opcodes = matcher.get_opcodes()
    diff = list(difflib.unified_diff(LINES_A, LINES_B, lineterm=""))
    return opcodes, len(diff)


def collections_workload():
    groups = collections.defaultdict(list)
    recent = collections.deque(maxlen=500)
    Point = collections.namedtuple("Point", "x y")
    for i in range(20000):
        point = Point(i, i * 2)
        groups[i % 50].append(point)
        recent.append(point)
    ordered = collections.OrderedDict(sorted(groups.items()))
    chain = collections.ChainMap(dict(ordered), {"extra": list(recent)})
    return dict(ordered), len(chain)


def _numbers(n):
    for i in range(n):
        yield i * i


def pipeline_workload():
    squares = _numbers(30000)
    strings = (str(x) for x in squares)
    long_ones = [s for s in strings if len(s) > 4]
    table = {s: len(s) for s in long_ones}
    return sorted(table)[:100], len(table)


def _parse(value):
    if value % 3 == 0:
        raise ValueError(f"bad value {value}")
    return value * 2


def raising_workload():
    parsed, errors = [], []
    for i in range(6000):
        try:
            parsed.append(_parse(i))
        except ValueError as error:
            errors.append(str(error))
    scratch = [e.upper() for e in errors]
    return parsed, len(scratch)


WORKLOADS = {name[: -len("_workload")]: func for name, func in globals().items()
             if name.endswith("_workload")}
