"""A service is a plugin: its package exports one `ServicePlugin`, registered as an entry point.

    # my_pkg/__init__.py
    plugin = ServicePlugin(
        name="weather",                      # default service name and settings section [weather]
        summary="Forecasts from the weather API",
        settings=WeatherSettings,            # frozen msgspec Struct, forbid_unknown_fields=True
        build=build,                         # (settings, ServiceOptions) -> Service
        arguments=(Argument("--api-url", key="api_url", help="..."),),
        extra="weather",                     # pip install 'mcp-nats[weather]' brings its backends
        requires=("httpx",),                 # modules that must import; else a sentence naming the extra
    )

    # pyproject.toml
    [project.entry-points."mcp_nats.services"]
    weather = "my_pkg:plugin"

`build` registers tools, resources and prompts on a `Service` and may attach a lifespan with
`@svc.lifespan`: an async context manager that gets the `ServiceRuntime` (bus, events,
instance) and owns the service's backend clients. It is entered before the instance serves and
left after it has drained. The settings section is `[<plugin name>]` in mcp-nats.toml and
`MCP_NATS_<NAME>_<KEY>` in the environment; unknown keys are refused by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

from schemas.observe import BackendTracer, NoTracer

if TYPE_CHECKING:
    from bus import Bus, Subjects

    from .events import Events
    from .service import Service

S = TypeVar("S", bound=msgspec.Struct)


class Argument:
    """One `mcp-nats serve <plugin>` flag that sets a key of the plugin's settings section.

    kind: "value" (a string), "int", "float", "append" (repeatable, a list) or "flag" (store true)."""

    __slots__ = ("flags", "help", "key", "kind", "metavar")

    def __init__(
        self,
        *flags: str,
        key: str,
        help: str,
        kind: Literal["value", "append", "flag", "int", "float"] = "value",
        metavar: str | None = None,
    ) -> None:
        if not flags or not all(f.startswith("--") for f in flags):
            raise ValueError(f"an Argument needs long flags (--name), got {flags!r}")
        self.flags = flags
        self.key = key
        self.help = help
        self.kind = kind
        self.metavar = metavar


@dataclass(frozen=True, kw_only=True)
class ServiceOptions:
    """What `build` gets beside its own settings."""

    name: str
    """The service name to serve under (the plugin's name, or `serve <plugin> --name X`)."""
    state_dir: Path
    """The process's state directory (embedded stores, keys); create subdirectories as needed."""
    instances: int = 1
    """How many instances `serve --instances` starts; a plugin that owns a local store refuses > 1."""


@dataclass(frozen=True, kw_only=True)
class ServiceRuntime:
    """What a lifespan gets: the connected bus and this instance's identity."""

    bus: Bus
    subjects: Subjects
    events: Events
    instance: str
    service: str
    tracer: BackendTracer = field(default_factory=NoTracer)
    """Spans around backend calls (a query, an HTTP request), children of the current call's span."""


@dataclass(frozen=True, kw_only=True)
class ServicePlugin(Generic[S]):
    """One service kind. See the module docstring."""

    name: str
    summary: str
    settings: type[S]
    build: Callable[[S, ServiceOptions], Service]
    arguments: Sequence[Argument] = ()
    extra: str | None = None
    requires: tuple[str, ...] = ()
    list_keys: frozenset[str] = field(default_factory=frozenset)
    """Settings keys whose MCP_NATS_* value is a comma-separated list."""
    default: bool = False
    """Started by `mcp-nats up` (fs)."""

    def parse_settings(self, data: dict[str, Any] | msgspec.Struct | None) -> S:
        """The section as this plugin's Struct; raises ValueError naming the bad key."""
        if isinstance(data, self.settings):
            return data
        try:
            return msgspec.convert(data or {}, self.settings, strict=False)
        except msgspec.ValidationError as exc:
            text = str(exc)
            where = text.rsplit(" - at `$", 1)
            if len(where) == 2:
                raise ValueError(
                    f"bad configuration value for {self.name}.{where[1].rstrip('`').lstrip('.')}: {where[0]}"
                ) from None
            raise ValueError(f"bad configuration for [{self.name}]: {text}") from None
