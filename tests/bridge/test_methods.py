"""The bridge's JSON-RPC dispatch and MCP methods in-process, against an in-memory twin of the bus side.

No nats-server and no subprocess: the twin implements `methods.Upstream` over plain Python, so
every branch of dispatch (tasks, cancellation, batches, errors) and of the seam runs here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from msgspec import Raw

from bridge import BridgeSeam, Catalog, Dispatcher, Methods
from schemas.config import Settings
from schemas.errors import INVALID_REQUEST, METHOD_NOT_FOUND, NO_RESPONDER
from schemas.mcp import CallToolParams, Tool
from schemas.observe import BridgeRequest, CircuitState

pytestmark = pytest.mark.anyio


class Twin:
    """methods.Upstream in memory: one service `svc` with tools `echo` (answers), `slow` (waits) and `down` (no responder)."""

    def __init__(self) -> None:
        schema = Raw(b'{"type":"object"}')
        self._catalog = Catalog({"svc": [Tool(name=n, inputSchema=schema) for n in ("echo", "slow", "down")]})
        self.headers: list[dict[str, str]] = []
        self.cancelled = asyncio.Event()

    async def catalog(self) -> Catalog:
        return self._catalog

    async def call_tool(
        self,
        name: str,
        params: CallToolParams,
        *,
        protocol_version: str,
        notify: Callable[[bytes], None],
        headers: dict[str, str],
        req: BridgeRequest,
    ) -> Raw:
        from bridge.errors import ServiceDown

        self.headers.append(headers)
        req.service, req.attempts = "svc", 1
        if name == "svc_down":
            raise ServiceDown("svc")
        if name == "svc_slow":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        text = msgspec.json.decode(bytes(params.arguments)) if params.arguments is not msgspec.UNSET else {}
        return Raw(
            msgspec.json.encode(
                {"content": [{"type": "text", "text": json.dumps(text)}], "isError": name == "svc_bad"}
            )
        )

    async def list_prompts(self) -> list[Raw]:
        return []

    async def get_prompt(self, params: Raw, version: str) -> Raw:
        return Raw(b"{}")

    async def complete(self, params: Raw, version: str) -> Raw:
        return Raw(b"{}")

    async def list_resources(self) -> list[Raw]:
        return [Raw(b'{"uri":"a://1","name":"one"}')]

    async def list_templates(self) -> list[Raw]:
        return []

    async def read_resource(self, uri: str, params: Raw, protocol_version: str, modern: bool) -> Raw:
        return Raw(b'{"contents":[]}')


class Seen:
    """A BridgeObserver that keeps what it saw."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[tuple[str, str, str | None, int | None, int]] = []

    def request_started(self, req: BridgeRequest) -> None:
        self.started.append(req.method)
        req.traceparent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"  # as a tracing observer would

    def request_ended(self, req: BridgeRequest) -> None:
        self.ended.append((req.method, req.outcome, req.tool, req.code, req.attempts))

    def retried(self, service: str) -> None: ...

    def circuit_changed(self, service: str, state: CircuitState) -> None: ...

    def instances_changed(self, service: str, count: int) -> None: ...


class Out:
    def __init__(self) -> None:
        self.lines: list[Any] = []
        self.got = asyncio.Event()

    def write(self, line: bytes) -> None:
        self.lines.append(json.loads(line))
        self.got.set()

    async def wait(self, n: int) -> list[Any]:
        async with asyncio.timeout(5):
            while len(self.lines) < n:
                self.got.clear()
                await self.got.wait()
        return self.lines


def make() -> tuple[Dispatcher, Out, Twin, Seen]:
    out, twin, seen = Out(), Twin(), Seen()
    settings = Settings()
    methods = Methods(settings, out.write, twin, BridgeSeam([seen]))
    return Dispatcher(out.write, methods, max_line_bytes=1 << 20, max_inflight=8), out, twin, seen


def line(obj: object) -> bytes:
    return json.dumps(obj).encode()


INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}},
}


async def test_requests_answer_in_any_order_and_the_seam_sees_each_once() -> None:
    """A slow call does not hold up a ping; each request is started and ended once on the seam, with its tool and outcome."""
    d, out, twin, seen = make()
    d.feed(line(INIT))
    d.feed(line({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "svc_slow"}}))
    d.feed(line({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
    d.feed(
        line(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "svc_echo", "arguments": {"a": 1}},
            }
        )
    )
    lines = await out.wait(3)
    assert [m["id"] for m in lines] == [0, 2, 3]
    await asyncio.sleep(0)  # done-callbacks run on the next turn of the loop
    assert d.in_flight == 1
    d.feed(line({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}))
    async with asyncio.timeout(5):
        await twin.cancelled.wait()
    await asyncio.sleep(0)
    await d.close()
    assert len(out.lines) == 3  # a cancelled request gets no response
    assert sorted(seen.ended) == sorted(
        [
            ("initialize", "ok", None, None, 0),
            ("ping", "ok", None, None, 0),
            ("tools/call", "ok", "svc_echo", None, 1),
            ("tools/call", "cancelled", "svc_slow", None, 1),
        ]
    )
    assert all(
        h["traceparent"].startswith("00-aaaa") for h in twin.headers
    )  # the seam's trace context goes on the bus


async def test_errors_are_one_error_line_each_and_counted_as_errors() -> None:
    """Unknown method, a bus failure and a duplicate id each get one JSON-RPC error; the seam records the code."""
    d, out, twin, seen = make()
    d.feed(line({"jsonrpc": "2.0", "id": 1, "method": "no/such"}))
    d.feed(line({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "svc_down"}}))
    d.feed(line({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "svc_slow"}}))
    d.feed(line({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
    lines = await out.wait(3)
    by_id = {m["id"]: m for m in lines}
    assert by_id[1]["error"]["code"] == METHOD_NOT_FOUND
    assert by_id[2]["error"]["code"] == NO_RESPONDER and "mcp-nats serve svc" in by_id[2]["error"]["message"]
    assert by_id[3]["error"]["code"] == INVALID_REQUEST  # id 3 is still in flight
    await d.close()
    assert ("no/such", "error", None, METHOD_NOT_FOUND, 0) in seen.ended
    assert ("tools/call", "error", "svc_down", NO_RESPONDER, 1) in seen.ended


async def test_batches_follow_the_negotiated_version_and_modern_requests_carry_their_own() -> None:
    """A batch before a 2025-03-26 handshake is refused; after it, answered as one array; a 2026-07-28 request is answered without a handshake."""
    d, out, _twin, _seen = make()
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "resources/list"},
    ]
    d.feed(line(batch))
    d.feed(line({**INIT, "params": {"protocolVersion": "2025-03-26", "capabilities": {}}}))
    await out.wait(2)
    d.feed(line(batch))
    lines = await out.wait(3)
    assert (
        lines[0]["error"]["code"] == INVALID_REQUEST
        and "batches are not allowed" in lines[0]["error"]["message"]
    )
    assert sorted(m["id"] for m in lines[2]) == [1, 2]
    modern = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    d.feed(line({"jsonrpc": "2.0", "id": 9, "method": "resources/list", "params": {"_meta": modern}}))
    reply = (await out.wait(4))[3]
    assert reply["result"]["cacheScope"] == "private" and reply["result"]["resources"][0]["uri"] == "a://1"
    await d.close()
