"""read_text_file (head, tail, offset/limit, the byte cap), read_media_file (MIME types) and read_multiple_files."""

from __future__ import annotations

import base64
import os
import struct
import threading
from pathlib import Path

import pytest
from msgspec import UNSET

from responders.errors import ToolError
from responders.services.fs import Filesystem, PathRefused, Roots
from schemas.mcp import AudioContent, EmbeddedResource, ImageContent

from .conftest import SECRET

PNG = (
    b"\x89PNG\r\n\x1a\n"
    + struct.pack(">I", 13)
    + b"IHDR"
    + struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    + b"\0\0\0\0"
)
WAV = (
    b"RIFF"
    + struct.pack("<I", 36)
    + b"WAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    + b"data"
    + struct.pack("<I", 0)
)


def test_whole_file_is_read_as_text(fs: Filesystem) -> None:
    """Without range arguments the whole file comes back, not marked truncated."""
    out = fs.read_text_file("five.txt")
    assert out.content == "one\ntwo\nthree\nfour\nfive\n"
    assert out.truncated is False


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"head": 2}, "one\ntwo\n"),
        ({"head": 0}, ""),
        ({"head": 99}, "one\ntwo\nthree\nfour\nfive\n"),
        ({"tail": 2}, "four\nfive\n"),
        ({"tail": 99}, "one\ntwo\nthree\nfour\nfive\n"),
        ({"offset": 1, "limit": 2}, "two\nthree\n"),
        ({"offset": 3}, "four\nfive\n"),
        ({"limit": 1}, "one\n"),
    ],
)
def test_line_ranges(fs: Filesystem, kwargs: dict[str, int], expected: str) -> None:
    """head, tail and offset/limit select the lines they name."""
    assert fs.read_text_file("five.txt", **kwargs).content == expected


def test_limit_reports_where_to_continue(fs: Filesystem) -> None:
    """A limited read says which offset continues it; a read that reaches the end does not."""
    assert fs.read_text_file("five.txt", offset=1, limit=2).nextOffset == 3
    assert fs.read_text_file("five.txt", offset=3, limit=2).nextOffset is UNSET
    assert fs.read_text_file("five.txt", offset=3, limit=5).nextOffset is UNSET


def test_offset_past_the_end_says_so(fs: Filesystem) -> None:
    """An offset beyond the last line returns no file text and a note saying the offset is past the end."""
    out = fs.read_text_file("five.txt", offset=9)
    assert out.content.startswith("\n[offset 9 is at or past the end")


@pytest.mark.parametrize(
    "kwargs", [{"head": 1, "tail": 1}, {"head": 1, "offset": 1}, {"tail": 1, "limit": 1}]
)
def test_conflicting_ranges_are_refused(fs: Filesystem, kwargs: dict[str, int]) -> None:
    """head and tail together (or either with offset/limit) is a tool error, as in the reference server."""
    with pytest.raises(ToolError, match="not two"):
        fs.read_text_file("five.txt", **kwargs)


def test_byte_cap_truncates_at_a_line_boundary_and_says_where_to_continue(root: Path) -> None:
    """A file over the cap comes back cut after the last whole line within the cap, with a note and nextOffset that resume it."""
    lines = [f"line {i:03d} " + "x" * 20 for i in range(100)]
    (root / "big.txt").write_text("\n".join(lines) + "\n")
    fs = Filesystem(Roots([str(root)]), 100)
    out = fs.read_text_file("big.txt")
    assert out.truncated is True
    body, note = out.content.rsplit("\n[", 1)
    assert body == "".join(x + "\n" for x in lines[:3])  # 3 x 29 bytes fit in 100
    assert "100 bytes" in note and "offset=3" in note
    assert out.nextOffset == 3
    nxt = fs.read_text_file("big.txt", offset=3)
    assert nxt.content.startswith(lines[3] + "\n")


def test_byte_cap_applies_to_head_and_tail(root: Path) -> None:
    """head and tail stop at the cap too, and say so."""
    (root / "big.txt").write_text("".join(f"{i:09d}\n" for i in range(100)))
    fs = Filesystem(Roots([str(root)]), 35)
    head = fs.read_text_file("big.txt", head=50)
    assert head.truncated and head.content.startswith("000000000\n000000001\n000000002\n\n[truncated")
    tail = fs.read_text_file("big.txt", tail=50)
    assert tail.truncated and tail.content.startswith("000000097\n000000098\n000000099\n\n[truncated")


def test_one_line_longer_than_the_cap_is_cut_and_named(root: Path) -> None:
    """A single line longer than the cap is returned cut to the cap, and the note names the line."""
    (root / "long.txt").write_text("y" * 500 + "\nnext\n")
    fs = Filesystem(Roots([str(root)]), 64)
    out = fs.read_text_file("long.txt")
    assert out.content.startswith("y" * 64 + "\n[line 1 is longer")
    assert (
        fs.read_text_file("long.txt", offset=out.nextOffset if isinstance(out.nextOffset, int) else 0).content
        == "next\n"
    )


def test_invalid_utf8_is_replaced_not_an_error(root: Path, fs: Filesystem) -> None:
    """Bytes that are not UTF-8 read as U+FFFD instead of failing."""
    (root / "latin1.txt").write_bytes(b"caf\xe9\n")
    assert fs.read_text_file("latin1.txt").content == "caf\ufffd\n"


def test_directory_and_fifo_are_refused_without_hanging(root: Path, fs: Filesystem) -> None:
    """Reading a directory or a FIFO is a tool error at once (a FIFO is never opened for a blocking read)."""
    with pytest.raises(ToolError, match="directory"):
        fs.read_text_file("sub")
    os.mkfifo(root / "pipe")
    result: list[BaseException] = []

    def read() -> None:
        try:
            fs.read_text_file("pipe")
        except ToolError as exc:
            result.append(exc)

    t = threading.Thread(target=read)
    t.start()
    t.join(5)
    assert not t.is_alive() and result and "not a regular file" in str(result[0])


def test_symlink_to_an_outside_file_is_refused(root: Path, outside: Path, fs: Filesystem) -> None:
    """A read through a symlink pointing outside the roots is PathRefused and never shows the secret."""
    (root / "link").symlink_to(outside / "secret.txt")
    with pytest.raises(PathRefused) as err:
        fs.read_text_file("link")
    assert SECRET not in str(err.value)


@pytest.mark.parametrize(
    ("name", "data", "kind", "mime"),
    [
        ("pic.png", PNG, ImageContent, "image/png"),
        ("noext", PNG, ImageContent, "image/png"),
        ("sound.wav", WAV, AudioContent, "audio/wav"),
        ("sound.bin", WAV, AudioContent, "audio/wav"),
        ("photo.JPG", b"\xff\xd8\xff\xe0junk", ImageContent, "image/jpeg"),
        ("song.mp3", b"ID3junk", AudioContent, "audio/mpeg"),
        ("blob.dat", b"\x00\x01\x02", EmbeddedResource, "application/octet-stream"),
    ],
)
def test_media_types(root: Path, fs: Filesystem, name: str, data: bytes, kind: type, mime: str) -> None:
    """read_media_file returns image or audio content with the MIME type (by extension, else by magic bytes), else a blob resource."""
    (root / name).write_bytes(data)
    [block] = fs.read_media_file(name)
    assert isinstance(block, kind)
    if isinstance(block, ImageContent | AudioContent):
        assert block.mimeType == mime
        assert base64.b64decode(block.data) == data
    else:
        assert isinstance(block, EmbeddedResource)
        assert block.resource["mimeType"] == mime
        assert base64.b64decode(block.resource["blob"]) == data
        assert block.resource["uri"] == (root / name).as_uri()


def test_media_over_the_cap_is_refused(root: Path) -> None:
    """A media file larger than the cap is refused with its size, not cut (a cut image is useless)."""
    (root / "big.png").write_bytes(PNG + b"\0" * 200)
    with pytest.raises(ToolError, match="more than the fs read cap"):
        Filesystem(Roots([str(root)]), 100).read_media_file("big.png")


def test_multiple_files_one_failure_does_not_stop_the_rest(root: Path, outside: Path, fs: Filesystem) -> None:
    """Each path gets its content or its own error, in order, in the reference server's text format."""
    out = fs.read_multiple_files(["five.txt", str(outside / "secret.txt"), "missing.txt", "sub/code.py"])
    assert [f.path for f in out.files] == [
        "five.txt",
        str(outside / "secret.txt"),
        "missing.txt",
        "sub/code.py",
    ]
    assert out.files[0].content == "one\ntwo\nthree\nfour\nfive\n"
    assert isinstance(out.files[1].error, str) and "outside" in out.files[1].error
    assert isinstance(out.files[2].error, str) and "no such file" in out.files[2].error
    assert out.files[3].content == "def f():\n    return 1\n"
    text = out.__mcp_text__()
    assert text.startswith("five.txt:\none\n")
    assert "\n---\n" + str(outside / "secret.txt") + ": Error - access denied" in text
    assert SECRET not in text


def test_multiple_files_share_one_cap(root: Path) -> None:
    """The cap covers all files together: a file after the budget is used up is reported as not read."""
    (root / "a.txt").write_text("a" * 60 + "\n")
    (root / "b.txt").write_text("b" * 60 + "\n")
    (root / "c.txt").write_text("c\n")
    out = Filesystem(Roots([str(root)]), 100).read_multiple_files(["a.txt", "b.txt", "c.txt"])
    assert out.files[0].content == "a" * 60 + "\n"
    assert out.files[1].truncated is True
    assert isinstance(out.files[2].error, str) and "used up" in out.files[2].error
