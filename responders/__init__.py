"""The service runtime (plugins, registry, per-call seam, serve loop) and the services built on it.

The light parts (errors, the plugin types, the registry) are imported at once; the runtime, which
pulls in the NATS client, only when first used, so that reading the configuration or building
the command line (`mcp-nats bridge` starts in well under 100 ms) does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import registry as registry
from .errors import InvalidArguments as InvalidArguments
from .errors import MissingExtra as MissingExtra
from .errors import ProtocolError as ProtocolError
from .errors import ToolError as ToolError
from .errors import UnknownService as UnknownService
from .plugin import Argument as Argument
from .plugin import ServiceOptions as ServiceOptions
from .plugin import ServicePlugin as ServicePlugin
from .plugin import ServiceRuntime as ServiceRuntime

if TYPE_CHECKING:
    from .context import Context as Context
    from .events import Events as Events
    from .process import serve as serve
    from .runtime import ServiceRunner as ServiceRunner
    from .runtime import new_instance_id as new_instance_id
    from .seam import Seam as Seam
    from .service import Service as Service
    from .service import ToolSpec as ToolSpec

_LAZY = {
    "Context": ".context",
    "Events": ".events",
    "serve": ".process",
    "ServiceRunner": ".runtime",
    "new_instance_id": ".runtime",
    "Seam": ".seam",
    "Service": ".service",
    "ToolSpec": ".service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'responders' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Argument",
    "Context",
    "Events",
    "InvalidArguments",
    "MissingExtra",
    "ProtocolError",
    "Seam",
    "Service",
    "ServiceOptions",
    "ServicePlugin",
    "ServiceRunner",
    "ServiceRuntime",
    "ToolError",
    "ToolSpec",
    "UnknownService",
    "new_instance_id",
    "registry",
    "serve",
]
