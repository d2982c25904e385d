"""`mcp-nats up`: the embedded default, from nothing to a working `claude mcp add` line.

Owns the nats-server it starts (if it starts one) and the responder processes. Ctrl-C (or
SIGTERM) stops the responders first, so they drain, then the server; nothing is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from bus import EmbeddedServer, EmbeddedServerError, NotConnected, connect, probe
from bus.authstore import AuthDirError
from bus.certs import TlsFiles
from bus.embedded import MIN_VERSION
from responders import registry
from schemas import bus as h
from schemas.config import DEFAULT_URL, NatsSettings, Settings
from schemas.policy import PolicyError

from .config import service_settings, state_dir, url_file, with_state_auth
from .observe import up_metrics
from .supervise import Supervisor

log = logging.getLogger("mcp-nats")


def _say(text: str) -> None:
    """up is a terminal command: its announcements go to stdout, logs to stderr."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def check_server(url: str, credentials: str = "", tls: NatsSettings | None = None) -> str | None:
    """None when the server at `url` can be used, else the sentence saying why not."""
    try:
        info = asyncio.run(probe(url, timeout=1.0, credentials=credentials, tls=tls))
    except NotConnected:
        return f"no NATS server answers at {url}"
    if not info.at_least(*MIN_VERSION):
        return f"the NATS server at {url} is version {info.version}; mcp-nats needs {MIN_VERSION[0]}.{MIN_VERSION[1]} or newer"
    if not info.jetstream:
        return f"the NATS server at {url} does not have JetStream enabled"
    return None


def _last_port(sdir: Path) -> int:
    """Reuse the previous run's port, so bridges still running from then find the server again."""
    try:
        return int((sdir / "nats.port").read_text())
    except (OSError, ValueError):
        return -1


def _mcp_nats_command() -> str:
    here = Path(sys.executable).parent / "mcp-nats"
    return str(here if here.exists() else Path(sys.argv[0]).resolve())


async def _wait_for(
    url: str, settings: Settings, svc: str, count: int, timeout: float, sup: Supervisor
) -> int:
    from msgspec.json import decode

    end = time.monotonic() + timeout
    seen = 0
    async with connect(settings.nats, name="mcp-nats up", ident=f"up-{os.getpid()}", url=url) as bus:
        while time.monotonic() < end and not sup.exited():
            seen = 0
            for m in await bus.scatter(bus.subjects.srv_ping(svc), idle=0.1, limit=1.0):
                meta = decode(m.data).get("metadata") or {}
                seen += meta.get(h.META_ROOT) == settings.nats.root
            if seen >= count:
                break
            await asyncio.sleep(0.1)
    return seen


def up_command(args: argparse.Namespace, settings: Settings) -> int:
    sdir = state_dir(settings)
    sdir.mkdir(parents=True, exist_ok=True)
    with up_metrics(settings, sdir):  # up's own /metrics and discovery file, for as long as it runs
        return _up(args, settings, sdir)


def _up(args: argparse.Namespace, settings: Settings, sdir: Path) -> int:
    wanted = settings.nats.url or DEFAULT_URL
    server: EmbeddedServer | None = None
    sup = Supervisor()
    stop = threading.Event()
    # Ctrl-C, kill and closing the terminal all mean "stop everything"; from here on, not KeyboardInterrupt.
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    url = ""
    service_creds = ""
    callout_dir = ""  # mTLS: the auth callout admits certificates without credentials (issue #11)
    try:
        admin = with_state_auth(settings, "admin").nats
        why = check_server(wanted, admin.credentials, admin)
        if why is None:
            url = wanted
            _say(f"Using the NATS server at {url}")
            if args.policy:
                log.warning(
                    "--policy applies to the embedded server only; the server at %s is not ours to configure",
                    url,
                )
        else:
            _say(f"Starting an embedded nats-server ({why})")
            auth = ""
            if not args.no_auth:
                from .auth import ensure_auth

                try:
                    adir, _ = ensure_auth(settings, args.policy)
                    auth = adir.server_config()
                except (PolicyError, AuthDirError) as exc:
                    log.error("%s", exc)
                    return 2
                settings = replace(settings, nats=replace(settings.nats, credentials=str(adir.admin_creds)))
                tls = TlsFiles(adir.path)
                if tls.exists():
                    cert, key = tls.client("admin")
                    settings = replace(
                        settings,
                        nats=replace(settings.nats, tls_ca=str(tls.ca), tls_cert=str(cert), tls_key=str(key)),
                    )
                    _say(f"TLS is on{' with client certificates (mTLS)' if tls.verify else ''}: CA {tls.ca}")
                    callout_dir = str(adir.path) if tls.verify else ""
                service_creds = str(adir.service_creds("fs"))
                _say(
                    f"Auth is on: policy {adir.policy_file}, credentials in {adir.path} (`mcp-nats auth init` changes them)"
                )
            try:
                from .auth import store_keys

                keys = store_keys(settings)
            except AuthDirError as exc:
                log.error("%s", exc)
                return 2
            try:
                server = _start_server(sdir, args.port, stop, auth, keys)
            except EmbeddedServerError as exc:
                if stop.is_set():
                    return 0  # Ctrl-C while the server started: it was stopped, nothing is left
                log.error("%s", exc)
                return 1
            url = server.url
            _say(f"nats-server {server.binary} listening on {url}, data in {server.store_dir}")
        if stop.is_set():
            return 0
        url_file(settings).write_text(url + "\n")
        for line in asyncio.run(_ensure_streams(url, settings)):  # issue #5: audit and events streams
            _say(line)
        fs_section: Any = service_settings(settings, registry.get("fs"))
        roots = fs_section.roots or [os.getcwd()]
        argv = [
            sys.executable,
            "-m",
            "cli",
            "serve",
            "fs",
            "--nats-url",
            url,
            "--subject-root",
            settings.nats.root,
        ]
        for r in roots:
            argv += ["--root", r]
        if service_creds:
            argv += ["--credentials", service_creds]
        # children find this state directory's credentials and TLS files (issue #11), as bridges do
        os.environ["MCP_NATS_STATE_DIR"] = str(sdir.resolve())
        if callout_dir:
            sup.spawn(
                "auth callout",
                [sys.executable, "-m", "cli", "auth", "callout", "--dir", callout_dir, "--nats-url", url],
            )
        sup.spawn("fs", argv)
        seen = asyncio.run(_wait_for(url, settings, "fs", 1, 15.0, sup))
        if stop.is_set():
            return 0
        if not seen:
            log.error("the fs service did not come up (see its log above)")
            return 1
        cmd = _mcp_nats_command()
        env = f"-e MCP_NATS_STATE_DIR={shlex.quote(str(sdir.resolve()))} " if settings.state_dir else ""
        extra = f" --url {shlex.quote(url)}" if settings.nats.url else ""
        if settings.nats.root != "mcp":
            extra += f" --subject-root {settings.nats.root}"
        _say("")
        _say(f"fs is serving {', '.join(roots)}. Register the bridge with Claude Code:")
        _say("")
        _say(f"    claude mcp add nats {env}-- {shlex.quote(cmd)} bridge{extra}")
        _say("")
        _say(f"Inspect with the nats CLI:  nats --server {url} micro ls")
        _say("Press Ctrl-C to stop.")
        while not stop.wait(0.5):
            for name, code in sup.exited():
                log.error("%s exited with code %s; stopping", name, code)
                stop.set()
        return 0
    finally:
        _say("Stopping...")
        sup.stop()
        if server is not None:
            server.stop()
            try:
                if url_file(settings).read_text().strip() == url:
                    url_file(settings).unlink()
            except OSError:
                pass
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_server(
    sdir: Path,
    port_flag: int,
    abort: threading.Event,
    extra_config: str = "",
    keys: tuple[str, str] = ("", ""),
) -> EmbeddedServer:
    port = port_flag if port_flag != -1 else _last_port(sdir)

    def server(p: int) -> EmbeddedServer:
        return EmbeddedServer(
            sdir / "server", port=p, extra_config=extra_config, store_key=keys[0], previous_store_key=keys[1]
        )

    try:
        started = server(port).start(abort=abort)
    except EmbeddedServerError:
        if port == -1 or port_flag != -1 or abort.is_set():
            raise
        started = server(-1).start(abort=abort)  # last run's port is taken now
    (sdir / "nats.port").write_text(f"{started.port}\n")
    return started


async def _ensure_streams(url: str, settings: Settings) -> list[str]:
    """Create the audit and events streams, or bring their settings in line with the config."""
    from bus import BusError, JetStream, audit_stream, events_stream

    root = settings.nats.root
    said = []
    async with connect(settings.nats, name="mcp-nats up", ident=f"up-{os.getpid()}", url=url) as bus:
        js = JetStream(bus)
        specs = [audit_stream(root, settings.audit)] if settings.audit.enabled else []
        for spec in [*specs, events_stream(root, settings.events)]:
            try:
                said.append(
                    f"JetStream stream {spec.name} ({', '.join(spec.subjects)}): {await js.ensure_stream(spec)}"
                )
            except BusError as exc:
                log.error("cannot create the stream %s: %s", spec.name, exc)
    return said
