"""The `memory` service: a knowledge graph on a JetStream KV bucket, shared by every instance."""

from ...plugin import ServicePlugin
from .graph import Entity as Entity
from .graph import Graph as Graph
from .graph import Relation as Relation
from .service import MemoryService as MemoryService
from .service import build as build
from .settings import MemorySettings as MemorySettings

plugin = ServicePlugin(
    name="memory",
    summary="a knowledge graph (entities, relations, observations) on JetStream KV, shared by every instance",
    settings=MemorySettings,
    build=build,
)

__all__ = ["Entity", "Graph", "MemoryService", "MemorySettings", "Relation", "build", "plugin"]
