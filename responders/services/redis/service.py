"""Builds the redis service: read tools always, write tools only with --write."""

from typing import Final

from ...plugin import ServiceOptions
from ...service import Service
from .reads import register_reads
from .settings import RedisSettings
from .store import Store
from .writes import register_writes

VERSION: Final = "0.1.0"


class RedisService(Service):
    """A Service bound to one Redis database; its lifespan is the Store's."""

    def __init__(self, settings: RedisSettings, name: str) -> None:
        mode = "read-write" if settings.write else "read-only"
        scope = f" Only keys matching {', '.join(settings.keys)}." if settings.keys else ""
        super().__init__(
            name,
            VERSION,
            f"Redis ({mode}): strings, hashes, lists, sets, sorted sets, streams.{scope}",
            title=f"Redis ({name})",
            instructions=(
                "Use scan_keys (repeat with the returned cursor until 0) to find keys, type to see what a key holds."
                + scope
                + ("" if settings.write else " This service is read-only: no write tools exist.")
            ),
        )
        self.store = Store(settings, name)
        self.lifespan(self.store.lifespan)


def build(settings: RedisSettings, options: ServiceOptions | None = None) -> RedisService:
    """The redis service for these settings. Raises ValueError without a usable URL."""
    if not settings.url:
        raise ValueError(
            "no Redis URL: pass --url redis://host:6379/0, or set [redis] url or MCP_NATS_REDIS_URL"
        )
    if not settings.url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("the URL must start with redis://, rediss:// or unix://")
    svc = RedisService(settings, options.name if options is not None else "redis")
    register_reads(svc, svc.store)
    if settings.write:
        register_writes(svc, svc.store)
    return svc
