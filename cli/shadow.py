"""`mcp-nats rollout shadow SERVICE --to CANDIDATE` and `rollout report SERVICE`: bridges copy the
service's read-only tool calls to the candidate (bridge/shadow.py) and record each comparison;
`report` prints matches, mismatches (with the diff of the first few) and the latency of both."""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from bus.subjects import Subjects
from schemas.config import Settings
from schemas.rollout import (
    SHADOW_KEY_PREFIX,
    ShadowResult,
    ShadowTarget,
    bucket,
    encoder,
    result_decoder,
    stream,
)

log = logging.getLogger("mcp-nats")


def add_parsers(actions: Any, common: Callable[..., None]) -> None:
    s = actions.add_parser(
        "shadow", help="copy SERVICE's read-only tool calls to CANDIDATE and compare the replies"
    )
    common(s)
    s.add_argument("rollout_service", metavar="SERVICE")
    s.add_argument("--to", dest="candidate", required=True, metavar="CANDIDATE")
    s.add_argument(
        "--max-in-flight",
        type=int,
        default=8,
        help="shadow calls per bridge at once; more are skipped (default: 8)",
    )
    r = actions.add_parser("report", help="matches, mismatches and latencies of SERVICE's shadowed calls")
    common(r)
    r.add_argument("rollout_service", metavar="SERVICE")
    r.add_argument(
        "--diffs", type=int, default=3, help="how many mismatches to show with their diff (default: 3)"
    )
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")


async def _open(settings: Settings, create: bool) -> Any:
    from bus import JetStream, KeyValue, StreamSpec, connect

    root = settings.nats.root
    cm = connect(settings.nats, name="mcp-nats rollout", ident=f"rollout{os.getpid()}")
    bus = await cm.__aenter__()
    js = JetStream(bus)
    if create:
        await js.ensure_stream(
            StreamSpec(
                name=stream(root),
                subjects=(Subjects(root).shadow_results(),),
                description=f"mcp-nats shadow comparisons under subject root {root!r}",
                max_age=7 * 24 * 3600.0,
                max_bytes=256 * 1024 * 1024,
                replicas=js.cluster_replicas(),
            )
        )
        kv = await KeyValue.open(js, bucket(root), description="mcp-nats rollout settings (shadows)")
    else:
        kv = KeyValue(js, bucket(root))
    return cm, bus, js, kv


def shadow_command(args: argparse.Namespace, settings: Settings) -> int:
    from bus import BusError

    from .main import _run
    from .rollout import instances

    out: list[int] = []

    async def shadow() -> None:
        if await instances(settings, args.candidate) == 0:
            log.error(
                "no instance of %s is running: start the candidate first (mcp-nats serve <kind> --name %s)",
                args.candidate,
                args.candidate,
            )
            out.append(2)
            return
        cm, _bus, _js, kv = await _open(settings, create=True)
        try:
            key = SHADOW_KEY_PREFIX + args.rollout_service
            value = encoder.encode(
                ShadowTarget(candidate=args.candidate, since=_now(), max_in_flight=args.max_in_flight)
            )
            current = await kv.get_raw(key)
            if current is None:
                await kv.create(key, value)
            else:
                await kv.update(key, value, current.revision)
        finally:
            await cm.__aexit__(None, None, None)
        log.info(
            "bridges now copy %s's read-only tool calls to %s (within about a second); "
            "see: mcp-nats rollout report %s",
            args.rollout_service,
            args.candidate,
            args.rollout_service,
        )
        out.append(0)

    async def report() -> None:
        out.append(await _report(settings, args))

    try:
        _run(shadow() if args.action == "shadow" else report())
    except BusError as exc:
        log.error("%s", exc)
        return 1
    return out[0] if out else 1


def stop_shadow(settings: Settings, service: str) -> int:
    """`rollout abort` for a service with no canary: stop shadowing it (2 if neither was set)."""
    from bus import BusError

    from .main import _run

    out: list[int] = []

    async def stop() -> None:
        cm, _bus, _js, kv = await _open(settings, create=False)
        try:
            entry = await kv.get(SHADOW_KEY_PREFIX + service)
            if entry is None:
                log.error("%s has neither a canary nor a shadow", service)
                out.append(2)
                return
            await kv.delete(SHADOW_KEY_PREFIX + service, entry.revision)
            log.info("shadowing of %s stopped", service)
            out.append(0)
        finally:
            await cm.__aexit__(None, None, None)

    try:
        _run(stop())
    except BusError as exc:
        log.error("%s has neither a canary nor a shadow (%s)", service, exc)
        return 2
    return out[0]


def shadow_status(settings: Settings) -> int:
    from bus import BusError

    from .main import _run

    async def status() -> None:
        cm, _bus, _js, kv = await _open(settings, create=False)
        try:
            entries, _ = await kv.changes(0)
            latest = {e.key: e for e in entries}
            for key, e in sorted(latest.items()):
                if key.startswith(SHADOW_KEY_PREFIX) and not e.deleted and e.value:
                    t = msgspec.json.decode(e.value, type=ShadowTarget)
                    log.info("shadow %s -> %s since %s", key[len(SHADOW_KEY_PREFIX) :], t.candidate, t.since)
        finally:
            await cm.__aexit__(None, None, None)

    try:
        _run(status())
    except BusError:
        log.info("no shadow")
    return 0


async def _report(settings: Settings, args: argparse.Namespace) -> int:
    cm, _bus, js, _kv = await _open(settings, create=False)
    root = settings.nats.root
    results: list[ShadowResult] = []
    try:
        seq = 1
        while True:
            batch = await js.get_batch(
                stream(root), Subjects(root).shadow_results(args.rollout_service), seq=seq, batch=1000
            )
            results.extend(result_decoder.decode(m.data) for m in batch.messages)
            if not batch.messages or batch.pending == 0:
                break
            seq = batch.messages[-1].seq + 1
    finally:
        await cm.__aexit__(None, None, None)
    summary = summarize(results)
    if args.json:
        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
        return 0
    w = sys.stdout.write
    w(
        f"{args.rollout_service}: {summary['calls']} shadowed calls, {summary['matches']} matches, "
        f"{summary['mismatches']} mismatches, {summary['errors']} candidate errors\n"
    )
    for side in ("stable", "candidate"):
        lat = summary[side]
        w(f"  {side:9} latency ms: p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  max {lat['max']:.2f}\n")
    for r in [r for r in results if not r.match][: args.diffs]:
        w(f"\n--- {r.tool} (call {r.callId}){': ' + r.error if r.error else ''}\n{r.diff}\n")
    return 0


def summarize(results: list[ShadowResult]) -> dict[str, Any]:
    def lat(values: list[float]) -> dict[str, float]:
        if not values:
            return {"p50": 0.0, "p95": 0.0, "max": 0.0}
        ordered = sorted(values)
        return {
            "p50": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max": ordered[-1],
        }

    return {
        "calls": len(results),
        "matches": sum(r.match for r in results),
        "mismatches": sum(not r.match and not r.error for r in results),
        "errors": sum(bool(r.error) for r in results),
        "stable": lat([r.stableMs for r in results]),
        "candidate": lat([r.candidateMs for r in results if not r.error]),
        "tools": sorted({r.tool for r in results}),
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
