"""End to end: the official MCP client launches `mcp-nats bridge` and uses fs tools through NATS."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from .conftest import Responders
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_list_and_call_fs_tools_in_both_eras(
    mode: str, responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """A 2026-07-28 (auto: discover probe) and a 2025-11-25 (initialize) client both list and call fs tools."""
    (tmp_path / "hello.txt").write_text("line1\nline2\nline3\n")
    responders.start("fs", "--fs-root", str(tmp_path))
    await responders.wait_instances("fs", 1)
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode=mode) as client:
            assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
            tools = (await client.list_tools()).tools
            names = {t.name for t in tools}
            assert {
                "fs_read_text_file",
                "fs_list_directory",
                "fs_get_file_info",
                "fs_write_file",
                "fs_list_allowed_directories",
            } <= names
            read = next(t for t in tools if t.name == "fs_read_text_file")
            assert read.annotations is not None and read.annotations.read_only_hint is True
            assert read.input_schema["properties"]["path"]["type"] == "string"

            result = await client.call_tool(
                "fs_read_text_file", {"path": str(tmp_path / "hello.txt"), "head": 2}
            )
            assert not result.is_error
            assert result.content[0].text == "line1\nline2\n"  # type: ignore[union-attr]
            assert result.structured_content == {"content": "line1\nline2\n"}

            written = await client.call_tool(
                "fs_write_file", {"path": "new.txt", "content": "made over NATS"}
            )
            assert not written.is_error
            assert (tmp_path / "new.txt").read_text() == "made over NATS"

            listing = await client.call_tool("fs_list_directory", {"path": str(tmp_path)})
            assert listing.content[0].text.splitlines() == ["[FILE] hello.txt", "[FILE] new.txt"]  # type: ignore[union-attr]


async def test_bad_argument_is_a_tool_error_naming_the_field(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """A wrong argument type comes back as isError naming the argument; an unknown tool is -32602."""
    responders.start("fs", "--fs-root", str(tmp_path))
    await responders.wait_instances("fs", 1)
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            bad = await client.call_tool("fs_read_text_file", {"path": "x", "head": "ten"})
            assert bad.is_error
            assert "'head'" in bad.content[0].text  # type: ignore[union-attr]
            with pytest.raises(MCPError) as err:
                await client.call_tool("fs_no_such_tool", {})
            assert err.value.error.code == -32602


async def test_call_to_a_stopped_service_fails_at_once_naming_it(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """With its only responder gone, a call fails quickly with the no-responder code, and works again after a restart."""
    proc = responders.start("fs", "--fs-root", str(tmp_path))
    await responders.wait_instances("fs", 1)
    (tmp_path / "a.txt").write_text("a")
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            await client.list_tools()
            proc.terminate()
            proc.wait(10)
            with anyio.fail_after(5):
                with pytest.raises(MCPError) as err:
                    await client.call_tool("fs_read_text_file", {"path": str(tmp_path / "a.txt")})
            assert err.value.error.code == -31001
            assert "mcp-nats serve fs" in err.value.error.message
            responders.start("fs", "--fs-root", str(tmp_path))
            await responders.wait_instances("fs", 1)
            ok = await client.call_tool("fs_read_text_file", {"path": str(tmp_path / "a.txt")})
            assert ok.content[0].text == "a"  # type: ignore[union-attr]
