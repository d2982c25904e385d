"""Consul registration of a real responder process, against a stand-in for the Consul agent.

No Consul agent can be installed on the test machines (not on PyPI, npm or Debian's archive), so
the test runs an HTTP server implementing exactly the three agent endpoints the responder uses, as
Consul documents them (developer.hashicorp.com/consul/api-docs/agent/service and .../agent/check):
`PUT /v1/agent/service/register` (JSON service definition; 400 for a bad one),
`PUT /v1/agent/check/pass/:check_id` (404 "Unknown check ID" when the agent does not know it),
`PUT /v1/agent/service/deregister/:service_id` (404 for an unknown id); other methods 405."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest

from ..conftest import Responders

pytestmark = pytest.mark.anyio
_DURATION = re.compile(r"^\d+(\.\d+)?(ns|us|ms|s|m|h)$")
_META_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class Agent:
    """The agent's state: services, TTL checks, and every request seen."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.services: dict[str, dict[str, Any]] = {}
        self.checks: dict[str, str] = {}  # check id -> status
        self.log: list[tuple[str, str]] = []
        self.registrations: list[dict[str, Any]] = []

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        """Block until `predicate()` holds (checked after every request), at most `timeout` seconds."""
        with self.lock:
            return self.lock.wait_for(predicate, timeout)

    def forget(self) -> None:
        """What an agent restarted without its data does: every registration is gone."""
        with self.lock:
            self.services.clear()
            self.checks.clear()


def _problem(body: Any) -> str | None:
    """Why Consul would refuse this service definition, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("Name"), str) or not body["Name"]:
        return "Missing service name"
    if not all(isinstance(t, str) for t in body.get("Tags", [])):
        return "Tags must be strings"
    meta = body.get("Meta", {})
    if len(meta) > 64 or any(
        not _META_KEY.match(k) or not isinstance(v, str) or len(v) > 512 for k, v in meta.items()
    ):
        return "Invalid Meta"
    check = body.get("Check")
    if check is not None:
        for key in ("TTL", "DeregisterCriticalServiceAfter"):
            if key in check and not _DURATION.match(str(check[key])):
                return f"Invalid {key}"
    return None


def handler(agent: Agent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, code: int, text: str = "") -> None:
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(405, "method not allowed")

        def do_PUT(self) -> None:
            path = self.path.split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with agent.lock:
                agent.lock.notify_all()
                agent.log.append(("PUT", path))
                if path == "/v1/agent/service/register":
                    try:
                        definition = json.loads(body)
                    except ValueError:
                        return self._send(400, "Request decode failed")
                    problem = _problem(definition)
                    if problem:
                        return self._send(400, problem)
                    sid = definition.get("ID") or definition["Name"]
                    agent.services[sid] = definition
                    agent.registrations.append(definition)
                    check = definition.get("Check")
                    if check:
                        agent.checks[check.get("CheckID") or f"service:{sid}"] = check.get(
                            "Status", "critical"
                        )
                    return self._send(200)
                if path.startswith("/v1/agent/check/pass/"):
                    cid = path[len("/v1/agent/check/pass/") :]
                    if cid not in agent.checks:
                        return self._send(404, f'Unknown check ID "{cid}"')
                    agent.checks[cid] = "passing"
                    return self._send(200)
                if path.startswith("/v1/agent/service/deregister/"):
                    sid = path[len("/v1/agent/service/deregister/") :]
                    if agent.services.pop(sid, None) is None:
                        return self._send(404, f'Unknown service ID "{sid}"')
                    for cid in [c for c in agent.checks if c.startswith(sid)]:
                        del agent.checks[cid]
                    return self._send(200)
            return self._send(404, "not found")

    return Handler


@pytest.fixture
def agent() -> Iterator[tuple[Agent, str]]:
    state = Agent()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_instance_registers_keeps_its_ttl_check_passing_and_deregisters_on_drain(
    agent: tuple[Agent, str], responders: Responders
) -> None:
    """A demo instance registers as mcp-demo with tags and meta, passes its TTL check, registers again after the
    agent forgot it, and deregisters when SIGTERM drains it."""
    state, url = agent
    proc = responders.start("demo", env={"MCP_NATS_CONSUL_ADDRESS": url, "MCP_NATS_CONSUL_TTL": "0.6"})
    (instance,) = await responders.wait_instances("demo", 1)
    passes = lambda: sum(1 for _, p in state.log if p.startswith("/v1/agent/check/pass/")) >= 2  # noqa: E731
    assert await anyio.to_thread.run_sync(state.wait_for, passes)
    reg = state.registrations[0]
    assert reg["ID"] == f"mcp-demo-{instance}" and reg["Name"] == "mcp-demo"
    assert reg["Tags"][:2] == ["mcp", "demo"] and reg["Tags"][2] == reg["Meta"]["mcp_version"]
    assert reg["Meta"]["mcp_capabilities"] == "tools,resources,prompts,completions,subscribe"
    assert reg["Meta"]["mcp_protocol"] and reg["Meta"]["mcp_instance"] == instance
    assert reg["Check"]["TTL"] == "0.6s" and reg["Check"]["CheckID"] == f"mcp-demo-{instance}-ttl"
    assert state.checks[reg["Check"]["CheckID"]] == "passing"

    state.forget()
    assert await anyio.to_thread.run_sync(state.wait_for, lambda: len(state.registrations) >= 2)
    assert state.registrations[1] == reg

    proc.send_signal(signal.SIGTERM)
    assert await anyio.to_thread.run_sync(proc.wait, 30) == 0
    assert state.log[-1] == ("PUT", f"/v1/agent/service/deregister/mcp-demo-{instance}")
    assert state.services == {}


async def test_a_responder_without_consul_address_never_calls_an_agent(
    agent: tuple[Agent, str], responders: Responders
) -> None:
    """Without [consul] address nothing is registered (the agent sees no request)."""
    state, _url = agent
    responders.start("demo")
    await responders.wait_instances("demo", 1)
    assert state.log == []


async def test_an_unreachable_agent_does_not_stop_the_responder(responders: Responders) -> None:
    """With an agent address nobody listens on, the instance still serves (and logs the failure)."""
    responders.start(
        "demo", env={"MCP_NATS_CONSUL_ADDRESS": "http://127.0.0.1:9", "MCP_NATS_CONSUL_TIMEOUT": "0.5"}
    )
    assert len(await responders.wait_instances("demo", 1)) == 1
