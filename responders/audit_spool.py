"""The audit spool: records JetStream has not acknowledged, kept on disk until they can be replayed.

Layout: `<spool dir>/<root>/<service>/<instance>.spool`, one file per responder instance,
created only when a first record has to wait, and held with an exclusive `flock` for the
instance's life. The file is a 32-byte header `MCPSPOOL 1 <replay offset, 20 digits>\n`
followed by one JSON line per record: `{"s": subject, "i": msg id, "r": record}`. Appends are
fsync'd before they count; replay reads from the offset, publishes, and only then moves the
offset (fsync'd), so a crash at any point replays at most a window twice (the stream drops the
duplicates by `Nats-Msg-Id`). A torn last line (a crash mid-write) is ignored.

A file whose lock nobody holds belongs to a dead instance: the next instance of the same
service that starts (or scans) takes the lock, copies the un-replayed lines into its own
spool, fsyncs, and deletes the orphan. The lock is re-checked against the path after it is
taken, so two claimers never both copy one file.

Owns its open file descriptor; every method is blocking file I/O and is called from one
task at a time (the audit pump, through a worker thread).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
from msgspec import Raw, Struct

log = logging.getLogger(__name__)

MAGIC: Final = b"MCPSPOOL 1 "
HEADER: Final = len(MAGIC) + 21  # magic, 20 digits, newline: 32 bytes
SUFFIX: Final = ".spool"
_READ_CHUNK: Final = 1 << 20


class SpoolLine(Struct, kw_only=True):
    s: str
    """The subject the record is published on."""
    i: str
    """Its Nats-Msg-Id (the call id)."""
    r: Raw
    """The record itself."""


_line_encoder: Final = msgspec.json.Encoder()
_line_decoder: Final = msgspec.json.Decoder(SpoolLine)


def encode_line(subject: str, msg_id: str, record: bytes) -> bytes:
    return _line_encoder.encode(SpoolLine(s=subject, i=msg_id, r=Raw(record))) + b"\n"


@dataclass(frozen=True)
class Spooled:
    subject: str
    msg_id: str
    record: bytes


def _header(offset: int) -> bytes:
    return MAGIC + b"%020d\n" % offset


def _read_offset(fd: int) -> int | None:
    head = os.pread(fd, HEADER, 0)
    if len(head) != HEADER or not head.startswith(MAGIC) or not head.endswith(b"\n"):
        return None
    try:
        return max(HEADER, int(head[len(MAGIC) : -1]))
    except ValueError:
        return None


def _complete_lines(fd: int, start: int) -> tuple[list[bytes], int]:
    """Every newline-terminated line from `start` on, and the offset just after the last one."""
    lines: list[bytes] = []
    pos = start
    tail = b""
    while True:
        chunk = os.pread(fd, _READ_CHUNK, pos + len(tail))
        if not chunk:
            break
        data = tail + chunk
        parts = data.split(b"\n")
        tail = parts.pop()
        for p in parts:
            lines.append(p + b"\n")
            pos += len(p) + 1
    if tail:
        log.warning(
            "audit spool: ignoring a torn last record of %d bytes (the writer died mid-write)", len(tail)
        )
    return lines, pos


class Spool:
    """One instance's spool file (see the module docstring). Not thread-safe: one caller at a time."""

    def __init__(self, directory: Path, instance: str, max_bytes: int) -> None:
        self.dir = directory
        self.path = directory / f"{instance}{SUFFIX}"
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._offset = HEADER
        self._size = HEADER
        self.records = 0
        """Records waiting in the file."""

    @property
    def held_bytes(self) -> int:
        return self._size - self._offset

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        os.pwrite(fd, _header(HEADER), 0)
        os.ftruncate(fd, HEADER)
        os.fsync(fd)
        _fsync_dir(self.dir)
        self._fd = fd
        self._offset = self._size = HEADER
        return fd

    def append(self, lines: list[bytes]) -> int:
        """Write `lines` durably (fsync) at the end; returns how many fit under max_bytes (the rest are not written)."""
        room = self.max_bytes - self.held_bytes
        take = 0
        size = 0
        for line in lines:
            if size + len(line) > room:
                break
            size += len(line)
            take += 1
        if not take:
            return 0
        fd = self._open()
        os.pwrite(fd, b"".join(lines[:take]), self._size)
        os.fsync(fd)
        self._size += size
        self.records += take
        return take

    def read(self, limit: int) -> tuple[list[Spooled], int]:
        """Up to `limit` records from the replay offset, and the offset after them (pass it to `commit`)."""
        if self._fd is None or self._offset >= self._size:
            return [], self._offset
        out: list[Spooled] = []
        pos = self._offset
        while len(out) < limit and pos < self._size:
            chunk = os.pread(self._fd, min(_READ_CHUNK, self._size - pos), pos)
            if not chunk:
                break
            cut = 0
            while len(out) < limit:
                nl = chunk.find(b"\n", cut)
                if nl < 0:
                    break
                line = chunk[cut : nl + 1]
                cut = nl + 1
                try:
                    parsed = _line_decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    log.error("audit spool %s: skipping an unreadable record at offset %d", self.path, pos)
                else:
                    out.append(Spooled(parsed.s, parsed.i, bytes(parsed.r)))
                pos += len(line)
            if cut == 0:  # a single line longer than the chunk: cannot happen with our bounded records
                log.error(
                    "audit spool %s: record at offset %d is longer than %d bytes; skipping the rest",
                    self.path,
                    pos,
                    _READ_CHUNK,
                )
                pos = self._size
        return out, pos

    def commit(self, offset: int, count: int) -> None:
        """Mark everything before `offset` (`count` records) as published; empty the file once all are."""
        if self._fd is None:
            return
        self.records = max(0, self.records - count)
        if offset >= self._size:
            os.ftruncate(self._fd, HEADER)
            os.pwrite(self._fd, _header(HEADER), 0)
            self._offset = self._size = HEADER
            self.records = 0
        else:
            os.pwrite(self._fd, _header(offset), 0)
            self._offset = offset
        os.fsync(self._fd)

    def claim_orphans(self) -> int:
        """Take over the spool files of dead instances of this service; returns the records taken."""
        try:
            candidates = sorted(self.dir.glob(f"*{SUFFIX}"), key=_mtime)
        except OSError:
            return 0
        taken = 0
        for path in candidates:
            if path == self.path:
                continue
            taken += self._claim(path)
        return taken

    def _claim(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return 0  # gone already (another instance claimed it)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return 0  # its instance is alive
                raise
            try:
                if os.fstat(fd).st_ino != path.stat().st_ino:
                    return 0  # replaced or removed between open and lock
            except FileNotFoundError:
                return 0
            offset = _read_offset(fd)
            if offset is None:
                log.error("audit spool %s has no valid header; leaving it for an operator", path)
                return 0
            lines, _ = _complete_lines(fd, offset)
            accepted = self.append(lines) if lines else 0
            if accepted < len(lines):
                log.error(
                    "audit spool: only %d of %d records of %s fit in this instance's spool; the rest stay there",
                    accepted,
                    len(lines),
                    path,
                )
                os.pwrite(fd, _header(offset + sum(len(line) for line in lines[:accepted])), 0)
                os.fsync(fd)
                return accepted
            path.unlink()
            _fsync_dir(self.dir)
            if lines:
                log.warning(
                    "audit spool: took over %d records from %s (an instance that stopped without replaying them)",
                    len(lines),
                    path.name,
                )
            return accepted
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release the file: deleted when empty, kept (for the next instance) when records remain."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._offset >= self._size:
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
