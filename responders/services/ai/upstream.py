"""The HTTP client of the ai service: one httpx.AsyncClient for the configured base URL, owned by the lifespan.

Every request goes through `json` or `stream`, inside `map_http_errors`, so httpx's exceptions never
leave this module. A stream is an async context manager: leaving it (done, failed or cancelled)
closes the response, and an unfinished response closes its connection, so the model server sees
the client go away and can stop generating.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from .errors import UpstreamRefused, error_message, map_http_errors
from .settings import AiSettings


class Upstream:
    """JSON and line-streamed requests to one model server."""

    def __init__(self, client: httpx.AsyncClient, url: str, read_timeout: float) -> None:
        self.client = client
        self.url = url
        self.read_timeout = read_timeout

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: AiSettings, base_url: str) -> AsyncIterator[Upstream]:
        headers = {"Accept": "application/json"}
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout)
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            yield cls(client, base_url, settings.read_timeout)

    async def json(self, method: str, path: str, body: Any = None) -> Any:
        with map_http_errors(self.url, self.read_timeout):
            content = msgspec.json.encode(body) if body is not None else None
            headers = {"Content-Type": "application/json"} if content is not None else None
            r = await self.client.request(method, path, content=content, headers=headers)
            if r.status_code >= 400:
                raise UpstreamRefused(r.status_code, error_message(r.content))
            return msgspec.json.decode(r.content) if r.content else None

    @contextlib.asynccontextmanager
    async def stream(self, path: str, body: Any) -> AsyncIterator[AsyncIterator[str]]:
        """The response's lines, for as long as the block runs; the response is closed on exit."""
        with map_http_errors(self.url, self.read_timeout):
            async with self.client.stream(
                "POST", path, content=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
            ) as r:
                if r.status_code >= 400:
                    raise UpstreamRefused(r.status_code, error_message(await r.aread()))
                yield self._lines(r)

    async def _lines(self, r: httpx.Response) -> AsyncIterator[str]:
        with map_http_errors(self.url, self.read_timeout):
            async for line in r.aiter_lines():
                if line.strip():
                    yield line
