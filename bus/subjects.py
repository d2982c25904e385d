"""Subject construction from a configurable root (DESIGN.md section 2). Builds names, nothing else."""

from __future__ import annotations

import re
from typing import Final

TOKEN_SAFE: Final = re.compile(r"[A-Za-z0-9_-]+")  # fullmatch: "$" would let a trailing newline through
UNSAFE_TOOL_TOKEN: Final = "_"
ALL: Final = ">"
JS_API: Final = "$JS.API"
OPERATIONS: Final = (
    "resources.list",
    "resources.templates.list",
    "resources.read",
    "prompts.list",
    "prompts.get.*",
    "completion.complete",
)
"""A service's operations besides tools (subject tails after `<root>.<svc>.`; `*` is one prompt's token)."""


def is_token(value: str) -> bool:
    return TOKEN_SAFE.fullmatch(value) is not None


def tool_token(tool: str) -> str:
    """The subject token a tool travels under: its name when token-safe, else `_` (body decides)."""
    return tool if is_token(tool) and tool != UNSAFE_TOOL_TOKEN else UNSAFE_TOOL_TOKEN


SRV_VERBS: Final = ("PING", "INFO", "STATS")


def srv(verb: str, name: str | None = None, instance: str | None = None) -> str:
    """An ADR-32 service-API subject: `$SRV.<VERB>`, `$SRV.<VERB>.<name>` or `$SRV.<VERB>.<name>.<id>`."""
    if instance is not None and name is None:
        raise ValueError("an instance id needs a service name")
    return ".".join(p for p in ("$SRV", verb, name, instance) if p is not None)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: `*` is one token, a final `>` one or more; otherwise tokens are equal."""
    pt = pattern.split(".")
    st = subject.split(".")
    for i, p in enumerate(pt):
        if p == ">":
            return i == len(pt) - 1 and len(st) > i
        if i >= len(st) or (p != "*" and p != st[i]):
            return False
    return len(pt) == len(st)


def inbox_prefix(ident: str, owner: str = "") -> str:
    """The reply-subject prefix of one process: `_INBOX_<ident>`, or `_INBOX_<owner>.<ident>` when the
    process connects as a user (`owner`), so that the user may subscribe only `inboxes(owner)`."""
    return f"_INBOX_{owner}.{ident}" if owner else f"_INBOX_{ident}"


def inboxes(owner: str) -> str:
    """Every reply subject of every process connected as `owner`."""
    return f"_INBOX_{owner}.>"


def js_api(*tail: str) -> str:
    """A JetStream API subject, e.g. `js_api("STREAM", "DELETE", "MCP_AUDIT")`; no tail: every one (`$JS.API.>`)."""
    return ".".join((JS_API, *tail)) if tail else f"{JS_API}.>"


def stream_admin(stream: str) -> tuple[str, ...]:
    """The JetStream API subjects that delete, purge, change or remove messages from one stream."""
    return (
        js_api("STREAM", "DELETE", stream),
        js_api("STREAM", "PURGE", stream),
        js_api("STREAM", "UPDATE", stream),
        js_api("STREAM", "MSG", "DELETE", stream),
    )


def direct_get(stream: str) -> str:
    """JetStream's direct-get API of one stream (reads without a consumer; what bus/kv.py reads a bucket with)."""
    return js_api("DIRECT", "GET", stream)


def claims_update(account: str) -> str:
    """Where the system account sends an updated account JWT to every server."""
    return f"$SYS.REQ.ACCOUNT.{account}.CLAIMS.UPDATE"


def kv_all() -> str:
    return "$KV.>"


def objects_all() -> str:
    return "$O.>"


class Subjects:
    """All subjects under one root, e.g. `mcp.fs.tools.call.read_text_file`."""

    __slots__ = ("root",)

    def __init__(self, root: str = "mcp") -> None:
        if not is_token(root):
            raise ValueError(f"subject root {root!r} must be one token of letters, digits, '_' or '-'")
        self.root = root

    def service(self, svc: str) -> str:
        return f"{self.root}.{svc}"

    def service_requests(self, svc: str) -> str:
        """The wildcard a service's queue group subscribes to."""
        return f"{self.root}.{svc}.>"

    def discover(self, svc: str) -> str:
        return f"{self.root}.{svc}.discover"

    def tools_list(self, svc: str) -> str:
        return f"{self.root}.{svc}.tools.list"

    def tool_calls(self, svc: str) -> str:
        """Every tool call of a service (one token after `tools.call`)."""
        return f"{self.root}.{svc}.tools.call.*"

    def tool_call(self, svc: str, tool: str) -> str:
        return f"{self.root}.{svc}.tools.call.{tool_token(tool)}"

    def tool_calls_all(self, svc: str) -> str:
        """Every tool call of a service, as a subject mapping's source or destination (config mappings)."""
        return f"{self.root}.{svc}.tools.call.>"

    def tool_call_mapped(self, svc: str) -> str:
        """A mapping destination that keeps the tool token of `tool_calls(...)` (account-JWT mappings)."""
        return f"{self.root}.{svc}.tools.call.{{{{wildcard(1)}}}}"

    def op(self, svc: str, operation: str) -> str:
        """`<root>.<svc>.<operation>`, e.g. `resources.list`, `resources.read`, `prompts.list`, `completion.complete`."""
        return f"{self.root}.{svc}.{operation}"

    def resources_list(self, svc: str) -> str:
        return self.op(svc, "resources.list")

    def templates_list(self, svc: str) -> str:
        return self.op(svc, "resources.templates.list")

    def resources_read(self, svc: str) -> str:
        return self.op(svc, "resources.read")

    def prompts_list(self, svc: str) -> str:
        return self.op(svc, "prompts.list")

    def prompts_get(self, svc: str, prompt: str) -> str:
        return self.op(svc, f"prompts.get.{prompt}")

    def completion(self, svc: str) -> str:
        return self.op(svc, "completion.complete")

    def cancel(self, svc: str) -> str:
        return f"{self.root}.{svc}.cancel"

    def events(self, svc: str, kind: str) -> str:
        return f"{self.root}.events.{svc}.{kind}"

    def all_events(self, kind: str = "*") -> str:
        return f"{self.root}.events.*.{kind}"

    def service_events(self, svc: str) -> str:
        """Every event one service publishes."""
        return f"{self.root}.events.{svc}.>"

    def service_audit(self, svc: str) -> str:
        """Every audit record one service writes."""
        return f"{self.root}.audit.{svc}.>"

    def audit(self, svc: str, tool: str) -> str:
        return f"{self.root}.audit.{svc}.{tool_token(tool)}"

    def audit_filter(self, svc: str | None = None, tool: str | None = None) -> str:
        """The audit records of one service (and tool), `*` for any."""
        return f"{self.root}.audit.{svc or '*'}.{tool_token(tool) if tool else '*'}"

    def audit_all(self) -> str:
        """Everything the audit stream holds."""
        return f"{self.root}.audit.>"

    def events_all(self) -> str:
        """Everything the events stream holds."""
        return f"{self.root}.events.>"

    def bridges_status(self) -> str:
        """Every bridge answers here with its BridgeStatus (for `mcp-nats status`)."""
        return f"{self.root}.bridges.status"

    def shadow_results(self, svc: str | None = None) -> str:
        """Where bridges record shadowed calls of one service (every service: None), kept by the rollout stream."""
        return f"{self.root}.rollout.shadow.{svc or '>'}"

    def rollout_stream(self) -> str:
        """The stream behind the KV bucket `<root>-rollout` that holds the shadow settings (schemas/rollout.py)."""
        return f"KV_{self.root}-rollout"

    def micro_name(self, svc: str) -> str:
        """The ADR-32 service name of an MCP service's instances (`nats micro ls` shows it)."""
        return f"{self.root}-{svc}"

    def srv_ping(self, svc: str | None = None) -> str:
        """$SRV.PING for every service, or for one MCP service's instances."""
        return srv("PING", None if svc is None else self.micro_name(svc))

    def srv_stats(self) -> str:
        return srv("STATS")

    def operation(self, subject: str, svc: str) -> str | None:
        """The part after `<root>.<svc>.` (e.g. `tools.call.x`), or None if the subject is not the service's."""
        prefix = f"{self.root}.{svc}."
        return subject[len(prefix) :] if subject.startswith(prefix) else None
