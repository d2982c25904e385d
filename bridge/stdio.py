"""stdin/stdout framing: newline-delimited JSON-RPC, one message per line.

Owns both pipes. stdout is the wire: at start the real stdout is moved to a private file
descriptor and fd 1 is pointed at stderr, so a stray print from any library can never
corrupt the protocol. Lines longer than `max_line` are not buffered: they are skipped up to
the next newline and reported as `OVERLONG`, so a huge line costs no memory.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
import typing
from collections import deque
from typing import Final

OVERLONG: Final = b"\x00overlong"


def _is_stream(fd: int) -> bool:
    """Pipes, sockets and terminals work with the loop's pipe transports; regular files do not
    (and uvloop aborts instead of raising on them), so those are checked up front."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


class _ReaderProtocol(asyncio.Protocol):
    def __init__(self, reader: LineReader) -> None:
        self._r = reader

    def data_received(self, data: bytes) -> None:
        self._r.feed(data)

    def eof_received(self) -> bool:
        self._r.feed_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._r.feed_eof()


class LineReader:
    """Splits a byte stream into lines; `await readline()` returns a line, OVERLONG, or None at EOF."""

    def __init__(self, max_line: int) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._skipping = False
        self._lines: deque[bytes] = deque()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._paused = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def attach(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        pipe = os.fdopen(fd, "rb", buffering=0, closefd=False)
        if _is_stream(fd):
            transport, _ = await loop.connect_read_pipe(lambda: _ReaderProtocol(self), pipe)
            self._transport = transport
        else:  # a regular file (e.g. `mcp-nats bridge < requests.jsonl`): read it in a thread
            threading.Thread(target=self._read_blocking, args=(pipe,), daemon=True, name="stdin").start()

    def _read_blocking(self, pipe: object) -> None:
        assert self._loop is not None
        while True:
            chunk = pipe.read(1 << 16)  # type: ignore[attr-defined]
            if not chunk:
                self._loop.call_soon_threadsafe(self.feed_eof)
                return
            self._loop.call_soon_threadsafe(self.feed, chunk)

    def feed(self, data: bytes) -> None:
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                self._buf += data[start:nl]
                line = bytes(self._buf)
                self._buf.clear()
                if len(line) > self._max:
                    self._lines.append(OVERLONG)
                elif line.strip():
                    self._lines.append(line)
            start = nl + 1
        rest = data[start:]
        if not self._skipping and rest:
            self._buf += rest
            if len(self._buf) > self._max:
                self._buf.clear()
                self._skipping = True
                self._lines.append(OVERLONG)
        self._wake()
        if len(self._lines) > 1024 and self._transport is not None and not self._paused:
            self._transport.pause_reading()
            self._paused = True

    def feed_eof(self) -> None:
        if self._buf.strip() and not self._skipping:
            self._lines.append(bytes(self._buf))
        self._buf.clear()
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def readline(self) -> bytes | None:
        while not self._lines:
            if self._eof:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        line = self._lines.popleft()
        if self._paused and len(self._lines) < 256 and self._transport is not None:
            self._transport.resume_reading()
            self._paused = False
        return line


class LineWriter:
    """Writes one message per line to the protocol fd; never blocks the loop for long."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._transport: asyncio.WriteTransport | None = None
        self._file: typing.BinaryIO | None = None
        self._pending: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def attach(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        pipe = os.fdopen(self._fd, "wb", buffering=0, closefd=False)
        if _is_stream(self._fd) and not os.isatty(self._fd):
            self._transport, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe)
        else:  # a regular file or a terminal: plain writes
            self._file = pipe

    def write(self, line: bytes) -> None:
        if self._transport is not None:
            # Lines written during one loop iteration leave in one write(2): at 64 calls in flight
            # that is one syscall (and one wake-up of the client) for many responses, not one each.
            if not self._pending:
                assert self._loop is not None
                self._loop.call_soon(self._flush)
            self._pending.append(line)
        elif self._file is not None:
            self._file.write(line + b"\n")

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if self._transport is not None and not self._transport.is_closing() and pending:
            pending.append(b"")
            self._transport.write(b"\n".join(pending))

    def close(self) -> None:
        self._flush()
        if self._transport is not None:
            self._transport.close()


def claim_stdout() -> int:
    """Move the real stdout to a private fd and point fd 1 (and sys.stdout) at stderr. Returns the private fd."""
    sys.stdout.flush()
    proto = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto
