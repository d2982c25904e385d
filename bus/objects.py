"""Claim checks: a result too big for one message travels through a JetStream object store.

The responder puts the bytes under the call id in bucket `<root>_results` (entries expire
after `ttl`) and replies with an `Mcp-Claim-Check: <bucket>/<name>` header and an empty
body; the caller fetches the object, then deletes it. Never a silent truncation: any failure
is an error naming what went wrong.
"""

from __future__ import annotations

import logging
from typing import Final

import nats.js.api
import nats.js.errors

from schemas.errors import PAYLOAD_TOO_LARGE

from .connection import Bus
from .errors import BusError, NotConnected

log = logging.getLogger(__name__)

CLAIM_CHECK: Final = "Mcp-Claim-Check"
RESULT_TTL: Final = 600.0


class ClaimCheckFailed(BusError):
    """Raised when a claim-checked result cannot be stored or fetched."""

    code = PAYLOAD_TOO_LARGE

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"the large result could not be {what} through the JetStream object store: {detail}")


def results_bucket(root: str) -> str:
    return f"{root}_results"


async def put_result(bus: Bus, name: str, data: bytes) -> str:
    """Store `data`; returns the claim-check header value. Raises ClaimCheckFailed."""
    bucket = results_bucket(bus.subjects.root)
    try:
        js = bus.nc.jetstream(timeout=10)
        try:
            store = await js.object_store(bucket)
        except nats.js.errors.BucketNotFoundError:
            store = await js.create_object_store(
                bucket,
                config=nats.js.api.ObjectStoreConfig(
                    ttl=RESULT_TTL, description="MCP results too large for one message"
                ),
            )
        await store.put(name, data)
    except Exception as exc:  # JetStream off, out of space, timeouts: the caller gets a clear error instead
        raise ClaimCheckFailed("stored", str(exc) or type(exc).__name__) from exc
    return f"{bucket}/{name}"


async def take_result(bus: Bus, claim: str, limit: int) -> bytes:
    """Fetch (then delete) a claim-checked result of at most `limit` bytes. Raises ClaimCheckFailed."""
    bucket, _, name = claim.partition("/")
    if bucket != results_bucket(bus.subjects.root) or not name:
        raise ClaimCheckFailed("fetched", f"unexpected claim check {claim!r}")
    try:
        store = await bus.nc.jetstream(timeout=10).object_store(bucket)
        info = await store.get_info(name)
        if info.size is not None and info.size > limit:
            raise ClaimCheckFailed(
                "fetched", f"it is {info.size} bytes, more than the {limit} bytes this bridge accepts"
            )
        result = await store.get(name)
        data = result.data or b""
    except BusError:
        raise
    except Exception as exc:
        if isinstance(exc, ConnectionError):
            raise NotConnected("the server", str(exc)) from exc
        raise ClaimCheckFailed("fetched", str(exc) or type(exc).__name__) from exc
    try:
        await store.delete(name)
    except Exception:  # it expires anyway (RESULT_TTL)
        log.debug("could not delete claim-checked result %s", claim, exc_info=True)
    return data
