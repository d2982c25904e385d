from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from responders.plugin import ServiceOptions
from responders.service import Service
from responders.services.search import SearchSettings, build


class Tools:
    """Calls a built search service's tools directly (the functions the decorators returned)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def __call__(self, tool: str, **kw: object) -> object:
        return await self.svc.tools[tool].fn(**kw)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """root/ (the allowed directory) with docs, and outside/ with a secret; symlinks planted to the outside."""
    base = tmp_path.resolve()
    root, outside = base / "root", base / "outside"
    (root / "docs" / "deep").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.md").write_text("zebracorn secret outside the root\n")
    (root / "docs" / "intro.md").write_text("# Intro\nThe quokka lives on Rottnest island.\n")
    (root / "docs" / "deep" / "notes.txt").write_text("notes about the pangolin\n" * 3)
    (root / "docs" / "code.py").write_text("def pangolin():\n    return 'scales'\n")
    (root / "docs" / "blob.bin").write_bytes(b"\x00\x01pangolin binary\x00")
    (root / "docs" / "link-out.md").symlink_to(outside / "secret.md")
    (root / "docs" / "dir-out").symlink_to(outside, target_is_directory=True)
    return base


async def open_search(base: Path, **settings: Any) -> AsyncIterator[Tools]:
    state = base / "state"
    svc = build(
        SearchSettings(roots=[str(base / "root")], **settings), ServiceOptions(name="search", state_dir=state)
    )
    async with svc.open(None):  # type: ignore[arg-type]
        yield Tools(svc)


@pytest.fixture
async def search(files: Path) -> AsyncIterator[Tools]:
    async for t in open_search(files):
        yield t
