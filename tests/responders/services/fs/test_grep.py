"""grep_files: regex and literal search, context, max_results, include/exclude, skipped files, and the time budget."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from responders.errors import ToolError
from responders.services.fs import Filesystem, Roots

from .conftest import SECRET


@pytest.fixture
def src(root: Path) -> Path:
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text(
        "import os\n\ndef alpha():\n    return os.sep\n\ndef beta():\n    return 2\n"
    )
    (root / "src" / "b.txt").write_text("alpha beta\nALPHA\n")
    (root / "src" / "bin.dat").write_bytes(b"alpha\0\x01\x02")
    return root / "src"


def test_regex_matches_lines_with_numbers(src: Path, fs: Filesystem) -> None:
    """A regex finds matching lines, reported as path:line:text with 1-based line numbers; binary files are skipped."""
    out = fs.grep_files("src", r"def \w+\(")
    assert [(os.path.basename(m.path), m.line, m.text) for m in out.matches] == [
        ("a.py", 3, "def alpha():"),
        ("a.py", 6, "def beta():"),
    ]
    assert out.__mcp_text__().splitlines()[0] == f"{src / 'a.py'}:3:def alpha():"
    assert "1 binary file(s) skipped" in out.notes
    assert out.filesSearched == 2


def test_literal_and_ignore_case(src: Path, fs: Filesystem) -> None:
    """literal: true searches the text as is (regex characters included); ignore_case folds case."""
    assert fs.grep_files("src", "os.sep", literal=True).matches[0].line == 4
    assert [m.line for m in fs.grep_files("src/a.py", "(", literal=True).matches] == [3, 6]
    with pytest.raises(ToolError, match="not a valid regular expression"):
        fs.grep_files("src", "(")
    hits = fs.grep_files("src/b.txt", "alpha", ignore_case=True)
    assert [m.line for m in hits.matches] == [1, 2]


def test_context_lines_are_attached_and_rendered_like_grep(src: Path, fs: Filesystem) -> None:
    """context adds lines before and after each match; the text uses path-N-line for context and -- between groups."""
    out = fs.grep_files("src/a.py", "return", context=1)
    assert [(m.line, m.before, m.after) for m in out.matches] == [
        (4, ["def alpha():"], [""]),
        (7, ["def beta():"], []),
    ]
    p = str(src / "a.py")
    assert out.__mcp_text__().splitlines() == [
        f"{p}-3-def alpha():",
        f"{p}:4:    return os.sep",
        f"{p}-5-",
        f"{p}-6-def beta():",
        f"{p}:7:    return 2",
    ]


def test_context_never_repeats_a_matching_line(root: Path, fs: Filesystem) -> None:
    """Adjacent matches do not show each other as context; each line is printed once."""
    (root / "m.txt").write_text("x1\nx2\nx3\n")
    out = fs.grep_files("m.txt", "x", context=2)
    assert [(m.line, m.before, m.after) for m in out.matches] == [(1, [], []), (2, [], []), (3, [], [])]
    assert len(out.__mcp_text__().splitlines()) == 3


def test_max_results_stops_and_says_so(root: Path, fs: Filesystem) -> None:
    """max_results bounds the matching lines, and the result says it stopped there."""
    (root / "many.txt").write_text("hit\n" * 50)
    out = fs.grep_files(".", "hit", max_results=5)
    assert len(out.matches) == 5 and out.truncated is True
    assert any("max_results" in n for n in out.notes)


def test_include_and_exclude_globs(src: Path, fs: Filesystem) -> None:
    """include keeps only matching file names or paths; exclude removes files and directories."""
    only_py = fs.grep_files(".", "alpha", include=("*.py",))
    assert {os.path.basename(m.path) for m in only_py.matches} == {"a.py"}
    no_src = fs.grep_files(".", "alpha", exclude=("src",))
    assert no_src.matches == []
    no_txt = fs.grep_files("src", "alpha", exclude=("*.txt",))
    assert {os.path.basename(m.path) for m in no_txt.matches} == {"a.py"}


def test_files_over_the_cap_are_skipped(root: Path) -> None:
    """A file larger than the cap is not searched and the result counts it."""
    (root / "huge.txt").write_text("needle\n" + "x" * 5000)
    out = Filesystem(Roots([str(root)]), 1000).grep_files(".", "needle")
    assert out.matches == []
    assert any("larger than 1000 bytes" in n for n in out.notes)


def test_symlinks_out_of_the_roots_are_not_searched(root: Path, outside: Path, fs: Filesystem) -> None:
    """A symlinked file or directory leading outside is skipped: the secret never appears in matches."""
    (root / "lf").symlink_to(outside / "secret.txt")
    (root / "ld").symlink_to(outside, target_is_directory=True)
    out = fs.grep_files(".", "SECRET")
    assert out.matches == []
    assert SECRET not in out.__mcp_text__()
    assert any("outside the allowed directories" in n for n in out.notes)


def test_long_lines_are_clipped_around_the_match(root: Path) -> None:
    """A minified-style long line is shown clipped around the match, not whole."""
    (root / "min.js").write_text("a" * 5000 + "NEEDLE" + "b" * 5000 + "\n")
    [m] = Filesystem(Roots([str(root)]), 1 << 20).grep_files("min.js", "NEEDLE").matches
    assert "NEEDLE" in m.text and len(m.text) < 500


def test_catastrophic_regex_is_stopped_by_the_time_budget_without_blocking(root: Path) -> None:
    """A backtracking-bomb regex ends within the budget with a note, while other threads of this process keep running."""
    (root / "bomb.txt").write_text("a" * 64 + "!\n")
    fs = Filesystem(Roots([str(root)]), 1 << 20, grep_seconds=1.0)
    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.wait(0.01):
            ticks += 1

    t = threading.Thread(target=tick)
    t.start()
    t0 = time.monotonic()
    try:
        out = fs.grep_files("bomb.txt", r"(a+)+$")
    finally:
        done.set()
        t.join(5)
    elapsed = time.monotonic() - t0
    assert elapsed < 5
    assert out.truncated is True and any("stopped after 1 s" in n for n in out.notes)
    assert ticks > elapsed * 100 * 0.5, "the main process was blocked while the regex ran"


@pytest.mark.parametrize(
    ("max_results", "context", "match"), [(0, 0, "max_results"), (1001, 0, "max_results"), (1, 11, "context")]
)
def test_out_of_range_bounds_are_refused(fs: Filesystem, max_results: int, context: int, match: str) -> None:
    """max_results and context outside their ranges are tool errors (the schema says so too)."""
    with pytest.raises(ToolError, match=match):
        fs.grep_files(".", "x", max_results=max_results, context=context)
