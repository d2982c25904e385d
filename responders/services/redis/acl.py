"""The start-up check of what the Redis user may do: Redis enforces its ACL whatever our code does, so a
read-only service should run as a user Redis keeps from writing, and a `--keys` service as one Redis keeps
inside the same patterns. Run once in `Store.lifespan` after the first PING (nothing on the call path);
it never fails the start.

    ACL WHOAMI                      the user (refused or unknown: not checked, logged at info)
    ACL GETUSER <user>              its key patterns, for probe keys (refused: the probes use ours)
    ACL DRYRUN <user> SET <k> x     ... one DRYRUN per probe, in one pipeline: Redis's own answer
                                    (Redis 7.0+; on 6.x the subcommand is unknown and GETUSER's
                                    `allcommands` / `allkeys` flags are read instead)

ACL GETUSER and ACL DRYRUN are @admin: a restricted user (the README's) is refused them and nothing is
logged above info (Redis records the refusal in ACL LOG once per start). A user allowed them is an
admin, and the probes then find what it may do: in read-only mode a write (any command the write
tools send, on a key of each pattern; FLUSHDB, CONFIG SET, ACL SETUSER) is a problem; with `--keys`, a read (and with --write a write) of a
key outside the patterns is one. One warning names them and the fix."""

from __future__ import annotations

import asyncio
import logging
import string
from typing import Any, Final

import redis.exceptions as rx

from ..dsn import Secrets
from .keys import Allowlist, glob_to_regex
from .settings import RedisSettings

log = logging.getLogger(__name__)

PROBE_KEY: Final = "mcp-nats:acl-probe"
"""A key name probed when no pattern gives one (DRYRUN never runs the command: no key is touched)."""
_OUTSIDE: Final = ("~mcp-nats-acl-probe", "0")
"""Keys outside --keys to probe when PROBE_KEY is inside them."""
_ALPHABET: Final = string.ascii_letters + string.digits + string.punctuation
_KEY_PREFIXES: Final = ("%RW~", "%R~", "%W~", "~")
_MAX_KEYS: Final = 8
FIX: Final = "see the README: the mcp_reader ACL user"


def sample_key(pattern: str) -> str | None:
    """A key the Redis glob `pattern` matches (`*` as nothing, a class as its first member), or None."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            pass
        elif c == "?":
            out.append("x")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(pattern[i])
        elif c == "[":
            j = i + 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            if j >= n:  # no closing bracket: Redis reads the rest literally
                out.append(pattern[i:])
                break
            cls = glob_to_regex(pattern[i : j + 1])
            out.append(next((ch for ch in _ALPHABET if cls.fullmatch(ch)), "\x00"))
            i = j
        else:
            out.append(c)
        i += 1
    key = "".join(out)
    return key if glob_to_regex(pattern).fullmatch(key) else None


def user_patterns(info: Any) -> list[str]:
    """The key globs of an ACL GETUSER reply (root and selectors; `~`, `%R~`, `%W~` prefixes dropped):
    a `"~a* %R~b"` string since Redis 7.0, a list of bare globs before."""
    if not isinstance(info, dict):
        return []
    found: list[str] = []
    for rules in [info] + [s for s in _get(info, "selectors") or [] if isinstance(s, dict)]:
        keys = _get(rules, "keys")
        items = _text(keys).split() if isinstance(keys, (bytes, str)) else [_text(k) for k in keys or []]
        for item in items:
            prefix = next((p for p in _KEY_PREFIXES if item.startswith(p)), "")
            found.append(item.removeprefix(prefix))
        if "allkeys" in [_text(f) for f in _get(rules, "flags") or []]:
            found.append("*")
    return found


def probe_keys(allow: Allowlist, patterns: list[str]) -> list[str]:
    """Keys to ask DRYRUN about: one per --keys glob, one per user glob, and PROBE_KEY."""
    keys: list[str] = []
    for p in [*allow.patterns, *patterns, PROBE_KEY]:
        k = sample_key(p)
        if k and k not in keys:  # "" (from `*`): PROBE_KEY stands for it
            keys.append(k)
    return keys[:_MAX_KEYS]


WRITES: Final = (
    ("SET", "x"),
    ("DEL",),
    ("EXPIRE", "1"),
    ("HSET", "f", "x"),
    ("HDEL", "f"),
    ("LPUSH", "x"),
    ("RPUSH", "x"),
    ("LPOP",),
    ("RPOP",),
    ("SADD", "x"),
    ("SREM", "x"),
    ("ZADD", "1", "x"),
    ("ZREM", "x"),
    ("XADD", "*", "f", "x"),
)
"""The commands the write tools send, each as (name, arguments after the key)."""
Probe = tuple[str, str, str | None, list[str]]
"""(problem, command name, key or None, the command DRYRUN asks about): one the user must not be allowed."""


def probes(settings: RedisSettings, allow: Allowlist, user: str, keys: list[str]) -> list[Probe]:
    """What to ask DRYRUN: in read-only mode writes (WRITES on each probe key, FLUSHDB, CONFIG SET, ACL SETUSER),
    with --keys reads (and with --write writes) of the probe keys outside the patterns."""
    out: list[Probe] = []
    if not settings.write:
        out += [("write", name, k, [name, k, *rest]) for k in keys for name, *rest in WRITES]
        out += [
            ("write", "FLUSHDB", None, ["FLUSHDB"]),
            ("write", "CONFIG SET", None, ["CONFIG", "SET", "maxmemory", "0"]),
            ("write", "ACL SETUSER", None, ["ACL", "SETUSER", user]),
        ]
    if not allow.everything:
        outside = [k for k in keys if not allow.allows(k)]
        outside = outside or [k for k in _OUTSIDE if not allow.allows(k)][:1]
        for k in outside:
            out.append(("keys", "GET", k, ["GET", k]))
            if settings.write:
                out.append(("keys", "SET", k, ["SET", k, "x"]))
    return out


def report(service: str, user: str, settings: RedisSettings, found: dict[str, list[Probe]]) -> str | None:
    """The one warning for the probes Redis allowed (None when it allowed none)."""
    parts = []
    if found.get("write"):
        keyed = [p for p in found["write"] if p[2] is not None]
        names = list(dict.fromkeys(p[1] for p in keyed))
        head = "every command the write tools send" if len(names) == len(WRITES) else ", ".join(names)
        names = ([f"{head} (on {keyed[0][2]!r})"] if keyed else []) + [
            p[1] for p in found["write"] if p[2] is None
        ]
        parts.append(
            f"read-only mode, but the Redis user {user!r} may run {', '.join(names)}: only the missing "
            "write tools keep the service from writing"
        )
    if found.get("keys"):
        verbs = " and ".join(
            v for v, c in (("read", "GET"), ("write", "SET")) if any(p[1] == c for p in found["keys"])
        )
        keys = ", ".join(
            "every key: allkeys" if k == "*" else repr(k) for k in dict.fromkeys(p[2] for p in found["keys"])
        )
        who = "it" if parts else f"the Redis user {user!r}"
        parts.append(
            f"--keys {' '.join(settings.keys)}, but {who} may {verbs} keys outside them ({keys}): only the "
            "service's own key check stops that"
        )
    if not parts:
        return None
    return (
        f"{service}: {'; '.join(parts)}. Connect as a user whose Redis ACL allows only the service's commands "
        f"and keys ({FIX})"
    )


async def check_acl(
    client: Any, settings: RedisSettings, allow: Allowlist, service: str, secrets: Secrets
) -> list[str]:
    """Check the connected user's ACL (see the module docstring) against the service's `allow` (its --keys);
    log one warning and return its problems ("write", "keys"), or log at info why it could not check and
    return []. Never raises."""
    if settings.write and allow.everything:
        return []  # nothing Redis could hold the user to that the service does not already allow
    try:
        async with asyncio.timeout(settings.timeout * 3):
            return await _check(client, settings, allow, service, secrets)
    except (rx.RedisError, TimeoutError) as exc:
        log.info(
            "%s: could not check the Redis user's ACL: %s",
            service,
            secrets.scrub(str(exc)) or type(exc).__name__,
        )
    except Exception as exc:  # a bug here must not stop the service
        log.warning("%s: the check of the Redis user's ACL failed: %r", service, exc)
    return []


async def _check(
    client: Any, settings: RedisSettings, allow: Allowlist, service: str, secrets: Secrets
) -> list[str]:
    try:
        user = _text(await client.execute_command("ACL", "WHOAMI"))
    except rx.ResponseError as exc:  # NOPERM, or no ACLs (Redis before 6.0, or the command renamed away)
        log.info(
            "%s: not checking what the Redis user may do (ACL WHOAMI: %s); Redis enforces its ACL either way",
            service,
            secrets.scrub(str(exc)),
        )
        return []
    async with client.pipeline(transaction=False) as p:
        p.execute_command("ACL", "GETUSER", user)
        (info,) = await p.execute(raise_on_error=False)
    keys = probe_keys(allow, user_patterns(info))
    todo = probes(settings, allow, user, keys)
    async with client.pipeline(transaction=False) as p:
        for *_, command in todo:
            p.execute_command("ACL", "DRYRUN", user, *command)
        answers = await p.execute(raise_on_error=False)
    found: dict[str, list[Probe]] = {}
    first = answers[0] if answers else None
    if isinstance(first, rx.ResponseError) and "unknown subcommand" in str(first).lower():
        found = _flags_only(settings, allow, info)  # Redis 6.x: no ACL DRYRUN
    elif isinstance(first, rx.ResponseError):
        log.info(
            "%s: not checking what the Redis user %r may do (ACL DRYRUN: %s); Redis enforces its ACL either way",
            service,
            user,
            secrets.scrub(str(first)),
        )
        return []
    else:
        for probe, answer in zip(todo, answers, strict=True):
            if answer is True or _text(answer) == "OK":
                found.setdefault(probe[0], []).append(probe)
    message = report(service, user, settings, found)
    if message is not None:
        log.warning("%s", secrets.scrub(message))
    return list(found)


def _flags_only(settings: RedisSettings, allow: Allowlist, info: Any) -> dict[str, list[Probe]]:
    """Redis 6.x: only what ACL GETUSER's flags prove (allcommands: +@all; allkeys); nothing when refused."""
    if not isinstance(info, dict):
        return {}
    flags = [_text(f) for f in _get(info, "flags") or []]
    found: dict[str, list[Probe]] = {}
    if not settings.write and "allcommands" in flags:
        found["write"] = [("write", "every command (+@all)", None, [])]
    if not allow.everything and "*" in user_patterns(info):
        found["keys"] = [("keys", c, "*", []) for c in ("GET", "SET")[: 1 + settings.write]]
    return found


def _get(d: dict[Any, Any], name: str) -> Any:
    return d.get(name, d.get(name.encode()))


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
