"""The services a policy can name and the tools each registers: every installed service plugin,
built with its default settings (issue #11, `bus/permissions.py` explains what the names are for).

A service whose tools depend on its settings registers here what its defaults give (fs with its
default root, read-write, registers every tool). A service that cannot be built without settings
is still known by name; only its `svc.*` and exact-name patterns then become permissions.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.config import Settings

if TYPE_CHECKING:
    from responders.service import Service

log = logging.getLogger("mcp-nats")


def catalog(settings: Settings) -> dict[str, list[str]]:
    """service name -> sorted tool names (empty when the service cannot be built with defaults)."""
    from responders import registry

    out: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="mcp-nats-catalog-") as tmp:
        for name in registry.names():
            try:
                out[name] = sorted(_build(name, settings, Path(tmp)).tools)
            except Exception as exc:  # a plugin's build may fail in any way without its settings
                log.warning(
                    "cannot list the tools of %s with its default settings (%s); only %s.* and exact names apply",
                    name,
                    exc,
                    name,
                )
                out[name] = []
    return out


def _build(name: str, settings: Settings, state: Path) -> Service:
    from responders import registry
    from responders.plugin import ServiceOptions

    plugin = registry.get(name)
    return plugin.build(plugin.parse_settings(None), ServiceOptions(name=name, state_dir=state))
