"""Helpers for the audit tests: start the `audited` test responder, write its config, read the audit stream."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from bus import Bus, Call, JetStream, StreamNotFound, stream_name
from schemas.audit import AuditRecord, record_decoder

from .conftest import Responders, child_env

REPO = Path(__file__).resolve().parent.parent
SERVICE = "audited"


def write_config(path: Path, state_dir: Path, **audit: Any) -> Path:
    """A TOML settings file with `state_dir` and the given `[audit]` keys."""
    lines = [f'state_dir = "{state_dir}"', "[audit]"]
    for key, value in audit.items():
        lines.append(
            f'{key} = "{value}"'
            if isinstance(value, str)
            else f"{key} = {str(value).lower() if isinstance(value, bool) else value}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def start_audited(responders: Responders, config: Path | None = None) -> subprocess.Popen[bytes]:
    """Start one `audited` responder process; `responders` stops it after the test."""
    argv = [sys.executable, "-m", "tests.audit_service", responders.url, responders.root]
    if config is not None:
        argv.append(str(config))
    proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, env=child_env())
    responders.procs.append(proc)
    return proc


def call_body(tool: str, arguments: Any, progress: bool = False) -> bytes:
    body: dict[str, Any] = {"name": tool, "arguments": arguments}
    if progress:
        body["_meta"] = {"progressToken": 1}
    return msgspec.json.encode(body)


async def read_records(bus: Bus, root: str) -> list[AuditRecord]:
    """Every record in the root's audit stream, in stream order ([] when the stream does not exist yet)."""
    js = JetStream(bus)
    name = stream_name("audit", root)
    out: list[AuditRecord] = []
    seq = 1
    try:
        while True:
            batch = await js.get_batch(name, f"{root}.audit.>", seq=seq, batch=1000)
            out.extend(record_decoder.decode(m.data) for m in batch.messages)
            if not batch.messages or batch.pending == 0:
                return out
            seq = batch.messages[-1].seq + 1
    except StreamNotFound:
        return []


async def stream_count(bus: Bus, root: str) -> int:
    try:
        return (await JetStream(bus).stream_state(stream_name("audit", root))).messages
    except StreamNotFound:
        return 0


async def wait_count(bus: Bus, root: str, count: int, timeout: float) -> int:
    """Bounded wait until the audit stream holds at least `count` records; returns what it holds."""
    end = time.monotonic() + timeout
    n = await stream_count(bus, root)
    while n < count and time.monotonic() < end:
        await asyncio.sleep(0.05)
        n = await stream_count(bus, root)
    return n


async def start_running_call(
    bus: Bus, subject: str, body: bytes, headers: dict[str, str], timeout: float = 10.0
) -> Call:
    """Publish a call that reports progress first; return once that progress frame arrived (the call is running)."""
    call = bus.open_call(subject)
    await bus.publish(subject, body, headers, reply=call.reply)
    loop = asyncio.get_running_loop()
    frame = await call.next(timeout, loop.time() + timeout)
    assert not frame.is_final, f"expected a progress frame first, got a final reply: {frame.data[:200]!r}"
    return call
