"""JetStream stream snapshots and restores (`$JS.API.STREAM.SNAPSHOT` / `.RESTORE`), to and from files.

    info = await snapshot_stream(bus, "MCP_AUDIT", Path("backup/MCP_AUDIT.snap"))
    await restore_stream(bus, "MCP_AUDIT", Path("backup/MCP_AUDIT.snap"), info.config, info.state)

A snapshot is the server's own format (an s2-compressed tar of the stream's store, consumers
included), so a restore gives back the same messages at the same sequence numbers, with the
stream's configuration. The server sends chunks to a subject of ours and waits for each to be
acknowledged (flow control); the end is an empty message with status 204. A restore needs the
stream to be absent: the server refuses to overwrite one (JetStreamError).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import nats.errors

from .connection import Bus
from .errors import translate
from .jetstream import JetStreamError, StreamNotFound

log = logging.getLogger(__name__)

CHUNK: Final = 128 * 1024
_STREAM_NOT_FOUND: Final = 10059


@dataclass(frozen=True)
class Snapshot:
    """What a snapshot wrote: the stream's config and state as the server reported them, the file's size and SHA-256."""

    stream: str
    config: dict[str, Any]
    state: dict[str, Any]
    size: int
    sha256: str


async def _api(bus: Bus, subject: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        msg = await bus.nc.request(subject, msgspec.json.encode(body), timeout=timeout)
    except (nats.errors.Error, TimeoutError) as exc:
        raise translate(exc, subject=subject) from exc
    reply = msgspec.json.decode(msg.data)
    err = reply.get("error") if isinstance(reply, dict) else None
    if isinstance(err, dict):
        if err.get("err_code") == _STREAM_NOT_FOUND:
            raise StreamNotFound(subject.rsplit(".", 1)[-1])
        raise JetStreamError(str(err.get("description", err)))
    if not isinstance(reply, dict):
        raise JetStreamError(f"unexpected reply to {subject}")
    return reply


async def snapshot_stream(bus: Bus, stream: str, path: Path, *, timeout: float = 30.0) -> Snapshot:
    """Write a snapshot of `stream` to `path` (replaced whole: written beside it, then renamed).
    Raises StreamNotFound, JetStreamError, or a BusError when the server goes quiet for `timeout`."""
    deliver = f"{bus.inbox.prefix}.snapshot.{stream}.{time.monotonic_ns()}"
    try:
        sub = await bus.nc.subscribe(deliver)
    except nats.errors.Error as exc:
        raise translate(exc, subject=deliver) from exc
    tmp = path.with_name(f".{path.name}.partial")
    digest = hashlib.sha256()
    size = 0
    try:
        reply = await _api(
            bus,
            f"$JS.API.STREAM.SNAPSHOT.{stream}",
            {"deliver_subject": deliver, "chunk_size": CHUNK},
            timeout,
        )
        with tmp.open("wb") as out:
            while True:
                try:
                    msg = await sub.next_msg(timeout=timeout)
                except nats.errors.TimeoutError:
                    raise JetStreamError(
                        f"the snapshot of {stream} stalled ({size} bytes received)"
                    ) from None
                status = (msg.headers or {}).get("Status")
                if not msg.data:
                    if status not in (None, "204"):
                        raise JetStreamError(
                            f"the snapshot of {stream} failed: {(msg.headers or {}).get('Description', status)}"
                        )
                    break
                out.write(msg.data)
                digest.update(msg.data)
                size += len(msg.data)
                if msg.reply:
                    await bus.nc.publish(
                        msg.reply, b""
                    )  # flow control: the server sends more once acknowledged
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        try:
            await sub.unsubscribe()
        except nats.errors.Error:
            log.debug("snapshot unsubscribe failed", exc_info=True)
    config = reply.get("config")
    state = reply.get("state")
    return Snapshot(
        stream=stream,
        config=config if isinstance(config, dict) else {},
        state=state if isinstance(state, dict) else {},
        size=size,
        sha256=digest.hexdigest(),
    )


async def restore_stream(
    bus: Bus, stream: str, path: Path, config: dict[str, Any], state: dict[str, Any], *, timeout: float = 60.0
) -> dict[str, Any]:
    """Create `stream` from a snapshot file; returns the restored stream's state. Raises JetStreamError
    (the stream exists, the data is corrupt, limits) or a BusError."""
    reply = await _api(bus, f"$JS.API.STREAM.RESTORE.{stream}", {"config": config, "state": state}, timeout)
    deliver = reply.get("deliver_subject")
    if not isinstance(deliver, str) or not deliver:
        raise JetStreamError(f"the server offered no subject to restore {stream} to")
    try:
        with path.open("rb") as src:
            while chunk := src.read(CHUNK):
                await bus.nc.request(deliver, chunk, timeout=timeout)
        done = await bus.nc.request(deliver, b"", timeout=timeout)
    except (nats.errors.Error, TimeoutError) as exc:
        raise translate(exc, subject=deliver) from exc
    result = msgspec.json.decode(done.data)
    err = result.get("error") if isinstance(result, dict) else None
    if isinstance(err, dict):
        raise JetStreamError(f"restoring {stream} failed: {err.get('description', err)}")
    restored = result.get("state") if isinstance(result, dict) else None
    return restored if isinstance(restored, dict) else {}


async def delete_stream(bus: Bus, stream: str, *, timeout: float = 10.0) -> None:
    """Delete a stream and its messages (a restore with --replace). Raises StreamNotFound or JetStreamError."""
    await _api(bus, f"$JS.API.STREAM.DELETE.{stream}", {}, timeout)
