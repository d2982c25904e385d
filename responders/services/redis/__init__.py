"""The `redis` service: one Redis database, read-only unless started with --write.

    mcp-nats serve redis --url redis://cache:6379/0 [--name cache] [--write] [--keys 'app:*']

Without --write the write tools are not registered (not listed, not callable); `--keys` limits
every call to matching keys before Redis sees it; SCAN, never KEYS; values and results capped. Redis
enforces both only through the user's ACL: at start the service warns when that would let it do more
(acl.py; the README's mcp_reader ACL user).
"""

from ...plugin import Argument, ServicePlugin
from .errors import ConnectionLost as ConnectionLost
from .errors import KeyRefused as KeyRefused
from .errors import RedisToolError as RedisToolError
from .keys import Allowlist as Allowlist
from .keys import glob_to_regex as glob_to_regex
from .service import RedisService as RedisService
from .service import build as build
from .settings import RedisSettings as RedisSettings

plugin = ServicePlugin(
    name="redis",
    summary="a Redis database: strings, hashes, lists, sets, sorted sets, streams; read-only unless --write",
    settings=RedisSettings,
    build=build,
    arguments=(
        Argument(
            "--url",
            key="url",
            metavar="URL",
            help="redis://[:password@]host:6379/0 (never printed with its password)",
        ),
        Argument("--write", key="write", kind="flag", help="register the write tools (default: read-only)"),
        Argument(
            "--keys",
            key="keys",
            kind="append",
            metavar="PATTERN",
            help="serve only keys matching this glob (repeatable)",
        ),
    ),
    list_keys=frozenset({"keys"}),
    extra="db",
    requires=("redis",),
)

__all__ = [
    "Allowlist",
    "ConnectionLost",
    "KeyRefused",
    "RedisService",
    "RedisSettings",
    "RedisToolError",
    "build",
    "glob_to_regex",
    "plugin",
]
