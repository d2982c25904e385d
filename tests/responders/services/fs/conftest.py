"""A root with a few files, an outside directory with a secret, and a `<root>-evil` sibling; a Filesystem over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from responders.services.fs import Filesystem, Roots

SECRET = "TOP-SECRET-outside-the-root"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path.resolve()


@pytest.fixture
def root(base: Path) -> Path:
    r = base / "root"
    (r / "sub" / "deep").mkdir(parents=True)
    (r / "five.txt").write_text("one\ntwo\nthree\nfour\nfive\n")
    (r / "sub" / "code.py").write_text("def f():\n    return 1\n")
    (r / "sub" / "deep" / ".hidden").write_text("hello world\n")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    evil = base / "root-evil"
    evil.mkdir()
    (evil / "secret.txt").write_text(SECRET)
    return r


@pytest.fixture
def outside(base: Path, root: Path) -> Path:
    return base / "outside"


@pytest.fixture
def fs(root: Path) -> Filesystem:
    return Filesystem(Roots([str(root)]), 1024)
