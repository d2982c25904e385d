"""`mcp-nats serve <svc> [--instances N]`: one responder in this process, or N child processes."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from schemas.config import Settings

from .config import resolve_url
from .supervise import Supervisor

log = logging.getLogger("mcp-nats")


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    from msgspec.structs import replace

    from responders import SERVICES, build_service, serve

    from .main import _run

    if args.service not in SERVICES:
        log.error("unknown service %r; known services: %s", args.service, ", ".join(sorted(SERVICES)))
        return 2
    if args.instances < 1:
        log.error("--instances must be at least 1")
        return 2
    url = resolve_url(settings)
    if args.instances > 1:
        return _spawn_instances(args, url)
    try:
        service = build_service(args.service, settings)
    except ValueError as exc:
        log.error("cannot start %s: %s", args.service, exc)
        return 2
    settings = replace(settings, nats=replace(settings.nats, url=url))
    _run(serve(service, settings))
    return 0


def _spawn_instances(args: argparse.Namespace, url: str) -> int:
    """Start N single-instance children with the same arguments; stop them all on SIGTERM/SIGINT."""
    child = [sys.executable, "-m", "cli", *_without_instances(args.argv), "--url", url]
    sup = Supervisor()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    for i in range(args.instances):
        sup.spawn(f"{args.service}-{i + 1}", child)
    try:
        while not stop.wait(0.5):
            if len(sup.exited()) == len(sup.children):
                log.error("every %s instance exited", args.service)
                return 1
    finally:
        sup.stop()
    return 0


def _without_instances(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--instances":
            skip = True
            continue
        if a.startswith("--instances="):
            continue
        out.append(a)
    return out
