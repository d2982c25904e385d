"""The postgres service end to end against a real PostgreSQL: the official MCP client drives
`mcp-nats bridge`, which calls `mcp-nats serve postgres` responders over NATS. Typed results, both
caps, statement timeouts and deadlines cancelling the statement on the server, no session state
reaching the next call, two instances sharing the load, backends terminated mid-run, write mode,
resources, and the password never shown. The bypass table is in test_postgres_bypass_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from pathlib import Path

import anyio
import asyncpg
import jsonschema
import msgspec
import pytest
from mcp.types import CallToolResult

from bus import Bus, connect
from schemas.config import NatsSettings

from . import db_servers
from .conftest import MCP_NATS, Responders, child_env
from .e2e_helpers import bridge_client
from .pg_helpers import (  # noqa: F401 - pg_admin_url, pg_database: the fixtures pg_admin and pg
    PgDatabase,
    active,
    pg_admin_url,
    pg_database,
    start_pg,
    text_of,
    wait_until,
)

pytestmark = pytest.mark.anyio


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
    """The statement timeout cancels the statement on the server; so does the call's deadline, though the statement timeout is longer: pg_stat_activity shows nothing left running. A call that changes the timeouts (on the pool's one connection) leaves the next call with the configured ones."""
    start_pg(responders, pg, "--statement-timeout", "1", env={"MCP_NATS_POSTGRES_POOL_SIZE": "1"})
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
            for change in (
                "SET statement_timeout = 0",
                "SELECT set_config('idle_in_transaction_session_timeout', '0', false)",
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            ):
                assert not (await client.call_tool("postgres_query", {"sql": change})).is_error, change
                settings = await client.call_tool(
                    "postgres_query",
                    {
                        "sql": "SELECT current_setting('statement_timeout') AS st, "
                        "current_setting('idle_in_transaction_session_timeout') AS idle, "
                        "current_setting('transaction_read_only') AS ro"
                    },
                )
                assert (settings.structured_content or {}).get("rows") == [["1s", "1min", "on"]], (
                    change,
                    text_of(settings),
                )
            again = await client.call_tool("postgres_query", {"sql": "SELECT pg_sleep(60)"})
            assert again.is_error and "statement timeout" in text_of(again)
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


PROBE = (
    "SELECT (SELECT count(*) FROM pg_prepared_statements) AS prepared, (SELECT count(*) FROM pg_cursors WHERE name <> '') AS cursors, "
    "(SELECT count(*) FROM pg_listening_channels()) AS listening, "
    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks, "
    "current_user = session_user AS own_role, current_setting('search_path') AS path, "
    "current_setting('statement_timeout') AS st, current_setting('transaction_read_only') AS ro, "
    "(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp, random() AS r"
)
"""What a call can see of the session it was given; `r` is compared between two calls (a seed left behind repeats it)."""


def _clean(timeout: str) -> list[object]:
    return [0, 0, 0, 0, True, '"$user", public', timeout, "on", 0]


async def _member_role(db: PgDatabase) -> str:
    """A NOLOGIN role the service's role is a member of (dropped by `_drop_role`): SET ROLE can reach it."""
    member = f"{db.role}_member"
    conn = await asyncpg.connect(db.admin_url, timeout=10)
    try:
        await conn.execute(f"CREATE ROLE {member} NOLOGIN; GRANT {member} TO {db.role}")
    finally:
        await conn.close()
    return member


async def _drop_role(db: PgDatabase, role: str) -> None:
    """Drop `role`, first ending the service's sessions (a leaked SET ROLE makes it own their temp tables)."""
    conn = await asyncpg.connect(db.admin_url, timeout=10)

    async def dropped() -> bool:
        try:
            await conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        except asyncpg.DependentObjectsStillExistError:
            return False
        return True

    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", db.role
        )
        await wait_until(dropped, 10, f"role {role} dropped")
    finally:
        await conn.close()


SPOOF_CATALOG = """DO $$ DECLARE s record; BEGIN
  FOR s IN SELECT name FROM pg_prepared_statements WHERE statement LIKE '%nspowner%' LOOP
    EXECUTE format('DEALLOCATE %I', s.name);
    EXECUTE format('PREPARE %I AS SELECT %L::name AS name, %L::name AS owner', s.name, 'pwned', 'evil');
  END LOOP; END $$"""
"""Replace the driver's cached list_schemas statement (named, listed in pg_prepared_statements) with one of ours."""


async def test_no_session_state_reaches_the_next_call(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """On the pool's one connection, whatever a call leaves in its session after the rollback (SQL PREPARE, also from
    a DO block or before an error; DEALLOCATE or a prepared name the driver would use; setseed; advisory locks;
    cursors; LISTEN; search_path; SET ROLE; COMMIT AND CHAIN), whether it succeeds, fails, times out or is cancelled,
    is gone for the next call; and a call cannot swap the statements the schema tools run for its own."""
    member = await _member_role(pg)
    start_pg(responders, pg, "--statement-timeout", "3", env={"MCP_NATS_POSTGRES_POOL_SIZE": "1"})
    await responders.wait_instances("postgres", 1)
    leftovers = [
        "PREPARE leftover AS SELECT 1",
        "DO $$ BEGIN EXECUTE 'PREPARE from_do AS SELECT 1'; END $$",
        "DO $$ BEGIN EXECUTE 'PREPARE before_error AS SELECT 1'; RAISE EXCEPTION 'after the prepare'; END $$",
        "DO $$ BEGIN FOR i IN 1..2048 LOOP EXECUTE format('PREPARE %I AS SELECT 1', "
        "'__asyncpg_stmt_' || to_hex(i) || '__'); END LOOP; END $$",
        "DEALLOCATE ALL",
        "SELECT setseed(0.5)",
        "SET seed = 0.5",
        "DO $$ BEGIN PERFORM setseed(0.5); RAISE EXCEPTION 'after the seed'; END $$",
        "SELECT setseed(0.5), pg_advisory_lock(6), pg_sleep(30)",
        "SELECT pg_advisory_lock(1), pg_advisory_lock_shared(2), pg_try_advisory_lock(3)",
        "DO $$ BEGIN PERFORM pg_advisory_lock(4); RAISE EXCEPTION 'x'; EXCEPTION WHEN OTHERS THEN NULL; END $$",
        "DECLARE held CURSOR WITH HOLD FOR SELECT 1",
        "LISTEN chan",
        "DO $$ BEGIN EXECUTE 'LISTEN from_do'; END $$",
        "SELECT set_config('search_path', 'pg_catalog', false)",
        f"SET ROLE {member}",
        "SAVEPOINT s",
        "COMMIT AND CHAIN",
        "ROLLBACK AND CHAIN",
    ]
    failures: list[str] = []
    try:
        with anyio.fail_after(180):
            async with bridge_client(bridge_argv, mode="legacy") as client:

                async def probe(after: str) -> object:
                    got = await client.call_tool("postgres_query", {"sql": PROBE})
                    rows = (got.structured_content or {}).get("rows") or [[None]]
                    if got.is_error or rows[0][:-1] != _clean("3s"):
                        failures.append(f"after {after!r}: {text_of(got)[:400]}")
                    return rows[0][-1]

                async def catalog_intact(after: str) -> None:
                    schemas = await client.call_tool("postgres_list_schemas", {})
                    tables = await client.call_tool("postgres_list_tables", {"schema": "public"})
                    desc = await client.call_tool("postgres_describe_table", {"table": "items"})
                    names = [s["name"] for s in (schemas.structured_content or {}).get("schemas", [])]
                    listed = [t["name"] for t in (tables.structured_content or {}).get("tables", [])]
                    columns = [c["name"] for c in (desc.structured_content or {}).get("columns", [])]
                    if names != ["public"] or listed != ["items", "kinds"] or columns[:2] != ["id", "name"]:
                        failures.append(
                            f"after {after!r}: the schema tools answered {text_of(schemas)[:200]!r}, "
                            f"{text_of(tables)[:200]!r}, {text_of(desc)[:200]!r}"
                        )

                await catalog_intact("nothing")
                await client.call_tool("postgres_query", {"sql": SPOOF_CATALOG})
                await catalog_intact("replacing the driver's statements")
                for sql in leftovers:
                    seen: list[object] = []
                    for _ in range(2):
                        await client.call_tool("postgres_query", {"sql": sql})
                        seen.append(await probe(sql))
                    if seen[0] == seen[1]:
                        failures.append(
                            f"after {sql!r}: random() repeated {seen[0]} (a seed was left behind)"
                        )
                    await catalog_intact(sql)
                left = await client.call_tool("postgres_query", {"sql": "EXECUTE leftover"})
                if not left.is_error or "does not exist" not in text_of(left):
                    failures.append(f"EXECUTE of an earlier call's PREPARE: {text_of(left)[:200]}")
                chained = await client.call_tool("postgres_query", {"sql": "COMMIT AND CHAIN"})
                if not chained.is_error or "transaction control" not in text_of(chained):
                    failures.append(f"COMMIT AND CHAIN was not refused: {text_of(chained)[:200]}")
        async with bridge_client(
            bridge_argv, mode="legacy", env={"MCP_NATS_BRIDGE_CALL_TIMEOUT": "1"}
        ) as client:
            seen = []
            for _ in range(2):
                with contextlib.suppress(Exception):  # the deadline comes back as a JSON-RPC error
                    await client.call_tool(
                        "postgres_query", {"sql": "SELECT setseed(0.5), pg_advisory_lock(5), pg_sleep(2.5)"}
                    )
                await wait_until(lambda: _none(pg, "%pg_sleep(2.5)%"), 10, "the cancelled statement stopped")
                got = await client.call_tool("postgres_query", {"sql": PROBE})
                rows = (got.structured_content or {}).get("rows") or [[None]]
                if got.is_error or rows[0][:-1] != _clean("3s"):
                    failures.append(f"after a cancelled call: {text_of(got)[:400]}")
                seen.append(rows[0][-1])
            if seen[0] == seen[1]:
                failures.append(f"after a cancelled call: random() repeated {seen[0]}")
    finally:
        await _drop_role(pg, member)
    assert not failures, "\n".join(failures)


async def test_write_mode_leaves_no_session_state(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """With --write, what a committed `execute` leaves in its session (SET ROLE, a temp table shadowing a table,
    currval, PREPARE, setseed, a holdable cursor, LISTEN, a search_path that would shadow the reset's own functions)
    is gone before the next call on the pool's one connection."""
    member = await _member_role(pg)
    admin = await asyncpg.connect(pg.admin_url, timeout=10)
    try:
        await admin.execute(f"GRANT CREATE ON SCHEMA public TO {pg.role}")
    finally:
        await admin.close()
    start_pg(responders, pg, "--write", env={"MCP_NATS_POSTGRES_POOL_SIZE": "1"})
    await responders.wait_instances("postgres", 1)
    failures: list[str] = []
    try:
        with anyio.fail_after(120):
            async with bridge_client(bridge_argv, mode="legacy") as client:

                async def call(tool: str, sql: str) -> CallToolResult:
                    return await client.call_tool(f"postgres_{tool}", {"sql": sql})

                async def probe(after: str) -> object:
                    got = await call("query", PROBE)
                    rows = (got.structured_content or {}).get("rows") or [[None]]
                    if got.is_error or rows[0][:-1] != _clean("30s"):
                        failures.append(f"after {after!r}: {text_of(got)[:400]}")
                    return rows[0][-1]

                shadow = "CREATE FUNCTION public.pg_advisory_unlock_all() RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'"
                assert not (await call("execute", shadow)).is_error
                for sql in (
                    f"SET ROLE {member}",
                    "CREATE TEMP TABLE items AS SELECT 'fake'::text AS name",
                    "PREPARE wp AS SELECT 1",
                    "DECLARE wc CURSOR WITH HOLD FOR SELECT 1",
                    "LISTEN wl",
                    "SELECT pg_advisory_lock(5), set_config('search_path', 'public, pg_catalog', false)",
                    "SELECT setseed(0.5)",
                    "INSERT INTO items (name) VALUES ('new') RETURNING id",
                ):
                    seen: list[object] = []
                    for _ in range(2):
                        done = await call("execute", sql)
                        if done.is_error:
                            failures.append(f"{sql!r} failed: {text_of(done)[:200]}")
                        seen.append(await probe(sql))
                    if seen[0] == seen[1]:
                        failures.append(
                            f"after {sql!r}: random() repeated {seen[0]} (a seed was left behind)"
                        )
                count = await call("query", "SELECT count(*) FROM items")
                if (count.structured_content or {}).get("rows") != [[102]]:
                    failures.append(f"a temp table shadows items: {text_of(count)[:200]}")
                for sql in ("SELECT currval('items_id_seq')", "EXECUTE wp"):
                    got = await call("query", sql)
                    if not got.is_error:
                        failures.append(f"{sql!r} saw an earlier call's session: {text_of(got)[:200]}")
    finally:
        await _drop_role(pg, member)
    assert not failures, "\n".join(failures)


async def _has(db: PgDatabase, like: str) -> bool:
    return bool(await active(db, like))


async def _none(db: PgDatabase, like: str) -> bool:
    return not await active(db, like)


async def test_two_instances_share_the_load(
    pg: PgDatabase, responders: Responders, bridge_argv: list[str]
) -> None:
    """With two instances (`serve postgres --instances 2`), concurrent queries are answered by both (each connection names its instance)."""
    start_pg(responders, pg, "--instances", "2")
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
