"""stdio <-> bus: the MCP server Claude Code launches. Owns the session, discovery, routing and both protocol eras."""

from .app import run_bridge as run_bridge
from .catalog import Catalog as Catalog
from .dispatch import Dispatcher as Dispatcher
from .methods import Methods as Methods
from .seam import BridgeSeam as BridgeSeam

__all__ = ["BridgeSeam", "Catalog", "Dispatcher", "Methods", "run_bridge"]
