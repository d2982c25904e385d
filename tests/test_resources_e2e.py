"""Resources through the bridge: merged lists, templates, reads routed to the owning service, both eras."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from bus import EmbeddedServer

from .conftest import Responders, child_env
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def slow_service(nats_server: EmbeddedServer, root: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.slow_service", nats_server.url, root], env=child_env()
    )
    yield proc
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize(("mode", "not_found"), [("auto", -32602), ("legacy", -32002)])
async def test_list_templates_and_read(
    mode: str,
    not_found: int,
    slow_service: object,
    nats_server: EmbeddedServer,
    root: str,
    bridge_argv: list[str],
) -> None:
    """A client lists a service's resources and templates and reads a fixed and a templated URI; an unknown URI is not found."""
    await Responders(nats_server.url, root).wait_instances("slow", 1)
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv, mode=mode) as client:
            resources = (await client.list_resources()).resources
            assert [str(r.uri) for r in resources] == ["slow://status"]
            templates = (await client.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["slow://echo/{word}"]
            status = await client.read_resource("slow://status")
            assert status.contents[0].text == "all good"  # type: ignore[union-attr]
            echo = await client.read_resource("slow://echo/hello%20world")
            assert base64.b64decode(echo.contents[0].blob) == b"hello world"  # type: ignore[union-attr]
            with pytest.raises(MCPError) as err:
                await client.read_resource("slow://nothing/here")
            assert err.value.error.code == not_found
