"""`mcp-nats rollout` with auth on (issue #14): a canary is a weighted mapping in the clients account JWT
(bus/accountmap.py), pushed live through the system account, since a server-level mapping applies to no
account in operator mode.

nats-server checks a caller's publish permission on the subject after mapping (measured with 2.15.1: a caller
allowed only `demo.*` got "permissions violation for publish to <root>.demo-next.tools.call.add" for the mapped
share). So a canary is refused while an identity may call a tool of the service but not the same tool of the
candidate: grant the candidate's tools to the same roles first (`allow = ["demo.*", "demo-next.*"]`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bus.subjects import Subjects
from schemas.config import Settings

from .config import auth_dir

if TYPE_CHECKING:
    from .rollout import RolloutState


def mapping_table(state: RolloutState) -> dict[str, list[tuple[str, int]]]:
    """The canaries as account-JWT mappings: `<root>.<svc>.tools.call.*` split between the stable service and its
    candidate by weight (`{{wildcard(1)}}` carries the tool token; a JWT mapping's destination has no wildcard)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for svc, c in sorted(state.canaries.items()):
        subjects = Subjects(state.root)
        dests = [(subjects.tool_call_mapped(c.candidate), c.weight)]
        if c.weight < 100:
            dests.insert(0, (subjects.tool_call_mapped(svc), 100 - c.weight))
        out[f"{state.root}.{svc}.tools.call.*"] = dests
    return out


def auth_on(settings: Settings) -> bool:
    """This process talks to the server `up` started with auth on, as admin (found in the state directory)."""
    from bus.authstore import AuthDir

    adir = AuthDir(auth_dir(settings))
    return adir.exists() and settings.nats.credentials == str(adir.admin_creds)


def apply_to_account(settings: Settings, state: RolloutState) -> None:
    """Auth on: the canaries become weighted mappings in the clients account JWT, pushed to the running server
    through the system account (applies at once; no reload, no restart). Raises RuntimeError."""
    import asyncio

    from bus import BusError
    from bus.accountmap import remap
    from bus.authstore import CLIENTS, AuthDir, AuthDirError, Compiled

    from .auth import push

    adir = AuthDir(auth_dir(settings))
    try:
        public, token = remap(adir, mapping_table(state), CLIENTS)
        system = str(adir.resolver()["system_account"])
        asyncio.run(push(adir, Compiled(accounts={public: token}, system_account=system), settings.nats.url))
    except AuthDirError as exc:
        raise RuntimeError(str(exc)) from None
    except BusError as exc:
        raise RuntimeError(
            f"the server at {settings.nats.url} did not take the clients account: {exc}"
        ) from None


def uncovered(settings: Settings, service: str, candidate: str) -> str:
    """Why the policy compiled last does not let a canary of `service` go to `candidate` ("" when it does):
    the candidate has no credentials and exports, or identities may call tools of `service` but not of `candidate`."""
    from bus.authstore import AuthDir
    from schemas.policy import PolicyError, allows, parse_policy, with_services

    from .catalog import catalog

    adir = AuthDir(auth_dir(settings))
    try:
        policy = parse_policy(adir.policy_file.read_text(), str(adir.policy_file))
        tools = with_services(policy, catalog(settings), str(adir.policy_file))
    except (OSError, PolicyError) as exc:
        return f"cannot read the policy compiled last: {exc}"
    if candidate not in tools:
        return (
            f"{candidate} has no credentials and is not exported to the identities: run "
            f"mcp-nats auth service {candidate} --like <kind> (then grant its tools: see below)"
        )
    names = tools.get(service) or []
    short = sorted(
        i
        for i in policy.identities
        if any(allows(policy, i, service, t) and not allows(policy, i, candidate, t) for t in names)
    )
    if short:
        return (
            f"the server checks permissions after mapping, and {', '.join(short)} may call tools of {service} but not the "
            f'same tools of {candidate}: grant them (e.g. "{candidate}.*" next to "{service}.*" in their roles), '
            f"run mcp-nats auth init --policy FILE, then start the canary"
        )
    return ""
