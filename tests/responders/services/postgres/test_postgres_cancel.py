"""The postgres service's cancellation, in process against a real PostgreSQL: a cancelled call stops its
statement on the server, logs nothing at ERROR (asyncpg's "Resetting connection with an active
transaction" is the expected path, not a fault), and the pool's one connection serves the next call."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from responders.plugin import ServiceRuntime
from responders.services.postgres import PostgresSettings, build
from tests.pg_helpers import (  # noqa: F401 - pg_admin_url, pg_database: the fixtures pg_admin and pg
    PgDatabase,
    active,
    pg_admin_url,
    pg_database,
    wait_until,
)

pytestmark = pytest.mark.anyio


async def test_a_cancelled_call_stops_on_the_server_logs_no_error_and_the_next_call_works(
    pg: PgDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    svc = build(PostgresSettings(url=pg.reader_url, pool_size=1))
    runtime: Any = ServiceRuntime(bus=None, subjects=None, events=None, instance="t", service=svc.name)  # type: ignore[arg-type]
    query = svc.tools["query"]
    assert svc.lifespan_fn is not None
    caplog.set_level(logging.INFO)
    async with svc.lifespan_fn(runtime):
        task = asyncio.ensure_future(query.invoke({"sql": "SELECT pg_sleep(30)"}))

        async def running() -> bool:
            return bool(await active(pg, "%pg_sleep(30)%"))

        async def stopped() -> bool:
            return not await active(pg, "%pg_sleep(30)%")

        await wait_until(running, 10, "the statement started on the server")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(stopped, 10, "the server stopped the statement")
        after = await query.invoke({"sql": "SELECT 1 AS x"})
        assert after.rows == [[1]]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert any("connected to" in r.getMessage() for r in caplog.records)
