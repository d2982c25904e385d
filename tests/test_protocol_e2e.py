"""The whole protocol through the bridge, in both eras, against two `demo` instances on a real NATS."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import mcp_types as types
import msgspec
import pytest
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged
from pydantic import FileUrl

from bus import Bus

from .conftest import Responders
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio
ERAS = ["auto", "legacy"]


@pytest.fixture
async def demo(responders: Responders) -> Responders:
    responders.start("demo")
    responders.start("demo")
    await responders.wait_instances("demo", 2)
    return responders


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"echo: {asked}"), model="test-model"
    )


async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri=FileUrl("file:///work/project"), name="project")])


def client(bridge_argv: list[str], mode: str, **kw: Any) -> Any:
    return bridge_client(
        bridge_argv,
        mode=mode,
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        list_roots_callback=roots,
        **kw,
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_every_content_type_structured_output_and_tool_errors(
    demo: Responders, bridge_argv: list[str], mode: str
) -> None:
    """Image, audio, resource links, embedded resources, structuredContent and isError reach the client untouched."""
    with anyio.fail_after(30):
        async with client(bridge_argv, mode) as c:
            r = await c.call_tool("demo_content", {"kind": "all"})
            assert [b.type for b in r.content] == ["text", "image", "audio", "resource_link", "resource"]
            assert base64.b64decode(r.content[1].data).startswith(b"\x89PNG")
            assert r.content[2].mime_type == "audio/wav"
            s = await c.call_tool("demo_add", {"a": 2, "b": 40})
            assert s.structured_content == {"a": 2, "b": 40, "sum": 42}
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert tools["demo_add"].output_schema is not None
            f = await c.call_tool("demo_fail", {"message": "nope"})
            assert f.is_error and f.content[0].text == "nope"


@pytest.mark.parametrize("mode", ERAS)
async def test_sampling_elicitation_and_roots_reach_the_client(
    demo: Responders, bridge_argv: list[str], mode: str
) -> None:
    """A tool that samples, elicits or lists roots gets the client's answer (MRTR on the bus; real requests for legacy clients)."""
    with anyio.fail_after(30):
        async with client(bridge_argv, mode) as c:
            s = await c.call_tool("demo_sample", {"prompt": "hi"})
            assert s.content[0].text == "the model (test-model) said: echo: hi"
            e = await c.call_tool("demo_elicit", {})
            assert e.content[0].text == "hello, Ada"
            r = await c.call_tool("demo_roots", {})
            assert r.content[0].text == "project file:///work/project"


async def test_a_client_without_sampling_gets_a_missing_capability_error(
    demo: Responders, bridge_argv: list[str]
) -> None:
    """A tool that needs sampling fails with -32021 for a client that did not declare the capability."""
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode="legacy") as c:
            with pytest.raises(MCPError) as err:
                await c.call_tool("demo_sample", {"prompt": "hi"})
            assert err.value.error.code == -32021


async def test_tampered_request_state_is_refused(demo: Responders, bus: Bus, root: str) -> None:
    """A requestState that was altered is refused with -32602 rather than trusted."""
    subject = f"{root}.demo.tools.call.elicit"
    caps = {"Mcp-Client-Capabilities": '{"elicitation":{}}'}
    first = msgspec.json.decode(
        (await bus.request(subject, b'{"name":"elicit","arguments":{}}', caps, timeout=5)).data
    )
    assert first["resultType"] == "input_required"
    state = first["requestState"]
    body = {
        "name": "elicit",
        "arguments": {},
        "inputResponses": {
            k: {"action": "accept", "content": {"name": "Eve"}} for k in first["inputRequests"]
        },
    }
    good = await bus.request(subject, msgspec.json.encode({**body, "requestState": state}), caps, timeout=5)
    assert msgspec.json.decode(good.data)["content"][0]["text"] == "hello, Eve"
    tampered = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    bad = await bus.request(subject, msgspec.json.encode({**body, "requestState": tampered}), caps, timeout=5)
    assert bad.headers and bad.headers["Nats-Service-Error-Code"] == "-32602"


@pytest.mark.parametrize("mode", ERAS)
async def test_progress_arrives_in_order_with_the_clients_token(
    demo: Responders, bridge_argv: list[str], mode: str
) -> None:
    """Progress from whichever instance runs the tool reaches the client in order."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with anyio.fail_after(30):
        async with client(bridge_argv, mode) as c:
            for _ in range(3):  # two instances: several calls cover both
                seen.clear()
                r = await c.call_tool(
                    "demo_progress", {"steps": 5, "delay": 0.01}, progress_callback=on_progress
                )
                assert r.content[0].text == "counted to 5"
                assert seen == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("mode", ERAS)
async def test_cancellation_stops_the_handler_on_its_instance(
    demo: Responders, bridge_argv: list[str], bus: Bus, root: str, mode: str
) -> None:
    """Cancelling a call sends notifications/cancelled; the instance running it stops, and records it as cancelled."""
    with anyio.fail_after(30):
        async with client(bridge_argv, mode) as c:
            await c.list_tools()
            with anyio.move_on_after(1.0):
                await c.call_tool("demo_sleep", {"seconds": 20})
            with anyio.fail_after(10):
                while True:
                    errors = []
                    for m in await bus.scatter(f"$SRV.STATS.{root}-demo", idle=0.2, limit=1.0):
                        stats = msgspec.json.decode(m.data)
                        errors += [
                            e["last_error"]
                            for e in stats["endpoints"]
                            if e["name"] == "sleep" and e["num_errors"]
                        ]
                    if errors:
                        break
                    await anyio.sleep(0.1)
            assert errors == ["cancelled"]


@pytest.mark.parametrize(
    ("mode", "level"), [("legacy", "info"), ("legacy", "error"), ("auto", "info"), ("auto", "error")]
)
async def test_log_messages_are_filtered_by_the_clients_level(
    demo: Responders, bridge_argv: list[str], mode: str, level: str
) -> None:
    """A responder's log message reaches the client only at or above the level the client set (setLevel or per-request _meta)."""
    got: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        got.append(params)

    kw: dict[str, Any] = {"logging_callback": on_log}
    if mode == "auto":
        kw["log_level"] = level
    with anyio.fail_after(30):
        async with client(bridge_argv, mode, **kw) as c:
            if mode == "legacy":
                with pytest.warns(MCPDeprecationWarning):  # deprecated in 2026-07-28, still the legacy way
                    await c.set_logging_level(level)
            await c.call_tool("demo_log", {"message": "hello", "level": "warning"})
    if level == "info":
        assert [(g.level, g.data) for g in got] == [("warning", {"message": "hello"})]
    else:
        assert got == []


@pytest.mark.parametrize("mode", ERAS)
async def test_prompts_and_completion(demo: Responders, bridge_argv: list[str], mode: str) -> None:
    """Prompts are listed as <svc>_<prompt>, rendered with arguments, and their arguments (and template variables) complete."""
    with anyio.fail_after(30):
        async with client(bridge_argv, mode) as c:
            prompts = (await c.list_prompts()).prompts
            greet = next(p for p in prompts if p.name == "demo_greet")
            assert [(a.name, a.required) for a in greet.arguments or []] == [("name", True), ("style", False)]
            got = await c.get_prompt("demo_greet", {"name": "Grace", "style": "pirate"})
            assert got.messages[0].content.text.startswith("Ahoy, Grace!")
            done = await c.complete(
                types.PromptReference(type="ref/prompt", name="demo_greet"), {"name": "style", "value": "p"}
            )
            assert done.completion.values == ["pirate"]
            words = await c.complete(
                types.ResourceTemplateReference(type="ref/resource", uri="demo://echo/{text}"),
                {"name": "text", "value": "hel"},
            )
            assert words.completion.values == ["hello", "help"]
            with pytest.raises(MCPError) as err:
                await c.get_prompt("demo_nope", {})
            assert err.value.error.code == -32602


async def test_resource_updates_reach_a_legacy_subscriber_from_any_instance(
    demo: Responders, bridge_argv: list[str]
) -> None:
    """After resources/subscribe, an update announced by either instance arrives as notifications/resources/updated."""
    updates: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            if len(updates) >= 4:
                arrived.set()

    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode="legacy", message_handler=on_message) as c:
            with pytest.warns(
                MCPDeprecationWarning
            ):  # removed in 2026-07-28; still how legacy clients subscribe
                await c.subscribe_resource("demo://counter")
            for _ in range(4):
                await c.call_tool("demo_touch", {})
            await arrived.wait()
            with pytest.warns(MCPDeprecationWarning):
                await c.unsubscribe_resource("demo://counter")
    assert updates[:4] == ["demo://counter"] * 4


async def test_modern_listen_gets_resource_updates_and_tool_list_changes(
    demo: Responders, bridge_argv: list[str], tmp_path: Any
) -> None:
    """A 2026-07-28 client's subscriptions/listen stream carries resource updates and tools list_changed when a service starts."""
    with anyio.fail_after(40):
        async with client(bridge_argv, "auto") as c:
            assert c.protocol_version == "2026-07-28"
            async with c.listen(tools_list_changed=True, resource_subscriptions=["demo://counter"]) as sub:
                await c.call_tool("demo_touch", {})
                kinds: list[str] = []
                async for event in sub:
                    kinds.append(type(event).__name__)
                    if isinstance(event, ResourceUpdated):
                        demo.start("fs", "--root", str(tmp_path))  # a new service: the tool list changes
                    if isinstance(event, ToolsListChanged):
                        break
            assert kinds[0] == "ResourceUpdated" and kinds[-1] == "ToolsListChanged"
            names = {t.name for t in (await c.list_tools()).tools}
            assert "fs_read_text_file" in names


async def test_legacy_client_hears_list_changed_when_a_service_starts_and_stops(
    responders: Responders, bridge_argv: list[str], tmp_path: Any
) -> None:
    """A legacy client gets notifications/tools/list_changed when a service appears and again when its last instance stops."""
    changes = 0
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        nonlocal changes, changed
        if isinstance(message, types.ToolListChangedNotification):
            changes += 1
            changed.set()

    with anyio.fail_after(40):
        async with bridge_client(bridge_argv, mode="legacy", message_handler=on_message) as c:
            assert (await c.list_tools()).tools == []
            proc = responders.start("fs", "--root", str(tmp_path))
            await changed.wait()
            assert any(t.name == "fs_list_directory" for t in (await c.list_tools()).tools)
            changed = anyio.Event()
            proc.terminate()
            await changed.wait()
            assert (await c.list_tools()).tools == []
    assert changes == 2


@pytest.mark.parametrize("mode", ERAS)
async def test_pagination_walks_every_list_and_refuses_a_bad_cursor(
    demo: Responders, bridge_argv: list[str], mode: str
) -> None:
    """With a page size of 3, tools and prompts come in pages whose union is the whole list; a bad cursor is -32602."""
    with anyio.fail_after(30):
        async with client(bridge_argv, mode, env={"MCP_NATS_BRIDGE_PAGE_SIZE": "3"}) as c:
            names: list[str] = []
            cursor = None
            pages = 0
            while True:
                page = await c.list_tools(cursor=cursor)
                pages += 1
                assert len(page.tools) <= 3
                names += [t.name for t in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    break
            assert pages > 3 and len(names) == len(set(names)) and "demo_touch" in names
            with pytest.raises(MCPError) as err:
                await c.list_tools(cursor="not-a-cursor")
            assert err.value.error.code == -32602


@pytest.mark.parametrize("mode", ERAS)
async def test_a_result_larger_than_max_payload_arrives_whole(
    demo: Responders, bridge_argv: list[str], mode: str
) -> None:
    """A 10 MiB result (the server's max_payload is 8 MB) travels by claim check through the object store and arrives whole."""
    with anyio.fail_after(60):
        async with client(bridge_argv, mode) as c:
            r = await c.call_tool("demo_big", {"kib": 10 * 1024})
            text = r.content[0].text
            lines = 10 * 1024 * 1024 // 65  # demo_big writes whole 65-byte lines
            assert not r.is_error and len(text) == lines * 65 > 8 * 1024 * 1024
            assert text.count("\n") == lines


async def test_batch_under_2025_03_26(demo: Responders, bridge_argv: list[str]) -> None:
    """A JSON-RPC batch is answered as an array under 2025-03-26, each request passing the normal checks."""
    import asyncio
    import subprocess

    from .conftest import MCP_NATS, child_env

    proc = await asyncio.create_subprocess_exec(
        MCP_NATS, *bridge_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env(), limit=1 << 24
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with anyio.fail_after(30):
            init = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-03-26",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            }
            proc.stdin.write(msgspec.json.encode(init) + b"\n")
            assert (
                msgspec.json.decode(await proc.stdout.readline())["result"]["protocolVersion"] == "2025-03-26"
            )
            batch = [
                {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {
                    "jsonrpc": "2.0",
                    "id": "two",
                    "method": "tools/call",
                    "params": {"name": "demo_add", "arguments": {"a": 1, "b": 2}},
                },
                {"jsonrpc": "2.0", "id": 3, "method": "no/such"},
            ]
            proc.stdin.write(msgspec.json.encode(batch) + b"\n")
            replies = msgspec.json.decode(await proc.stdout.readline())
            by_id = {r["id"]: r for r in replies}
            assert set(by_id) == {1, "two", 3}
            assert by_id[1]["result"] == {} and by_id["two"]["result"]["structuredContent"]["sum"] == 3
            assert by_id[3]["error"]["code"] == -32601
    finally:
        proc.stdin.close()
        await proc.wait()
