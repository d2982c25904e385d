"""`mcp-nats rollout`: canary and shadow releases of a service, on NATS itself.

    mcp-nats serve fs --name fs-next                       # the candidate: its own name and queue group
    mcp-nats rollout canary fs --to fs-next --weight 10    # 10 % of fs's tool calls go to fs-next
    mcp-nats rollout promote fs                            # 100 %: every call goes to fs-next
    mcp-nats rollout abort fs                              # 0 %: the mapping is removed
    mcp-nats rollout shadow fs --to fs-next                # read-only calls also go to fs-next, compared
    mcp-nats rollout report fs                             # what the shadow saw
    mcp-nats rollout status

A canary is a weighted subject mapping in the server's configuration (`mappings.conf`, included
by the config that `mcp-nats up` generates), applied without a restart by a config reload
(SIGHUP): every client's calls are split by the server, no bridge needs to know. Only tool calls
(`<root>.<svc>.tools.call.>`) are mapped: discovery, lists and the broadcast cancel subject stay
with the stable service. A canary is refused while no candidate instance answers $SRV.PING.

A shadow is a key in the KV bucket `<root>-rollout` that bridges watch (bridge/shadow.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from bus.subjects import Subjects
from schemas.config import Settings

from .config import resolve_url, state_dir

log = logging.getLogger("mcp-nats")

STATE_FILE: Final = "rollout.json"
RELOADED: Final = b"Reloaded server configuration"


class Canary(msgspec.Struct, kw_only=True):
    candidate: str
    weight: int
    since: str


class RolloutState(msgspec.Struct, kw_only=True):
    root: str = "mcp"
    canaries: dict[str, Canary] = {}


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    p = sub.add_parser(
        "rollout",
        help="canary and shadow releases: weighted subject mappings, shadowed read-only calls",
        description="Send a share of a service's tool calls to a candidate (canary, promote, abort), or copy its "
        "read-only calls to the candidate and compare the replies (shadow, report).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def server_flags(a: argparse.ArgumentParser) -> None:
        common(a)
        a.add_argument(
            "--state-dir", help="the state directory of `mcp-nats up` (default: $XDG_STATE_HOME/mcp-nats)"
        )
        a.add_argument(
            "--server-dir",
            help="where the server's mappings.conf, pid file and log are (default: <state_dir>/server)",
        )
        a.add_argument(
            "--server-config",
            help="the server's config file, checked with `nats-server -t` before a reload "
            "(default: <server-dir>/nats-server.conf); it must include mappings.conf",
        )

    c = actions.add_parser("canary", help="send WEIGHT percent of SERVICE's tool calls to CANDIDATE")
    server_flags(c)
    c.add_argument("rollout_service", metavar="SERVICE")
    c.add_argument(
        "--to", dest="candidate", required=True, metavar="CANDIDATE", help="the candidate's service name"
    )
    c.add_argument(
        "--weight", type=int, default=10, help="percent of calls for the candidate, 1-100 (default: 10)"
    )
    for name, text in (
        ("promote", "send every tool call of SERVICE to its candidate"),
        ("abort", "remove SERVICE's canary (or shadow): every call back to the stable service"),
    ):
        a = actions.add_parser(name, help=text)
        server_flags(a)
        a.add_argument("rollout_service", metavar="SERVICE")
    st = actions.add_parser("status", help="canaries in the server's mappings and shadows in the bus")
    server_flags(st)

    from .shadow import add_parsers as add_shadow_parsers

    add_shadow_parsers(actions, common)


def server_dir(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.server_dir) if getattr(args, "server_dir", None) else state_dir(settings) / "server"


def load_state(sdir: Path, root: str) -> RolloutState:
    try:
        state = msgspec.json.decode((sdir / STATE_FILE).read_bytes(), type=RolloutState)
    except FileNotFoundError:
        return RolloutState(root=root)
    return state


def mappings_text(state: RolloutState) -> str:
    """The `mappings` block for every canary: the stable service keeps 100 - weight percent."""
    lines = ["# written by `mcp-nats rollout`; edit with it, not by hand", "mappings = {"]
    for svc, c in sorted(state.canaries.items()):
        src = Subjects(state.root).tool_calls_all(svc)
        dst = Subjects(state.root).tool_calls_all(c.candidate)
        lines.append(f'  "{src}": [')
        if c.weight < 100:
            lines.append(f'    {{ destination: "{src}", weight: {100 - c.weight}% }}')
        lines.append(f'    {{ destination: "{dst}", weight: {c.weight}% }}')
        lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"  # with no canary an empty block: a reload must clear what was mapped


def apply(sdir: Path, config: Path, state: RolloutState, timeout: float = 10.0) -> None:
    """Write mappings.conf, check it with `nats-server -t`, reload the server (SIGHUP) and wait until its log
    says it reloaded. The previous mappings are put back if the check fails. Raises RuntimeError, also when
    the server runs in operator (JWT) mode, where server-level mappings would not apply to any account."""
    from bus import find_binary
    from bus.embedded import MAPPINGS_FILE

    try:
        server_conf = config.read_text()
    except OSError:
        raise RuntimeError(f"no server config at {config}: is the server running (mcp-nats up)?") from None
    if re.search(r"^\s*operator\s*[:=]", server_conf, re.M):
        raise RuntimeError(
            "the server runs in operator mode: clients live in accounts, where a server-level mapping does not apply, "
            "and no auth directory of this state directory is in use (`mcp-nats up` with auth writes the canary into "
            "the clients account JWT). Pass the --state-dir of the `up` that started it, or add the mapping to the account"
        )
    if MAPPINGS_FILE not in server_conf:
        raise RuntimeError(
            f'{config} does not include {MAPPINGS_FILE}: add the line  include "{MAPPINGS_FILE}"  and reload'
        )
    path = sdir / MAPPINGS_FILE
    old = path.read_text() if path.exists() else None
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(mappings_text(state))
    # Checked on its own: the server's config may name secrets from its environment (the store key).
    probe = sdir / ".mappings-check.conf"
    probe.write_text(f'listen: "127.0.0.1:-1"\ninclude "{tmp.name}"\n')
    try:
        check = subprocess.run(
            [find_binary(), "-t", "-c", str(probe)], capture_output=True, text=True, timeout=30, check=False
        )
    finally:
        probe.unlink(missing_ok=True)
    if check.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"the new mappings do not parse: {(check.stdout + check.stderr).strip()}")
    tmp.replace(path)
    pid_file = sdir / "nats-server.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        if old is not None:
            path.write_text(old)
        raise RuntimeError(f"no server pid in {pid_file}: is the server running (mcp-nats up)?") from None
    logf = sdir / "nats-server.log"
    offset = logf.stat().st_size if logf.exists() else 0
    try:
        os.kill(pid, signal.SIGHUP)  # nats-server re-reads its config; connections stay
    except ProcessLookupError:
        raise RuntimeError(f"the server (pid {pid}) is not running") from None
    if not logf.exists():
        log.warning("sent the server (pid %d) a reload; no log at %s to confirm it", pid, logf)
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with logf.open("rb") as f:
            f.seek(offset)
            if RELOADED in f.read():
                return
        time.sleep(0.05)
    raise RuntimeError(
        f"the server (pid {pid}) did not confirm the reload within {timeout:.0f} s (see {logf})"
    )


async def instances(settings: Settings, service: str) -> int:
    """How many instances of `service` answer $SRV.PING under the settings' subject root."""
    from bus import connect

    async with connect(settings.nats, name="mcp-nats rollout", ident=f"rollout{os.getpid()}") as bus:
        replies = await bus.scatter(bus.subjects.srv_ping(service), idle=0.3, limit=2.0)
    return len(replies)


def rollout_command(args: argparse.Namespace, settings: Settings) -> int:
    from .main import _run

    settings = msgspec.structs.replace(
        settings, nats=msgspec.structs.replace(settings.nats, url=resolve_url(settings))
    )
    if args.action in ("shadow", "report"):
        from .shadow import shadow_command

        return shadow_command(args, settings)
    sdir = server_dir(args, settings)
    config = Path(args.server_config) if getattr(args, "server_config", None) else sdir / "nats-server.conf"
    root = settings.nats.root
    state = load_state(sdir, root)
    if state.root != root:
        log.error("the canaries in %s are for subject root %r, not %r", sdir, state.root, root)
        return 2
    if args.action == "status":
        for svc, c in sorted(state.canaries.items()):
            log.info("canary %s -> %s: %d%% since %s", svc, c.candidate, c.weight, c.since)
        from .shadow import shadow_status

        return shadow_status(settings)
    svc = args.rollout_service
    holder: list[int] = []
    if args.action == "canary":
        if not 1 <= args.weight <= 100:
            log.error("--weight is a percentage from 1 to 100")
            return 2
        if args.candidate == svc:
            log.error(
                "the candidate must run under its own name (e.g. mcp-nats serve %s --name %s-next)", svc, svc
            )
            return 2
        _run(_count(settings, args.candidate, holder))
        if holder[0] == 0:
            log.error(
                "no instance of %s is running: start the candidate first (mcp-nats serve <kind> --name %s), "
                "else %d%% of %s's calls would fail",
                args.candidate,
                args.candidate,
                args.weight,
                svc,
            )
            return 2
        state.canaries[svc] = Canary(candidate=args.candidate, weight=args.weight, since=_now())
    elif args.action == "promote":
        canary = state.canaries.get(svc)
        if canary is None:
            log.error(
                "%s has no canary to promote (mcp-nats rollout canary %s --to CANDIDATE first)", svc, svc
            )
            return 2
        _run(_count(settings, canary.candidate, holder))
        if holder[0] == 0:
            log.error(
                "no instance of %s is running: refusing to send it every call of %s", canary.candidate, svc
            )
            return 2
        state.canaries[svc] = Canary(candidate=canary.candidate, weight=100, since=_now())
    elif args.action == "abort":
        if state.canaries.pop(svc, None) is None:
            from .shadow import stop_shadow

            return stop_shadow(settings, svc)
    from .canary_auth import apply_to_account, auth_on, uncovered

    secured = auth_on(settings)
    now = state.canaries.get(svc)
    why = uncovered(settings, svc, now.candidate) if secured and now is not None else ""
    if why:
        log.error("refusing the canary of %s: %s", svc, why)
        return 2
    try:
        if secured:
            apply_to_account(settings, state)
        else:
            apply(sdir, config, state)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    sdir.mkdir(parents=True, exist_ok=True)
    tmp = sdir / f".{STATE_FILE}.partial"
    tmp.write_bytes(msgspec.json.encode(state))
    tmp.replace(sdir / STATE_FILE)
    now = state.canaries.get(svc)
    if now is None:
        log.info("canary of %s removed: every call goes to %s", svc, svc)
    elif now.weight == 100:
        log.info(
            "%s promoted: every tool call of %s goes to %s; upgrade %s, then run: mcp-nats rollout abort %s",
            now.candidate,
            svc,
            now.candidate,
            svc,
            svc,
        )
    else:
        log.info("canary: %d%% of %s's tool calls go to %s", now.weight, svc, now.candidate)
    return 0


async def _count(settings: Settings, service: str, out: list[int]) -> None:
    out.append(await instances(settings, service))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
