"""Every example in README.md, HACKING.md and docs/*.md runs, as a reader would run it.

A fenced ```python block runs as a script (``python example.py``) in a temporary folder; one
preceded by ``<!-- run as: pytest -->`` is written as a test file and run by pytest there (with
``-p no:memray``: pytest-memray would judge the markers it shares with ours). A
```sh / ```bash block runs under ``bash -e`` in that folder, with ``examples/`` of this checkout
beside it and ``python``, ``mprofxx`` and ``pytest`` meaning the interpreter running this test.
Each must exit 0. A block that cannot run in a test carries ``<!-- not run: reason -->`` on the
line before it; those are listed and counted below, so a block left unmarked that fails fails
here, and a block marked without reason, or a new mark, shows in the count. Blocks with no
language (or another one) are output shown to the reader, not examples.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
DOCS = [TOP / "README.md", TOP / "HACKING.md", *sorted((TOP / "docs").glob("*.md"))]
RUNNABLE = {"python": "python", "sh": "shell", "bash": "shell"}
MARK = re.compile(r"^<!--\s*(not run|run as):\s*(.*?)\s*-->$")
FENCE = re.compile(r"^```(\S*)\s*$")

# The blocks that are marked not run, by file: each mark's reason says why (the doc shows it).
NOT_RUN = {
    "README.md": 1,          # make demo / make test: install packages and build
    "HACKING.md": 1,         # building into a venv and ctest: minutes
    "docs/line-profiler.md": 1,  # script.py, package.module: the reader's program
    "docs/mprofxx.md": 1,    # mprofxx attach: a running server, lldb, 20 s (test_attach.py)
    "docs/objgraphxx.md": 0,
    "docs/pytest-plugin.md": 1,  # pytest options over the reader's suite (test_pytest_plugin*.py)
    "docs/reliability.md": 1,    # the sid chroot: root, minutes
}


@dataclass(frozen=True)
class Block:
    doc: str        # path relative to the checkout
    line: int       # line of the opening fence
    language: str   # the fence's word
    code: str
    mark: str       # "", "not run", "run as"
    reason: str     # the mark's text

    @property
    def kind(self) -> str | None:
        return RUNNABLE.get(self.language)


def fenced_blocks(path: Path, top: Path = TOP) -> list[Block]:
    """The fenced code blocks of a Markdown file, each with the mark on the line before it."""
    blocks = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: a code block that is never closed")
        mark = MARK.match(lines[start - 1].strip()) if start > 0 else None
        blocks.append(Block(str(path.relative_to(top)), start + 1, opening.group(1),
                            "\n".join(body) + "\n", mark.group(1) if mark else "",
                            mark.group(2) if mark else ""))
        i += 1
    return blocks


def marks_not_before_a_block(path: Path) -> list[str]:
    """`file:line` of each mark not directly followed by a code block (one that marks nothing)."""
    lines = path.read_text().splitlines()
    return [f"{path.relative_to(TOP)}:{n + 1}" for n, line in enumerate(lines)
            if MARK.match(line.strip()) and not (n + 1 < len(lines) and FENCE.match(lines[n + 1]))]


BLOCKS = [b for doc in DOCS if doc.exists() for b in fenced_blocks(doc)]
EXAMPLES = [b for b in BLOCKS if b.kind]
TO_RUN = [b for b in EXAMPLES if b.mark != "not run"]


def _tools(folder: Path) -> Path:
    """A bin folder where python, mprofxx and pytest mean this interpreter."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for name, command in [("python", ""), ("python3", ""), ("mprofxx", "-m mprofxx"),
                          ("pytest", "-m pytest")]:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" {command} "$@"\n')
        script.chmod(0o755)
    return bin_dir


def run_block(block: Block, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run one example in `folder` as the reader would; returns the finished process."""
    work = folder / "work"
    work.mkdir()
    (work / "examples").symlink_to(TOP / "examples")
    env = dict(os.environ, MPLBACKEND="Agg",
               PATH=f"{_tools(folder)}{os.pathsep}{os.environ.get('PATH', '')}")
    for name in [n for n in env if n.startswith("PYTEST_")]:  # the outer run's (xdist worker, ...)
        del env[name]
    if block.kind == "shell":
        (work / "example.sh").write_text(block.code)
        argv = ["bash", "-e", "example.sh"]
    elif block.mark == "run as" and block.reason == "pytest":
        (work / "test_example.py").write_text(block.code)
        # pytest-memray, installed beside us, would judge the markers it shares with ours.
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:memray",
                "test_example.py"]
    else:
        assert block.mark == "", f"{block.doc}:{block.line}: unknown mark {block.reason!r}"
        (work / "example.py").write_text(block.code)
        argv = [sys.executable, "example.py"]
    return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("block", TO_RUN, ids=[f"{b.doc}:{b.line}" for b in TO_RUN])
def test_doc_example_runs(block: Block, tmp_path: Path) -> None:
    done = run_block(block, tmp_path)
    assert done.returncode == 0, (
        f"{block.doc}:{block.line} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}"
        f"\n--- stderr\n{done.stderr[-3000:]}")


def test_blocks_not_run_are_marked_with_a_reason_and_counted() -> None:
    not_run = [b for b in EXAMPLES if b.mark == "not run"]
    listing = "\n".join(f"{b.doc}:{b.line}: {b.reason}" for b in not_run)
    print(f"{len(TO_RUN)} examples run, {len(not_run)} not run:\n{listing}")
    assert all(b.reason for b in not_run), listing
    counted = {doc: sum(b.doc == doc for b in not_run) for doc in {b.doc for b in EXAMPLES}}
    expected = {doc: n for doc, n in NOT_RUN.items() if n}
    assert {doc: n for doc, n in counted.items() if n} == expected, listing
    assert len(TO_RUN) >= 2 * len(not_run)


def test_every_mark_marks_a_block_of_code() -> None:
    assert [m for doc in DOCS if doc.exists() for m in marks_not_before_a_block(doc)] == []
    assert all(b.kind for b in BLOCKS if b.mark), [f"{b.doc}:{b.line}" for b in BLOCKS if b.mark]


def test_the_finder_sees_marks_and_languages(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("text\n\n```python\nprint(1)\n```\n<!-- not run: needs a GPU -->\n```sh\n"
                   "gpu-tool\n```\n```\nplain output\n```\n")
    blocks = [(b.line, b.kind, b.mark, b.reason, b.code) for b in fenced_blocks(doc, tmp_path)]
    assert blocks == [(3, "python", "", "", "print(1)\n"),
                      (7, "shell", "not run", "needs a GPU", "gpu-tool\n"),
                      (10, None, "", "", "plain output\n")]


def test_a_failing_block_fails(tmp_path: Path) -> None:
    block = Block("x.md", 1, "python", "raise SystemExit(3)\n", "", "")
    assert run_block(block, tmp_path).returncode == 3


def test_the_readmes_example_list_is_the_examples_folder() -> None:
    readme = (TOP / "README.md").read_text()
    table = readme[readme.index("## Examples"):].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([\w.]+\.py)` \|", table, flags=re.M))
    assert named == {p.name for p in (TOP / "examples").glob("*.py")}


def test_the_readme_stays_short() -> None:
    assert len((TOP / "README.md").read_text().splitlines()) <= 150


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (outside code blocks)."""
    anchors, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def broken_links(path: Path) -> list[str]:
    """Each relative link of a Markdown file whose file or heading does not exist."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if "://" in target:
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (anchor and linked.suffix == ".md"
                                   and anchor not in heading_anchors(linked)):
            broken.append(f"{path.name}: {target}")
    return broken


def test_the_docs_links_lead_somewhere() -> None:
    assert [b for doc in DOCS if doc.exists() for b in broken_links(doc)] == []


def test_the_link_check_finds_a_missing_heading(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("# Top part\n\n[ok](#top-part) [gone](#bottom) [file](b.md)\n")
    assert broken_links(doc) == ["a.md: #bottom", "a.md: b.md"]
