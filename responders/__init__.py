"""The service runtime (plugins, registry, per-call seam, serve loop) and the services built on it."""

from .context import Context as Context
from .errors import InvalidArguments as InvalidArguments
from .errors import MissingExtra as MissingExtra
from .errors import ProtocolError as ProtocolError
from .errors import ToolError as ToolError
from .errors import UnknownService as UnknownService
from .events import Events as Events
from .plugin import Argument as Argument
from .plugin import ServiceOptions as ServiceOptions
from .plugin import ServicePlugin as ServicePlugin
from .plugin import ServiceRuntime as ServiceRuntime
from .process import serve as serve
from .runtime import ServiceRunner as ServiceRunner
from .runtime import new_instance_id as new_instance_id
from .seam import Seam as Seam
from .service import Service as Service
from .service import ToolSpec as ToolSpec

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
    "serve",
]
