"""Rollout records on the bus: which service is shadowed by which candidate (a KV entry bridges read),
and what each shadowed call showed (a record on `<root>.rollout.shadow.<svc>`, kept in a stream)."""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import Struct

SHADOW_KEY_PREFIX: Final = "shadow."


def bucket(root: str) -> str:
    """The KV bucket holding the rollout settings of a subject root."""
    return f"{root}-rollout"


def stream(root: str) -> str:
    """The stream keeping shadow results: MCP_ROLLOUT for the root `mcp`, MCP_ROLLOUT_<root> otherwise."""
    return "MCP_ROLLOUT" if root == "mcp" else f"MCP_ROLLOUT_{root}"


class ShadowTarget(Struct, kw_only=True, frozen=True):
    """KV `shadow.<service>`: copy the service's read-only tool calls to `candidate`."""

    candidate: str
    since: str
    max_in_flight: int = 8
    """Shadow calls a bridge runs at once; more are skipped (counted), never queued without bound."""


class ShadowResult(Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One shadowed call: did the candidate answer the same, and how fast was each."""

    service: str
    candidate: str
    tool: str
    callId: str
    match: bool
    stableMs: float
    candidateMs: float
    time: str
    diff: str = ""
    """A unified diff of the two results (pretty JSON), cut to 4 KiB, when they differ."""
    error: str = ""
    """Why the candidate gave no result (no responder, deadline, error reply)."""


target_decoder: Final = msgspec.json.Decoder(ShadowTarget)
result_decoder: Final = msgspec.json.Decoder(ShadowResult)
encoder: Final = msgspec.json.Encoder()
