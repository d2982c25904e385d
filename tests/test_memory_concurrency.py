"""Many writers on many memory instances: compare-and-set updates lose nothing and duplicate nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import anyio
import msgspec
import pytest

from bus import Bus

from .conftest import Responders

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

INSTANCES = 4
CLIENTS = 50
ROUNDS = 4
ENTITIES = [f"shared-{i}" for i in range(5)]


async def call(bus: Bus, tool: str, arguments: Any) -> dict[str, Any]:
    body = msgspec.json.encode({"name": tool, "arguments": arguments})
    reply = await bus.request(f"{bus.subjects.root}.memory.tools.call.{tool}", body, timeout=30)
    result: dict[str, Any] = msgspec.json.decode(reply.data)
    assert not result.get("isError"), result
    return result


async def test_fifty_clients_on_four_instances_add_every_observation_exactly_once(
    responders: Responders, bus: Bus
) -> None:
    """50 concurrent clients add observations to the same 5 entities through 4 instances; afterwards every observation
    is present exactly once, and each shared one is reported added by exactly one client."""
    for _ in range(INSTANCES):
        responders.start("memory")
    await responders.wait_instances("memory", INSTANCES)
    await call(
        bus,
        "create_entities",
        {"entities": [{"name": n, "entityType": "topic", "observations": []} for n in ENTITIES]},
    )

    reported: Counter[tuple[str, str]] = Counter()

    async def client(c: int) -> None:
        for r in range(ROUNDS):
            # every client adds its own observation, and one that every client adds in this round
            items = [{"entityName": n, "contents": [f"c{c}-r{r}", f"common-r{r}"]} for n in ENTITIES]
            result = await call(bus, "add_observations", {"observations": items})
            for entry in result["structuredContent"]["results"]:
                for added in entry["addedObservations"]:
                    reported[(entry["entityName"], added)] += 1

    with anyio.fail_after(60):
        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        graph = (await call(bus, "read_graph", {}))["structuredContent"]
        stats = await bus.scatter(f"$SRV.STATS.{bus.subjects.root}-memory", idle=0.2, limit=2.0)

    expected = {f"c{c}-r{r}" for c in range(CLIENTS) for r in range(ROUNDS)} | {
        f"common-r{r}" for r in range(ROUNDS)
    }
    assert [e["name"] for e in graph["entities"]] == ENTITIES
    for entity in graph["entities"]:
        obs = entity["observations"]
        assert len(obs) == len(set(obs)), f"{entity['name']} has duplicated observations"
        assert set(obs) == expected, f"{entity['name']} lost {len(expected - set(obs))} observations"
    assert all(n == 1 for n in reported.values()), "an observation was reported added by two clients"
    assert len(reported) == len(ENTITIES) * len(expected)
    served = [
        next(
            e["num_requests"]
            for e in msgspec.json.decode(s.data)["endpoints"]
            if e["name"] == "add_observations"
        )
        for s in stats
    ]
    assert len(served) == INSTANCES and all(n > 0 for n in served), (
        f"every instance should have taken writes: {served}"
    )
