"""The Redis connection of one service instance and the checks every call passes through.

`Store.lifespan` is the service's lifespan: it makes the redis-py asyncio client (a connection
pool), pings once (a warning, not a failure, when Redis is not there yet), then checks once what the
Redis user may do (acl.py: a warning when Redis would let it write in read-only mode, or reach keys
outside --keys) and closes it after drain. `Store.key` refuses a key outside the allowlist before
Redis sees the call; `Store.call` runs a command under the error boundary and the service's timeout."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import redis.asyncio as aioredis

from schemas.observe import BackendTracer, NoTracer

from ...plugin import ServiceRuntime
from ..dsn import Secrets, redact
from .acl import check_acl
from .errors import ConnectionLost, KeyRefused, RedisToolError, map_redis_errors
from .keys import Allowlist
from .settings import RedisSettings

log = logging.getLogger(__name__)


class Store:
    """Owns the client (see the module docstring)."""

    def __init__(self, settings: RedisSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.allow = Allowlist(settings.keys)
        self.secrets = Secrets(settings.url)
        self.shown_url = redact(settings.url)
        self.tracer: BackendTracer = NoTracer()
        self._client: aioredis.Redis | None = None
        self.acl_problems: list[str] = []
        """What the start-up ACL check found Redis would let the user do beyond the service ("write", "keys")."""

    @contextlib.asynccontextmanager
    async def lifespan(self, runtime: ServiceRuntime) -> AsyncIterator[None]:
        self.tracer = runtime.tracer
        s = self.settings
        client = aioredis.Redis.from_url(
            s.url,
            decode_responses=False,
            socket_timeout=s.timeout,
            socket_connect_timeout=s.timeout,
            client_name=f"mcp-nats-{self.service}",
            max_connections=64,
        )
        self._client = client
        try:
            try:
                await self.call(client.ping())
                log.info("%s: connected to %s", self.service, self.shown_url)
            except RedisToolError as exc:
                log.warning(
                    "%s: cannot reach %s yet: %s (each call retries)", self.service, self.shown_url, exc
                )
            else:
                self.acl_problems = await check_acl(client, s, self.allow, self.service, self.secrets)
            yield
        finally:
            self._client = None
            await client.aclose()

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise ConnectionLost(
                f"the {self.service} service is not connected to Redis (starting or stopping)"
            )
        return self._client

    def key(self, key: str) -> bytes:
        """The key as bytes, or KeyRefused when the allowlist does not cover it."""
        if not self.allow.allows(key):
            raise KeyRefused(self.service, key, self.allow.patterns)
        return key.encode("utf-8")

    async def call(self, op: Awaitable[Any]) -> Any:
        """Await one command (or pipeline) under the error boundary."""
        with map_redis_errors(self.secrets, service=self.service, timeout_s=self.settings.timeout):
            with self.tracer.span("redis.command", {"db.system": "redis"}):
                return await op

    def value_cap(self, value: str) -> bytes:
        data = value.encode("utf-8")
        if len(data) > self.settings.max_value_bytes:
            raise RedisToolError(
                f"the value is {len(data)} bytes; the {self.service} service accepts at most {self.settings.max_value_bytes}"
            )
        return data


def pairs(flat: Any) -> list[tuple[bytes, bytes]]:
    """A flat [k1, v1, k2, v2] or a dict as (key, value) pairs."""
    if isinstance(flat, dict):
        return list(flat.items())
    it = iter(flat)
    return list(zip(it, it, strict=True))
