"""Neo4j values as JSON: nodes, relationships and paths as objects, temporal values ISO 8601,
points as {srid, x, y[, z]}, bytes base64, NaN and infinities spelled out, and lists of
`max_list` or more elements (embeddings) replaced by a note, as mcp-neo4j-cypher does."""

from __future__ import annotations

import base64
import math
from typing import Any

from neo4j.graph import Node, Path, Relationship
from neo4j.spatial import Point
from neo4j.time import Date, DateTime, Duration, Time


def to_json(v: Any, max_list: int) -> Any:
    """One driver value as JSON-safe data (see the module docstring). Duration and Point are tuples: they
    are matched before lists."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, dict):
        return {str(k): to_json(x, max_list) for k, x in v.items()}
    if isinstance(v, Node):
        return {
            "elementId": v.element_id,
            "labels": sorted(v.labels),
            "properties": to_json(dict(v), max_list),
        }
    if isinstance(v, Relationship):
        return {
            "elementId": v.element_id,
            "type": v.type,
            "start": v.start_node.element_id if v.start_node is not None else None,
            "end": v.end_node.element_id if v.end_node is not None else None,
            "properties": to_json(dict(v), max_list),
        }
    if isinstance(v, Path):
        return {
            "nodes": [to_json(n, max_list) for n in v.nodes],
            "relationships": [to_json(r, max_list) for r in v.relationships],
        }
    if isinstance(v, DateTime | Date | Time | Duration):
        return v.iso_format()
    if isinstance(v, Point):
        out: dict[str, Any] = {"srid": v.srid, "x": v[0], "y": v[1]}
        if len(v) > 2:
            out["z"] = v[2]
        return out
    if isinstance(v, list | tuple):
        if len(v) >= max_list:
            return f"(a list of {len(v)} elements, left out: lists of {max_list} or more are not returned)"
        return [to_json(x, max_list) for x in v]
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode("ascii")
    return str(v)
