"""The service runtime (tool registry, serve loop) and the services built on it."""

from .context import Context as Context
from .errors import InvalidArguments as InvalidArguments
from .errors import ProtocolError as ProtocolError
from .errors import ToolError as ToolError
from .process import SERVICES as SERVICES
from .process import build_service as build_service
from .process import serve as serve
from .runtime import ServiceRunner as ServiceRunner
from .runtime import new_instance_id as new_instance_id
from .service import Service as Service
from .service import ToolSpec as ToolSpec

__all__ = [
    "SERVICES",
    "Context",
    "InvalidArguments",
    "ProtocolError",
    "Service",
    "ServiceRunner",
    "ToolError",
    "ToolSpec",
    "build_service",
    "new_instance_id",
    "serve",
]
