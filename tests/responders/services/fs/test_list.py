"""Listing and searching by name: list_directory(_with_sizes), directory_tree, search_files, get_file_info, roots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from msgspec import UNSET

from responders.errors import ToolError
from responders.services.fs import Filesystem, Roots
from responders.services.fs.outputs import format_size


def test_list_directory_prefixes_and_sorts(root: Path, fs: Filesystem) -> None:
    """Entries come back sorted by name with [DIR]/[FILE] prefixes, and as structured entries."""
    out = fs.list_directory(".")
    assert out.__mcp_text__().splitlines() == ["[FILE] five.txt", "[DIR] sub"]
    assert [(e.name, e.type) for e in out.entries] == [("five.txt", "file"), ("sub", "directory")]
    with pytest.raises(ToolError, match="not a directory"):
        fs.list_directory("five.txt")


def test_list_with_sizes_sorts_by_name_or_size_and_totals(root: Path, fs: Filesystem) -> None:
    """sortBy=size puts the largest first; totals count files, directories and bytes in the reference format."""
    (root / "big.bin").write_bytes(b"x" * 3000)
    (root / "Alpha.txt").write_text("a")
    by_name = fs.list_directory_with_sizes(".")
    assert [e.name for e in by_name.entries] == ["Alpha.txt", "big.bin", "five.txt", "sub"]
    by_size = fs.list_directory_with_sizes(".", sortBy="size")
    assert [e.name for e in by_size.entries][:3] == ["big.bin", "five.txt", "Alpha.txt"]
    assert (by_size.totalFiles, by_size.totalDirectories, by_size.totalSize) == (3, 1, 3000 + 24 + 1)
    text = by_name.__mcp_text__().splitlines()
    assert text[1] == "[FILE] " + "big.bin".ljust(30) + " " + "2.93 KB".rjust(10)
    assert text[-2:] == ["Total: 3 files, 1 directories", "Combined size: 2.95 KB"]


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.00 KB"), (5 * 1024**3, "5.00 GB")]
)
def test_format_size_matches_the_reference(n: int, text: str) -> None:
    """Sizes read like the reference server's formatSize."""
    assert format_size(n) == text


def test_directory_tree_is_nested_json(fs: Filesystem) -> None:
    """The tree text is the reference's 2-space JSON: directories always have children, files never."""
    out = fs.directory_tree(".")
    tree = json.loads(out.__mcp_text__())
    assert tree == [
        {"name": "five.txt", "type": "file"},
        {
            "name": "sub",
            "type": "directory",
            "children": [
                {"name": "code.py", "type": "file"},
                {"name": "deep", "type": "directory", "children": [{"name": ".hidden", "type": "file"}]},
            ],
        },
    ]
    assert out.__mcp_text__().startswith('[\n  {\n    "name": "five.txt"')


@pytest.mark.parametrize(
    ("patterns", "names"),
    [
        (["deep"], {"five.txt", "sub", "code.py"}),
        (["*.py"], {"five.txt", "sub", "deep", ".hidden"}),
        (["sub/deep/**"], {"five.txt", "sub", "code.py"}),
        ([".*"], {"five.txt", "sub", "code.py", "deep"}),
        (["sub"], {"five.txt"}),
    ],
)
def test_directory_tree_exclude_patterns(fs: Filesystem, patterns: list[str], names: set[str]) -> None:
    """excludePatterns drop matching entries by name, glob or path, and an excluded directory is not entered."""
    out = fs.directory_tree(".", excludePatterns=tuple(patterns))

    def walk(nodes: list[dict[str, object]]) -> set[str]:
        found: set[str] = set()
        for n in nodes:
            found.add(str(n["name"]))
            children = n.get("children")
            if isinstance(children, list):
                found |= walk(children)
        return found

    assert walk(json.loads(out.__mcp_text__())) == names


def test_directory_tree_is_cut_at_the_cap_and_says_so(root: Path) -> None:
    """A tree bigger than the cap is cut breadth-first (top level kept) with a note."""
    for i in range(50):
        (root / f"f{i:02d}.txt").write_text("")
    out = Filesystem(Roots([str(root)]), 1000).directory_tree(".")
    assert out.truncated is True
    assert 0 < len(out.tree) < 52
    assert "tree cut after" in out.__mcp_text__()


def test_directory_tree_follows_an_inside_symlink_but_not_a_loop(root: Path, fs: Filesystem) -> None:
    """A symlink to a directory inside the roots is followed once; the directory it loops back to is not entered again."""
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)
    out = fs.directory_tree("sub")
    up = next(n for n in out.tree if n.name == "up")
    assert up.type == "directory" and isinstance(up.children, list)
    assert [(n.name, n.children) for n in up.children] == [("five.txt", UNSET), ("sub", [])]


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        ("*.py", {"sub/code.py"}),
        ("**/*.py", {"sub/code.py"}),
        ("sub/*.py", {"sub/code.py"}),
        ("*.txt", {"five.txt"}),
        ("*", {"five.txt", "sub", "sub/code.py", "sub/deep", "sub/deep/.hidden"}),
        ("sub/**", {"sub", "sub/code.py", "sub/deep", "sub/deep/.hidden"}),
        (".hid*", {"sub/deep/.hidden"}),
        ("*.{py,txt}", {"five.txt", "sub/code.py"}),
        ("[cf]*", {"five.txt", "sub/code.py"}),
        ("CODE", {"sub/code.py"}),
        ("*.rs", set()),
    ],
)
def test_search_files_patterns(root: Path, fs: Filesystem, pattern: str, found: set[str]) -> None:
    """Globs match names at any depth or relative paths; dot files are matched by *; a plain word matches name fragments."""
    out = fs.search_files(".", pattern)
    assert {os.path.relpath(p, root) for p in out.matches} == found
    if not found:
        assert out.__mcp_text__() == "No matches found"


def test_search_files_exclude_patterns(root: Path, fs: Filesystem) -> None:
    """excludePatterns remove matches and whole directories from the search."""
    out = fs.search_files(".", "*", excludePatterns=("deep", "*.txt"))
    assert {os.path.relpath(p, root) for p in out.matches} == {"sub", "sub/code.py"}


def test_get_file_info_reports_type_size_and_permissions(root: Path, fs: Filesystem) -> None:
    """get_file_info gives size, ISO times, type flags and octal permissions, as text lines and structure."""
    os.chmod(root / "five.txt", 0o640)
    info = fs.get_file_info("five.txt")
    assert (info.size, info.isFile, info.isDirectory, info.permissions) == (24, True, False, "640")
    assert info.modified.endswith("Z")
    assert "isFile: true" in info.__mcp_text__().splitlines()
    assert fs.get_file_info("sub").isDirectory is True


def test_list_allowed_directories_marks_read_only(root: Path, base: Path) -> None:
    """Each root is listed with (read-only) where it applies."""
    ro = base / "ro"
    ro.mkdir()
    out = Filesystem(Roots([str(root), f"{ro}:ro"]), 10).list_allowed_directories()
    assert out.__mcp_text__() == f"Allowed directories:\n{root}\n{ro} (read-only)"
    assert [d.readOnly for d in out.directories] == [False, True]


def test_non_utf8_names_are_listed_escaped_and_readable_by_nobody_by_accident(
    root: Path, fs: Filesystem
) -> None:
    """A name that is not UTF-8 is shown with \\xNN escapes in listings, tree and search; the escaped name is not a path that exists."""
    os.close(os.open(os.fsencode(root) + b"/bad\xffname.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    assert "[FILE] bad\\xffname.txt" in fs.list_directory(".").__mcp_text__()
    assert any(n.name == "bad\\xffname.txt" for n in fs.directory_tree(".").tree)
    assert any(p.endswith("bad\\xffname.txt") for p in fs.search_files(".", "bad*").matches)
    with pytest.raises(ToolError, match="no such file"):
        fs.read_text_file("bad\\xffname.txt")
