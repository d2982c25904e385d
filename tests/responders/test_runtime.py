"""The responder runtime in-process against the real nats-server: validation, errors, deadline, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from bus import Bus
from responders import Context, Service, ServiceRunner, ToolError
from schemas.config import ResponderSettings

pytestmark = pytest.mark.anyio


class Point(msgspec.Struct):
    x: int
    y: int


def make_service() -> Service:
    svc = Service("unit", "1.0.0", "unit-test service")

    @svc.tool(read_only=True)
    def add(a: int, b: int = 1) -> Point:
        """Add."""
        return Point(x=a + b, y=0)

    @svc.tool
    def fails_politely(reason: str) -> str:
        """Raise a ToolError."""
        raise ToolError(f"cannot: {reason}")

    @svc.tool
    def crashes() -> str:
        """Raise an unexpected exception carrying a secret."""
        raise RuntimeError("secret-token-123")

    @svc.tool
    async def waits(seconds: float, ctx: Context) -> str:
        """Sleep."""
        await asyncio.sleep(seconds)
        return ctx.call_id

    return svc


@pytest.fixture
async def served(bus: Bus) -> AsyncIterator[Bus]:
    stop = asyncio.Event()
    ready = asyncio.Event()
    runner = ServiceRunner(make_service(), bus, ResponderSettings())
    task = asyncio.create_task(runner.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 5)
    yield bus
    stop.set()
    await asyncio.wait_for(task, 10)


async def call(
    bus: Bus, tool: str, args: object, headers: dict[str, str] | None = None, timeout: float = 5
) -> tuple[dict[str, Any], dict[str, str]]:
    body = msgspec.json.encode({"name": tool, "arguments": args})
    msg = await bus.request(f"{bus.subjects.root}.unit.tools.call.{tool}", body, headers, timeout=timeout)
    return msgspec.json.decode(msg.data), msg.headers or {}


def test_decorator_returns_the_function_unchanged() -> None:
    """`@service.tool` registers the function and returns it as it was, directly callable."""
    svc = Service("x", "1", "x")

    def f(a: int) -> str:
        return str(a)

    assert svc.tool(f) is f and f(2) == "2" and "f" in svc.tools
    schema = svc.tools["f"].signature.input_schema
    assert schema["type"] == "object" and schema["required"] == ["a"]


async def test_structured_result_and_schema(served: Bus) -> None:
    """A Struct return value becomes structuredContent, and the tool lists an outputSchema."""
    result, headers = await call(served, "add", {"a": 2, "b": 3})
    assert result["structuredContent"] == {"x": 5, "y": 0}
    assert result["resultType"] == "complete" and "Mcp-Instance" in headers
    listed = msgspec.json.decode(
        (await served.request(f"{served.subjects.root}.unit.tools.list", b"{}", timeout=5)).data
    )
    add = next(t for t in listed["tools"] if t["name"] == "add")
    assert add["outputSchema"]["properties"]["x"]["type"] == "integer"
    assert add["annotations"]["readOnlyHint"] is True


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"a": "two"}, "'a'"),
        ({}, "missing required argument 'a'"),
        ({"a": 1, "zzz": 2}, "unknown argument 'zzz'"),
        ([1], "add"),
    ],
)
async def test_bad_arguments_are_tool_errors_naming_the_field(
    served: Bus, args: object, fragment: str
) -> None:
    """Arguments that fail validation give isError results that name the offending argument."""
    result, _ = await call(served, "add", args)
    assert result["isError"] is True and fragment in result["content"][0]["text"]


async def test_tool_error_and_crash(served: Bus) -> None:
    """A ToolError's sentence reaches the caller; an unexpected exception leaks neither its text nor a traceback."""
    polite, _ = await call(served, "fails_politely", {"reason": "disk full"})
    assert polite["isError"] is True and polite["content"][0]["text"] == "cannot: disk full"
    crash, _ = await call(served, "crashes", {})
    text = crash["content"][0]["text"]
    assert (
        crash["isError"] is True
        and "secret-token-123" not in text
        and "Traceback" not in text
        and "call id" in text
    )


async def test_unknown_tool_and_subject_body_mismatch(served: Bus) -> None:
    """An unknown tool, or a body naming another tool than the subject, is a -32602 JSON-RPC error."""
    root = served.subjects.root
    msg = await served.request(f"{root}.unit.tools.call.nope", b'{"name":"nope"}', timeout=5)
    assert msg.headers and msg.headers["Nats-Service-Error-Code"] == "-32602"
    smuggled = await served.request(
        f"{root}.unit.tools.call.add", b'{"name":"crashes","arguments":{}}', timeout=5
    )
    assert smuggled.headers and smuggled.headers["Nats-Service-Error-Code"] == "-32602"


async def test_deadline_header_stops_the_work(served: Bus) -> None:
    """A call whose Mcp-Deadline passes is stopped by the responder and answered with the deadline code."""
    deadline = str(int((time.time() + 0.3) * 1000))
    t0 = time.monotonic()
    msg = await served.request(
        f"{served.subjects.root}.unit.tools.call.waits",
        b'{"name":"waits","arguments":{"seconds":5}}',
        {"Mcp-Deadline": deadline, "Mcp-Call-Id": "c1"},
        timeout=5,
    )
    assert msg.headers and msg.headers["Nats-Service-Error-Code"] == "-31002"
    assert time.monotonic() - t0 < 4


async def test_a_quick_sync_tool_runs_inline_and_still_honours_a_passed_deadline(served: Bus) -> None:
    """Quick synchronous tools run without a timer or a cancel registration; a deadline already
    passed when the call arrives still gets the deadline error, and the tool does not run."""
    assert (
        served is not None and make_service().tools["add"].inline and not make_service().tools["waits"].inline
    )
    ok, _ = await call(served, "add", {"a": 1}, {"Mcp-Deadline": str(int((time.time() + 30) * 1000))})
    assert ok["structuredContent"] == {"x": 2, "y": 0}
    msg = await served.request(
        f"{served.subjects.root}.unit.tools.call.add",
        b'{"name":"add","arguments":{"a":1}}',
        {"Mcp-Deadline": str(int((time.time() - 1) * 1000)), "Mcp-Call-Id": "late"},
        timeout=5,
    )
    assert msg.headers and msg.headers["Nats-Service-Error-Code"] == "-31002"


async def test_cancel_subject_cancels_the_call_without_reply(served: Bus) -> None:
    """A publish on <root>.<svc>.cancel with the call id cancels the handler, and no reply is sent."""
    root = served.subjects.root
    call_ = served.open_call(f"{root}.unit.tools.call.waits")
    with call_:
        await served.publish(
            f"{root}.unit.tools.call.waits",
            b'{"name":"waits","arguments":{"seconds":3}}',
            {"Mcp-Call-Id": "cx", "Mcp-Heartbeat": "100"},
            reply=call_.reply,
        )
        frame = await call_.next(2.0, asyncio.get_running_loop().time() + 2)
        assert frame.kind == "heartbeat"  # it is running
        await served.publish(f"{root}.unit.cancel", b'{"callId":"cx"}')
        from bus import DeadlineExceeded, ResponderLost

        with pytest.raises((ResponderLost, DeadlineExceeded)):
            while True:  # heartbeats stop and no final reply ever comes
                f = await call_.next(0.5, asyncio.get_running_loop().time() + 1.5)
                assert f.kind == "heartbeat"
