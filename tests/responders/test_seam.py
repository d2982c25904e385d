"""The responder's per-call seam: observers see every call begin and end, may refuse one, and never break one."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from bus import Bus
from responders import Context, Seam, Service, ToolError, serve
from schemas import bus as h
from schemas.bus import CancelRequest, cancel_encoder
from schemas.config import AuditSettings, NatsSettings, Settings
from schemas.errors import INVALID_PARAMS, RATE_LIMITED
from schemas.observe import Observers, Refusal, ToolCall

from ..audit_helpers import read_records, start_running_call, wait_count

pytestmark = pytest.mark.anyio


class Counting:
    """Counts what it saw, by outcome; checks every call ends once after it started."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: Counter[str] = Counter()
        self.tools: Counter[str] = Counter()
        self.cancelled = asyncio.Event()

    def call_started(self, call: ToolCall) -> Refusal | None:
        self.started.append(call.call_id)
        return None

    def call_ended(self, call: ToolCall) -> None:
        assert call.call_id in self.started, "call_ended without call_started"
        self.ended[call.outcome] += 1
        self.tools[call.tool] += 1
        if call.outcome == "cancelled":
            self.cancelled.set()


class Raising:
    """An observer with a bug: it raises on every call."""

    def call_started(self, call: ToolCall) -> Refusal | None:
        raise RuntimeError("observer bug (start)")

    def call_ended(self, call: ToolCall) -> None:
        raise RuntimeError("observer bug (end)")


class RefuseTool:
    """Refuses one tool, as a rate limit would."""

    def __init__(self, tool: str) -> None:
        self.tool = tool

    def call_started(self, call: ToolCall) -> Refusal | None:
        if call.tool == self.tool:
            return Refusal(code=RATE_LIMITED, message=f"{call.tool}: too many calls", retry_after=1.5)
        return None

    def call_ended(self, call: ToolCall) -> None:
        return None


def make_service(ran: list[str]) -> Service:
    svc = Service("seamed", "1.0.0", "seam tests")

    @svc.tool(read_only=True)
    def echo(text: str) -> str:
        """Echo."""
        ran.append("echo")
        return text

    @svc.tool
    def fail(reason: str) -> str:
        """Fail as a tool."""
        raise ToolError(reason)

    @svc.tool(read_only=True)
    async def wait(seconds: float, ctx: Context) -> str:
        """Report progress once, then sleep."""
        await ctx.report_progress(0, 1)
        await asyncio.sleep(seconds)
        return "waited"

    @svc.tool(read_only=True)
    def limited() -> str:
        """Refused by the test's observer."""
        ran.append("limited")
        return "ran"

    return svc


async def _serve(
    nats: NatsSettings, tmp: Path, service: Service, observers: Observers
) -> AsyncIterator[None]:
    settings = Settings(
        state_dir=str(tmp), nats=nats, audit=AuditSettings(spool_dir=str(tmp / "spool"), retry_interval=0.2)
    )
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(
        serve(service, settings, observers=observers, stop=stop, ready=lambda _r: ready.set())
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def _body(tool: str, args: object) -> bytes:
    return msgspec.json.encode({"name": tool, "arguments": args})


async def test_audit_and_an_observer_count_the_same_calls_and_a_raising_observer_breaks_nothing(
    bus: Bus, nats_settings: NatsSettings, root: str, tmp_path: Path
) -> None:
    """With a raising observer in the seam, every call still gets its answer, and the audit log and a
    counting observer agree on the same calls by outcome: ok, tool errors, refusals, deadline and cancel."""
    counting = Counting()
    ran: list[str] = []
    gen = _serve(nats_settings, tmp_path, make_service(ran), Observers(calls=(Raising(), counting)))
    await gen.__anext__()
    try:
        subjects = bus.subjects
        for i in range(5):
            reply = msgspec.json.decode(
                (
                    await bus.request(
                        subjects.tool_call("seamed", "echo"), _body("echo", {"text": f"t{i}"}), timeout=5
                    )
                ).data
            )
            assert reply["content"][0]["text"] == f"t{i}"
        for _ in range(2):
            reply = msgspec.json.decode(
                (
                    await bus.request(
                        subjects.tool_call("seamed", "fail"), _body("fail", {"reason": "no"}), timeout=5
                    )
                ).data
            )
            assert reply["isError"] is True
        bad = await bus.request(subjects.tool_call("seamed", "echo"), b"{not json", timeout=5)
        assert (bad.headers or {}).get(h.SERVICE_ERROR_CODE) == str(INVALID_PARAMS)
        unknown = await bus.request(subjects.tool_call("seamed", "nope"), _body("nope", {}), timeout=5)
        assert (unknown.headers or {}).get(h.SERVICE_ERROR_CODE) is not None
        past = str(int((time.time() - 1) * 1000))
        late = await bus.request(
            subjects.tool_call("seamed", "wait"), _body("wait", {"seconds": 0}), {h.DEADLINE: past}, timeout=5
        )
        assert (late.headers or {}).get(h.SERVICE_ERROR_CODE) is not None
        body = msgspec.json.encode(
            {"name": "wait", "arguments": {"seconds": 30}, "_meta": {"progressToken": 1}}
        )
        call = await start_running_call(
            bus, subjects.tool_call("seamed", "wait"), body, {h.CALL_ID: "cancel-me"}
        )
        with call:
            await bus.publish(
                subjects.cancel("seamed"), cancel_encoder.encode(CancelRequest(callId="cancel-me"))
            )
            await bus.flush()
            await asyncio.wait_for(counting.cancelled.wait(), 10)
    finally:
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
    expected = Counter({"ok": 5, "tool_error": 2, "protocol_error": 2, "deadline": 1, "cancelled": 1})
    assert counting.ended == expected
    assert await wait_count(bus, root, sum(expected.values()), 10) == sum(expected.values())
    records = await read_records(bus, root)
    assert Counter(r.outcome for r in records) == expected
    assert Counter(r.tool for r in records) == counting.tools
    assert ran.count("echo") == 5


async def test_a_refusal_stops_the_call_before_its_handler_with_a_retry_hint(
    bus: Bus, nats_settings: NatsSettings, root: str, tmp_path: Path
) -> None:
    """An observer's Refusal is answered with its code and data.retryAfterMs; the handler never runs; it is audited."""
    ran: list[str] = []
    counting = Counting()
    gen = _serve(
        nats_settings, tmp_path, make_service(ran), Observers(calls=(RefuseTool("limited"), counting))
    )
    await gen.__anext__()
    try:
        msg = await bus.request(bus.subjects.tool_call("seamed", "limited"), _body("limited", {}), timeout=5)
        error = msgspec.json.decode(msg.data)
        assert error["code"] == RATE_LIMITED and error["data"] == {"retryAfterMs": 1500}
        assert "too many calls" in error["message"]
        ok = msgspec.json.decode(
            (
                await bus.request(
                    bus.subjects.tool_call("seamed", "echo"), _body("echo", {"text": "x"}), timeout=5
                )
            ).data
        )
        assert ok["content"][0]["text"] == "x"
    finally:
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
    assert ran == ["echo"]
    assert counting.ended == Counter({"protocol_error": 1, "ok": 1})
    assert await wait_count(bus, root, 2, 10) == 2
    refused = [r for r in await read_records(bus, root) if r.tool == "limited"]
    assert [(r.outcome, r.errorCode) for r in refused] == [("protocol_error", RATE_LIMITED)]


def test_seam_returns_the_first_refusal_and_logs_a_failing_observer_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seam.start returns the first Refusal while every observer still sees the call; a raising observer is logged once."""
    counting = Counting()
    seam = Seam([Raising(), RefuseTool("x"), counting, RefuseTool("x")])
    call = ToolCall(
        service="s",
        tool="x",
        call_id="c1",
        instance="i",
        identity="",
        verified=False,
        headers={},
        arguments=b"{}",
        started_ns=0,
    )
    refusal = seam.start(call)
    assert refusal is not None and refusal.code == RATE_LIMITED
    assert counting.started == ["c1"]
    other = ToolCall(
        service="s",
        tool="y",
        call_id="c2",
        instance="i",
        identity="",
        verified=False,
        headers={},
        arguments=None,
        started_ns=0,
    )
    assert seam.start(other) is None and counting.started == ["c1", "c2"]
    seam.end(other)
    seam.end(other)
    assert counting.ended["ok"] == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2  # one for call_started, one for call_ended, despite repeated failures
    assert (
        call.args_digest is not None and call.args_digest.startswith("sha256:") and other.args_digest is None
    )
