"""The security policy (issue #11): roles allow and deny `<service>.<tool>` patterns; identities have roles.

    [roles.reader]
    allow = ["fs.read_*", "fs.list_*", "memory.read_graph"]
    [roles.writer]
    allow = ["fs.*", "memory.*"]
    deny  = ["fs.delete_file"]
    [identities.alice]
    roles = ["writer"]
    [identities.ci]
    roles = ["reader"]
    rate = "20/s"            # optional: calls per identity (token bucket; see README "Security")
    concurrency = 8          # optional: calls in flight per identity, per responder instance
    certificate = "CN=ci"    # optional, with `auth init --mtls`: a client certificate whose subject has these
                             # attributes is admitted as this identity without credentials (auth callout)
    [tools."fs.write_file"]
    rate = "5/s"             # optional: calls of matching tools, per identity
    [services.fs-next]       # optional: a service that is no installed plugin's name (a canary candidate
    like = "fs"              # `serve fs --name fs-next`, or `attach NAME`); `like`: its tools are fs's

A pattern is `<service>.<tool>`; `*` matches any run of characters inside its part (`fs.read_*`,
`*.search_*`). An identity may call a tool when one of its roles allows it and none denies it
(deny wins). Pure data and pure functions: no I/O beyond parsing the text handed in.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct, field

Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]
"""Role and identity names: one subject token (identities name .creds files and inbox prefixes)."""
Pattern = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_*-]+\.[^\s.]+\Z", max_length=256)]
Rate = Annotated[str, Meta(pattern=r"^[0-9]+(\.[0-9]+)?/(s|m|h)\Z")]
"""Calls per second, minute or hour: "20/s", "600/m". The bucket holds one period's worth (burst)."""
Concurrency = Annotated[int, Meta(ge=1, le=100_000)]
ServiceName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}\Z")]
"""A service name as `serve --name` and `attach` take it (no '_': it separates service and tool)."""

_PERIODS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}


class Role(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    allow: list[Pattern] = field(default_factory=list)
    deny: list[Pattern] = field(default_factory=list)


class Identity(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    roles: list[Name]
    rate: Rate | None = None
    concurrency: Concurrency | None = None
    certificate: str = ""


class ToolLimit(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    rate: Rate


class ExtraService(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A service name beyond the installed plugins' (credentials, exports and imports are made for it too)."""

    like: ServiceName | None = None
    """The installed plugin it is an instance of: its tools expand prefix patterns (`fs-next.read_*`).
    Without it (an attached server), only `name.*` and exact tool names become permissions."""


class Policy(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    roles: dict[Name, Role] = field(default_factory=dict)
    identities: dict[Name, Identity] = field(default_factory=dict)
    tools: dict[Pattern, ToolLimit] = field(default_factory=dict)
    services: dict[ServiceName, ExtraService] = field(default_factory=dict)


class PolicyError(ValueError):
    """Raised when a policy cannot be used; the message names the file, the key and the problem."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket's shape: `per_second` refill, `burst` capacity."""

    per_second: float
    burst: float


def parse_rate(text: str) -> RateLimit:
    """ "20/s" -> 20 per second, burst 20; "90/m" -> 1.5 per second, burst 90. Raises PolicyError."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)/([smh])", text)
    if m is None or float(m[1]) <= 0:
        raise PolicyError(f'bad rate {text!r}: write a positive number of calls per s, m or h, e.g. "20/s"')
    count = float(m[1])
    return RateLimit(per_second=count / _PERIODS[m[2]], burst=max(1.0, count))


def parse_policy(text: str, source: str = "the policy") -> Policy:
    """The policy in `text` (TOML). Unknown keys and bad values are refused by name (PolicyError)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source} is not valid TOML: {exc}") from None
    # Each entry converted on its own, so that an error names the role, identity or tool it is in.
    sections: dict[str, type[Struct]] = {
        "roles": Role,
        "identities": Identity,
        "tools": ToolLimit,
        "services": ExtraService,
    }
    for key in data:
        if key not in sections:
            raise PolicyError(f"{source}: unknown key {key!r} (expected: {', '.join(sections)})")
    for key, kind in sections.items():
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise PolicyError(f"{source}: {key} must be a table")
        for name, entry in table.items():
            try:
                msgspec.convert(entry, kind, strict=True)
            except msgspec.ValidationError as exc:
                msg, sep, where = str(exc).rpartition(" - at `$")
                where = where.rstrip("`").lstrip(".") if sep else ""
                text = msg if sep else str(exc)
                raise PolicyError(
                    f"{source}: {key}.{name}" + (f".{where}" if where else "") + f": {text}"
                ) from None
    try:
        policy = msgspec.convert(data, Policy, strict=True)
    except msgspec.ValidationError as exc:  # a bad role, identity or tool name (the entries were fine)
        raise PolicyError(
            f"{source}: {exc} (names are letters, digits, '_' and '-'; patterns are <service>.<tool>)"
        ) from None
    for name, ident in policy.identities.items():
        if ident.rate is not None:
            _checked_rate(ident.rate, f"{source}: identities.{name}.rate")
    for pattern, limit in policy.tools.items():
        _checked_rate(limit.rate, f"{source}: tools.{pattern!r}.rate")
    seen: dict[tuple[tuple[str, str], ...], str] = {}
    for name, ident in policy.identities.items():
        if ident.certificate:
            where = f"{source}: identities.{name}.certificate"
            selector = certificate_selector(ident.certificate, where)
            if selector in seen:
                raise PolicyError(f"{where}: the same certificate subject as identities.{seen[selector]}")
            seen[selector] = name
    return policy


CERT_ATTRIBUTES: Final = ("CN", "O", "OU", "L", "ST", "C", "DC", "UID", "emailAddress")


def certificate_selector(text: str, where: str = "certificate") -> tuple[tuple[str, str], ...]:
    """ "CN=alice,O=mcp-nats" -> (("CN", "alice"), ("O", "mcp-nats")): attributes a client certificate's
    subject must all have (other attributes may be there too). Raises PolicyError naming `where`."""
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key.strip() not in CERT_ATTRIBUTES or not value.strip():
            raise PolicyError(
                f'{where}: {text!r} is not a certificate subject; write attributes like "CN=alice" or '
                f'"CN=alice,O=mcp-nats" (attributes: {", ".join(CERT_ATTRIBUTES)})'
            )
        pairs.append((key.strip(), value.strip()))
    return tuple(sorted(pairs))


def _checked_rate(text: str, where: str) -> None:
    try:
        parse_rate(text)
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None


def split(pattern: str) -> tuple[str, str]:
    svc, _, tool = pattern.partition(".")
    return svc, tool


@lru_cache(maxsize=4096)
def _glob(part: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in part) + r"\Z", re.DOTALL)


def part_matches(part: str, value: str) -> bool:
    """`part` (with `*` as any run of characters) matches all of `value`."""
    return _glob(part).match(value) is not None


def matches(pattern: str, service: str, tool: str) -> bool:
    svc, t = split(pattern)
    return part_matches(svc, service) and part_matches(t, tool)


def with_services(
    policy: Policy, catalog: Mapping[str, Sequence[str]], source: str = "the policy"
) -> dict[str, list[str]]:
    """The catalog (installed service -> its tools) and the policy's extra services, each with the tools of the
    plugin it is `like` (none without). Raises PolicyError for a `like` that names no installed service."""
    out = {name: list(tools) for name, tools in catalog.items()}
    for name, extra in policy.services.items():
        if extra.like is not None and extra.like not in catalog:
            installed = ", ".join(sorted(catalog)) or "none"
            raise PolicyError(
                f"{source}: services.{name}.like: {extra.like!r} is no installed service (installed: {installed})"
            )
        if name not in catalog:
            out[name] = list(catalog[extra.like]) if extra.like is not None else []
    return out


def check(policy: Policy, services: Iterable[str], source: str = "the policy") -> None:
    """Refuse (PolicyError, by name) an identity's unknown role and a pattern that matches no known service
    (`services` includes the policy's extra services: see with_services)."""
    known = sorted(set(services))
    for name, ident in policy.identities.items():
        for role in ident.roles:
            if role not in policy.roles:
                raise PolicyError(
                    f"{source}: identities.{name} has the unknown role {role!r} (roles: {', '.join(sorted(policy.roles)) or 'none'})"
                )
    patterns = [
        (f"roles.{r}.{kind}", p)
        for r, role in policy.roles.items()
        for kind, ps in (("allow", role.allow), ("deny", role.deny))
        for p in ps
    ]
    patterns += [(f"tools.{p!r}", p) for p in policy.tools]
    for where, pattern in patterns:
        svc, _ = split(pattern)
        if not any(part_matches(svc, s) for s in known):
            raise PolicyError(
                f"{source}: {where}: the pattern {pattern!r} matches no known service (known: {', '.join(known) or 'none'})"
            )


def allows(policy: Policy, identity: str, service: str, tool: str) -> bool:
    """May `identity` call `service.tool`? Some role allows it and no role denies it."""
    ident = policy.identities.get(identity)
    if ident is None:
        return False
    roles = [policy.roles[r] for r in ident.roles if r in policy.roles]
    if any(matches(p, service, tool) for role in roles for p in role.deny):
        return False
    return any(matches(p, service, tool) for role in roles for p in role.allow)


def patterns_of(policy: Policy, identity: str) -> tuple[list[str], list[str]]:
    """The allow and deny patterns of all the identity's roles (deduplicated, in order)."""
    ident = policy.identities[identity]
    allow: list[str] = []
    deny: list[str] = []
    for r in ident.roles:
        role = policy.roles[r]
        allow += [p for p in role.allow if p not in allow]
        deny += [p for p in role.deny if p not in deny]
    return allow, deny


def default_policy(user: str) -> str:
    """The policy `mcp-nats up` writes the first time: the local user may call every tool."""
    return (
        '# mcp-nats security policy (README "Security"). Edit, then run: mcp-nats auth init --policy <this file>\n'
        "[roles.everything]\n"
        'allow = ["*.*"]\n'
        "\n"
        f"[identities.{user}]\n"
        'roles = ["everything"]\n'
    )
