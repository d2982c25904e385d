"""bus/wire.py, the fast path: what it sends and what it delivers must be exactly what nats-py's
own path would send and deliver (checked against nats-py itself, through a real nats-server),
bad input must fail as before, and without its hooks it must fall back, not break."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from bus import Bus, BusError, NotConnected, PayloadTooLarge, connect
from bus import wire as wire_mod
from bus.subjects import is_token, tool_token
from bus.wire import Wire, add_headers, encode_headers, parse_headers
from schemas.config import NatsSettings

from ..proxy import NatsProxy

pytestmark = pytest.mark.anyio

HEADER_BLOCKS = [
    b"NATS/1.0\r\nMcp-Call-Id: abc\r\nMcp-Deadline: 1700000000000\r\n\r\n",
    b"NATS/1.0 503\r\n\r\n",
    b"NATS/1.0 404 No Messages\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1016\r\nNats-Last-Stream: 1024\r\n\r\n",
    b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\n\r\n",
    b"NATS/1.0\r\nNo-Space:value\r\nTabbed:\tv\r\n  Padded  :  spaced value  \r\n\r\n",
    b"NATS/1.0\r\nUtf8: \xc3\xa9t\xc3\xa9\r\nBroken: \xff\xfe\r\n\r\n",
    b"NATS/1.0\r\nNon\xe9ascii: x\r\nIn valid: y\r\nno colon line\r\nOk: 1\r\n\r\n",
    b"NATS/1.0\r\nEmpty:\r\nDup: 1\r\nDup: 2\r\n\r\n",
]


@pytest.mark.parametrize("block", HEADER_BLOCKS)
async def test_parse_headers_agrees_with_nats_py(block: bytes) -> None:
    nc = NATS()
    theirs = await nc._process_headers(block)
    assert parse_headers(block) == (theirs or {})


def test_encode_headers_is_nats_py_wire_format() -> None:
    block = encode_headers({"Mcp-Call-Id": " id-1 ", "Evil": "a\r\nPUB x 1\r\n"})
    assert block == b"NATS/1.0\r\nMcp-Call-Id: id-1\r\nEvil: a  PUB x 1\r\n\r\n"
    assert parse_headers(block) == {"Mcp-Call-Id": "id-1", "Evil": "a  PUB x 1"}
    assert encode_headers({}) == b""
    with pytest.raises(ValueError, match="header name"):
        encode_headers({"Bad Name": "x"})


async def _collect(nc: Any, subject: str) -> tuple[Any, list[Any]]:
    got: list[Any] = []

    async def cb(msg: Any) -> None:
        got.append(msg)

    return await nc.subscribe(subject, cb=cb), got


async def _settled(nc: Any) -> None:
    """Until the server has processed what `nc` sent: nats-py's flush() pings ahead of commands still
    in its buffer (a SUB just made), so one PONG proves nothing about them; the second one does."""
    await nc.flush()
    await nc.flush()


async def _until(cond: Any, timeout: float = 10.0, state: Any = None) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < end, f"timed out; state: {state() if state else '-'}"
        await asyncio.sleep(0.01)


def _client_state(bus: Bus, got: list[Any]) -> str:
    nc: Any = bus.nc
    flusher = nc._flusher_task
    return (
        f"received {[(m.subject, m.data[:20]) for m in got]}; connected {bus.connected}; status {nc._status}; "
        f"pending {len(nc._pending)} ({nc._pending_data_size} B); flush queue {nc._flush_queue.qsize()}; "
        f"flusher {'done' if flusher is None or flusher.done() else 'running'}; fast {bus.wire.fast}"
    )


async def test_publish_delivers_what_nats_py_would(nats_settings: NatsSettings, root: str) -> None:
    """Messages published through the wire arrive at an ordinary nats-py subscriber byte for byte,
    headers (mapping or pre-encoded) included, in publish order."""
    async with connect(nats_settings, name="wire-test", ident="w1") as bus:
        plain = await nats.connect(nats_settings.url)
        try:
            sub, got = await _collect(plain, f"{root}.x.>")
            await _settled(plain)
            block = encode_headers({"Mcp-Instance": "i1"})
            await bus.publish(f"{root}.x.a", b"one", {"K": "v", "Mcp-Call-Id": "c1"}, reply="r.1")
            await bus.publish(f"{root}.x.b", b"", block)
            await bus.publish(f"{root}.x.c", b"three")
            payload = bytes(range(256)) * 40  # binary, with CR/LF inside
            await bus.publish(f"{root}.x.d", payload)
            await _until(lambda: len(got) >= 4, state=lambda: _client_state(bus, got))
            assert [(m.subject, m.reply, m.data, m.headers) for m in got] == [
                (f"{root}.x.a", "r.1", b"one", {"K": "v", "Mcp-Call-Id": "c1"}),
                (f"{root}.x.b", "", b"", {"Mcp-Instance": "i1"}),
                (f"{root}.x.c", "", b"three", None),
                (f"{root}.x.d", "", payload, None),
            ]
            await sub.unsubscribe()
        finally:
            await plain.close()


async def test_subscribe_delivers_what_nats_py_sent(nats_settings: NatsSettings, root: str) -> None:
    """A wire subscription gets every message of a nats-py publisher, with its headers parsed,
    and a callback that raises does not stop the deliveries after it."""
    async with connect(nats_settings, name="wire-test", ident="w2") as bus:
        got: list[tuple[str, str, bytes, dict[str, str] | None]] = []

        def deliver(subject: str, reply: str, data: bytes, headers: dict[str, str] | None) -> None:
            got.append((subject, reply, data, headers))
            if data == b"boom":
                raise RuntimeError("a bug in a callback")

        sub = await bus.wire.subscribe(f"{root}.y.*", deliver)
        await bus.flush()
        plain = await nats.connect(nats_settings.url)
        try:
            await plain.publish(f"{root}.y.1", b"a", reply="inbox.1", headers={"H": "1"})
            await plain.publish(f"{root}.y.2", b"boom")
            await plain.publish(f"{root}.y.3", b"c")
            await plain.flush()
            await _until(lambda: len(got) == 3)
            assert got == [
                (f"{root}.y.1", "inbox.1", b"a", {"H": "1"}),
                (f"{root}.y.2", "", b"boom", None),
                (f"{root}.y.3", "", b"c", None),
            ]
            await sub.unsubscribe()
            bus.wire.forget(sub)
            await bus.flush()
            marks: list[bytes] = []
            marker = await bus.wire.subscribe(f"{root}.mark", lambda s, r, d, h: marks.append(d))
            await bus.flush()
            await plain.publish(f"{root}.y.4", b"late")
            await plain.publish(f"{root}.mark", b"after late")  # same connection: arrives after "late" would
            await _until(lambda: marks == [b"after late"])
            assert len(got) == 3
            await marker.unsubscribe()
        finally:
            await plain.close()


async def test_bad_input_fails_cleanly_and_the_connection_survives(
    nats_settings: NatsSettings, root: str
) -> None:
    async with connect(nats_settings, name="wire-test", ident="w3") as bus:
        with pytest.raises(PayloadTooLarge):
            await bus.publish(f"{root}.big", b"x" * (bus.max_payload + 1))
        with pytest.raises(BusError):
            await bus.publish(f"{root}.a b", b"space in subject")
        with pytest.raises(BusError):
            await bus.publish(f"{root}.a\r\nPUB evil 1\r\nx", b"injection")
        with pytest.raises(BusError):
            await bus.publish(f"{root}.ok", b"bad header", {"Bad Name": "x"})
        # nothing above reached the server as protocol: the connection is still good
        sub_got: list[bytes] = []
        sub = await bus.wire.subscribe(f"{root}.ok2", lambda s, r, d, h: sub_got.append(d))
        await bus.flush()
        await bus.publish(f"{root}.ok2", b"fine")
        await _until(lambda: sub_got == [b"fine"])
        await sub.unsubscribe()
        assert bus.connected


async def test_request_reply_round_trip_through_the_inbox(nats_settings: NatsSettings, root: str) -> None:
    async with connect(nats_settings, name="wire-test", ident="w4") as bus:

        async def handler(req: Any) -> None:
            await req.respond(req.data[::-1], {"Seen": req.headers.get("Ask", "")})

        async with bus.serve(f"{root}.svc", "q", handler):
            await bus.flush()
            msg = await bus.request(f"{root}.svc", b"abc", {"Ask": "yes"}, timeout=5)
            assert msg.data == b"cba"
            assert msg.headers == {"Seen": "yes"}


async def test_without_its_hooks_the_wire_falls_back_to_nats_py(
    nats_settings: NatsSettings, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another nats-py without the private points: Wire says so and everything still works."""
    monkeypatch.setattr(wire_mod, "_HOOKS", (*wire_mod._HOOKS, "_no_such_attribute"))
    async with connect(nats_settings, name="wire-test", ident="w5") as bus:
        assert not bus.wire.fast
        got: list[tuple[bytes, dict[str, str] | None]] = []
        sub = await bus.wire.subscribe(f"{root}.z", lambda s, r, d, h: got.append((d, h)))
        await bus.flush()
        await bus.publish(f"{root}.z", b"1", encode_headers({"A": "b"}))
        await bus.publish(f"{root}.z", b"2", {"C": "d"})
        await _until(lambda: len(got) == 2)
        assert got == [(b"1", {"A": "b"}), (b"2", {"C": "d"})]
        await sub.unsubscribe()


async def test_publish_while_disconnected_buffers_like_nats_py(tmp_path: Any, root: str) -> None:
    """Not connected: the wire hands the message to nats-py, which buffers it for the reconnect."""
    from bus import EmbeddedServer

    server = EmbeddedServer(tmp_path / "nats").start()
    port = server.port
    settings = NatsSettings(url=server.url, root=root, connect_timeout=2.0, reconnect_wait=0.1)
    try:
        async with connect(settings, name="wire-test", ident="w6") as bus:
            got: list[bytes] = []
            sub = await bus.wire.subscribe(f"{root}.r", lambda s, r, d, h: got.append(d))
            await bus.flush()
            server.stop()
            await _until(lambda: not bus.connected)
            await bus.publish(f"{root}.r", b"while down")  # buffered by nats-py
            server = EmbeddedServer(tmp_path / "nats", port=port).start()
            await _until(lambda: bus.connected, timeout=10)
            await _until(lambda: got == [b"while down"], timeout=10)
            await sub.unsubscribe()
    finally:
        server.stop()


def test_wire_without_a_client_attribute_reports_not_fast() -> None:
    class Bare:
        pass

    w = Wire(Bare())  # type: ignore[arg-type]
    assert not w.fast


async def test_not_connected_error_names_the_server(nats_settings: NatsSettings, root: str) -> None:
    bus_holder: list[Bus] = []
    async with connect(nats_settings, name="wire-test", ident="w7") as bus:
        bus_holder.append(bus)
    with pytest.raises(NotConnected):
        await bus_holder[0].publish(f"{root}.closed", b"x")


async def test_headers_and_body_over_max_payload_are_refused_before_the_server_closes_us(
    nats_settings: NatsSettings, root: str
) -> None:
    """nats-py checks only the body; the server answers body + headers over max_payload with -ERR
    and nats-py then closes the connection for good. The wire refuses such a message itself."""
    async with connect(nats_settings, name="wire-test", ident="w8") as bus:
        body = b"x" * (bus.max_payload - 10)
        with pytest.raises(PayloadTooLarge):
            await bus.publish(f"{root}.edge", body, {"Mcp-Client-Capabilities": "y" * 100})
        got: list[int] = []
        sub = await bus.wire.subscribe(f"{root}.edge", lambda s, r, d, h: got.append(len(d)))
        await bus.flush()
        await bus.publish(f"{root}.edge", body)  # exactly under the limit, no headers: fine
        await _until(lambda: got == [len(body)])
        assert bus.connected
        await sub.unsubscribe()


def test_add_headers_replaces_a_key_rather_than_sending_it_twice() -> None:
    block = add_headers(encode_headers({"A": "1", "B": "2"}), {"A": "3", "C": "4"})
    assert block.count(b"\r\nA:") == 1
    assert parse_headers(block) == {"A": "3", "B": "2", "C": "4"}
    assert add_headers(encode_headers({"A": "1"}), {"C": "4"}) == encode_headers({"A": "1", "C": "4"})


async def test_a_subject_that_cannot_be_encoded_is_a_bus_error(
    nats_settings: NatsSettings, root: str
) -> None:
    async with connect(nats_settings, name="wire-test", ident="w9") as bus:
        with pytest.raises(BusError):
            await bus.publish(f"{root}.\udc80", b"lone surrogate")
        assert bus.connected


def test_a_trailing_newline_is_not_a_token() -> None:
    assert not is_token("read\n") and tool_token("read\n") == "_" and is_token("read_file-2")


async def test_requests_routed_while_an_endpoint_drains_are_still_served(nats_server: Any, root: str) -> None:
    """nats-py's drain pings before its UNSUB is on the wire, so its PONG does not prove the server
    stopped routing to us. A proxy holds the responder's UNSUB back for 0.5 s: a request sent in
    that window reaches the draining endpoint and must be answered, not dropped."""

    handled: list[bytes] = []
    async with NatsProxy(nats_server.port, hold_unsub=0.5) as proxy:
        async with (
            connect(
                NatsSettings(url=proxy.url, root=root, connect_timeout=2.0), name="drainer", ident="wd1"
            ) as rbus,
            connect(
                NatsSettings(url=nats_server.url, root=root, connect_timeout=2.0), name="caller", ident="wd2"
            ) as cbus,
        ):

            async def handler(req: Any) -> None:
                handled.append(req.data)
                await req.respond(b"ok:" + req.data)

            ep = rbus.serve(f"{root}.svc", "q", handler, drain_timeout=5)
            await ep.__aenter__()
            await rbus.flush()
            assert (await cbus.request(f"{root}.svc", b"before", timeout=5)).data == b"ok:before"
            drain = asyncio.create_task(ep.drain())
            await asyncio.sleep(0.2)  # the drain's first PONG is back; its UNSUB is still held by the proxy
            reply = await cbus.request(f"{root}.svc", b"in the window", timeout=5)
            assert reply.data == b"ok:in the window"
            await asyncio.wait_for(drain, 10)
            assert handled == [b"before", b"in the window"]
