"""A PostgreSQL database of its own for the postgres service tests: seeded tables, a reader role that
holds write privileges (so every refusal in the bypass table is PostgreSQL's read-only transaction,
not a missing grant), and the state snapshot the bypass table compares after each case."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from mcp.types import CallToolResult, TextContent

from . import db_servers
from .conftest import Responders


@dataclass(frozen=True)
class PgDatabase:
    admin_url: str
    """A superuser URL to the test database (the test's own eyes)."""
    reader_url: str
    """The service's URL: a LOGIN role, no superuser, with a password that must never be printed."""
    password: str
    role: str
    name: str
    tmp: Path


def _with_db(url: str, db: str, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if user is not None:
        netloc = f"{user}:{password}@{netloc}" if password else f"{user}@{netloc}"
    else:
        netloc = parts.netloc
    return urlunsplit((parts.scheme, netloc, f"/{db}", parts.query, ""))


SEED = """
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2) DEFAULT 0, tags text[],
                    meta jsonb, created timestamptz DEFAULT '2026-01-02T03:04:05Z');
COMMENT ON TABLE items IS 'things for sale';
COMMENT ON COLUMN items.name IS 'display name';
CREATE INDEX items_name ON items (name);
INSERT INTO items (name, price, tags, meta) SELECT 'item ' || i, i * 1.5, ARRAY['a', 'b'], jsonb_build_object('i', i)
  FROM generate_series(1, 100) AS i;
CREATE TABLE kinds (k text PRIMARY KEY, item int REFERENCES items(id), CHECK (length(k) < 20));
CREATE SEQUENCE counter;
CREATE FUNCTION bump() RETURNS int VOLATILE LANGUAGE sql AS $$ INSERT INTO items (name) VALUES ('bumped') RETURNING id $$;
ANALYZE items;
"""


async def create(admin: str, tmp: Path) -> PgDatabase:
    tag = uuid.uuid4().hex[:10]
    name, role, password = f"mcpnats_{tag}", f"mcpnats_reader_{tag}", f"pw-{tag}-Secr3t"
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
        await conn.execute(
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE"
        )
    finally:
        await conn.close()
    admin_db = _with_db(admin, name)
    conn = await asyncpg.connect(admin_db, timeout=10)
    try:
        await conn.execute(SEED)
        await conn.execute(
            f"GRANT CONNECT ON DATABASE {name} TO {role}; GRANT USAGE ON SCHEMA public TO {role};"
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};"
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role};"
        )
    finally:
        await conn.close()
    return PgDatabase(admin_db, _with_db(admin, name, role, password), password, role, name, tmp)


async def drop(admin: str, db: PgDatabase) -> None:
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db.name
        )
        await conn.execute(f"DROP DATABASE IF EXISTS {db.name}")
        await conn.execute(f"DROP ROLE IF EXISTS {db.role}")
    finally:
        await conn.close()


async def snapshot(db: PgDatabase) -> dict[str, Any]:
    """Everything a bypass could change: rows, the sequences, the tables, large objects, prepared
    transactions, advisory locks, the reader's sessions' settings, files the cases aim at."""
    conn = await asyncpg.connect(db.admin_url, timeout=10)
    try:
        return {
            "items": [
                tuple(r) for r in await conn.fetch("SELECT id, name, price::text FROM items ORDER BY id")
            ],
            "items_seq": await conn.fetchval("SELECT last_value FROM items_id_seq"),
            "counter": await conn.fetchval("SELECT last_value FROM counter"),
            "tables": sorted(
                r[0]
                for r in await conn.fetch(
                    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                )
            ),
            "large_objects": await conn.fetchval("SELECT count(*) FROM pg_largeobject_metadata"),
            "prepared_xacts": await conn.fetchval("SELECT count(*) FROM pg_prepared_xacts"),
            "advisory_locks": await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            ),
            "role": tuple(
                await conn.fetchrow(
                    "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1", db.role
                )
            ),
            "files": sorted(os.listdir(db.tmp)),
        }
    finally:
        await conn.close()


@pytest.fixture(scope="session", name="pg_admin")
def pg_admin_url() -> Iterator[str]:
    with db_servers.postgres_admin_url() as url:
        if url is None:
            pytest.skip(db_servers.missing.reason)
        yield url


@pytest.fixture(name="pg")
async def pg_database(pg_admin: str, tmp_path: Path) -> AsyncIterator[PgDatabase]:
    os.chmod(
        tmp_path, 0o777
    )  # so only the database role, not file modes, stands between COPY TO and this directory
    db = await create(pg_admin, tmp_path)
    try:
        yield db
    finally:
        await drop(pg_admin, db)


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


def start_pg(responders: Responders, db: PgDatabase, *args: str, env: dict[str, str] | None = None) -> None:
    responders.start("postgres", "--url", db.reader_url, *args, env=env)
