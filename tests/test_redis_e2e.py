"""The redis service end to end against a real redis-server: the official MCP client drives the
bridge, which calls `mcp-nats serve redis` over NATS. Every tool with the data checked by a
direct client, read-only mode (write tools neither listed nor callable), the key allowlist, the
value caps and binary values, and scan_keys over 200k keys while another client's PING stays
fast (measured and printed; no timing assertion)."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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


README = Path(__file__).resolve().parent.parent / "README.md"


def readme_acl(user: str, password: str, url: str) -> list[str]:
    """The README's `ACL SETUSER <user> ...` line as a command, with the password (and `+select`
    when the URL names a database other than 0, as the README says)."""
    line = next(ln for ln in README.read_text().splitlines() if ln.startswith(f"ACL SETUSER {user} "))
    words = [w.replace(">PASSWORD", f">{password}") for w in line.split()]
    return words + ["+select"] if urlsplit(url).path.strip("/") not in ("", "0") else words


def url_as(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc.rpartition('@')[2]}"))


async def require_redis7_admin(rdb: aioredis.Redis) -> str:
    """The admin user's name; skips when the server has no ACL DRYRUN or the URL's user is no admin."""
    version = (await rdb.info("server"))["redis_version"]
    if int(str(version).split(".")[0]) < 7:
        pytest.skip(f"Redis {version}: the README's ACL users need 7.0 (%R~ key patterns, ACL DRYRUN)")
    user: str = (await command(rdb, "ACL", "WHOAMI")).decode()
    if await command(rdb, "ACL", "DRYRUN", user, "ACL", "SETUSER", "x") != b"OK":
        pytest.skip(f"the test server's user {user!r} may not create ACL users")
    return user


async def command(rdb: aioredis.Redis, *args: str) -> Any:
    """Any command through the admin client (redis-py types execute_command loosely)."""
    client: Any = rdb
    return await client.execute_command(*args)


def warnings_in(log: Path) -> list[str]:
    return [ln for ln in log.read_text(errors="replace").splitlines() if " WARNING " in ln]


async def test_readme_acl_users(
    redis_server: str, rdb: aioredis.Redis, responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """The README's ACL users, made by the admin: as mcp_reader every read tool works on app: keys; even a
    --write service as mcp_reader gets Redis's NOPERM (a tool error sentence) for a write and for a key
    outside app:*, with nothing changed; mcp_writer runs every write tool on app: keys and nothing outside;
    no warning at start. Redis holds the service to its ACL without our code."""
    await require_redis7_admin(rdb)
    pw = "acl-" + uuid.uuid4().hex
    for user in ("mcp_reader", "mcp_writer"):
        assert await command(rdb, *readme_acl(user, pw, redis_server)) == b"OK"
    try:
        await rdb.set("app:s", "hello", ex=1000)
        await rdb.hset("app:h", mapping={"f": "v"})
        await rdb.rpush("app:l", "a", "b")
        await rdb.sadd("app:st", "m")
        await rdb.zadd("app:z", {"a": 1.0})
        await rdb.xadd("app:x", {"k": "v"})
        await rdb.set("secret:1", "hidden")
        log = tmp_path / "serve.log"
        reader, writer = url_as(redis_server, "mcp_reader", pw), url_as(redis_server, "mcp_writer", pw)
        with open(log, "wb") as err:
            responders.start("redis", "--url", reader, "--name", "ro", stderr=err)
            responders.start("redis", "--url", reader, "--name", "rw", "--write", stderr=err)
            responders.start("redis", "--url", writer, "--name", "wr", "--write", stderr=err)
        for name in ("ro", "rw", "wr"):
            await responders.wait_instances(name, 1)
        with anyio.fail_after(90):
            async with bridge_client(bridge_argv, mode="legacy") as client:

                async def ok(tool: str, args: dict[str, Any]) -> dict[str, Any]:
                    r = await client.call_tool(tool, args)
                    assert not r.is_error, f"{tool}: {text_of(r)}"
                    assert isinstance(r.structured_content, dict)
                    return r.structured_content

                async def noperm(tool: str, args: dict[str, Any], what: str) -> None:
                    r = await client.call_tool(tool, args)
                    text = text_of(r)
                    assert r.is_error and text.startswith("permission denied by Redis: this user has no"), (
                        tool,
                        text,
                    )
                    assert what in text and "Traceback" not in text and "hidden" not in text, (tool, text)

                assert (await ok("ro_get", {"key": "app:s"}))["value"] == "hello"
                assert (await ok("ro_type", {"key": "app:h"}))["type"] == "hash"
                assert 900 < (await ok("ro_ttl", {"key": "app:s"}))["ttl"] <= 1000
                assert (await ok("ro_hget", {"name": "app:h", "key": "f"}))["value"] == "v"
                assert (await ok("ro_hgetall", {"name": "app:h"}))["fields"] == {"f": "v"}
                assert (await ok("ro_lrange", {"name": "app:l"}))["items"] == ["a", "b"]
                assert (await ok("ro_llen", {"name": "app:l"}))["count"] == 2
                assert (await ok("ro_smembers", {"name": "app:st"}))["items"] == ["m"]
                assert (await ok("ro_zrange", {"key": "app:z", "with_scores": True}))["scores"] == [1.0]
                assert [e["fields"] for e in (await ok("ro_xrange", {"key": "app:x"}))["entries"]] == [
                    {"k": "v"}
                ]
                assert (await ok("ro_xlen", {"key": "app:x"}))["count"] == 1
                assert "redis_version" in (await ok("ro_info", {"section": "server"}))["info"]
                assert (await ok("ro_dbsize", {}))["count"] == await rdb.dbsize()
                # key patterns do not filter SCAN (the README says so): names only, values stay refused
                scanned = await ok("ro_scan_keys", {"count": 1000})
                assert {"app:s", "secret:1"} <= set(scanned["keys"])
                await noperm("ro_get", {"key": "secret:1"}, "keys")

                await noperm("rw_set", {"key": "app:s", "value": "pwned"}, "'set' command")
                await noperm("rw_hset", {"name": "app:h", "key": "f", "value": "pwned"}, "'hset' command")
                await noperm("rw_delete", {"key": "app:l"}, "'del' command")
                await noperm("rw_get", {"key": "secret:1"}, "keys")
                await noperm("rw_type", {"key": "secret:1"}, "keys")

                await ok("wr_set", {"key": "app:new", "value": "x", "ex": 100})
                await ok("wr_expire", {"name": "app:new", "expire_seconds": 200})
                await ok("wr_hset", {"name": "app:h2", "key": "f", "value": "v", "expire_seconds": 100})
                await ok("wr_hdel", {"name": "app:h2", "key": "f"})
                await ok("wr_lpush", {"name": "app:l2", "value": "a", "expire": 100})
                await ok("wr_rpush", {"name": "app:l2", "value": "b"})
                await ok("wr_lpop", {"name": "app:l2"})
                await ok("wr_rpop", {"name": "app:l2"})
                await ok("wr_sadd", {"name": "app:s2", "value": "m", "expire_seconds": 100})
                await ok("wr_srem", {"name": "app:s2", "value": "m"})
                await ok("wr_zadd", {"key": "app:z2", "score": 1, "member": "a", "expiration": 100})
                await ok("wr_zrem", {"key": "app:z2", "member": "a"})
                await ok("wr_xadd", {"key": "app:x2", "fields": {"k": "v"}, "expiration": 100})
                assert (await ok("wr_delete", {"key": ["app:new", "app:x2"]}))["count"] == 2
                await noperm("wr_set", {"key": "secret:1", "value": "pwned"}, "keys")
                await noperm("wr_get", {"key": "secret:1"}, "keys")
        assert await rdb.get("app:s") == b"hello" and await rdb.hgetall("app:h") == {b"f": b"v"}
        assert await rdb.lrange("app:l", 0, -1) == [b"a", b"b"] and await rdb.get("secret:1") == b"hidden"
        assert not warnings_in(log), warnings_in(log)
        assert pw not in log.read_text(errors="replace")
    finally:
        await command(rdb, "ACL", "DELUSER", "mcp_reader", "mcp_writer")


async def test_admin_user_is_warned_at_start(
    redis_server: str, rdb: aioredis.Redis, responders: Responders, tmp_path: Path
) -> None:
    """As the admin user a read-only service logs one warning at start naming the user, what Redis would let it
    do, and the README's fix; with --keys also the keys outside them; a --write service without --keys none."""
    user = await require_redis7_admin(rdb)
    logs = {name: tmp_path / f"{name}.log" for name in ("ro", "keyed", "rw")}
    for name, args in (("ro", []), ("keyed", ["--keys", "app:*"]), ("rw", ["--write"])):
        with open(logs[name], "wb") as err:
            responders.start("redis", "--url", redis_server, "--name", name, *args, stderr=err)
    for name in logs:
        await responders.wait_instances(name, 1)
    ro, keyed, rw = (warnings_in(logs[n]) for n in ("ro", "keyed", "rw"))
    fix = "Connect as a user whose Redis ACL allows only the service's commands and keys (see the README: the mcp_reader ACL user)"
    assert len(ro) == 1 and len(keyed) == 1 and rw == [], (ro, keyed, rw)
    assert (
        f"ro: read-only mode, but the Redis user {user!r} may run every command the write tools send (on 'mcp-nats:acl-probe'), FLUSHDB"
        in ro[0]
    )
    assert "ACL SETUSER" in ro[0] and fix in ro[0] and "--keys" not in ro[0]
    assert (
        f"keyed: read-only mode, but the Redis user {user!r} may run every command the write tools send (on 'app:')"
        in keyed[0]
    )
    assert (
        "--keys app:*, but it may read keys outside them ('mcp-nats:acl-probe')" in keyed[0]
        and fix in keyed[0]
    )
    password = urlsplit(redis_server).password
    assert not password or not any(password in p.read_text(errors="replace") for p in logs.values())
