"""STYLE's column limit on the C and C++ sources: 100 columns, as clang-format's configuration
says. No clang-format runs in the build, so this is what keeps a long line from landing."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("core", "gc_walker", "mprof", "python/bindings", "tests/cpp", "tests/python/native")
SUFFIXES = (".c", ".h", ".cpp", ".hpp")
LIMIT = 100


def long_lines(root: Path) -> list[str]:
    """Each line of the project's C and C++ sources wider than LIMIT, as ``path:line: width``."""
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if len(line) > LIMIT:
                    found.append(f"{path.relative_to(root)}:{number}: {len(line)} columns")
    return found


def test_no_c_or_cpp_line_is_wider_than_100_columns() -> None:
    assert long_lines(ROOT) == []


def test_a_planted_long_line_is_found(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "wide.cpp").write_text("int a;\n" + "x" * 101 + "\n" + "y" * 100 + "\n")
    assert long_lines(tmp_path) == ["core/wide.cpp:2: 101 columns"]
