"""Pure data: msgspec Structs and codecs for JSON-RPC, MCP payloads, bus metadata and settings. No I/O."""

from . import bus as bus
from . import jsonrpc as jsonrpc
from . import mcp as mcp
from .config import BridgeSettings as BridgeSettings
from .config import NatsSettings as NatsSettings
from .config import ResponderSettings as ResponderSettings
from .config import Settings as Settings

__all__ = [
    "BridgeSettings",
    "NatsSettings",
    "ResponderSettings",
    "Settings",
    "bus",
    "jsonrpc",
    "mcp",
]
