"""Subject permissions derived from a policy and `bus/subjects.py` (issue #11). Pure: no I/O, no nats.

Three kinds of user, each confined by nats-server:

* an **identity** (clients account): publishes only the call subjects of the tools its roles allow,
  plus the list, discovery, cancel, resource and prompt subjects of the services it may use;
  subscribes only to its own inbox prefix (`_INBOX_<identity>.>`) and the events;
* a **service** (services account): queue-subscribes only its own subjects and `$SRV`, answers
  through `allow_responses` (enough frames for progress), publishes only its own events and audit
  records and uses JetStream, but may never delete, purge or change the audit stream;
* **admin** (services account): everything.

Tool patterns become subjects like this (`<root>.<svc>.tools.call.<token>`):

* `svc.*`      -> `<root>.svc.tools.call.*` (a NATS wildcard: tools added later are covered);
* `svc.name`   -> that tool's subject;
* `svc.pre_*`  -> a prefix inside a token, which NATS wildcards cannot express: expanded against the
  tool names the catalog knows (the services built with their default settings when the policy is
  compiled). A matching tool that appears later is not covered until `auth init` runs again.

A tool whose name is not token-safe travels under `_` (see `tool_token`); allowing `_` would allow
every such tool of the service, so only `svc.*` reaches them, and any deny pattern matching one
denies `_`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from schemas.policy import Policy, part_matches, patterns_of, split

from .subjects import (
    OPERATIONS,
    SRV_VERBS,
    UNSAFE_TOOL_TOKEN,
    Subjects,
    direct_get,
    inboxes,
    js_api,
    kv_all,
    objects_all,
    srv,
    stream_admin,
    subject_matches,
    tool_token,
)

Catalog = Mapping[str, Sequence[str]]
"""Known services and the tool names each registers (with its default settings)."""

RESPONSE_FRAMES = 1_000_000
"""`allow_responses` max for a service: progress and heartbeat frames of its longest call."""
RESPONSE_TTL_S = 3600.0
"""How long a service may answer one request (nats-server's default is 2 minutes)."""
RESPONSE_THRESHOLD_S = 600.0
"""The exports' `response_threshold`: the longest gap between two frames of one call."""


@dataclass(frozen=True, slots=True)
class Permissions:
    pub_allow: tuple[str, ...]
    sub_allow: tuple[str, ...]
    pub_deny: tuple[str, ...] = ()
    sub_deny: tuple[str, ...] = ()
    responses: int = 0
    """`allow_responses` max messages per request received (0: none beyond the allow list)."""
    response_ttl: float = 0.0

    def may_publish(self, subject: str) -> bool:
        """Would nats-server let this user publish to `subject`? (allowed, and not denied)"""
        return any(subject_matches(p, subject) for p in self.pub_allow) and not any(
            subject_matches(p, subject) for p in self.pub_deny
        )

    @classmethod
    def from_claims(cls, claims: Mapping[str, object]) -> Permissions | None:
        """The permissions in a user JWT's claims; None when it sets no publish allow list (anything goes)."""
        nats = claims.get("nats")
        if not isinstance(nats, dict):
            return None
        pub = nats.get("pub") or {}
        sub = nats.get("sub") or {}
        if not isinstance(pub, dict) or not isinstance(sub, dict) or not pub.get("allow"):
            return None
        return cls(
            pub_allow=tuple(pub.get("allow") or ()),
            pub_deny=tuple(pub.get("deny") or ()),
            sub_allow=tuple(sub.get("allow") or ()),
            sub_deny=tuple(sub.get("deny") or ()),
        )


@dataclass(frozen=True, slots=True)
class Export:
    subject: str
    kind: str
    """"service" (request-reply, `response_type: stream`) or "stream" (events)."""


def callout() -> Permissions:
    """The auth callout service (AUTH account): receives the server's authorization requests and answers them."""
    sub = ("$SYS.REQ.USER.AUTH", inboxes(user_name("callout", "")))
    return Permissions(pub_allow=(), pub_deny=(">",), sub_allow=sub, responses=1, response_ttl=60.0)


def nothing() -> Permissions:
    """The callout account's sentinel: a connection without credentials, until the callout says who it is."""
    return Permissions(pub_allow=(), pub_deny=(">",), sub_allow=(), sub_deny=(">",))


def user_name(kind: str, name: str) -> str:
    """The JWT name of a user: the identity itself, `service-<svc>`, `callout` or `admin`."""
    return (
        name
        if kind == "identity"
        else f"service-{name}"
        if kind == "service"
        else kind
        if kind == "callout"
        else "admin"
    )


def allowed_services(policy: Policy, identity: str, catalog: Catalog) -> list[str]:
    """The services at least one of the identity's allow patterns names."""
    allow, _ = patterns_of(policy, identity)
    return sorted(s for s in catalog if any(part_matches(split(p)[0], s) for p in allow))


def _tool_subjects(subjects: Subjects, svc: str, part: str, tools: Sequence[str], *, deny: bool) -> list[str]:
    if part == "*":
        return [subjects.tool_calls(svc)]
    if "*" not in part:
        token = tool_token(part)
        return [subjects.tool_call(svc, part)] if deny or token != UNSAFE_TOOL_TOKEN else []
    out: list[str] = []
    for tool in tools:
        if part_matches(part, tool) and (deny or tool_token(tool) != UNSAFE_TOOL_TOKEN):
            subject = subjects.tool_call(svc, tool)
            if subject not in out:
                out.append(subject)
    return out


def _expand(subjects: Subjects, patterns: list[str], catalog: Catalog, *, deny: bool) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        svc_part, tool_part = split(pattern)
        if (
            svc_part == "*" and tool_part == "*"
        ):  # every tool of every service: one subject, whatever is installed
            if subjects.tool_calls("*") not in out:
                out.append(subjects.tool_calls("*"))
            continue
        for svc in sorted(catalog):
            if part_matches(svc_part, svc):
                out += [
                    s
                    for s in _tool_subjects(subjects, svc, tool_part, catalog[svc], deny=deny)
                    if s not in out
                ]
    return out


def identity(policy: Policy, name: str, catalog: Catalog, subjects: Subjects) -> Permissions:
    """What one identity of the policy may publish and subscribe to (see the module docstring)."""
    allow, deny = patterns_of(policy, name)
    services = allowed_services(policy, name, catalog)
    pub = _expand(subjects, allow, catalog, deny=False)
    pub += [srv("PING"), srv("INFO")]  # discovery of what exists; the answers carry no tool rights
    # Shadowing (bridge/shadow.py): read the rollout settings through the exported direct-get API (nothing else of
    # JetStream), and record comparisons of the services it may use (a stream CLIENTS exports to SERVICES).
    pub.append(direct_get(subjects.rollout_stream()))
    # An identity that may use every service gets each per-service subject once, with `*` for the service:
    # its JWT (sent in the CONNECT line) then stays the same size however many services are installed.
    every = any(split(p)[0] == "*" for p in allow)
    for svc in ["*"] if every else services:
        pub.append(subjects.shadow_results(svc))
        pub += [subjects.tools_list(svc), subjects.discover(svc), subjects.cancel(svc)]
        pub += [subjects.op(svc, op) for op in OPERATIONS]
        pub += (
            [srv(verb) + ".>" for verb in SRV_VERBS]
            if every
            else [srv(verb, subjects.micro_name(svc)) for verb in SRV_VERBS]
        )
    # Events of every service (the bridge subscribes `<root>.events.*.<kind>`): lifecycle, list changes and
    # resource-updated URIs are visible to every identity; see the README's Security section.
    sub = [inboxes(user_name("identity", name)), subjects.bridges_status(), subjects.events_all()]
    return Permissions(
        pub_allow=tuple(dict.fromkeys(pub)),
        sub_allow=tuple(sub),
        pub_deny=tuple(_expand(subjects, deny, catalog, deny=True)),
        responses=1,  # one answer to `mcp-nats status`' scatter on bridges.status
        response_ttl=60.0,
    )


def service(svc: str, subjects: Subjects, audit_stream: str) -> Permissions:
    """What one service's responders may do (see the module docstring)."""
    name = subjects.micro_name(svc)
    sub = [subjects.service_requests(svc), inboxes(user_name("service", svc))]
    for verb in SRV_VERBS:
        sub += [srv(verb), srv(verb, name), srv(verb, name, "*")]
    pub = [subjects.service_events(svc), subjects.service_audit(svc), js_api(), kv_all(), objects_all()]
    return Permissions(
        pub_allow=tuple(pub),
        sub_allow=tuple(sub),
        pub_deny=stream_admin(audit_stream),
        responses=RESPONSE_FRAMES,
        response_ttl=RESPONSE_TTL_S,
    )


def admin() -> Permissions:
    """Admin may do everything in the services account (streams, audit, status)."""
    return Permissions(pub_allow=(">",), sub_allow=(">",))


def exports(catalog: Catalog, subjects: Subjects) -> list[Export]:
    """What the services account exports and the clients account imports (with `share: true`)."""
    out = [Export(subjects.service_requests(svc), "service") for svc in sorted(catalog)]
    out.append(Export(srv("*") + ".>", "service"))  # $SRV.<verb>.> : discovery of one service
    out += [Export(srv(verb), "service") for verb in SRV_VERBS]  # the bare $SRV.PING etc.
    out.append(Export(direct_get(subjects.rollout_stream()), "service"))  # the shadow settings, read-only
    out.append(Export(subjects.events_all(), "stream"))
    return out


def client_exports(subjects: Subjects) -> list[Export]:
    """What the clients account exports and the services account imports: shadow comparisons (into its stream)."""
    return [Export(subjects.shadow_results(), "stream")]
