"""`mcp-nats status`: services, instances, and per-tool calls, errors and mean latency, from $SRV.STATS."""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from typing import Any

import msgspec

from bus import NotConnected, connect
from schemas import bus as h
from schemas.config import Settings

from .config import resolve_url


async def collect(settings: Settings, url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every STATS reply of an MCP service under our subject root, and every bridge's circuits."""
    async with connect(settings.nats, name="mcp-nats status", ident=f"status-{os.getpid()}", url=url) as bus:
        replies = await bus.scatter(bus.subjects.srv_stats(), idle=0.3, limit=3.0)
        bridges = [
            msgspec.json.decode(m.data)
            for m in await bus.scatter(bus.subjects.bridges_status(), idle=0.3, limit=2.0)
        ]
    out = []
    for r in replies:
        try:
            stats = msgspec.json.decode(r.data)
        except msgspec.DecodeError:
            continue
        if isinstance(stats, dict) and (stats.get("metadata") or {}).get(h.META_ROOT) == settings.nats.root:
            out.append(stats)
    return out, bridges


def table(stats: list[dict[str, Any]]) -> list[list[str]]:
    per_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in stats:
        per_service[s["metadata"].get(h.META_SERVICE, s["name"])].append(s)
    rows = [["SERVICE", "INSTANCES", "ENDPOINT", "CALLS", "ERRORS", "MEAN ms", "LAST ERROR"]]
    for svc in sorted(per_service):
        instances = per_service[svc]
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        last: dict[str, str] = {}
        for inst in instances:
            for e in inst.get("endpoints") or []:
                t = totals[e["name"]]
                t[0] += e["num_requests"]
                t[1] += e["num_errors"]
                t[2] += e["processing_time"]
                if e.get("last_error"):
                    last[e["name"]] = e["last_error"]
        first = True
        for name, (calls, errors, ns) in totals.items():
            mean = f"{ns / calls / 1e6:.2f}" if calls else "-"
            rows.append(
                [
                    svc if first else "",
                    str(len(instances)) if first else "",
                    name,
                    str(calls),
                    str(errors),
                    mean,
                    last.get(name, "")[:40],
                ]
            )
            first = False
    return rows


def status_command(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    url = resolve_url(settings)
    try:
        stats, bridges = asyncio.run(collect(settings, url))
    except NotConnected as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if args.json:
        for s in [*stats, *bridges]:
            sys.stdout.write(msgspec.json.encode(s).decode() + "\n")
        return 0
    if not stats:
        sys.stdout.write(f"no MCP services are running under subject root {settings.nats.root!r} at {url}\n")
        return 0
    _print(table(stats))
    circuits = [
        [
            b.get("bridge", "?"),
            b.get("client", ""),
            svc,
            str(c.get("state")),
            str(c.get("failures")),
            str(c.get("trips")),
        ]
        for b in bridges
        for svc, c in sorted((b.get("circuits") or {}).items())
    ]
    if circuits:
        sys.stdout.write("\n")
        _print([["BRIDGE", "CLIENT", "SERVICE", "CIRCUIT", "FAILURES", "TRIPS"], *circuits])
    return 0


def _print(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")
