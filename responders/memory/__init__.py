"""The `memory` service: a knowledge graph on a JetStream KV bucket, shared by every instance."""

from .graph import Entity as Entity
from .graph import Graph as Graph
from .graph import Relation as Relation
from .service import MemoryService as MemoryService
from .service import build as build

__all__ = ["Entity", "Graph", "MemoryService", "Relation", "build"]
