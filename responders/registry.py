"""The service registry: every `ServicePlugin` installed as an entry point (group `mcp_nats.services`),
plus any registered in-process with `register()`.

Entry points are read once per process, lazily; a plugin whose module fails to import is reported
when that service is asked for, never when another one is.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Final

from .errors import MissingExtra, UnknownService
from .plugin import ServicePlugin

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

log = logging.getLogger(__name__)

GROUP: Final = "mcp_nats.services"

_registered: dict[str, ServicePlugin[Any]] = {}


def register(plugin: ServicePlugin[Any]) -> ServicePlugin[Any]:
    """Add a plugin in this process (tests, embedding); it wins over an entry point of the same name."""
    _registered[plugin.name] = plugin
    return plugin


def unregister(name: str) -> None:
    _registered.pop(name, None)


def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points  # costs ~25 ms: only when a service is looked up

    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    """Every service kind known here, sorted (entry points are not imported for this)."""
    return sorted(set(_entry_points()) | set(_registered))


def get(name: str, *, check: bool = True) -> ServicePlugin[Any]:
    """The plugin named `name`. Raises UnknownService, or (with `check`) MissingExtra when its backends
    are not installed; without `check` only its own module is imported (to read its settings)."""
    if name in _registered:
        plugin = _registered[name]
    else:
        ep = _entry_points().get(name)
        if ep is None:
            raise UnknownService(name, names())
        try:
            plugin = ep.load()
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.partition(".")[0] == ep.module.partition(".")[0]:
                raise  # a bug in the plugin's own package, not a missing backend
            raise MissingExtra(name, None, exc.name) from exc
        if not isinstance(plugin, ServicePlugin) or plugin.name != name:
            raise UnknownService(
                name, names(), f"the entry point {ep.value} is not a ServicePlugin named {name!r}"
            )
    if check:
        check_requirements(plugin)
    return plugin


def check_requirements(plugin: ServicePlugin[Any]) -> None:
    """Import each module the plugin requires; the first missing one is a MissingExtra naming the extra."""
    for module in plugin.requires:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtra(plugin.name, plugin.extra, module) from exc
