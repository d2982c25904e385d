"""MIME types for read_media_file: by extension (the reference server's table, plus a few), else
by the file's first bytes; and the MCP content block that carries the data."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import quote

from schemas.mcp import AudioContent, EmbeddedResource, ImageContent

BY_EXTENSION = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".avif": "image/avif",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/opus",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".pdf": "application/pdf",
}

# (offset, magic bytes, MIME type); RIFF containers also check the form type at offset 8.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"%PDF-", "application/pdf"),
)


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes announce, or None."""
    if head[:4] == b"RIFF" and len(head) >= 12:
        form = head[8:12]
        return {b"WAVE": "audio/wav", b"WEBP": "image/webp"}.get(form)
    for offset, magic, mime in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return mime
    return None


def mime_type(path: Path, head: bytes) -> str:
    """By extension when known, else by content, else application/octet-stream."""
    return BY_EXTENSION.get(path.suffix.lower()) or sniff(head) or "application/octet-stream"


def file_uri(path: Path) -> str:
    return "file://" + quote(os.fsencode(str(path)), safe="/")


def content_block(path: Path, data: bytes) -> ImageContent | AudioContent | EmbeddedResource:
    """An image or audio block with the base64 data, else an embedded resource with a blob."""
    mime = mime_type(path, data[:16])
    encoded = base64.b64encode(data).decode("ascii")
    if mime.startswith("image/"):
        return ImageContent(data=encoded, mimeType=mime)
    if mime.startswith("audio/"):
        return AudioContent(data=encoded, mimeType=mime)
    return EmbeddedResource(resource={"uri": file_uri(path), "mimeType": mime, "blob": encoded})
