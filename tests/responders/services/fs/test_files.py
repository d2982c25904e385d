"""The byte-level helpers in responders.services.fs.files: writes that replace a planted symlink instead of following it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from responders.services.fs import files

from .conftest import SECRET


@pytest.fixture
def trap(root: Path, outside: Path) -> Path:
    """A symlink inside the root pointing at the outside secret, as an attacker would plant it after the check."""
    link = root / "trap"
    link.symlink_to(outside / "secret.txt")
    return link


def test_write_atomic_replaces_a_planted_symlink(trap: Path, outside: Path) -> None:
    """write_atomic on a symlink path replaces the link with a file; the outside target is untouched."""
    files.write_atomic(trap, b"mine")
    assert not trap.is_symlink() and trap.read_bytes() == b"mine"
    assert (outside / "secret.txt").read_text() == SECRET


def test_copy_with_overwrite_replaces_a_planted_symlink(root: Path, trap: Path, outside: Path) -> None:
    """copy_file(overwrite=True) renames its temporary file over the link, never writing through it."""
    files.copy_file(root / "five.txt", trap, overwrite=True)
    assert not trap.is_symlink() and trap.read_text().startswith("one")
    assert (outside / "secret.txt").read_text() == SECRET


def test_copy_without_overwrite_refuses_a_planted_symlink(root: Path, trap: Path, outside: Path) -> None:
    """copy_file(overwrite=False) fails with FileExistsError on a link, and leaves no temporary file."""
    with pytest.raises(FileExistsError):
        files.copy_file(root / "five.txt", trap, overwrite=False)
    assert trap.is_symlink()
    assert not [p for p in os.listdir(root) if p.endswith(".tmp")]


def test_rename_noreplace_refuses_a_dangling_symlink(root: Path) -> None:
    """rename_noreplace treats a dangling symlink at the destination as existing."""
    (root / "dangling").symlink_to(root / "nowhere")
    with pytest.raises(FileExistsError):
        files.rename_noreplace(root / "five.txt", root / "dangling")
    assert (root / "five.txt").exists() and not (root / "nowhere").exists()


def test_make_dirs_refuses_a_symlink_planted_in_the_chain(root: Path, outside: Path) -> None:
    """make_dirs never follows a symlink that appears where it expects to create a directory."""
    (root / "a").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OSError):
        files.make_dirs(root, ["a", "b"])
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_read_lines_splits_only_on_lf() -> None:
    """split_lines keeps endings and treats a lone CR as part of the line (offsets count LF only)."""
    assert files.split_lines(b"a\r\nb\rc\nd") == [b"a\r\n", b"b\rc\n", b"d"]
