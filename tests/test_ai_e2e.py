"""The ai service end to end: `mcp-nats serve ai` against the in-repo fake model server, and ask_client
through the real bridge to the official MCP client's sampling callback; live tests when a real server is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from .conftest import Responders
from .e2e_helpers import bridge_client
from .fake_models import FakeModelServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def models() -> Iterator[FakeModelServer]:
    with FakeModelServer() as s:
        yield s


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(
            type="text", text=f"client model says: {asked} [{params.system_prompt}] {params.max_tokens}"
        ),
        model="client-model",
    )


def text(r: types.CallToolResult) -> str:
    return "".join(c.text for c in r.content if isinstance(c, types.TextContent))


async def test_ask_client_reaches_the_clients_model_with_no_model_server(
    responders: Responders, bridge_argv: list[str]
) -> None:
    """With no --url only ask_client is offered, and it answers through MCP sampling; a client without sampling gets -32021."""
    responders.start("ai")
    await responders.wait_instances("ai", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, sampling_callback=sampling) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert names == {"ai_ask_client"}
            r = await c.call_tool(
                "ai_ask_client", {"prompt": "what is 2+2?", "system": "be terse", "max_tokens": 50}
            )
            assert not r.is_error
            assert r.structured_content == {
                "model": "client-model",
                "text": "client model says: what is 2+2? [be terse] 50",
                "stop_reason": None,
            }
        async with bridge_client(bridge_argv, mode="legacy") as c:
            with pytest.raises(MCPError) as err:
                await c.call_tool("ai_ask_client", {"prompt": "hi"})
            assert err.value.error.code == -32021


async def test_generation_streams_progress_through_the_bridge(
    responders: Responders, bridge_argv: list[str], models: FakeModelServer
) -> None:
    """A streamed generation reaches the client as progress notifications, then the whole text."""
    responders.start("ai", "--url", models.url, "--model", "echo")
    await responders.wait_instances("ai", 1)
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    with anyio.fail_after(60):
        async with bridge_client(bridge_argv) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert names == {
                "ai_ask_client",
                "ai_generate",
                "ai_chat",
                "ai_embed",
                "ai_list_models",
                "ai_show_model",
            }
            slow = {"prompt": "go", "model": "slow"}
            r = await c.call_tool("ai_generate", slow, progress_callback=progress)  # type: ignore[arg-type]
            assert not r.is_error
            assert text(r).split() == [f"tick{i}" for i in range(10)]
            assert len(seen) >= 2 and seen == sorted(seen)
            d = await c.call_tool("ai_generate", {"prompt": "hello world"})
            assert text(d) == "echo: hello world"
            chat = await c.call_tool(
                "ai_chat",
                {
                    "messages": [{"role": "user", "content": "find cats"}],
                    "tools": [
                        {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
                    ],
                },
            )
            assert chat.structured_content is not None
            assert chat.structured_content["message"]["tool_calls"][0]["function"] == {
                "name": "search",
                "arguments": {"query": "find cats"},
            }
            missing = await c.call_tool("ai_generate", {"prompt": "x", "model": "no-such-model"})
            assert missing.is_error and "404" in text(missing)


async def test_cancelling_through_the_bridge_closes_the_upstream_request(
    responders: Responders, bridge_argv: list[str], models: FakeModelServer
) -> None:
    """The client cancels an endless generation; the responder's request to the model server is closed."""
    responders.start("ai", "--url", models.url, "--backend", "openai")
    await responders.wait_instances("ai", 1)
    models.disconnected.clear()
    before = len(models.disconnects)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv) as c:
            await c.list_tools()
            with anyio.move_on_after(1.5):
                await c.call_tool("ai_generate", {"prompt": "go", "model": "endless"})
            assert await anyio.to_thread.run_sync(models.disconnected.wait, 15)
    assert models.disconnects[before:] == ["endless"]


async def test_admin_tools_are_registered_only_with_admin(
    responders: Responders, bridge_argv: list[str], models: FakeModelServer
) -> None:
    """pull and delete exist only when the service is started with --admin."""
    responders.start("ai", "--url", models.url, "--admin")
    await responders.wait_instances("ai", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"ai_pull", "ai_delete"} <= names
            r = await c.call_tool("ai_pull", {"model": "echo"})
            assert not r.is_error and r.structured_content == {"model": "echo", "status": "success"}


LIVE = [
    pytest.param("ollama", os.environ.get("OLLAMA_HOST", ""), id="ollama"),
    pytest.param("openai", os.environ.get("OPENAI_BASE_URL", ""), id="openai"),
]


@pytest.mark.parametrize(("kind", "url"), LIVE)
async def test_live_server(responders: Responders, bridge_argv: list[str], kind: str, url: str) -> None:
    """Against a real model server (OLLAMA_HOST or OPENAI_BASE_URL; model from MCP_NATS_TEST_MODEL, else the first listed)."""
    if not url:
        pytest.skip(
            f"no live {kind} server: set {'OLLAMA_HOST' if kind == 'ollama' else 'OPENAI_BASE_URL'} to run it"
        )
    if "://" not in url:
        url = "http://" + url
    args = ["--url", url, "--backend", kind, "--read-timeout", "600"]
    if kind == "openai" and os.environ.get("OPENAI_API_KEY"):
        args += ["--api-key-env", "OPENAI_API_KEY"]
    responders.start("ai", *args, env={k: v for k, v in os.environ.items() if k == "OPENAI_API_KEY"})
    await responders.wait_instances("ai", 1)
    with anyio.fail_after(600):
        async with bridge_client(bridge_argv) as c:
            listed = await c.call_tool("ai_list_models", {})
            assert not listed.is_error and listed.structured_content is not None
            names = [m["name"] for m in listed.structured_content["models"]]
            model = os.environ.get("MCP_NATS_TEST_MODEL") or (names[0] if names else "")
            if not model:
                pytest.skip(f"the live {kind} server lists no model")
            r = await c.call_tool(
                "ai_generate", {"prompt": "Say hello.", "model": model, "options": {"num_predict": 16}}
            )
            assert not r.is_error and text(r).strip()
