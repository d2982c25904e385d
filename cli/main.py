"""`mcp-nats`: the command line. Parses flags, loads Settings once, hands them to the part that runs."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .auth_service import no_service_creds
from .config import ConfigError, load_settings, resolve_url, with_state_auth

log = logging.getLogger("mcp-nats")

_GC_GEN0 = 20_000  # allocations between young-generation collections (CPython's default: 700)


def _run(coro: Coroutine[Any, Any, None]) -> None:
    # A long-running server: what start-up built (modules, classes, settings) lives as long as the
    # process, so the cyclic collector need not scan it again and again; and it may run less often
    # (every call allocates and frees several containers, nearly all freed by reference counting).
    gc.freeze()
    gc.set_threshold(_GC_GEN0, 20, 20)
    try:
        import uvloop
    except ImportError:  # not on this platform: asyncio's own loop is fine, only slower
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def _common(p: argparse.ArgumentParser, url_flags: tuple[str, ...] = ("--url", "--nats-url")) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default: $MCP_NATS_CONFIG, else ./mcp-nats.toml if present)",
    )
    p.add_argument(
        *url_flags,
        dest="url",
        help="NATS server URL(s), comma-separated (default: the URL `mcp-nats up` recorded, else nats://127.0.0.1:4222)",
    )
    p.add_argument(
        "--subject-root",
        dest="subject_root",
        metavar="TOKEN",
        help="first token of every MCP subject (default: mcp); bridges and services must agree",
    )
    p.add_argument(
        "--credentials",
        metavar="FILE",
        help="NATS .creds file (default: [nats] credentials, else the state directory's auth/ when `up` runs the server)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("MCP_NATS_LOG_LEVEL"),
        help="debug, info, warning or error (logs go to stderr)",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `command` given (the word the user typed), the service plugins are
    imported (for `serve`'s sub-commands) only when that command is `serve`, so other commands start fast."""
    parser = argparse.ArgumentParser(prog="mcp-nats", description="MCP services on a NATS message bus.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="start the embedded nats-server and the default services; print the `claude mcp add` line",
        description="Start nats-server (JetStream on, 127.0.0.1 only, data in the state directory) unless a suitable "
        "server already answers at the configured URL, start the fs service rooted at the current directory, print "
        "the line that registers the bridge with Claude Code, and run until Ctrl-C, which stops everything it started.",
    )
    _common(up)
    up.add_argument(
        "--port", type=int, default=-1, help="client port for the embedded server (default: a free one)"
    )
    up.add_argument(
        "--root",
        "--fs-root",
        dest="fs_root",
        action="append",
        metavar="DIR[:ro]",
        help="directory for the fs service, read-write, or read-only with ':ro' (repeatable; default: the current directory)",
    )
    up.add_argument(
        "--state-dir",
        help="where the server keeps its data and the URL in use (default: $XDG_STATE_HOME/mcp-nats)",
    )
    up.add_argument(
        "--policy",
        metavar="FILE",
        help="security policy for the embedded server (default: the one compiled last, else: the local user may call every tool)",
    )
    up.add_argument(
        "--no-auth",
        action="store_true",
        help="start the embedded server without authentication (anyone on this machine may call every tool)",
    )

    from .serve import add_serve_parser

    add_serve_parser(sub, _common, plugins=command in (None, "serve"))

    bridge = sub.add_parser(
        "bridge",
        help="the stdio MCP server that Claude Code launches",
        description="Speak MCP on stdin/stdout (protocol only; logs on stderr) and forward every request over NATS. "
        "Register it with: claude mcp add nats -- mcp-nats bridge",
    )
    _common(bridge)
    bridge.add_argument(
        "--call-timeout", type=float, help="seconds a tools/call may take before it fails (default: 120)"
    )
    bridge.add_argument("--client-name", help="identity recorded for calls (default: the OS user name)")
    bridge.add_argument(
        "--autostart",
        action="store_true",
        help="if no suitable NATS server answers, start `mcp-nats up` in the background (server + fs rooted at "
        "$CLAUDE_PROJECT_DIR or the current directory), so `claude mcp add` is the only set-up step",
    )
    status = sub.add_parser(
        "status",
        help="services, instances and per-tool calls, errors and mean latency (from $SRV.STATS)",
        description="Ask every MCP service instance under the subject root for its ADR-32 stats and print one table.",
    )
    _common(status)
    status.add_argument(
        "--json", action="store_true", help="print each instance's raw STATS reply as a JSON line"
    )

    from .audit import add_parser as add_audit_parser
    from .auth import add_parser as add_auth_parser

    add_audit_parser(sub, _common)
    add_auth_parser(sub, _common)

    from .attach import add_parser as add_attach_parser
    from .backup import add_parsers as add_backup_parsers

    add_backup_parsers(sub, _common)

    from .rollout import add_parser as add_rollout_parser

    add_rollout_parser(sub, _common)

    add_attach_parser(sub, _common)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if args.url:
        o.setdefault("nats", {})["url"] = args.url
    if args.subject_root:
        o.setdefault("nats", {})["root"] = args.subject_root
    if getattr(args, "credentials", None):
        o.setdefault("nats", {})["credentials"] = args.credentials
    if getattr(args, "fs_root", None):
        o.setdefault("fs", {})["roots"] = args.fs_root
    o = _merge_sections(o, getattr(args, "plugin_overrides", {}))
    if getattr(args, "state_dir", None):  # up, backup, restore
        o["state_dir"] = args.state_dir
    if getattr(args, "max_concurrency", None):
        o.setdefault("responder", {})["max_concurrency"] = args.max_concurrency
    if getattr(args, "call_timeout", None):
        o.setdefault("bridge", {})["call_timeout"] = args.call_timeout
    if getattr(args, "client_name", None):
        o.setdefault("bridge", {})["client_name"] = args.client_name
    return o


def _merge_sections(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    ours, child = given, []
    if given[:1] == ["attach"] and "--" in given:  # everything after -- is the attached server's command
        cut = given.index("--")
        ours, child = given[:cut], given[cut + 1 :]
    command = next((w for w in ours if not w.startswith("-")), None)
    args = build_parser(command).parse_args(ours)
    args.argv = given
    if args.command == "attach":
        args.child_command = child
    if args.command == "serve":
        from .serve import plugin_overrides

        args.plugin_overrides = plugin_overrides(args)

    from telemetry import TelemetryError, setup_logging

    level = args.log_level or ("warning" if args.command == "bridge" else "info")
    setup_logging(level)  # text until the settings say otherwise, so that a config error is readable
    try:
        settings = load_settings(args.config, overrides=_overrides(args))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if settings.log_format != "text":
        setup_logging(level, settings.log_format)
    try:
        if args.command == "bridge":
            from .auth import local_identity
            from .observe import bridge_observed

            url: Callable[[], str] = lambda: resolve_url(settings)  # noqa: E731
            started = False
            if args.autostart:
                from .autostart import ensure_server, recorded_url

                if ensure_server(settings):
                    url = lambda: recorded_url(settings)  # noqa: E731
                    started = True
            who = settings.bridge.client_name or local_identity()
            settings = with_state_auth(settings, "identity", who, expect_auth=started)
            _run(bridge_observed(settings, url))
            return 0
        if args.command == "serve":
            from .serve import serve_command

            name = getattr(args, "service_name", None) or args.service
            settings = with_state_auth(settings, "service", name)
            if no_service_creds(settings, name, args.service):
                return 2
            return serve_command(args, settings)
        if args.command in ("status", "audit", "rollout", "backup", "restore"):
            settings = with_state_auth(settings, "admin")
        if args.command == "attach":
            settings = with_state_auth(settings, "service", args.attach_service)
            if no_service_creds(settings, args.attach_service, None):
                return 2
        if args.command == "auth":
            from .auth import auth_command

            return auth_command(args, settings)
        if args.command == "status":
            from .status import status_command

            return status_command(args, settings)
        if args.command == "up":
            from .up import up_command

            return up_command(args, settings)
        if args.command == "rollout":
            from .rollout import rollout_command

            return rollout_command(args, settings)
        if args.command in ("backup", "restore"):
            from .backup import backup_command

            return backup_command(args, settings)
        if args.command == "attach":
            from .attach import attach_command

            return attach_command(args, settings)
        if args.command == "audit":
            from .audit import audit_command

            return audit_command(args, settings)
    except KeyboardInterrupt:
        return 130
    except TelemetryError as exc:  # e.g. the configured metrics port is taken
        log.error("%s", exc)
        return 1
    return 2
