"""stdio <-> bus: the MCP server Claude Code launches. Owns the session, discovery, routing and both protocol eras."""

from .app import run_bridge as run_bridge
from .catalog import Catalog as Catalog
from .session import Session as Session

__all__ = ["Catalog", "Session", "run_bridge"]
