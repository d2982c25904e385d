"""`mcp-nats serve <service> [--instances N]`: one responder in this process, or N child processes.

Each installed service plugin gets its own sub-command, with the plugin's flags (e.g. `--root`
for fs, `--url` for a database: then the NATS URL is `--nats-url`)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from responders import Argument, MissingExtra, ServiceOptions, ServicePlugin, UnknownService, registry
from schemas.config import Settings
from schemas.observe import Observers

from .config import resolve_url, service_settings, state_dir
from .supervise import Supervisor

log = logging.getLogger("mcp-nats")

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}\Z")
_KINDS: dict[str, dict[str, Any]] = {
    "value": {},
    "int": {"type": int},
    "float": {"type": float},
    "append": {"action": "append"},
    "flag": {"action": "store_true", "default": None},
}


def add_serve_parser(sub: Any, common: Callable[..., None], *, plugins: bool = True) -> None:
    """`serve` with one sub-command per installed service plugin (none when `plugins` is false: the
    command line is being parsed for another command, which need not import them)."""
    serve = sub.add_parser(
        "serve",
        help="run responders for one service against any NATS",
        description="Run a service's responders in its queue group. Start more (here or on other machines) to scale; "
        "SIGTERM drains: in-flight calls finish, then the process exits.",
    )
    services = serve.add_subparsers(dest="service", required=True, metavar="SERVICE")
    for name in registry.names() if plugins else ():
        try:
            plugin: ServicePlugin[Any] | None = registry.get(name, check=False)
        except Exception as exc:  # a broken plugin must not take the whole command line down
            log.debug("service plugin %s cannot be loaded: %s", name, exc)
            plugin = None
        p = services.add_parser(
            name,
            help=plugin.summary if plugin is not None else "(cannot be loaded; run it to see why)",
            description=(plugin.summary if plugin is not None else f"the {name} service")
            + ". SIGTERM drains.",
        )
        flags = {f for a in (plugin.arguments if plugin is not None else ()) for f in a.flags}
        common(p, tuple(f for f in ("--url", "--nats-url") if f not in flags))
        p.add_argument(
            "--instances", type=int, default=1, help="how many responder processes to start (default: 1)"
        )
        p.add_argument(
            "--max-concurrency", type=int, help="handler tasks running at once per process (default: 64)"
        )
        if "--name" not in flags:
            p.add_argument(
                "--name",
                dest="service_name",
                metavar="NAME",
                help=f"serve under this service name instead of {name!r} (several of one kind on one bus)",
            )
        for arg in plugin.arguments if plugin is not None else ():
            _add(p, arg)


def _add(p: argparse.ArgumentParser, arg: Argument) -> None:
    kind: dict[str, Any] = dict(_KINDS[arg.kind])
    if arg.kind != "flag":  # store_true takes no metavar
        kind["metavar"] = arg.metavar
    p.add_argument(*arg.flags, dest=f"plugin__{arg.key}", help=arg.help, **kind)


def plugin_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The plugin's flags given on the command line, as its settings section."""
    section = {
        k[len("plugin__") :]: v for k, v in vars(args).items() if k.startswith("plugin__") and v is not None
    }
    return {args.service: section} if section else {}


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    from msgspec.structs import replace

    from bus import BusError

    from .main import _run
    from .observe import serve_observed

    try:
        plugin = registry.get(args.service)
    except (UnknownService, MissingExtra) as exc:
        log.error("%s", exc)
        return 2
    if args.instances < 1:
        log.error("--instances must be at least 1")
        return 2
    name = getattr(args, "service_name", None) or plugin.name
    if not _SERVICE_NAME.match(name):
        log.error(
            "--name %r: a service name is letters, digits and '-', at most 32 (no '_': it separates service and tool)",
            name,
        )
        return 2
    url = resolve_url(settings)
    options = ServiceOptions(name=name, state_dir=state_dir(settings), instances=args.instances)
    try:
        service = plugin.build(service_settings(settings, plugin), options)
    except ValueError as exc:
        log.error("cannot start %s: %s", name, exc)
        return 2
    if args.instances > 1:
        return _spawn_instances(args, url)
    settings = replace(settings, nats=replace(settings.nats, url=url))
    if not settings.responder.state_key:
        settings = replace(settings, responder=replace(settings.responder, state_key=_state_key(settings)))
    try:
        _run(serve_observed(service, settings, name, security_observers(settings)))
    except BusError as exc:  # could not connect, or the connection was closed for good
        log.error("%s %s", name, exc)
        return 1
    return 0


def security_observers(settings: Settings) -> Observers:
    """Rate limits and concurrency caps (issue #11) when this responder's credentials come from an auth
    directory (`<DIR>/services/<svc>.creds`): that directory's policy.toml, read again when it changes."""
    from pathlib import Path

    from responders.limits import RateLimiter

    if not settings.nats.credentials:
        return Observers()
    policy = Path(settings.nats.credentials).resolve().parent.parent / "policy.toml"
    if not policy.is_file():
        return Observers()
    log.info("rate limits and concurrency caps from %s", policy)
    return Observers(calls=(RateLimiter(policy),))


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
    child = [sys.executable, "-m", "cli", *_without_instances(args.argv), "--nats-url", url]
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
