"""`mcp-nats attach` with the reference server-everything (npm, run by node), driven through the real
bridge by the official MCP client, gives what the same client gets from the server spoken to directly."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import msgspec
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from bus import Bus, EmbeddedServer

from .attach_helpers import Attached, everything_entry
from .conftest import Responders, child_env
from .e2e_helpers import bridge_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SVC = "everything"

# One call per tool, with arguments that make its answer deterministic.
CALLS: dict[str, dict[str, Any]] = {
    "echo": {"message": "hello over NATS"},
    "get-annotated-message": {"messageType": "error", "includeImage": True},
    "get-env": {},
    "get-resource-links": {"count": 4},
    "get-resource-reference": {"resourceType": "Text", "resourceId": 3},
    "get-structured-content": {"location": "New York"},
    "get-sum": {"a": 19, "b": 23},
    "get-tiny-image": {},
    "get-roots-list": {},
    "trigger-sampling-request": {"prompt": "say hi", "maxTokens": 20},
    "trigger-elicitation-request": {},
    "trigger-long-running-operation": {"duration": 0.3, "steps": 3},
    "trigger-url-elicitation": {"url": "https://example.com/consent", "message": "Open this"},
}
# Tools whose answer depends on per-session state or the clock: called, checked for shape only.
STATEFUL = {
    "toggle-simulated-logging",
    "toggle-subscriber-updates",
    "gzip-file-as-resource",
    "simulate-research-query",
}


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"echo: {asked}"), model="test-model"
    )


async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"color": "red", "number": 7, "pets": "cats"})


async def no_roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[])


_CLOCK = re.compile(
    rb"\d{1,2}:\d{2}:\d{2}( [AP]M)?|\d{4}-\d{2}-\d{2}T[\d:.]+Z?|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def _dump(value: Any) -> Any:
    """The JSON form, with times of day masked and ids (the dynamic resources say when they were made; an elicitation has a fresh id)."""
    raw = msgspec.json.encode(_unblob(value.model_dump(mode="json", exclude_none=True, by_alias=True)))
    return msgspec.json.decode(_CLOCK.sub(b"<time>", raw))


def _unblob(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: base64.b64decode(v).decode(errors="replace")
            if k == "blob" and isinstance(v, str)
            else _unblob(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unblob(v) for v in value]
    return value


def _strip(name: str) -> str:
    assert name.startswith(f"{SVC}_"), name
    return name[len(SVC) + 1 :]


class Transcript:
    """What one client saw, in a comparable form."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.progress: list[float] = []
        self.logs: list[tuple[str, Any]] = []


async def drive(c: Client, prefix: str) -> Transcript:
    t = Transcript()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        t.progress.append(progress)

    tools = {(_strip(x.name) if prefix else x.name): x for x in (await c.list_tools()).tools}
    t.items["tools"] = {
        n: {
            "input": x.input_schema,
            "output": x.output_schema,
            "annotations": _dump(x.annotations) if x.annotations else None,
            "description": x.description,
        }
        for n, x in sorted(tools.items())
    }
    for name, args in CALLS.items():
        r = await c.call_tool(prefix + name, args, progress_callback=on_progress if "long" in name else None)
        t.items[f"call {name}"] = _dump(r)
    for name in sorted(STATEFUL & set(tools)):
        if name == "simulate-research-query":
            continue  # needs the experimental tasks extension on both sides
        r = await c.call_tool(prefix + name, {})
        t.items[f"call {name}"] = ("error" if r.is_error else "ok", [b.type for b in r.content])
    resources = []
    cursor = None
    while True:
        page = await c.list_resources(cursor=cursor)
        resources += page.resources
        cursor = page.next_cursor
        if not cursor:
            break
    t.items["resources"] = sorted(str(r.uri) for r in resources)
    for res in resources[:6]:
        t.items[f"read {res.uri}"] = _dump(await c.read_resource(str(res.uri)))
    templates = (await c.list_resource_templates()).resource_templates
    t.items["templates"] = sorted(x.uri_template for x in templates)
    for x in templates:
        uri = re.sub(r"\{[^}]+\}", "7", x.uri_template)
        t.items[f"read {uri}"] = _dump(await c.read_resource(uri))
        var = re.findall(r"\{([^}]+)\}", x.uri_template)[0]
        done = await c.complete(
            types.ResourceTemplateReference(type="ref/resource", uri=x.uri_template),
            {"name": var, "value": ""},
        )
        t.items[f"complete {x.uri_template}"] = _dump(done.completion)
    prompts = {(_strip(p.name) if prefix else p.name): p for p in (await c.list_prompts()).prompts}
    t.items["prompts"] = {n: _dump(p) | {"name": n} for n, p in sorted(prompts.items())}
    args = {
        "args-prompt": {"city": "Oslo", "state": "none"},
        "completable-prompt": {"department": "Engineering", "name": "Alice"},
        "resource-prompt": {"resourceType": "Text", "resourceId": "2"},
    }
    for n in prompts:
        t.items[f"prompt {n}"] = _dump(await c.get_prompt(prefix + n, args.get(n, {})))
    done = await c.complete(
        types.PromptReference(type="ref/prompt", name=prefix + "completable-prompt"),
        {"name": "department", "value": "E"},
    )
    t.items["complete department"] = _dump(done.completion)
    done = await c.complete(
        types.PromptReference(type="ref/prompt", name=prefix + "completable-prompt"),
        {"name": "name", "value": ""},
        context_arguments={"department": "Engineering"},
    )
    t.items["complete name"] = _dump(done.completion)
    return t


@pytest.fixture
def attached(nats_server: EmbeddedServer, root: str) -> Any:
    a = Attached(nats_server.url, root)
    yield a
    a.stop_all()


async def test_everything_behaves_through_the_bus_as_spoken_to_directly(
    attached: Attached, responders: Responders, bridge_argv: list[str]
) -> None:
    """Every tool, resource, template, prompt, completion, progress report, sampling and elicitation
    answer of server-everything is the same through attach + bridge as directly."""
    entry = everything_entry()
    attached.start(SVC, ["node", str(entry), "stdio"], "--pool", "2")
    await responders.wait_instances(SVC, 1, timeout=60)
    kw: dict[str, Any] = {
        "sampling_callback": sampling,
        "elicitation_callback": elicitation,
        "list_roots_callback": no_roots,
    }
    direct_params = StdioServerParameters(
        command="node", args=[str(entry), "stdio"], env=child_env(), cwd=str(Path.cwd())
    )
    with anyio.fail_after(120):
        async with Client(direct_params, mode="legacy", **kw) as c:
            direct = await drive(c, "")
        async with bridge_client(bridge_argv, mode="legacy", **kw) as c:
            bridged = await drive(c, f"{SVC}_")
    assert direct.progress == bridged.progress == [1, 2, 3]
    direct.items["call get-env"] = bridged.items["call get-env"] = (
        None  # compared below: the child's own environment
    )
    assert set(bridged.items) == set(direct.items)
    for key in direct.items:
        assert bridged.items[key] == direct.items[key], key


async def test_get_env_and_logging_reach_the_client(
    attached: Attached, responders: Responders, bridge_argv: list[str]
) -> None:
    """The child's log messages during a call reach the client at its level; get-env shows the child's environment."""
    entry = everything_entry()
    attached.start(SVC, ["node", str(entry), "stdio"])
    await responders.wait_instances(SVC, 1, timeout=60)
    got: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        got.append(params)

    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy", logging_callback=on_log) as c:
            with pytest.warns(Warning):
                await c.set_logging_level("debug")
            r = await c.call_tool(f"{SVC}_toggle-simulated-logging", {})
            assert not r.is_error
            env = await c.call_tool(f"{SVC}_get-env", {})
            assert "PATH" in msgspec.json.decode(env.content[0].text)  # type: ignore[union-attr]
    assert got and all(
        g.level in ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
        for g in got
    )
    assert all(str(g.data).endswith("message") for g in got)


async def test_cancellation_reaches_the_child(
    attached: Attached, responders: Responders, bridge_argv: list[str], bus: Bus, root: str
) -> None:
    """A cancelled call is cancelled on the instance (recorded as cancelled) and the child keeps serving."""
    entry = everything_entry()
    attached.start(SVC, ["node", str(entry), "stdio"])
    await responders.wait_instances(SVC, 1, timeout=60)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as c:
            await c.list_tools()
            with anyio.move_on_after(1.0):
                await c.call_tool(f"{SVC}_trigger-long-running-operation", {"duration": 30, "steps": 30})
            while True:
                errors = []
                for m in await bus.scatter(f"$SRV.STATS.{root}-{SVC}", idle=0.2, limit=1.0):
                    stats = msgspec.json.decode(m.data)
                    errors += [
                        e["last_error"]
                        for e in stats["endpoints"]
                        if e["name"] == "trigger-long-running-operation" and e["num_errors"]
                    ]
                if errors:
                    break
                await anyio.sleep(0.1)
            assert errors == ["cancelled"]
            r = await c.call_tool(f"{SVC}_echo", {"message": "still here"})
            assert r.content[0].text == "Echo: still here"  # type: ignore[union-attr]


async def test_resource_updates_of_the_child_reach_a_subscribed_client(
    attached: Attached, responders: Responders, bridge_argv: list[str]
) -> None:
    """The child's notifications/resources/updated (it is subscribed to every listed resource) reach a client
    subscribed to that URI, as our resource_updated events."""
    from mcp.shared.exceptions import MCPDeprecationWarning

    entry = everything_entry()
    attached.start(SVC, ["node", str(entry), "stdio"])
    await responders.wait_instances(SVC, 1, timeout=60)
    updates: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            arrived.set()

    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy", message_handler=on_message) as c:
            uri = str((await c.list_resources()).resources[0].uri)
            with pytest.warns(MCPDeprecationWarning):
                await c.subscribe_resource(uri)
            await c.call_tool(
                f"{SVC}_toggle-subscriber-updates", {}
            )  # the server sends one update per subscribed URI now
            await arrived.wait()
    assert updates[0] == uri and set(updates) == {uri}  # only the URI this client subscribed to
