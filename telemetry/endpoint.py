"""The `/metrics` endpoint of one process: a minimal HTTP/1.1 server on the event loop.

Owns its listening socket and the connections it accepts: `async with serve_metrics(registry,
host, port) as port:` returns once the socket listens (port 0 picks a free one, returned), and
closes it on exit. One request per connection (`Connection: close`); anything but
`GET /metrics` (or `/`) gets 404, a malformed or slow request is dropped. Rendering runs on the
loop: a few hundred series take well under a millisecond, once per scrape interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .errors import EndpointError

log = logging.getLogger(__name__)

_READ_TIMEOUT: Final = 5.0
_MAX_HEAD: Final = 16 * 1024


@asynccontextmanager
async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> AsyncIterator[int]:
    """Serve `registry` on http://host:port/metrics until the block exits; yields the bound port.

    Raises EndpointError when the address cannot be bound."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            await _answer(registry, head, writer)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that went away or sent garbage: nothing to answer
        except Exception:  # never let a scrape take anything else down
            log.exception("the /metrics request failed")
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, host, port, limit=_MAX_HEAD)
    except OSError as exc:
        raise EndpointError(host, port, exc.strerror or str(exc)) from exc
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        # Open connections get the scrape they asked for, or are cut after the read timeout.
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                await server.wait_closed()
        except TimeoutError:
            log.debug("a /metrics connection was still open at exit")


async def _answer(registry: CollectorRegistry, head: bytes, writer: asyncio.StreamWriter) -> None:
    request_line, _, rest = head.partition(b"\r\n")
    parts = request_line.split()
    accept = ""
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"accept":
            accept = value.strip().decode("latin-1")
    path = parts[1].split(b"?", 1)[0] if len(parts) == 3 else b""
    if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD") or path not in (b"/metrics", b"/"):
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (content_type.encode("latin-1"), len(body))
    )
    if parts[0] == b"GET":
        writer.write(body)
    await writer.drain()
