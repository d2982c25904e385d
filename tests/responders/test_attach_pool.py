"""The attach pool against a small real stdio server (tests/stdio_child.py), without NATS: retries after a
child dies mid-call only for read-only tools, idle children stop, old children are replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from responders.context import Context
from responders.errors import ToolError
from responders.services.attach import ChildPool, Forwarder, PoolLimits, build_service, read_catalog

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parent.parent.parent
CHILD = [sys.executable, "-m", "tests.stdio_child"]


def ctx() -> Context:
    async def send(_: bytes) -> None:
        return None

    return Context(
        call_id="c1",
        service="t",
        tool="x",
        client="",
        protocol_version="2025-06-18",
        deadline=None,
        progress_token=None,
        send=send,
    )


def pool(**limits: Any) -> ChildPool:
    return ChildPool(
        CHILD,
        service="t",
        limits=PoolLimits(**limits),
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def _kill_soon(p: ChildPool, after: float) -> int:
    await asyncio.sleep(after)
    pid = p.children[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return pid


async def test_a_read_only_call_is_retried_on_another_child_after_its_child_died() -> None:
    """`wait` is read-only: killed mid-call, it is answered by a new child."""
    async with pool(size=2, backoff_max=0.5) as p:
        fwd = Forwarder(p, await read_catalog(p))
        killed, result = await asyncio.gather(
            _kill_soon(p, 0.3), fwd.call_tool("wait", {"seconds": 1.0}, ctx(), True)
        )
        answered_by = int(result.content[0].text)  # type: ignore[union-attr]
        assert answered_by != killed and answered_by in [c.pid for c in p.children]


async def test_a_call_that_may_not_be_repeated_fails_when_its_child_dies() -> None:
    """`append` is neither read-only nor idempotent: a dead child is a tool error, never a second run."""
    async with pool(size=2, backoff_max=0.5) as p:
        fwd = Forwarder(p, await read_catalog(p))
        with pytest.raises(ToolError, match="not retried"):
            await asyncio.gather(_kill_soon(p, 0.3), fwd.call_tool("append", {"seconds": 1.0}, ctx(), False))
        assert p.died_total == 1


async def test_catalog_tools_keep_their_schema_and_annotations() -> None:
    """The Service built from the child lists its tools with the child's schemas and annotations."""
    async with pool() as p:
        svc = build_service("t", Forwarder(p, await read_catalog(p)))
        assert list(svc.tools) == ["pid", "wait", "append"]
        assert svc.tools["wait"].signature.input_schema == {
            "type": "object",
            "properties": {"seconds": {"type": "number"}},
        }
        assert (
            svc.tools["append"].annotations.readOnlyHint is False
            and svc.tools["pid"].annotations.readOnlyHint is True
        )


async def test_idle_children_stop_down_to_one_and_old_ones_are_replaced() -> None:
    """Two children started by concurrent calls: the idle one stops after idle_ttl; past max_lifetime a child is replaced."""
    async with pool(size=2, per_child=1, idle_ttl=0.5, max_lifetime=3.0) as p:
        fwd = Forwarder(p, await read_catalog(p))
        await asyncio.gather(*(fwd.call_tool("wait", {"seconds": 0.3}, ctx(), True) for _ in range(2)))
        assert p.started_total == 2
        async with asyncio.timeout(10):
            await p.wait_until(lambda: len(p.children) == 1)
        first = p.children[0].pid
        async with asyncio.timeout(15):
            while not p.children or p.children[0].pid == first:
                await asyncio.sleep(0.1)
                await fwd.call_tool("pid", {}, ctx(), True)  # calls keep being served meanwhile
        assert p.died_total == 0  # retired, not crashed


async def test_attach_instances_starts_that_many_responders(nats_server: Any, root: str) -> None:
    """`mcp-nats attach t --instances 2 -- CMD` serves two instances in the queue group, each with its pool."""
    from ..attach_helpers import Attached
    from ..conftest import Responders

    attached = Attached(nats_server.url, root)
    try:
        attached.start("t", CHILD, "--instances", "2")
        ids = await Responders(nats_server.url, root).wait_instances("t", 2, timeout=60)
        assert len(set(ids)) == 2
    finally:
        attached.stop_all()
