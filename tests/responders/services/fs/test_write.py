"""The write tools on the Filesystem class: write_file, edit_file, create_directory, move_file, copy_file, delete_file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from responders.errors import ToolError
from responders.services.fs import Filesystem, PathRefused, Roots
from responders.services.fs.edit import Edit, apply_edits

from .conftest import SECRET


def test_write_file_creates_and_replaces_keeping_the_mode(root: Path, fs: Filesystem) -> None:
    """write_file creates a file, then replaces it atomically with the old permission bits and no temp file left."""
    assert fs.write_file("new.txt", "first").content == "Successfully wrote to new.txt"
    os.chmod(root / "new.txt", 0o600)
    fs.write_file("new.txt", "second")
    assert (root / "new.txt").read_text() == "second"
    assert (root / "new.txt").stat().st_mode & 0o777 == 0o600
    assert not [p for p in os.listdir(root) if p.endswith(".tmp")]


def test_write_file_replaces_a_symlink_inside_the_root_by_writing_its_target(
    root: Path, fs: Filesystem
) -> None:
    """A symlink to a file inside the root is written through to that file (the target is inside)."""
    (root / "alias").symlink_to(root / "five.txt")
    fs.write_file("alias", "rewritten")
    assert (root / "five.txt").read_text() == "rewritten"


CODE = "class A:\n    def f(self):\n        x = 1\n        return x\n\n    def g(self):\n        return 2\n"


def test_edit_exact_match_returns_a_git_style_diff(root: Path, fs: Filesystem) -> None:
    """An exact oldText is replaced and the result is a fenced unified diff with the reference server's headers."""
    (root / "a.py").write_text(CODE)
    out = fs.edit_file("a.py", [Edit(oldText="x = 1", newText="x = 41 + 1")])
    assert (root / "a.py").read_text() == CODE.replace("x = 1", "x = 41 + 1")
    text = out.__mcp_text__()
    assert text.startswith("```diff\nIndex: ")
    assert f"--- {root / 'a.py'}\toriginal\n+++ {root / 'a.py'}\tmodified\n" in text
    assert "-        x = 1\n+        x = 41 + 1\n" in text
    assert "@@ -1,7 +1,7 @@" in text
    assert text.endswith("```\n\n")


def test_edit_whitespace_tolerant_match_keeps_the_file_indentation(root: Path, fs: Filesystem) -> None:
    """oldText with the wrong indentation matches line by line, and newText is re-indented to the file's levels."""
    (root / "a.py").write_text(CODE)
    fs.edit_file(
        "a.py", [Edit(oldText="def g(self):\n    return 2", newText="def g(self):\n    y = 2\n    return y")]
    )
    assert (root / "a.py").read_text().endswith("    def g(self):\n        y = 2\n        return y\n")


def test_edit_whitespace_tolerant_match_maps_a_different_indent_unit() -> None:
    """Two-space oldText against a tab-indented file maps each level: newText lands with tabs."""
    content = "if x:\n\tif y:\n\t\tz()\n"
    out = apply_edits(content, [Edit(oldText="if y:\n  z()", newText="if y:\n  z()\n  w()")])
    assert out == "if x:\n\tif y:\n\t\tz()\n\t\tw()\n"


def test_edit_trailing_whitespace_is_tolerated() -> None:
    """Trailing spaces in the file do not stop a match."""
    assert (
        apply_edits("a = 1   \nb = 2\n", [Edit(oldText="a = 1\nb = 2", newText="a = 3\nb = 4")])
        == "a = 3\nb = 4\n"
    )


@pytest.mark.parametrize(
    ("content", "old", "match"),
    [
        ("x\nx\n", "x", "matches 2 places"),
        ("  x\n    x\n", "x\n", "matches 2 places"),
        ("abc\n", "zzz", "could not find"),
        ("abc\n", "", "empty"),
    ],
)
def test_edit_refuses_ambiguous_or_missing_matches(content: str, old: str, match: str) -> None:
    """An oldText that matches several places or none is refused naming the edit, so nothing changes by guess."""
    with pytest.raises(ToolError, match=match) as err:
        apply_edits(content, [Edit(oldText=old, newText="y")])
    assert "edit 1" in str(err.value)


def test_failed_edit_writes_nothing(root: Path, fs: Filesystem) -> None:
    """When the second of two edits fails, the first is not written either."""
    (root / "a.py").write_text(CODE)
    with pytest.raises(ToolError, match="edit 2"):
        fs.edit_file("a.py", [Edit(oldText="x = 1", newText="x = 2"), Edit(oldText="nope", newText="")])
    assert (root / "a.py").read_text() == CODE


def test_edit_dry_run_previews_without_writing(root: Path, fs: Filesystem) -> None:
    """dryRun returns the same diff and leaves the file (and its mtime) as it was."""
    (root / "a.py").write_text(CODE)
    before = (root / "a.py").stat().st_mtime_ns
    out = fs.edit_file("a.py", [Edit(oldText="return 2", newText="return 3")], dryRun=True)
    assert out.dryRun is True and "+        return 3" in out.diff
    assert (root / "a.py").read_text() == CODE
    assert (root / "a.py").stat().st_mtime_ns == before


def test_edit_keeps_crlf_line_endings(root: Path, fs: Filesystem) -> None:
    """A CRLF file is matched with LF edits and written back with CRLF."""
    (root / "w.txt").write_bytes(b"one\r\ntwo\r\n")
    fs.edit_file("w.txt", [Edit(oldText="two\n", newText="2\n")])
    assert (root / "w.txt").read_bytes() == b"one\r\n2\r\n"


def test_edit_refuses_non_utf8(root: Path, fs: Filesystem) -> None:
    """A file that is not UTF-8 is refused rather than rewritten with replacement characters."""
    (root / "l1.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(ToolError, match="UTF-8"):
        fs.edit_file("l1.txt", [Edit(oldText="caf", newText="bar")])
    assert (root / "l1.txt").read_bytes() == b"caf\xe9\n"


def test_create_directory_is_mkdir_p_and_idempotent(root: Path, fs: Filesystem) -> None:
    """Nested directories are created in one call, and a second call succeeds without change."""
    fs.create_directory("a/b/c")
    assert (root / "a" / "b" / "c").is_dir()
    assert fs.create_directory("a/b/c").content == "Successfully created directory a/b/c"
    with pytest.raises(ToolError, match="not a directory"):
        fs.create_directory("five.txt/x")


def test_create_directory_never_goes_through_an_outside_symlink(
    root: Path, outside: Path, fs: Filesystem
) -> None:
    """mkdir -p below a symlink to an outside directory is refused and creates nothing outside."""
    (root / "out").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathRefused):
        fs.create_directory("out/x/y")
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_move_file_renames_and_refuses_an_existing_destination(root: Path, fs: Filesystem) -> None:
    """move_file renames a file; a destination that exists (even a dangling symlink) is refused and both files stay."""
    fs.move_file("five.txt", "sub/5.txt")
    assert (root / "sub" / "5.txt").read_text().startswith("one")
    assert not (root / "five.txt").exists()
    with pytest.raises(ToolError, match="already exists"):
        fs.move_file("sub/5.txt", "sub/code.py")
    assert (root / "sub" / "code.py").read_text() == "def f():\n    return 1\n"


def test_move_file_moves_a_symlink_itself(root: Path, outside: Path, fs: Filesystem) -> None:
    """Moving a symlink renames the link, never the file it points to (even one outside)."""
    (root / "link").symlink_to(outside / "secret.txt")
    fs.move_file("link", "sub/link2")
    assert os.readlink(root / "sub" / "link2") == str(outside / "secret.txt")
    assert (outside / "secret.txt").read_text() == SECRET


def test_move_file_refuses_a_root_and_a_read_only_end(root: Path, base: Path) -> None:
    """A root cannot be moved, and neither end may be in a read-only root."""
    ro = base / "ro"
    ro.mkdir()
    (ro / "r.txt").write_text("r")
    fs = Filesystem(Roots([str(root), f"{ro}:ro"]), 1024)
    with pytest.raises(PathRefused, match="allowed directory itself"):
        fs.move_file(str(root), str(root / "x"))
    with pytest.raises(PathRefused, match="read-only"):
        fs.move_file(str(ro / "r.txt"), str(root / "r.txt"))
    with pytest.raises(PathRefused, match="read-only"):
        fs.move_file("five.txt", str(ro / "five.txt"))
    assert (ro / "r.txt").exists() and (root / "five.txt").exists() and not (ro / "five.txt").exists()


def test_copy_file_refuses_an_existing_destination_unless_overwrite(root: Path, fs: Filesystem) -> None:
    """copy_file copies content and mode; an existing destination needs overwrite: true."""
    os.chmod(root / "five.txt", 0o640)
    fs.copy_file("five.txt", "copy.txt")
    assert (root / "copy.txt").read_text() == (root / "five.txt").read_text()
    assert (root / "copy.txt").stat().st_mode & 0o777 == 0o640
    with pytest.raises(ToolError, match="overwrite"):
        fs.copy_file("sub/code.py", "copy.txt")
    assert (root / "copy.txt").read_text().startswith("one")
    fs.copy_file("sub/code.py", "copy.txt", overwrite=True)
    assert (root / "copy.txt").read_text().startswith("def f")
    with pytest.raises(ToolError, match="same file"):
        fs.copy_file("copy.txt", "copy.txt", overwrite=True)


def test_copy_file_over_a_planted_symlink_replaces_the_link(
    root: Path, outside: Path, fs: Filesystem
) -> None:
    """A destination symlink to outside is refused without overwrite, and never written through with it."""
    (root / "trap").symlink_to(outside / "secret.txt")
    with pytest.raises(PathRefused):
        fs.copy_file("five.txt", "trap", overwrite=True)
    assert (outside / "secret.txt").read_text() == SECRET


def test_delete_file_requires_confirm(root: Path, fs: Filesystem) -> None:
    """Without confirm: true nothing is deleted and the error says what to pass."""
    with pytest.raises(ToolError, match="confirm: true"):
        fs.delete_file("five.txt")
    assert (root / "five.txt").exists()
    fs.delete_file("five.txt", confirm=True)
    assert not (root / "five.txt").exists()


def test_delete_directory_requires_recursive(root: Path, fs: Filesystem) -> None:
    """A directory is deleted only with recursive: true, and then with everything in it."""
    with pytest.raises(ToolError, match="recursive: true"):
        fs.delete_file("sub", confirm=True)
    assert (root / "sub" / "code.py").exists()
    fs.delete_file("sub", confirm=True, recursive=True)
    assert not (root / "sub").exists()


def test_delete_never_removes_a_root_or_a_directory_holding_one(root: Path) -> None:
    """A root itself, and a directory that contains a (read-only) root, are refused even with recursive."""
    fs = Filesystem(Roots([str(root), f"{root / 'sub'}:ro"]), 1024)
    for p in (str(root), ".", "sub"):
        with pytest.raises(PathRefused):
            fs.delete_file(p, confirm=True, recursive=True)
    assert (root / "sub" / "code.py").exists()


def test_delete_symlink_removes_the_link_not_the_target(root: Path, outside: Path, fs: Filesystem) -> None:
    """Deleting a symlink (even to an outside directory, even recursive) removes only the link."""
    (root / "dlink").symlink_to(outside, target_is_directory=True)
    fs.delete_file("dlink", confirm=True, recursive=True)
    assert not os.path.lexists(root / "dlink")
    assert (outside / "secret.txt").read_text() == SECRET
