"""The postgres service end to end against a real PostgreSQL: the official MCP client drives
`mcp-nats bridge`, which calls `mcp-nats serve postgres` responders over NATS. The bypass table
(each case followed by a check of the database's state), typed results, both caps, statement
timeouts and deadlines cancelling the statement on the server, two instances sharing the load,
backends terminated mid-run, write mode, resources, and the password never shown."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import jsonschema
import msgspec
import pytest
from mcp.types import CallToolResult, TextContent

from bus import Bus, connect
from schemas.config import NatsSettings

from . import db_servers, pg_helpers
from .conftest import MCP_NATS, Responders, child_env
from .e2e_helpers import bridge_client
from .pg_helpers import PgDatabase

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    with db_servers.postgres_admin_url() as url:
        if url is None:
            pytest.skip(db_servers.missing.reason)
        yield url


@pytest.fixture
async def pg(pg_admin: str, tmp_path: Path) -> AsyncIterator[PgDatabase]:
    os.chmod(
        tmp_path, 0o777
    )  # so only the database role, not file modes, stands between COPY TO and this directory
    db = await pg_helpers.create(pg_admin, tmp_path)
    try:
        yield db
    finally:
        await pg_helpers.drop(pg_admin, db)


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def active(db: PgDatabase, like: str) -> list[str]:
    """Queries of the service's sessions that are running now (not this probe)."""
    conn = await asyncpg.connect(db.admin_url, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT query FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE $2 AND pid <> pg_backend_pid()",
            db.role,
            like,
        )
        return [r[0] for r in rows]
    finally:
        await conn.close()


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


@dataclass(frozen=True)
class Bypass:
    name: str
    sql: str
    refused: bool
    """True: the call must fail (isError). False: it may succeed, but must change nothing."""
    then: str | None = None
    """A write attempted in the next call (same connection: pool of one), which must be refused."""


def bypasses(db: PgDatabase) -> list[Bypass]:
    f = db.tmp
    write = "INSERT INTO items (name) VALUES ('pwned')"
    return [
        Bypass("COMMIT prefix", f"COMMIT; {write}", True),
        Bypass("ROLLBACK prefix", "ROLLBACK; DELETE FROM items", True),
        Bypass("END prefix", "END; DELETE FROM items", True),
        Bypass("COMMIT alone, write next", "COMMIT", True, then=write),
        Bypass("second statement", "SELECT 1; DELETE FROM items", True),
        Bypass("second statement, comment", "SELECT 1 /* x */; DROP TABLE kinds", True),
        Bypass("writable CTE", "WITH d AS (DELETE FROM items RETURNING *) SELECT count(*) FROM d", True),
        Bypass("writable CTE insert", f"WITH x AS (SELECT 1) {write}", True),
        Bypass("plain write", "UPDATE items SET price = 0", True),
        Bypass("DDL", "CREATE TABLE pwned (x int)", True),
        Bypass(
            "set_config transaction_read_only",
            "SELECT set_config('transaction_read_only', 'off', false)",
            True,
            then=write,
        ),
        Bypass(
            "set_config local", "SELECT set_config('transaction_read_only', 'off', true)", True, then=write
        ),
        Bypass("SET transaction_read_only", "SET transaction_read_only = off", False, then=write),
        Bypass(
            "DO block that sets read-write",
            f"DO $$ BEGIN SET transaction_read_only = off; {write}; END $$",
            True,
        ),
        Bypass(
            "DO block with set_config",
            f"DO $$ BEGIN PERFORM set_config('transaction_read_only', 'off', true); {write}; END $$",
            True,
        ),
        Bypass(
            "SET SESSION CHARACTERISTICS",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            False,
            then=write,
        ),
        Bypass("default_transaction_read_only", "SET default_transaction_read_only = off", False, then=write),
        Bypass("DO block", f"DO $$ BEGIN {write}; END $$", True),
        Bypass("DO block with COMMIT", f"DO $$ BEGIN COMMIT; {write}; END $$", True),
        Bypass("COPY TO file", f"COPY items TO '{f}/copy.csv'", True),
        Bypass("COPY query TO file", f"COPY (SELECT 1) TO '{f}/copy2.csv'", True),
        Bypass("COPY TO PROGRAM", f"COPY items TO PROGRAM 'touch {f}/program'", True),
        Bypass("COPY FROM", "COPY items FROM '/etc/hostname'", True),
        Bypass("pg_read_file", "SELECT pg_read_file('/etc/passwd')", True),
        Bypass("pg_read_binary_file", "SELECT pg_read_binary_file('/etc/passwd')", True),
        Bypass("pg_ls_dir", "SELECT pg_ls_dir('/')", True),
        Bypass("lo_import", "SELECT lo_import('/etc/passwd')", True),
        Bypass("nextval", "SELECT nextval('counter')", True),
        Bypass("nextval serial", "SELECT nextval('items_id_seq')", True),
        Bypass("setval", "SELECT setval('counter', 1000)", True),
        Bypass("advisory lock left held", "SELECT pg_advisory_lock(4242)", False),
        Bypass("advisory lock shared", "SELECT pg_advisory_lock_shared(4243)", False),
        Bypass("LISTEN", "LISTEN pwn", False),
        Bypass("NOTIFY", "NOTIFY pwn, 'payload'", False),
        Bypass("pg_notify", "SELECT pg_notify('pwn', 'payload')", False),
        Bypass("PREPARE TRANSACTION", "PREPARE TRANSACTION 'pwn'", True),
        Bypass("VOLATILE function that writes", "SELECT bump()", True),
        Bypass("SET ROLE", "SET ROLE postgres", True),
        Bypass("ALTER ROLE", f"ALTER ROLE {db.role} SUPERUSER", True),
        Bypass("pg_sleep past the timeout", "SELECT pg_sleep(30)", True),
        Bypass(
            "timeout disabled inside the statement",
            "SELECT set_config('statement_timeout', '0', true), pg_sleep(30)",
            True,
        ),
        Bypass("huge result", "SELECT generate_series(1, 50000000)", False),
    ]


def start_pg(responders: Responders, db: PgDatabase, *args: str, env: dict[str, str] | None = None) -> None:
    responders.start("postgres", "--url", db.reader_url, *args, env=env)


async def test_bypass_table_is_refused_or_harmless(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """Every bypass the reference servers' users found is refused or harmless, the database is unchanged after each case, and no reply leaks a file or the password."""
    start_pg(
        responders,
        pg,
        "--statement-timeout",
        "1",
        "--max-rows",
        "100",
        env={"MCP_NATS_POSTGRES_POOL_SIZE": "1"},
    )
    await responders.wait_instances("postgres", 1)
    baseline = await pg_helpers.snapshot(pg)
    listener = await asyncpg.connect(pg.admin_url, timeout=10)
    victim = await asyncpg.connect(pg.admin_url, timeout=10)
    heard: list[str] = []
    await listener.add_listener("pwn", lambda *a: heard.append(str(a[-1])))
    table = bypasses(pg) + [
        Bypass(
            "pg_terminate_backend of another session",
            f"SELECT pg_terminate_backend({victim.get_server_pid()})",
            True,
        ),
        Bypass(
            "pg_cancel_backend of another session",
            f"SELECT pg_cancel_backend({victim.get_server_pid()})",
            True,
        ),
    ]
    failures: list[str] = []
    try:
        with anyio.fail_after(240):
            async with bridge_client(bridge_argv, mode="legacy") as client:
                for case in table:
                    result = await client.call_tool("postgres_query", {"sql": case.sql})
                    text = text_of(result)
                    if case.refused and not result.is_error:
                        failures.append(f"{case.name}: not refused: {text[:200]}")
                    if case.refused and not (20 < len(text) < 600):
                        failures.append(f"{case.name}: the refusal should be one sentence: {text[:300]!r}")
                    if (
                        pg.password in text
                        or "root:x:0:0" in text
                        or "Traceback" in text
                        or "asyncpg." in text
                    ):
                        failures.append(f"{case.name}: leaked: {text[:300]}")
                    if case.name == "huge result":
                        sc = result.structured_content or {}
                        if result.is_error or sc.get("rowCount") != 100 or sc.get("truncated") is not True:
                            failures.append(f"huge result: expected 100 rows, truncated: {text[-300:]}")
                    if case.then is not None:
                        after = await client.call_tool("postgres_query", {"sql": case.then})
                        if not after.is_error or "read-only" not in text_of(after):
                            failures.append(
                                f"{case.name}: the write after it was not refused as read-only: {text_of(after)[:200]}"
                            )
                    state = await pg_helpers.snapshot(pg)
                    if state != baseline:
                        changed = {k: (baseline[k], v) for k, v in state.items() if baseline[k] != v}
                        failures.append(f"{case.name}: the database changed: {changed}")
                        baseline = state
                    if await active(pg, "%"):
                        failures.append(
                            f"{case.name}: a statement is still running on the server: {await active(pg, '%')}"
                        )
                    if victim.is_closed() or await victim.fetchval("SELECT 1") != 1:
                        failures.append(f"{case.name}: another session was terminated")
                ok = await client.call_tool("postgres_query", {"sql": "SELECT count(*) AS n FROM items"})
                assert not ok.is_error and ok.structured_content == {
                    "columns": [{"name": "n", "type": "int8"}],
                    "rows": [[100]],
                    "rowCount": 1,
                    "truncated": False,
                    "truncatedBy": None,
                    "command": "",
                }
        await asyncio.sleep(0)  # deliver any notification already received
        if heard:
            failures.append(f"a NOTIFY was delivered: {heard}")
    finally:
        await listener.close()
        await victim.close()
    assert not failures, "\n".join(failures)
    assert len(table) >= 40


async def test_results_are_typed_and_json_safe(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """Columns carry PostgreSQL type names, values are JSON-safe (numeric as text, ISO timestamps, base64 bytea, NaN spelled out), the result validates against the outputSchema, and the text is a table."""
    start_pg(responders, pg)
    await responders.wait_instances("postgres", 1)
    sql = (
        "SELECT 1::int4 AS i, 9007199254740993::int8 AS big, 1.10::numeric(5,2) AS n, 'NaN'::float8 AS nan, "
        "'-Infinity'::float8 AS ninf, 'Infinity'::numeric AS ninf2, true AS b, 'x|y'::text AS t, '\\x00ff'::bytea AS bytes, "
        "'2026-01-02T03:04:05Z'::timestamptz AS ts, '2026-01-02'::date AS d, 'infinity'::date AS dinf, '1 day 2 hours'::interval AS iv, "
        "ARRAY[1, NULL, 3] AS arr, '{\"a\": [1, 2]}'::jsonb AS j, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, "
        "'10.0.0.1/8'::inet AS ip, int4range(1, 5) AS r, NULL::text AS nothing, $1::text AS p1, $2::int + 1 AS p2"
    )
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {
                "postgres_query",
                "postgres_explain",
                "postgres_list_schemas",
                "postgres_list_tables",
                "postgres_describe_table",
            }
            assert all(
                t.annotations is not None and t.annotations.read_only_hint is True for t in tools.values()
            )
            result = await client.call_tool("postgres_query", {"sql": sql, "params": ["hello", 41]})
            assert not result.is_error, text_of(result)
            sc = result.structured_content
            assert sc is not None
            jsonschema.validate(sc, tools["postgres_query"].output_schema or {})
            types = {c["name"]: c["type"] for c in sc["columns"]}
            assert (
                types["i"] == "int4"
                and types["n"] == "numeric"
                and types["ts"] == "timestamptz"
                and types["arr"] == "int4[]"
            )
            row = dict(zip(types, sc["rows"][0], strict=True))
            assert row == {
                "i": 1,
                "big": 9007199254740993,
                "n": "1.10",
                "nan": "NaN",
                "ninf": "-Infinity",
                "ninf2": "Infinity",
                "b": True,
                "t": "x|y",
                "bytes": "AP8=",
                "ts": "2026-01-02T03:04:05+00:00",
                "d": "2026-01-02",
                "dinf": "infinity",
                "iv": "P1DT7200S",
                "arr": [1, None, 3],
                "j": {"a": [1, 2]},
                "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "ip": "10.0.0.1/8",
                "r": {
                    "lower": 1,
                    "upper": 5,
                    "lowerInclusive": True,
                    "upperInclusive": False,
                    "empty": False,
                },
                "nothing": None,
                "p1": "hello",
                "p2": 42,
            }
            lines = text_of(result).splitlines()
            assert lines[0].startswith("| i ") and "x\\|y" in lines[2] and lines[-1] == "(1 row)"

            bad = await client.call_tool(
                "postgres_query", {"sql": "SELECT $1::date", "params": ["2026-01-02"]}
            )
            assert bad.is_error and "::text::date" in text_of(bad)
            syntax = await client.call_tool("postgres_query", {"sql": "SELEC 1"})
            assert syntax.is_error and "syntax error" in text_of(syntax)

            tables = await client.call_tool("postgres_list_tables", {"schema": "public"})
            assert [t["name"] for t in (tables.structured_content or {})["tables"]] == ["items", "kinds"]
            items = (tables.structured_content or {})["tables"][0]
            assert (
                items["rowEstimate"] == 100
                and items["totalBytes"] > 0
                and items["comment"] == "things for sale"
            )
            schemas = await client.call_tool("postgres_list_schemas", {})
            assert "public" in [s["name"] for s in (schemas.structured_content or {})["schemas"]]
            desc = await client.call_tool("postgres_describe_table", {"table": "kinds"})
            d = desc.structured_content or {}
            assert [c["name"] for c in d["columns"]] == ["k", "item"]
            assert {c["type"] for c in d["constraints"]} == {
                "primary key",
                "foreign key",
                "check",
                "not null",
            } or {c["type"] for c in d["constraints"]} == {"primary key", "foreign key", "check"}
            desc = await client.call_tool("postgres_describe_table", {"table": "items"})
            d = desc.structured_content or {}
            name = next(c for c in d["columns"] if c["name"] == "name")
            assert name == {
                "name": "name",
                "type": "text",
                "nullable": False,
                "default": None,
                "comment": "display name",
            }
            assert any(i["name"] == "items_name" for i in d["indexes"]) and "things for sale" in text_of(desc)
            missing = await client.call_tool("postgres_describe_table", {"table": "nope"})
            assert missing.is_error and "list_tables" in text_of(missing)

            plan = await client.call_tool("postgres_explain", {"sql": "SELECT * FROM items WHERE id = 1"})
            assert not plan.is_error and " on items" in text_of(plan) and "(id = 1)" in text_of(plan)
            analyze = await client.call_tool("postgres_explain", {"sql": "SELECT 1", "analyze": True})
            assert analyze.is_error and "--write" in text_of(analyze)

            listed = await client.list_resources()
            uris = {str(r.uri) for r in listed.resources}
            assert "postgres://postgres/public/items/schema" in uris
            read = await client.read_resource("postgres://postgres/public/kinds/schema")
            body = msgspec.json.decode(read.contents[0].text)  # type: ignore[union-attr]
            assert body["name"] == "kinds" and body["columns"][0]["name"] == "k"


async def test_row_and_byte_caps(pg: PgDatabase, responders: Responders, bridge_argv: list[str]) -> None:
    """The row cap (setting and per-call limit) and the byte cap stop fetching and say truncated, with which cap."""
    start_pg(responders, pg, "--max-rows", "50", env={"MCP_NATS_POSTGRES_MAX_BYTES": "20000"})
    await responders.wait_instances("postgres", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            capped = await client.call_tool("postgres_query", {"sql": "SELECT id FROM items ORDER BY id"})
            sc = capped.structured_content or {}
            assert (sc["rowCount"], sc["truncated"], sc["truncatedBy"]) == (50, True, "rows")
            assert sc["rows"][-1] == [50] and "truncated at the row limit" in text_of(capped)
            limited = await client.call_tool(
                "postgres_query", {"sql": "SELECT id FROM items ORDER BY id", "limit": 7}
            )
            sc = limited.structured_content or {}
            assert (sc["rowCount"], sc["truncated"]) == (7, True)
            exact = await client.call_tool(
                "postgres_query", {"sql": "SELECT id FROM items WHERE id <= 7", "limit": 7}
            )
            assert (exact.structured_content or {})["truncated"] is False
            over = await client.call_tool("postgres_query", {"sql": "SELECT 1", "limit": 0})
            assert over.is_error and "limit" in text_of(over)
            wide = await client.call_tool(
                "postgres_query", {"sql": "SELECT repeat('x', 1000) FROM generate_series(1, 40)"}
            )
            sc = wide.structured_content or {}
            assert sc["truncated"] is True and sc["truncatedBy"] == "bytes" and 10 <= sc["rowCount"] < 20
            assert len(msgspec.json.encode(sc["rows"])) <= 20000


async def test_statement_timeout_and_deadline_cancel_on_the_server(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """The statement timeout cancels the statement on the server; so does the call's deadline, though the statement timeout is longer: pg_stat_activity shows nothing left running."""
    start_pg(responders, pg, "--statement-timeout", "1")
    start_pg(responders, pg, "--name", "slowpg", "--statement-timeout", "120")
    await responders.wait_instances("postgres", 1)
    await responders.wait_instances("slowpg", 1)
    with anyio.fail_after(90):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            t0 = time.monotonic()
            result = await client.call_tool("postgres_query", {"sql": "SELECT pg_sleep(60)"})
            assert result.is_error and "statement timeout" in text_of(result)
            assert time.monotonic() - t0 < 30
            assert await active(pg, "%pg_sleep%") == []
        async with bridge_client(
            bridge_argv, mode="legacy", env={"MCP_NATS_BRIDGE_CALL_TIMEOUT": "2"}
        ) as client:

            async def call() -> CallToolResult | Exception:
                try:
                    return await client.call_tool("slowpg_query", {"sql": "SELECT pg_sleep(100)"})
                except Exception as exc:  # the deadline comes back as a JSON-RPC error
                    return exc

            async with anyio.create_task_group() as tg:
                outcome: list[CallToolResult | Exception] = []

                async def run() -> None:
                    outcome.append(await call())

                tg.start_soon(run)
                await wait_until(
                    lambda: _has(pg, "%pg_sleep(100)%"), 10, "the statement started on the server"
                )
            [got] = outcome
            assert isinstance(got, Exception) or got.is_error
            assert "deadline" in str(got if isinstance(got, Exception) else text_of(got))
            await wait_until(
                lambda: _none(pg, "%pg_sleep(100)%"),
                10,
                "the server stopped the statement after the deadline",
            )


async def _has(db: PgDatabase, like: str) -> bool:
    return bool(await active(db, like))


async def _none(db: PgDatabase, like: str) -> bool:
    return not await active(db, like)


async def test_two_instances_share_the_load(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """With two instances, concurrent queries are answered by both (each connection names its instance)."""
    start_pg(responders, pg)
    start_pg(responders, pg)
    await responders.wait_instances("postgres", 2)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            names: list[str] = []

            async def one() -> None:
                r = await client.call_tool(
                    "postgres_query",
                    {"sql": "SELECT current_setting('application_name') AS app, pg_sleep(0.05)::text"},
                )
                names.append((r.structured_content or {})["rows"][0][0])

            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one)
    assert len(names) == 40 and len(set(names)) == 2, set(names)
    assert all(n.startswith("mcp-nats postgres ") for n in names)


async def test_terminated_backends_give_a_clear_error_and_the_next_call_works(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """Terminating the service's backends mid-run fails the in-flight calls with a sentence saying the connection was closed; the next call succeeds."""
    start_pg(responders, pg)
    await responders.wait_instances("postgres", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            warm = await client.call_tool("postgres_query", {"sql": "SELECT 1"})
            assert not warm.is_error
            results: list[CallToolResult] = []

            async def slow() -> None:
                results.append(await client.call_tool("postgres_query", {"sql": "SELECT pg_sleep(20)"}))

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(slow)
                await wait_until(lambda: _count(pg, "%pg_sleep(20)%", 3), 15, "three statements running")
                admin = await asyncpg.connect(pg.admin_url, timeout=10)
                try:
                    killed = await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1",
                        pg.role,
                    )
                finally:
                    await admin.close()
                assert killed >= 3
            assert len(results) == 3
            for r in results:
                assert r.is_error and "closed the connection" in text_of(r) and "retry" in text_of(r), (
                    text_of(r)
                )
                assert pg.password not in text_of(r)
            after = await client.call_tool("postgres_query", {"sql": "SELECT 2 AS two"})
            assert not after.is_error and (after.structured_content or {})["rows"] == [[2]]


async def _count(db: PgDatabase, like: str, n: int) -> bool:
    return len(await active(db, like)) >= n


async def test_write_mode_executes_and_commits(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """With --write, execute is listed (destructive) and commits; query stays read-only; explain analyze runs but never writes."""
    start_pg(responders, pg, "--write")
    await responders.wait_instances("postgres", 1)
    with anyio.fail_after(60):
        async with bridge_client(bridge_argv, mode="legacy") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            ann = tools["postgres_execute"].annotations
            assert ann is not None and ann.destructive_hint is True and ann.read_only_hint is False
            done = await client.call_tool(
                "postgres_execute",
                {"sql": "INSERT INTO items (name) VALUES ($1) RETURNING id", "params": ["new"]},
            )
            assert not done.is_error and (done.structured_content or {})["rows"] == [[101]]
            upd = await client.call_tool(
                "postgres_execute", {"sql": "UPDATE items SET price = 1 WHERE id <= 3"}
            )
            assert (upd.structured_content or {})["command"] == "UPDATE 3" and (upd.structured_content or {})[
                "rowCount"
            ] == 3
            two = await client.call_tool(
                "postgres_execute", {"sql": "DELETE FROM items WHERE id = 1; DELETE FROM items"}
            )
            assert two.is_error and "one statement per call" in text_of(two)
            ro = await client.call_tool("postgres_query", {"sql": "DELETE FROM items"})
            assert ro.is_error and "read-only" in text_of(ro)
            plan = await client.call_tool(
                "postgres_explain", {"sql": "SELECT count(*) FROM items", "analyze": True}
            )
            assert not plan.is_error and "actual time" in text_of(plan)
            sneaky = await client.call_tool("postgres_explain", {"sql": "DELETE FROM items", "analyze": True})
            assert sneaky.is_error and "read-only" in text_of(sneaky)
    conn = await asyncpg.connect(pg.admin_url, timeout=10)
    try:
        assert await conn.fetchval("SELECT count(*) FROM items") == 101
        assert await conn.fetchval("SELECT name FROM items WHERE id = 101") == "new"
    finally:
        await conn.close()


async def test_password_never_shown(
    pg: PgDatabase, nats_settings: NatsSettings, root: str, tmp_path: Path, bridge_argv: list[str]
) -> None:
    """The password is in no log line, no error, no description, instructions or $SRV INFO, for a working URL and a refused one."""
    log = tmp_path / "serve.log"
    unreachable = pg.reader_url.replace(
        pg.reader_url.rpartition("@")[2].partition("/")[0], f"127.0.0.1:{db_servers.free_port()}"
    )
    procs = []
    with open(log, "wb") as err:
        for name, url in (("postgres", pg.reader_url), ("deadpg", unreachable)):
            argv = [
                MCP_NATS,
                "serve",
                "postgres",
                "--url",
                url,
                "--name",
                name,
                "--nats-url",
                nats_settings.url,
                "--subject-root",
                root,
                "--log-level",
                "debug",
            ]
            procs.append(
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=child_env())
            )
    try:
        texts: list[str] = []
        async with connect(nats_settings, name="test", ident="pwcheck") as bus:
            await _wait_info(bus, root, ["postgres", "deadpg"])
            for svc in ("postgres", "deadpg"):
                replies = await bus.scatter(f"$SRV.INFO.{root}-{svc}", idle=0.2, limit=2.0)
                texts += [r.data.decode() for r in replies]
        with anyio.fail_after(60):
            async with bridge_client(bridge_argv, mode="legacy") as client:
                init = client.initialize_result if hasattr(client, "initialize_result") else None
                texts.append(repr(init))
                texts += [t.model_dump_json() for t in (await client.list_tools()).tools]
                for tool in ("postgres_query", "deadpg_query"):
                    r = await client.call_tool(tool, {"sql": "SELECT current_user"})
                    texts.append(text_of(r))
                dead = await client.call_tool("deadpg_query", {"sql": "SELECT 1"})
                assert dead.is_error and "cannot reach the database" in text_of(dead)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)
    logged = log.read_text(errors="replace")
    assert "postgresql://" in logged and ":***@" in logged, logged[-2000:]
    texts.append(logged)
    leaks = [t[:300] for t in texts if pg.password in t]
    assert not leaks


async def _wait_info(bus: Bus, root: str, services: list[str]) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        found = [bool(await bus.scatter(f"$SRV.PING.{root}-{s}", idle=0.1, limit=1.0)) for s in services]
        if all(found):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"services {services} did not start")


def test_serve_postgres_without_url_says_how(tmp_path: Path) -> None:
    """`serve postgres` without a URL exits 2 with a sentence naming --url and the variable."""
    r = subprocess.run(
        [MCP_NATS, "serve", "postgres", "--nats-url", "nats://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(MCP_NATS_STATE_DIR=str(tmp_path)),
    )
    assert r.returncode == 2 and "--url" in r.stderr and "MCP_NATS_POSTGRES_URL" in r.stderr
    assert os.environ.get("MCP_NATS_POSTGRES_URL") is None or True
