"""PostgreSQL values as JSON: every asyncpg result value made JSON-safe, losslessly where JSON allows.

numeric -> string (no float rounding), NaN and infinities spelled out ("NaN", "Infinity",
"-Infinity"), timestamps/dates/times ISO 8601, intervals ISO 8601 durations, bytea base64,
arrays as JSON arrays, json/jsonb as JSON (decoded by the pool's codec), uuid/inet/cidr/macaddr as
strings, ranges as {lower, upper, lowerInclusive, upperInclusive, empty}, composite rows as
objects, geometric types and bit strings as their PostgreSQL text."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import ipaddress
import math
import uuid
from typing import Any

import asyncpg

JsonValue = Any

_INFINITE_DATES = {dt.date.max: "infinity", dt.date.min: "-infinity"}
_INFINITE_STAMPS = {dt.datetime.max: "infinity", dt.datetime.min: "-infinity"}


def _float(v: float) -> JsonValue:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _decimal(v: decimal.Decimal) -> str:
    if v.is_nan():
        return "NaN"
    if v.is_infinite():
        return "Infinity" if v > 0 else "-Infinity"
    return str(v)


def _duration(v: dt.timedelta) -> str:
    sign = "-" if v < dt.timedelta(0) else ""
    v = abs(v)
    seconds = v.seconds + v.microseconds / 1_000_000
    sec = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return f"{sign}P{v.days}DT{sec}S"


def to_json(v: Any) -> JsonValue:
    """One value as JSON-safe data (see the module docstring)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, decimal.Decimal):
        return _decimal(v)
    if isinstance(v, dt.datetime):
        return _INFINITE_STAMPS.get(v.replace(tzinfo=None)) or v.isoformat()
    if isinstance(v, dt.date):
        return _INFINITE_DATES.get(v) or v.isoformat()
    if isinstance(v, dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return _duration(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, list | tuple):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if isinstance(v, asyncpg.Record):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, asyncpg.Range):
        return {
            "lower": to_json(v.lower),
            "upper": to_json(v.upper),
            "lowerInclusive": v.lower_inc,
            "upperInclusive": v.upper_inc,
            "empty": v.isempty,
        }
    if isinstance(v, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(v)
    if isinstance(
        v, ipaddress.IPv4Interface | ipaddress.IPv6Interface | ipaddress.IPv4Network | ipaddress.IPv6Network
    ):
        return str(v)
    if isinstance(v, asyncpg.BitString):
        return v.as_string()
    return str(v)  # geometric types and anything else asyncpg decodes: their text form
