"""The postgres service's pure logic: JSON-safe values and the asyncpg error boundary."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import uuid

import asyncpg
import pytest

from responders.errors import ToolError
from responders.services.dsn import Secrets
from responders.services.postgres import to_json as pg_json
from responders.services.postgres.errors import (
    ConnectionLost,
    OneStatement,
    ReadOnlyRefused,
    StatementTimeout,
    map_pg_errors,
)


def test_postgres_values_are_json_safe() -> None:
    """numeric as text, NaN/infinities spelled, timestamps ISO 8601, bytea base64, intervals as durations, ranges as objects."""
    assert pg_json(decimal.Decimal("1.10")) == "1.10"
    assert pg_json(decimal.Decimal("NaN")) == "NaN" and pg_json(float("-inf")) == "-Infinity"
    assert pg_json(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "2026-01-02T03:04:05+00:00"
    assert pg_json(dt.date.max) == "infinity" and pg_json(dt.datetime.min) == "-infinity"
    assert pg_json(b"\x00\xff") == "AP8=" and pg_json(dt.timedelta(days=-1, seconds=1)) == "-P0DT86399S"
    assert pg_json(asyncpg.Range(1, 5)) == {
        "lower": 1,
        "upper": 5,
        "lowerInclusive": True,
        "upperInclusive": False,
        "empty": False,
    }
    assert pg_json([uuid.UUID(int=1), ipaddress.ip_network("10.0.0.0/8")]) == [
        "00000000-0000-0000-0000-000000000001",
        "10.0.0.0/8",
    ]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), StatementTimeout),
        (
            asyncpg.ReadOnlySQLTransactionError("cannot execute DELETE in a read-only transaction"),
            ReadOnlyRefused,
        ),
        (
            asyncpg.PostgresSyntaxError("cannot insert multiple commands into a prepared statement"),
            OneStatement,
        ),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), ConnectionLost),
        (
            asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            ConnectionLost,
        ),
        (ConnectionRefusedError(111, "Connection refused"), ConnectionLost),
    ],
)
def test_postgres_errors_become_sentences(exc: Exception, kind: type[ToolError]) -> None:
    """Each asyncpg failure becomes a ToolError of its kind whose sentence has no class name and no password."""
    with (
        pytest.raises(kind) as info,
        map_pg_errors(Secrets("postgresql://u:hunter2@h/d"), timeout_s=30, service="postgres"),
    ):
        raise exc
    assert "asyncpg" not in str(info.value) and "Error(" not in str(info.value)
