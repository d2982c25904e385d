"""`mcp-nats audit tail|query`: the audit stream as a readable table or JSON lines.

Both read with direct-get batches by stream sequence (no consumer is created), filtering on the
subject (`<root>.audit.<service>.<tool>`) on the server and on outcome and identity here.
`tail` prints new records as they arrive (a core subscription on the audit subjects rings
the bell; a one-second poll covers replayed records and reconnects) until Ctrl-C or `--count`.
`query` prints the records stored between `--since` and `--until` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec

from bus import (
    Bus,
    BusError,
    JetStream,
    NotConnected,
    StoredMsg,
    StreamNotFound,
    Subjects,
    audit_stream,
    connect,
)
from schemas.audit import OUTCOMES, AuditRecord, record_decoder
from schemas.config import Settings

from .config import resolve_url

_RELATIVE: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_COLUMNS: Final = (
    ("TIME", 24),
    ("SERVICE", 10),
    ("TOOL", 22),
    ("OUTCOME", 14),
    ("CODE", 7),
    ("MS", 9),
    ("IDENTITY", 14),
    ("INSTANCE", 8),
)
_POLL: Final = 1.0


class TimeError(ValueError):
    """Raised when a --since/--until value is neither an ISO 8601 time nor a relative age like 15m."""


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`2026-05-01T12:00:00Z`, `2026-05-01` (UTC when no offset), or an age: `90s`, `15m`, `2h`, `7d`, `1w`."""
    now = now or dt.datetime.now(dt.UTC)
    m = _RELATIVE.match(text.strip())
    if m:
        return now - dt.timedelta(seconds=float(m[1]) * _UNITS[m[2]])
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TimeError(
            f"{text!r} is not a time: use ISO 8601 (2026-05-01T12:00:00Z) or an age (90s, 15m, 2h, 7d)"
        ) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def add_parser(sub: Any, common: Any) -> None:
    """The `audit` command and its `tail` and `query` subcommands."""
    audit = sub.add_parser(
        "audit",
        help="read the audit log: one record per tool call (tail follows it live, query prints a time range)",
        description="Read the audit stream (MCP_AUDIT for the subject root mcp, MCP_AUDIT_<root> otherwise).",
    )
    verbs = audit.add_subparsers(dest="audit_command", required=True, metavar="VERB")
    tail = verbs.add_parser("tail", help="print records as they are written, until Ctrl-C")
    query = verbs.add_parser("query", help="print the records stored in a time range, then exit")
    for p in (tail, query):
        common(p)
        p.add_argument("--service", help="only this service")
        p.add_argument("--tool", help="only this tool")
        p.add_argument("--outcome", choices=OUTCOMES, help="only this outcome")
        p.add_argument("--identity", help="only calls by this identity (the bridge's client name)")
        p.add_argument("--json", action="store_true", help="print each record as one JSON line, as stored")
    tail.add_argument(
        "--since", help="start this far back (ISO 8601 time or an age like 15m); default: only new records"
    )
    tail.add_argument("--count", type=int, help="exit after printing this many records")
    query.add_argument("--since", default="1h", help="ISO 8601 time or an age like 15m, 2h, 7d (default: 1h)")
    query.add_argument("--until", help="ISO 8601 time or an age (default: now)")
    query.add_argument("--limit", type=int, help="print at most this many records")


class _Filter:
    def __init__(self, args: argparse.Namespace, root: str) -> None:
        self.subject = Subjects(root).audit_filter(args.service, args.tool)
        self.tool: str | None = args.tool
        self.outcome: str | None = args.outcome
        self.identity: str | None = args.identity

    def keep(self, rec: AuditRecord) -> bool:
        return (
            (self.tool is None or rec.tool == self.tool)
            and (self.outcome is None or rec.outcome == self.outcome)
            and (self.identity is None or rec.identity == self.identity)
        )


def _header() -> str:
    return " ".join(name.ljust(w) for name, w in _COLUMNS) + " CALL ID"


def _row(rec: AuditRecord) -> str:
    code = "" if isinstance(rec.errorCode, msgspec.UnsetType) else str(rec.errorCode)
    cells = (
        rec.time,
        rec.service,
        rec.tool,
        rec.outcome,
        code,
        f"{rec.durationMs:.2f}",
        (rec.identity or "-") + (" (unverified)" if rec.verified is False else ""),
        rec.instance[:8],
    )
    return " ".join(c.ljust(w) for c, (_n, w) in zip(cells, _COLUMNS, strict=True)) + " " + rec.callId


def _records(msgs: list[StoredMsg], flt: _Filter) -> list[tuple[StoredMsg, AuditRecord]]:
    out = []
    for m in msgs:
        try:
            rec = record_decoder.decode(m.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if flt.keep(rec):
            out.append((m, rec))
    return out


async def read_range(
    js: JetStream, stream: str, flt: _Filter, since: dt.datetime, until: dt.datetime | None
) -> AsyncIterator[tuple[StoredMsg, AuditRecord]]:
    """Records stored from `since` to `until` (stream time), oldest first."""
    batch = await js.get_batch(stream, flt.subject, start_time=since)
    while True:
        for m, rec in _records(batch.messages, flt):
            if until is not None and _stamp(m) > until:
                return
            yield m, rec
        if not batch.messages or batch.pending == 0:
            return
        batch = await js.get_batch(stream, flt.subject, seq=batch.messages[-1].seq + 1)


def _stamp(m: StoredMsg) -> dt.datetime:
    # The server stamps nanoseconds; fromisoformat takes at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", m.time.replace("Z", "+00:00"))
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return dt.datetime.now(dt.UTC)


class _Out:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.printed = 0
        if not as_json:
            self.line(_header())

    def line(self, text: str) -> None:
        sys.stdout.write(text + "\n")

    def record(self, m: StoredMsg, rec: AuditRecord) -> None:
        self.line(m.data.decode(errors="replace") if self.as_json else _row(rec))
        self.printed += 1

    def flush(self) -> None:
        sys.stdout.flush()


async def _query(args: argparse.Namespace, settings: Settings, bus: Bus) -> int:
    js = JetStream(bus)
    stream = audit_stream(settings.nats.root, settings.audit).name
    flt = _Filter(args, settings.nats.root)
    since = parse_time(args.since)
    until = parse_time(args.until) if args.until else None
    out = _Out(args.json)
    async for m, rec in read_range(js, stream, flt, since, until):
        out.record(m, rec)
        if args.limit is not None and out.printed >= args.limit:
            break
    out.flush()
    return 0


async def _tail(args: argparse.Namespace, settings: Settings, bus: Bus) -> int:
    js = JetStream(bus)
    stream = audit_stream(settings.nats.root, settings.audit).name
    flt = _Filter(args, settings.nats.root)
    out = _Out(args.json)
    out.flush()
    bell = asyncio.Event()

    async def ring(_msg: Any) -> None:
        bell.set()

    sub = await bus.subscribe(flt.subject, ring)
    try:
        if args.since:
            batch = await js.get_batch(stream, flt.subject, start_time=parse_time(args.since))
            next_seq = (
                batch.messages[-1].seq + 1 if batch.messages else (await js.stream_state(stream)).last_seq + 1
            )
            pending = list(batch.messages)
        else:
            next_seq = (await js.stream_state(stream)).last_seq + 1
            pending = []
        while True:
            for m, rec in _records(pending, flt):
                out.record(m, rec)
                if args.count is not None and out.printed >= args.count:
                    out.flush()
                    return 0
            out.flush()
            if pending:
                next_seq = pending[-1].seq + 1
            bell.clear()
            batch = await js.get_batch(stream, flt.subject, seq=next_seq)
            pending = list(batch.messages)
            if not pending:
                try:
                    await asyncio.wait_for(bell.wait(), _POLL)
                except TimeoutError:
                    pass
    finally:
        try:
            await sub.unsubscribe()
        except Exception:  # the connection is closing
            pass


def audit_command(args: argparse.Namespace, settings: Settings) -> int:
    from .main import _run

    url = resolve_url(settings)
    code = 1

    async def run() -> None:
        nonlocal code
        async with connect(
            settings.nats, name="mcp-nats audit", ident=f"audit-{os.getpid()}", url=url
        ) as bus:
            code = await (
                _tail(args, settings, bus) if args.audit_command == "tail" else _query(args, settings, bus)
            )

    try:
        _run(run())
    except TimeError as exc:
        sys.stderr.write(f"mcp-nats audit: {exc}\n")
        return 2
    except StreamNotFound:
        name = audit_stream(settings.nats.root, settings.audit).name
        sys.stderr.write(
            f"mcp-nats audit: there is no audit stream {name} yet; `mcp-nats up` or any responder creates it\n"
        )
        return 1
    except NotConnected as exc:
        sys.stderr.write(f"mcp-nats audit: {exc}\n")
        return 1
    except BusError as exc:
        sys.stderr.write(f"mcp-nats audit: {exc}\n")
        return 1
    except BrokenPipeError:  # `| head`: the reader is gone, which is fine
        return 0
    return code
