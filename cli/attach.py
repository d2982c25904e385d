"""`mcp-nats attach <service> [--pool N] [--instances M] -- <command ...>`: an existing stdio MCP
server as a service on the bus (responders/services/attach), served like any other: listed,
called, scaled (`--instances`, or more processes anywhere), audited and observed."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from schemas.config import Settings

from .config import resolve_url
from .supervise import Supervisor

log = logging.getLogger("mcp-nats")

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}\Z")


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    p = sub.add_parser(
        "attach",
        help="serve an existing stdio MCP server (npm package, uvx tool, binary) as a service on the bus",
        description="Run a pool of an existing stdio MCP server's processes behind one queue-group responder: "
        "its tools, resources, prompts and completions are served under SERVICE like a native service. "
        "Everything after -- is the command, e.g.: mcp-nats attach everything -- npx -y @modelcontextprotocol/server-everything",
    )
    common(p)
    p.add_argument(
        "attach_service", metavar="SERVICE", help="the service name to serve under (letters, digits, '-')"
    )
    p.add_argument(
        "--pool", type=int, default=1, help="child processes per instance, started on demand (default: 1)"
    )
    p.add_argument(
        "--instances", type=int, default=1, help="responder processes, each with its own pool (default: 1)"
    )
    p.add_argument(
        "--max-per-child",
        type=int,
        default=8,
        help="requests in flight per child (default: 8; use 1 for servers that ask the client while several calls run)",
    )
    p.add_argument(
        "--idle-ttl",
        type=float,
        default=300.0,
        help="seconds an idle child lives, beyond the first (default: 300)",
    )
    p.add_argument(
        "--max-lifetime",
        type=float,
        default=3600.0,
        help="seconds before a child is replaced (default: 3600)",
    )
    p.add_argument(
        "--backoff-max",
        type=float,
        default=30.0,
        help="longest wait before restarting while children keep dying young (default: 30; it doubles from 0.25)",
    )
    p.add_argument(
        "--max-concurrency", type=int, help="handler tasks running at once per process (default: 64)"
    )


def attach_command(args: argparse.Namespace, settings: Settings) -> int:
    from msgspec.structs import replace

    from bus import BusError
    from responders import serve
    from responders.services.attach import AttachError, AttachSettings, attached

    from .main import _run
    from .serve import _state_key

    command = list(args.child_command)
    if not command:
        log.error(
            "attach needs the server's command after --, e.g.: mcp-nats attach everything -- npx -y @modelcontextprotocol/server-everything"
        )
        return 2
    name = args.attach_service
    if not _SERVICE_NAME.match(name):
        log.error(
            "%r: a service name is letters, digits and '-', at most 32 (no '_': it separates service and tool)",
            name,
        )
        return 2
    if args.pool < 1 or args.instances < 1 or args.max_per_child < 1:
        log.error("--pool, --instances and --max-per-child must be at least 1")
        return 2
    url = resolve_url(settings)
    if args.instances > 1:
        return _spawn_instances(args, url, command)
    attach_settings = AttachSettings(
        command=command,
        pool=args.pool,
        max_per_child=args.max_per_child,
        idle_ttl=args.idle_ttl,
        max_lifetime=args.max_lifetime,
        backoff_max=args.backoff_max,
    )
    settings = replace(settings, nats=replace(settings.nats, url=url))
    if not settings.responder.state_key:
        settings = replace(settings, responder=replace(settings.responder, state_key=_state_key(settings)))

    async def main() -> None:
        async with attached(name, attach_settings) as service:
            await serve(service, settings)

    try:
        _run(main())
    except AttachError as exc:
        log.error("cannot attach %s: %s", name, exc)
        return 1
    except BusError as exc:
        log.error("%s %s", name, exc)
        return 1
    return 0


def _spawn_instances(args: argparse.Namespace, url: str, command: list[str]) -> int:
    """M single-instance processes with the same flags; stopped together on SIGTERM/SIGINT."""
    ours = args.argv[: args.argv.index("--")]
    flags: list[str] = []
    skip = False
    for a in ours:
        if skip:
            skip = False
            continue
        if a in ("--instances", "--url", "--nats-url"):
            skip = True
            continue
        if a.startswith(("--instances=", "--url=", "--nats-url=")):
            continue
        flags.append(a)
    child = [sys.executable, "-m", "cli", *flags, "--nats-url", url, "--", *command]
    sup = Supervisor()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    for i in range(args.instances):
        sup.spawn(f"{args.attach_service}-{i + 1}", child)
    try:
        while not stop.wait(0.5):
            if len(sup.exited()) == len(sup.children):
                log.error("every %s instance exited", args.attach_service)
                return 1
    finally:
        sup.stop()
    return 0
