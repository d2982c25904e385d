"""`mcp-nats serve <svc> [--instances N]`: one responder in this process, or N child processes."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading

from schemas.config import Settings

from .config import resolve_url, state_dir
from .supervise import Supervisor

log = logging.getLogger("mcp-nats")


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    from msgspec.structs import replace

    from bus import BusError
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
    if not settings.responder.state_key:
        settings = replace(settings, responder=replace(settings.responder, state_key=_state_key(settings)))
    try:
        _run(serve(service, settings))
    except BusError as exc:  # could not connect, or the connection was closed for good
        log.error("%s %s", args.service, exc)
        return 1
    return 0


def _state_key(settings: Settings) -> str:
    """The requestState key every instance on this machine shares: created once in the state dir (mode 0600)."""
    path = state_dir(settings) / "request-state.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    try:
        os.link(tmp, path)  # appears whole or not at all; the first instance to get here wins
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        os.unlink(tmp)
    return key


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
