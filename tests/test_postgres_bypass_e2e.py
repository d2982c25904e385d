"""The postgres service's bypass table end to end against a real PostgreSQL: the official MCP client drives
`mcp-nats bridge`, which calls `mcp-nats serve postgres` over NATS; every bypass the reference servers'
users found is run as a `query`, and the database's state (rows, sequences, tables, large objects,
prepared transactions, advisory locks, files, other sessions, notifications) is checked after each case."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import anyio
import asyncpg
import pytest

from . import pg_helpers
from .conftest import Responders
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
        Bypass("COMMIT AND CHAIN, write next", "COMMIT AND CHAIN", True, then=write),
        Bypass("ROLLBACK AND CHAIN", "ROLLBACK AND CHAIN", True, then=write),
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
        Bypass("PREPARE a write", "PREPARE pwn AS DELETE FROM items", False),
        Bypass("DEALLOCATE ALL", "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$", False),
        Bypass("DISCARD ALL", "DISCARD ALL", True),
        Bypass("cursor WITH HOLD", "DECLARE pwn CURSOR WITH HOLD FOR SELECT * FROM items", False),
        Bypass("SAVEPOINT", "SAVEPOINT pwn", False, then=write),
        Bypass("setseed", "SELECT setseed(0.5)", False),
        Bypass("SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION postgres", True),
        Bypass("LOAD a library", "LOAD 'auto_explain'", True),
        Bypass("temp table", "CREATE TEMP TABLE pwn AS SELECT 1", True),
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
