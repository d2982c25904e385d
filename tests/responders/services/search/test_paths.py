"""index_paths: the fs service's path rules (no `..`, no symlink escape), text files only, chunks, and
incremental re-indexing by modification time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from responders.services.fs import PathRefused
from responders.services.search.crawl import chunk_text
from responders.services.search.outputs import PathsOutput, SearchOutput

from .conftest import Tools

pytestmark = pytest.mark.anyio


async def hits(search: Tools, query: str) -> list[str]:
    out = await search("search", index="files", query=query, size=100)
    assert isinstance(out, SearchOutput)
    return [h.id for h in out.hits]


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.md",
        "docs/../../outside",
        "{base}/outside/secret.md",
        "{base}/root-evil",
        "/etc/passwd",
        "docs/link-out.md",
        "docs/dir-out",
        "docs/dir-out/secret.md",
    ],
)
async def test_paths_outside_the_roots_are_refused(files: Path, search: Tools, path: str) -> None:
    """A path outside the allowed directory, lexically or through a symlink, is refused and nothing is indexed."""
    (files / "root-evil").mkdir(exist_ok=True)
    with pytest.raises(PathRefused):
        await search("index_paths", index="files", paths=["docs", path.format(base=files)])
    assert (await search("list_indices")).indices == []  # type: ignore[attr-defined]


async def test_a_walk_skips_symlinks_leading_out_and_binary_files(files: Path, search: Tools) -> None:
    """Walking a directory indexes its text files; symlinks to the outside and binary files are skipped and said so."""
    out = await search("index_paths", index="files", paths=["docs"])
    assert isinstance(out, PathsOutput)
    assert out.files_indexed == 3
    assert await hits(search, "zebracorn") == []
    root = files / "root" / "docs"
    assert set(await hits(search, "pangolin")) == {f"{root}/deep/notes.txt#0", f"{root}/code.py#0"}
    assert any("symlink" in s for s in out.skipped) and any("blob.bin: binary" in s for s in out.skipped)
    doc = await search("get_document", index="files", id=f"{root}/intro.md#0")
    assert doc.document.metadata == {"path": f"{root}/intro.md", "chunk": 0, "lines": [1, 2]}  # type: ignore[attr-defined]


async def test_include_and_exclude_patterns(search: Tools) -> None:
    """include keeps matching files only; exclude leaves files and directories out."""
    out = await search("index_paths", index="files", paths=["docs"], include=["*.md"])
    assert isinstance(out, PathsOutput) and out.files_indexed == 1
    out = await search("index_paths", index="other", paths=["docs"], exclude=["deep", "*.py"])
    assert isinstance(out, PathsOutput) and out.files_indexed == 1


async def test_reindexing_touches_only_changed_files(files: Path, search: Tools) -> None:
    """A second run skips unchanged files, replaces a changed file's chunks, and drops a deleted file's."""
    docs = files / "root" / "docs"
    first = await search("index_paths", index="files", paths=["docs"])
    assert isinstance(first, PathsOutput) and first.files_indexed == 3
    again = await search("index_paths", index="files", paths=["docs"])
    assert isinstance(again, PathsOutput) and (again.files_indexed, again.files_unchanged, again.chunks) == (
        0,
        3,
        0,
    )
    (docs / "intro.md").write_text("# Intro\nNow about the numbat.\n")
    st = os.stat(docs / "intro.md")
    os.utime(docs / "intro.md", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    (docs / "code.py").unlink()
    third = await search("index_paths", index="files", paths=["docs"])
    assert isinstance(third, PathsOutput)
    assert (third.files_indexed, third.files_unchanged, third.files_removed) == (1, 1, 1)
    assert await hits(search, "quokka") == []
    assert await hits(search, "numbat") == [f"{docs}/intro.md#0"]
    assert await hits(search, "pangolin") == [f"{docs}/deep/notes.txt#0"]


async def test_large_files_are_cut_into_chunks_on_line_boundaries(files: Path, search: Tools) -> None:
    """A file longer than the chunk size becomes several documents whose line ranges cover it in order."""
    lines = [f"line {i} " + "filler " * 20 + ("needle" if i == 70 else "") for i in range(100)]
    (files / "root" / "big.txt").write_text("\n".join(lines) + "\n")
    out = await search("index_paths", index="files", paths=["big.txt"])
    assert isinstance(out, PathsOutput) and out.chunks > 3
    got = await search("search", index="files", query="needle")
    hit = got.hits[0]  # type: ignore[attr-defined]
    first, last = hit.metadata["lines"]
    assert first <= 71 <= last
    pieces = chunk_text("\n".join(lines) + "\n", 2000)
    assert "".join(p for p, _, _ in pieces) == "\n".join(lines) + "\n"
    assert all(pieces[i][2] + 1 == pieces[i + 1][1] for i in range(len(pieces) - 1))
