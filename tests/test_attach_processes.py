"""An attached server's pool leaves no process behind: 1,000 calls, 10 forced child crashes (5 of the
process we started, 5 of a server it started in turn), then SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import anyio
import msgspec
import pytest

from bus import Bus

from .attach_helpers import Attached, everything_entry
from .conftest import Responders

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SVC = "crashy"
CALLS = 1000
CRASHES = 10


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of a live process, else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie is dead; it only waits for its parent to reap it
    return int(fields[1]), int(fields[2])


def descendants(root: int) -> set[int]:
    """Every live process below `root`."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents[int(entry)] = st[0]
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def in_groups(groups: set[int]) -> set[int]:
    """Every live process whose process group is one of `groups` (orphans included: they keep their group)."""
    out: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] in groups:
                out.add(int(entry))
    return out


async def test_no_process_outlives_the_pool_after_calls_and_crashes(
    attached: Attached, responders: Responders, bus: Bus, root: str
) -> None:
    """After 1,000 calls, 10 SIGKILLed children (leaders and the servers under them) and SIGTERM, no child,
    grandchild or orphan of the pool is alive, and every call succeeded (a read-only call that met a dead child is retried)."""
    entry = everything_entry()
    # sh runs node as its child, so each pool member is a leader with a server below it, as with npx or uvx.
    proc = attached.start(
        SVC,
        ["sh", "-c", f"node {entry} stdio; exit 3"],
        "--pool",
        "2",
        "--max-per-child",
        "4",
        "--backoff-max",
        "1",
    )
    await responders.wait_instances(SVC, 1, timeout=60)
    seen_groups: set[int] = set()
    ok = failed = 0
    subject = f"{root}.{SVC}.tools.call.echo"

    async def one(i: int) -> None:
        nonlocal ok, failed
        body = msgspec.json.encode({"name": "echo", "arguments": {"message": f"m{i}"}})
        reply = await bus.request(subject, body, timeout=60)
        if reply.headers and "Nats-Service-Error-Code" in reply.headers:
            failed += 1
            return
        result = msgspec.json.decode(reply.data)
        if result.get("isError"):
            failed += 1
        else:
            assert result["content"][0]["text"] == f"Echo: m{i}"
            ok += 1

    def crash(n: int) -> None:
        below = descendants(proc.pid)
        leaders = {p for p in below if (_stat(p) or (0, 0))[0] == proc.pid}
        seen_groups.update(leaders)
        victims = sorted(leaders) if n % 2 == 0 else sorted(below - leaders)
        assert victims, "no child to crash"
        os.kill(victims[0], signal.SIGKILL)

    with anyio.fail_after(240):
        for batch in range(CALLS // 100):
            await asyncio.gather(*(one(batch * 100 + i) for i in range(100)))
            if batch < CRASHES:
                crash(batch)
        # the pool replaces what died (after its restart backoff): never more than --pool leaders, and soon one
        leaders: set[int] = set()
        while not leaders:
            below = descendants(proc.pid)
            leaders = {p for p in below if (_stat(p) or (0, 0))[0] == proc.pid}
            seen_groups.update(leaders)
            assert len(leaders) <= 2
            if not leaders:
                await anyio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(proc.wait, 30) == 0
        while in_groups(seen_groups):  # noqa: ASYNC110 (polling /proc: the kernel may still be tearing the last ones down)
            await anyio.sleep(0.05)
    assert (ok, failed) == (
        CALLS,
        0,
    )  # echo is read-only: a call that met a dead child was retried on another
    assert len(seen_groups) > CRASHES // 2  # crashed leaders were replaced by new ones
    assert in_groups(seen_groups) == set()


@pytest.fixture
def attached(nats_server: object, root: str) -> object:
    a = Attached(nats_server.url, root)  # type: ignore[attr-defined]
    yield a
    a.stop_all()
