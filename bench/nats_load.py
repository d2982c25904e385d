"""The NATS load generator: drives responders directly over the bus, without the bridge.

Owns one bus connection and one reply subscription (`_BENCH_<id>.*`, the call index is the
last token). Requests carry the same headers the bridge sends (call id, deadline, protocol
version, heartbeat, client), so the responder does the work it does behind a bridge. The
loop is closed: each reply, checked (no error header, the echoed marker in the body), sends
the next request from the subscription callback, keeping `k` in flight.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any, Final

import msgspec

from bus import connect
from schemas import bus as h
from schemas.config import NatsSettings

from .stdio_load import Phase

SILENCE_S: Final = 30.0


async def wait_instances(url: str, root: str, svc: str, count: int, timeout: float = 20.0) -> list[str]:
    """Bounded wait until exactly `count` instances of `svc` answer `$SRV.PING`; their ids."""
    end = time.monotonic() + timeout
    ids: list[str] = []
    async with connect(
        NatsSettings(url=url, root=root), name="bench probe", ident="bp" + secrets.token_hex(4)
    ) as bus:
        while time.monotonic() < end:
            replies = await bus.scatter(f"$SRV.PING.{root}-{svc}", idle=0.1, limit=1.0)
            ids = [msgspec.json.decode(r.data)["id"] for r in replies]
            if len(ids) == count:
                return ids
            await asyncio.sleep(0.05)
    raise TimeoutError(f"expected {count} instances of {svc}, found {len(ids)} within {timeout:.0f} s")


async def drive(
    url: str, root: str, *, svc: str, tool: str, k: int, count: int, max_seconds: float, warmup: int
) -> Phase:
    """`warmup` calls, then up to `count` calls or `max_seconds` with `k` in flight; the timed Phase."""
    ident = "bench" + secrets.token_hex(4)
    async with connect(NatsSettings(url=url, root=root), name=f"mcp-nats bench {ident}", ident=ident) as bus:
        subject = bus.subjects.tool_call(svc, tool)
        prefix = f"_BENCH_{ident}"
        cut = len(prefix) + 1
        nc = bus.nc
        state: dict[str, Any] = {}

        def headers(i: int) -> dict[str, str]:
            return {
                h.CALL_ID: f"{ident}-{i}",
                h.DEADLINE: str(int((time.time() + 30) * 1000)),
                h.PROTOCOL_VERSION: "2025-06-18",
                h.HEARTBEAT: "1000",
                h.CLIENT: "bench",
            }

        async def send(i: int) -> None:
            state["sent"][i] = time.perf_counter_ns()
            await nc.publish(
                subject,
                b'{"name":"%s","arguments":{"text":"m%d"}}' % (tool.encode(), i),
                reply=f"{prefix}.{i}",
                headers=headers(i),
            )

        async def on_reply(msg: Any) -> None:
            t = time.perf_counter_ns()
            phase: Phase = state["phase"]
            sent: dict[int, int] = state["sent"]
            try:
                i = int(msg.subject[cut:])
            except ValueError:
                phase.failures["bad reply subject"] += 1
                return
            hdrs = msg.headers
            if hdrs and hdrs.get(h.FRAME):
                phase.notifications += 1  # a heartbeat frame; the final reply follows
                return
            t0 = sent.pop(i, None)
            if t0 is None:
                phase.failures["unknown id"] += 1
                return
            if hdrs and h.SERVICE_ERROR_CODE in hdrs:
                phase.failures[f"error {hdrs[h.SERVICE_ERROR_CODE]}"] += 1
            elif b'"m%d"' % i not in msg.data:
                phase.failures["wrong payload (marker missing)"] += 1
            else:
                phase.latencies.append(t - t0)
            n = state["issued"]
            if n < state["count"] and time.perf_counter() < state["stop_at"]:
                state["issued"] = n + 1
                await send(n)
            elif not sent:
                state["done"].set()

        sub = await bus.subscribe(f"{prefix}.*", on_reply)
        try:
            result = Phase("nats", k)
            for n, limit, record in ((warmup, 1e9, False), (count, max_seconds, True)):
                phase = Phase("nats", k)
                state.update(phase=phase, sent={}, issued=0, count=n, done=asyncio.Event())
                t0 = time.perf_counter()
                state["stop_at"] = t0 + limit
                first = min(k, n)
                state["issued"] = first
                for i in range(first):
                    await send(i)
                await asyncio.wait_for(state["done"].wait(), limit + SILENCE_S)
                phase.elapsed = time.perf_counter() - t0
                if record:
                    result = phase
            return result
        finally:
            await sub.unsubscribe()
