"""A TCP proxy in front of a nats-server, for fault tests that need the wire in between: it can
hold a client's UNSUB back for a while, or send every client an `-ERR` as if from the server."""

from __future__ import annotations

import asyncio
from typing import Any


class NatsProxy:
    """`async with NatsProxy(port) as proxy:` then connect to `proxy.url`."""

    def __init__(self, server_port: int, *, hold_unsub: float = 0.0) -> None:
        self.server_port = server_port
        self.hold_unsub = hold_unsub
        self.connections = 0
        self._to_clients: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"nats://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> NatsProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._to_clients:
            w.close()
        await self._server.wait_closed()

    def inject_err(self, text: str = "Unknown Protocol Operation") -> None:
        """Send `-ERR '<text>'` to every connected client, as the server would (nats-py then closes for good)."""
        for w in self._to_clients:
            if not w.is_closing():
                w.write(b"-ERR '%s'\r\n" % text.encode())

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        sr, sw = await asyncio.open_connection("127.0.0.1", self.server_port)
        self._to_clients.append(cw)
        await asyncio.gather(
            self._pipe(cr, sw, self.hold_unsub), self._pipe(sr, cw, 0.0), return_exceptions=True
        )

    @staticmethod
    async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, hold_unsub: float) -> None:
        try:
            while data := await r.read(65536):
                i = data.find(b"UNSUB ") if hold_unsub else -1
                if i >= 0:
                    w.write(data[:i])
                    await w.drain()
                    await asyncio.sleep(hold_unsub)
                    data = data[i:]
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()
