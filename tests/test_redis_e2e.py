"""The redis service end to end against a real redis-server: the official MCP client drives the
bridge, which calls `mcp-nats serve redis` over NATS. Every tool with the data checked by a
direct client, read-only mode (write tools neither listed nor callable), the key allowlist, the
value caps and binary values, and scan_keys over 200k keys while another client's PING stays
fast (measured and printed; no timing assertion)."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from mcp.types import CallToolResult, TextContent

from . import db_servers
from .conftest import Responders
from .e2e_helpers import bridge_client

pytestmark = pytest.mark.anyio
WRITE_TOOLS = {
    "set",
    "delete",
    "expire",
    "hset",
    "hdel",
    "lpush",
    "rpush",
    "lpop",
    "rpop",
    "sadd",
    "srem",
    "zadd",
    "zrem",
    "xadd",
}
READ_TOOLS = {
    "get",
    "scan_keys",
    "type",
    "ttl",
    "hget",
    "hgetall",
    "lrange",
    "llen",
    "smembers",
    "zrange",
    "xrange",
    "xlen",
    "info",
    "dbsize",
}


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with db_servers.redis_url() as url:
        if url is None:
            pytest.skip(db_servers.missing.reason)
        yield url


@pytest.fixture
async def rdb(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def call(client: Any, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    r = await client.call_tool(f"redis_{tool}", args)
    assert not r.is_error, f"{tool}: {text_of(r)}"
    assert isinstance(r.structured_content, dict) and text_of(r)
    return r.structured_content


async def test_every_tool(
    redis_server: str, rdb: aioredis.Redis, responders: Responders, bridge_argv: list[str]
) -> None:
    """Each tool does what its name says, checked against Redis directly; binary values come back base64 and flagged; long values are cut and flagged."""
    responders.start("redis", "--url", redis_server, "--write", env={"MCP_NATS_REDIS_MAX_VALUE_BYTES": "64"})
    await responders.wait_instances("redis", 1)
    await rdb.set("bin", b"\xff\x00\xfe")
    await rdb.set("long", b"x" * 100)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            tools = {t.name.removeprefix("redis_"): t for t in (await client.list_tools()).tools}
            assert set(tools) == READ_TOOLS | WRITE_TOOLS
            for n in READ_TOOLS:
                ann = tools[n].annotations
                assert ann is not None and ann.read_only_hint is True, n
            for n in WRITE_TOOLS:
                ann = tools[n].annotations
                assert ann is not None and ann.read_only_hint is False, n
                assert tools[n].output_schema is not None

            assert (await call(client, "set", {"key": "s", "value": "héllo", "ex": 100}))["ok"] is True
            assert await rdb.get("s") == "héllo".encode()
            assert (await call(client, "get", {"key": "s"}))["value"] == "héllo"
            assert (await call(client, "get", {"key": "missing"}))["value"] is None
            assert (await call(client, "get", {"key": "bin"}))["value"] == {"base64": "/wD+"}
            cut = await call(client, "get", {"key": "long"})
            assert cut["value"] == "x" * 64 and cut["truncated"] is True and cut["size"] == 100
            big = await client.call_tool("redis_set", {"key": "big", "value": "y" * 65})
            assert big.is_error and "at most 64" in text_of(big) and await rdb.exists("big") == 0
            ttl = await call(client, "ttl", {"key": "s"})
            assert ttl["exists"] is True and 90 <= ttl["ttl"] <= 100
            assert (await call(client, "expire", {"name": "s", "expire_seconds": 5000}))["ok"] is True
            assert await rdb.ttl("s") > 4000
            assert (await call(client, "type", {"key": "s"}))["type"] == "string"

            await call(client, "hset", {"name": "h", "key": "f1", "value": "v1"})
            await call(client, "hset", {"name": "h", "key": "f2", "value": "v2", "expire_seconds": 100})
            assert await rdb.hgetall("h") == {b"f1": b"v1", b"f2": b"v2"} and await rdb.ttl("h") > 0
            assert (await call(client, "hget", {"name": "h", "key": "f1"}))["value"] == "v1"
            assert (await call(client, "hgetall", {"name": "h"}))["fields"] == {"f1": "v1", "f2": "v2"}
            assert (await call(client, "hdel", {"name": "h", "key": "f1"}))["count"] == 1
            assert await rdb.hkeys("h") == [b"f2"]

            assert (await call(client, "rpush", {"name": "l", "value": "b"}))["count"] == 1
            assert (await call(client, "lpush", {"name": "l", "value": "a"}))["count"] == 2
            await call(client, "rpush", {"name": "l", "value": "c"})
            assert (await call(client, "lrange", {"name": "l"}))["items"] == ["a", "b", "c"]
            assert (await call(client, "lrange", {"name": "l", "start": -2, "stop": -1}))["items"] == [
                "b",
                "c",
            ]
            assert (await call(client, "llen", {"name": "l"}))["count"] == 3
            assert (await call(client, "lpop", {"name": "l"}))["value"] == "a"
            assert (await call(client, "rpop", {"name": "l"}))["value"] == "c"
            assert await rdb.lrange("l", 0, -1) == [b"b"]

            assert (await call(client, "sadd", {"name": "st", "value": "m1"}))["count"] == 1
            assert (await call(client, "sadd", {"name": "st", "value": "m1"}))["count"] == 0
            await call(client, "sadd", {"name": "st", "value": "m2"})
            assert (await call(client, "smembers", {"name": "st"}))["items"] == ["m1", "m2"]
            assert (await call(client, "srem", {"name": "st", "value": "m1"}))["count"] == 1
            assert await rdb.smembers("st") == {b"m2"}

            await call(client, "zadd", {"key": "z", "score": 2.5, "member": "b"})
            await call(client, "zadd", {"key": "z", "score": 1, "member": "a"})
            ranged = await call(client, "zrange", {"key": "z", "with_scores": True})
            assert ranged["items"] == ["a", "b"] and ranged["scores"] == [1.0, 2.5]
            assert (await call(client, "zrange", {"key": "z", "start": 1}))["items"] == ["b"]
            assert (await call(client, "zrem", {"key": "z", "member": "a"}))["count"] == 1
            assert await rdb.zrange("z", 0, -1) == [b"b"]

            added = await call(client, "xadd", {"key": "x", "fields": {"k": "v", "n": "1"}})
            assert added["ok"] is True and await rdb.xlen("x") == 1
            await call(client, "xadd", {"key": "x", "fields": {"k": "w"}})
            entries = (await call(client, "xrange", {"key": "x"}))["entries"]
            assert [e["fields"] for e in entries] == [{"k": "v", "n": "1"}, {"k": "w"}]
            assert (await call(client, "xrange", {"key": "x", "count": 1}))["truncated"] is True
            assert (await call(client, "xlen", {"key": "x"}))["count"] == 2

            assert "redis_version" in (await call(client, "info", {"section": "server"}))["info"]
            bad = await client.call_tool("redis_info", {"section": "config"})
            assert bad.is_error
            assert (await call(client, "dbsize", {}))["count"] == await rdb.dbsize()
            wrong = await client.call_tool("redis_hget", {"name": "l", "key": "f"})
            assert wrong.is_error and "wrong type" in text_of(wrong)

            found: set[str] = set()
            cursor = 0
            while True:
                step = await call(client, "scan_keys", {"pattern": "*", "count": 2, "cursor": cursor})
                found.update(step["keys"])
                cursor = step["cursor"]
                if cursor == 0:
                    break
            assert found == {k.decode() if isinstance(k, bytes) else k for k in await rdb.keys("*")}
            assert (await call(client, "delete", {"key": ["s", "h", "nope"]}))["count"] == 2
            assert (await call(client, "delete", {"key": "l"}))["count"] == 1
            assert await rdb.exists("s", "h", "l") == 0


async def test_read_only_mode_lists_and_accepts_no_write_tool(
    redis_server: str, rdb: aioredis.Redis, responders: Responders, bridge_argv: list[str]
) -> None:
    """Without --write no write tool is listed, and calling one by name fails without touching Redis."""
    responders.start("redis", "--url", redis_server)
    await responders.wait_instances("redis", 1)
    await rdb.set("k", "v")
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            listed = (await client.list_tools()).tools
            names = {t.name.removeprefix("redis_") for t in listed}
            assert names == READ_TOOLS
            password = redis_server.rpartition("@")[0].rpartition(":")[2]
            assert not password or not any(password in t.model_dump_json() for t in listed)
            for tool, args in [
                ("set", {"key": "k", "value": "pwned"}),
                ("delete", {"key": "k"}),
                ("lpush", {"name": "k2", "value": "x"}),
            ]:
                try:
                    r = await client.call_tool(f"redis_{tool}", args)
                except Exception as exc:  # an unknown tool is a JSON-RPC error
                    assert "Unknown tool" in str(exc) or "unknown tool" in str(exc).lower(), exc
                else:
                    assert r.is_error, text_of(r)
            assert (await call(client, "get", {"key": "k"}))["value"] == "v"
    assert await rdb.get("k") == b"v" and await rdb.exists("k2") == 0


async def test_key_allowlist(
    redis_server: str, rdb: aioredis.Redis, responders: Responders, bridge_argv: list[str]
) -> None:
    """With --keys, a key outside the patterns is refused before Redis sees it, and scans return only allowed keys."""
    responders.start("redis", "--url", redis_server, "--write", "--keys", "app:*", "--keys", "cfg:[ab]")
    await responders.wait_instances("redis", 1)
    await rdb.mset({"app:1": "one", "secret:1": "hidden", "cfg:a": "A", "cfg:c": "C"})
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            assert (await call(client, "get", {"key": "app:1"}))["value"] == "one"
            assert (await call(client, "get", {"key": "cfg:a"}))["value"] == "A"
            cases: list[tuple[str, dict[str, Any]]] = [
                ("get", {"key": "secret:1"}),
                ("get", {"key": "cfg:c"}),
                ("type", {"key": "secret:1"}),
                ("set", {"key": "secret:1", "value": "pwned"}),
                ("set", {"key": "other", "value": "x"}),
                ("delete", {"key": ["app:1", "secret:1"]}),
                ("hgetall", {"name": "secret:1"}),
                ("lpush", {"name": "xapp:1", "value": "x"}),
            ]
            for tool, args in cases:
                r = await client.call_tool(f"redis_{tool}", args)
                assert r.is_error and "refused" in text_of(r) and "hidden" not in text_of(r), (
                    tool,
                    text_of(r),
                )
            seen: set[str] = set()
            cursor = 0
            while True:
                step = await call(client, "scan_keys", {"cursor": cursor})
                seen.update(step["keys"])
                cursor = step["cursor"]
                if cursor == 0:
                    break
            assert seen == {"app:1", "cfg:a"}
    assert (
        await rdb.get("secret:1") == b"hidden"
        and await rdb.get("app:1") == b"one"
        and await rdb.exists("other", "xapp:1") == 0
    )


@pytest.mark.slow
async def test_scan_over_200k_keys_never_blocks_the_server(
    redis_server: str, rdb: aioredis.Redis, responders: Responders, bridge_argv: list[str]
) -> None:
    """scan_keys walks 200k keys step by step; another client's PING during the walk stays fast (printed; not asserted)."""
    n = 200_000
    async with rdb.pipeline(transaction=False) as p:
        for i in range(n):
            p.set(f"k:{i}", "v")
        await p.execute()
    responders.start("redis", "--url", redis_server)
    await responders.wait_instances("redis", 1)
    pings: list[float] = []
    found: set[str] = set()
    steps = 0
    with anyio.fail_after(240):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            done = anyio.Event()

            async def ping() -> None:
                probe = aioredis.Redis.from_url(redis_server)
                try:
                    while not done.is_set():
                        t0 = time.perf_counter()
                        await probe.ping()
                        pings.append((time.perf_counter() - t0) * 1000)
                        await anyio.sleep(0.005)
                finally:
                    await probe.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(ping)
                t0 = time.perf_counter()
                cursor = 0
                while True:
                    step = await call(
                        client, "scan_keys", {"pattern": "k:*", "count": 1000, "cursor": cursor}
                    )
                    found.update(step["keys"])
                    steps += 1
                    cursor = step["cursor"]
                    if cursor == 0:
                        break
                elapsed = time.perf_counter() - t0
                done.set()
    assert len(found) == n
    assert len(pings) > 10
    pings.sort()
    print(  # noqa: T201 - the measurement the issue asks to see
        f"\nscan_keys over {n} keys: {steps} steps in {elapsed:.1f} s; concurrent PING from another client: "
        f"{len(pings)} pings, p50 {statistics.median(pings):.2f} ms, p99 {pings[int(len(pings) * 0.99) - 1]:.2f} ms, "
        f"max {pings[-1]:.2f} ms"
    )
