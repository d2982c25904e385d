"""`mcp-nats bridge --autostart` starts the embedded default when no server answers, and the client gets the fs tools."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest

from ..e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio


async def test_autostart_brings_up_server_and_fs(tmp_path: Path) -> None:
    """With nothing running under its state dir, the bridge starts `up` detached; fs tools then appear (list_changed) and work."""
    state = tmp_path / "state"
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.txt").write_text("auto")
    env = {"MCP_NATS_STATE_DIR": str(state), "CLAUDE_PROJECT_DIR": str(project)}
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    try:
        with anyio.fail_after(60):
            async with bridge_client(
                ["bridge", "--autostart"], mode="legacy", env=env, message_handler=on_message
            ) as c:
                names = {t.name for t in (await c.list_tools()).tools}
                if "fs_read_text_file" not in names:
                    await changed.wait()
                r = await c.call_tool("fs_read_text_file", {"path": "a.txt"})
                assert r.content[0].text == "auto"  # type: ignore[union-attr]
        assert (state / "up.pid").exists() and (state / "nats.url").exists()
    finally:
        pid_file = state / "up.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            end = time.monotonic() + 30
            while time.monotonic() < end:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await anyio.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
