"""The `neo4j` service: one Neo4j database through the official async driver, read-only unless --write.

    mcp-nats serve neo4j --url neo4j://reader:password@graph:7687 [--name graph] [--write]

Tools as mcp-neo4j-cypher: get_schema (no APOC), read_cypher (EXPLAIN must report a read-only
plan; READ session and transaction; server-side timeout; row, byte and list caps), write_cypher
(only with --write).
"""

from ...plugin import Argument, ServicePlugin
from .errors import ConnectionLost as ConnectionLost
from .errors import GraphError as GraphError
from .errors import WriteRefused as WriteRefused
from .graph import Graph as Graph
from .graph import split_auth as split_auth
from .service import Neo4jService as Neo4jService
from .service import build as build
from .settings import Neo4jSettings as Neo4jSettings
from .values import to_json as to_json

plugin = ServicePlugin(
    name="neo4j",
    summary="a Neo4j graph database: schema and Cypher, read-only unless --write",
    settings=Neo4jSettings,
    build=build,
    arguments=(
        Argument(
            "--url",
            key="url",
            metavar="URL",
            help="neo4j://user:password@host:7687 (never printed with its password)",
        ),
        Argument("--write", key="write", kind="flag", help="register write_cypher (default: read-only)"),
        Argument(
            "--database", key="database", metavar="NAME", help="the database (default: the server's default)"
        ),
    ),
    extra="db",
    requires=("neo4j",),
)

__all__ = [
    "ConnectionLost",
    "Graph",
    "GraphError",
    "Neo4jService",
    "Neo4jSettings",
    "WriteRefused",
    "build",
    "plugin",
    "split_auth",
    "to_json",
]
