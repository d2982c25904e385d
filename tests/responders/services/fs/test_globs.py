"""The minimatch-like glob matcher (dot: true) and the exclude rules."""

from __future__ import annotations

import time

import pytest

from responders.errors import ToolError
from responders.services.fs.globs import Excluder, Glob, NameOrPathGlob, expand_braces


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.py", "a.py", True),
        ("*.py", "d/a.py", False),
        ("**/*.py", "a.py", True),
        ("**/*.py", "d/e/a.py", True),
        ("d/**", "d", True),
        ("d/**", "d/x/y", True),
        ("d/**/y", "d/y", True),
        ("d/**/y", "d/a/b/y", True),
        ("d/**/y", "e/a/y", False),
        ("*", ".env", True),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[abc].txt", "b.txt", True),
        ("[!abc].txt", "b.txt", False),
        ("[a-c]x", "cx", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("{src,lib}/*.ts", "lib/x.ts", True),
        ("{src,lib}/*.ts", "test/x.ts", False),
        ("a{b,{c,d}}e", "ade", True),
        ("./x", "x", True),
        ("a/**/b/**/c", "a/b/c", True),
        ("a/**/b/**/c", "a/x/b/y/z/c", True),
        ("a/**/b/**/c", "a/c", False),
        ("**", "any/thing/at/all", True),
        ("**/", "x", True),
        ("[unclosed", "[unclosed", True),
    ],
)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    """Globs follow minimatch with dot: true: * and ? stay in a segment, ** spans segments, classes, braces, escapes."""
    assert Glob(pattern).match(path) is expected


def test_name_or_path_glob() -> None:
    """A pattern without '/' also matches the bare name; one with '/' only the relative path."""
    assert NameOrPathGlob("*.py").match("a/b/c.py", "c.py")
    assert not NameOrPathGlob("a/*.py").match("x/a/c.py", "c.py")


@pytest.mark.parametrize(
    ("patterns", "rel", "expected"),
    [
        (["node_modules"], "x/node_modules", True),
        (["node_modules"], "node_modules", True),
        (["*.log"], "a/b/c.log", True),
        (["build/cache"], "pkg/build/cache", True),
        (["build/cache"], "pkg/build/other", False),
        (["/top"], "top", True),
        (["/top"], "x/top", False),
        ([""], "anything", False),
    ],
)
def test_excluder(patterns: list[str], rel: str, expected: bool) -> None:
    """An exclude pattern matches the relative path, the name, or a trailing part of the path; a leading / anchors it to the top."""
    assert Excluder(patterns).excluded(rel) is expected


def test_brace_expansion_is_bounded() -> None:
    """A pattern that would expand to thousands of alternatives is refused instead of expanded."""
    assert expand_braces("{a,b}{c,d}") == ["ac", "ad", "bc", "bd"]
    with pytest.raises(ToolError, match="alternatives"):
        Glob("{a,b}" * 12)


def test_hostile_glob_matches_in_bounded_time() -> None:
    """Many stars and globstars against a long path finish quickly (no exponential backtracking)."""
    pattern = "*a" * 30 + "b"
    path = "a" * 255
    deep = "/".join(["a"] * 200)
    t0 = time.monotonic()
    assert not Glob(pattern).match(path)
    assert not Glob("**/" * 20 + "b").match(deep)
    assert time.monotonic() - t0 < 2


def test_overlong_pattern_is_refused() -> None:
    """A pattern over 1000 characters is a tool error."""
    with pytest.raises(ToolError):
        Glob("a" * 1001)
