"""One tools/call through the real bridge and a responder lands in the client's trace, as two linked spans."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import anyio
import pytest
from mcp.types import RequestParamsMeta
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from ..conftest import Responders
from ..e2e_helpers import bridge_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@dataclass(frozen=True)
class Received:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    resource: dict[str, object]


def _values(kvs: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in kvs:  # type: ignore[attr-defined]
        field = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, field) if field else None
    return out


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on a free loopback port: decodes ExportTraceServiceRequest, keeps the spans."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver._add(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp receiver", daemon=True)

    def _add(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for rs in request.resource_spans:
                resource = _values(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append(
                            Received(
                                name=s.name,
                                kind=s.kind,
                                trace_id=s.trace_id.hex(),
                                span_id=s.span_id.hex(),
                                parent_span_id=s.parent_span_id.hex(),
                                attributes=_values(s.attributes),
                                resource=resource,
                            )
                        )

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.spans)


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join(5)


async def test_a_bridged_call_is_two_spans_in_the_clients_trace(
    otlp: OtlpReceiver, responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """The client's traceparent parents the bridge's CLIENT span, which parents the responder's SERVER span; both carry the MCP attributes."""
    env = {
        "MCP_NATS_STATE_DIR": str(tmp_path / "state"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    (tmp_path / "a.txt").write_text("a\n")
    responders.start("fs", "--fs-root", str(tmp_path), env=env)
    await responders.wait_instances("fs", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy", env=env) as client:
            result = await client.call_tool(
                "fs_read_text_file",
                {"path": str(tmp_path / "a.txt")},
                meta=cast(RequestParamsMeta, {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}),
            )
            assert not result.is_error
        end = time.monotonic() + 30
        while time.monotonic() < end:  # the bridge flushes at exit; the responder every 100 ms
            if len([s for s in otlp.snapshot() if s.trace_id == CLIENT_TRACE]) >= 2:
                break
            await asyncio.sleep(0.1)
    spans = [s for s in otlp.snapshot() if s.trace_id == CLIENT_TRACE]
    assert sorted(s.kind for s in spans) == [PbSpan.SPAN_KIND_SERVER, PbSpan.SPAN_KIND_CLIENT], spans
    (bridge,) = [s for s in spans if s.kind == PbSpan.SPAN_KIND_CLIENT]
    (responder,) = [s for s in spans if s.kind == PbSpan.SPAN_KIND_SERVER]
    assert responder.name == "tools/call read_text_file"
    assert bridge.name in (
        "tools/call fs_read_text_file",
        "tools/call read_text_file",
    )  # the exposed or the service's name
    assert bridge.parent_span_id == CLIENT_SPAN
    assert responder.parent_span_id == bridge.span_id
    for span in (bridge, responder):
        assert span.attributes["mcp.method.name"] == "tools/call"
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert span.attributes["network.protocol.name"] == "nats"
        assert "error.type" not in span.attributes
    assert bridge.attributes["gen_ai.tool.name"] == bridge.name.partition(" ")[2]
    assert bridge.attributes["jsonrpc.request.id"]
    assert responder.attributes["gen_ai.tool.name"] == "read_text_file"
    assert bridge.resource["service.name"] == "mcp-nats-bridge"
    assert responder.resource["service.name"] == "mcp-fs"
    assert responder.resource["service.instance.id"]
