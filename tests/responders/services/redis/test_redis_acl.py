"""The start-up ACL check's logic without a server: probe keys from globs, GETUSER replies of Redis 7 and 6,
the probes asked, the warning's wording, and the outcomes for a restricted user, Redis 6 (no ACL DRYRUN),
Redis without ACLs and a broken connection (the real Redis 7 cases are in tests/test_redis_e2e.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis.exceptions as rx

from responders.errors import ToolError
from responders.services.dsn import Secrets
from responders.services.redis.acl import (
    PROBE_KEY,
    WRITES,
    check_acl,
    probe_keys,
    probes,
    report,
    sample_key,
    user_patterns,
)
from responders.services.redis.errors import map_redis_errors
from responders.services.redis.keys import Allowlist, glob_to_regex
from responders.services.redis.settings import RedisSettings

pytestmark = pytest.mark.anyio
URL = "redis://:pw1234@h:6379/0"


@pytest.mark.parametrize(
    ("pattern", "key"),
    [
        ("app:*", "app:"),
        ("cfg:[ab]", "cfg:a"),
        ("cfg:[^a]", "cfg:b"),
        ("k?", "kx"),
        ("lit\\*", "lit*"),
        ("r[b-c]x", "rbx"),
        ("a[b", "a[b"),
        ("*", ""),
    ],
)
def test_sample_key_is_matched_by_its_glob(pattern: str, key: str) -> None:
    """Each probe key is one Redis's glob matches (checked with the allowlist's own matcher)."""
    assert sample_key(pattern) == key and glob_to_regex(pattern).fullmatch(key)


def test_user_patterns_of_redis_7_and_6_replies() -> None:
    """GETUSER's key rules: Redis 7's `~a %R~b %W~c` string and selectors, Redis 6's bare list and allkeys."""
    v7 = {
        b"flags": [b"on"],
        b"keys": b"~app:* %R~r:* %W~w:*",
        b"selectors": [{b"commands": b"+set", b"keys": b"~sel:*"}],
    }
    assert user_patterns(v7) == ["app:*", "r:*", "w:*", "sel:*"]
    assert user_patterns({"flags": ["on", "allkeys"], "keys": ["*"]}) == ["*", "*"]
    assert user_patterns(None) == [] and user_patterns(rx.NoPermissionError("no")) == []
    assert probe_keys(Allowlist(["app:*"]), ["*", "app:*", "other:*"]) == ["app:", "other:", PROBE_KEY]


def test_probes_and_the_warning() -> None:
    """Read-only: writes on every probe key plus FLUSHDB, CONFIG SET, ACL SETUSER; --keys: reads (and with
    --write writes) of keys outside; one sentence naming the user, what it may do and the README's fix."""
    ro = RedisSettings(url=URL, keys=["app:*"])
    todo = probes(ro, Allowlist(ro.keys), "bob", ["app:", PROBE_KEY])
    asked = [" ".join(p[3]) for p in todo]
    assert asked[:3] == ["SET app: x", "DEL app:", "EXPIRE app: 1"] and "XADD app: * f x" in asked
    assert len(asked) == 2 * len(WRITES) + 4 and f"SET {PROBE_KEY} x" in asked
    assert asked[-4:] == ["FLUSHDB", "CONFIG SET maxmemory 0", "ACL SETUSER bob", f"GET {PROBE_KEY}"]
    rw = RedisSettings(url=URL, write=True, keys=["app:*"])
    assert [" ".join(p[3]) for p in probes(rw, Allowlist(rw.keys), "bob", ["app:"])] == [
        "GET ~mcp-nats-acl-probe",
        "SET ~mcp-nats-acl-probe x",
    ]
    found = {"write": [p for p in todo if p[0] == "write"], "keys": [p for p in todo if p[0] == "keys"]}
    message = report("cache", "bob", ro, found)
    assert message == (
        "cache: read-only mode, but the Redis user 'bob' may run every command the write tools send (on "
        "'app:'), FLUSHDB, CONFIG SET, "
        "ACL SETUSER: only the missing write tools keep the service from writing; --keys app:*, but it may "
        f"read keys outside them ('{PROBE_KEY}'): only the service's own key check stops that. Connect as a "
        "user whose Redis ACL allows only the service's commands and keys (see the README: the mcp_reader "
        "ACL user)"
    )
    assert report("cache", "bob", ro, {}) is None
    some = {"write": [p for p in todo if p[1] in ("HSET", "HDEL") and p[2] == PROBE_KEY]}
    assert f"may run HSET, HDEL (on '{PROBE_KEY}'): only" in (report("cache", "bob", ro, some) or "")


class FakeRedis:
    """Answers ACL WHOAMI, GETUSER and DRYRUN (also in pipelines) as a given server would."""

    def __init__(
        self, whoami: bytes | Exception, getuser: Any, dryrun: Callable[[tuple[str, ...]], Any]
    ) -> None:
        self.whoami, self.getuser, self.dryrun = whoami, getuser, dryrun
        self.sent: list[tuple[str, ...]] = []

    def answer(self, args: tuple[str, ...]) -> Any:
        self.sent.append(args)
        if args[:2] == ("ACL", "WHOAMI"):
            return self.whoami
        if args[:2] == ("ACL", "GETUSER"):
            return self.getuser
        assert args[:2] == ("ACL", "DRYRUN")
        return self.dryrun(args[3:])

    async def execute_command(self, *args: str) -> Any:
        out = self.answer(args)
        if isinstance(out, Exception):
            raise out
        return out

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, client: FakeRedis) -> None:
        self.client = client
        self.queued: list[tuple[str, ...]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def execute_command(self, *args: str) -> FakePipeline:
        self.queued.append(args)
        return self

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        assert not raise_on_error
        return [self.client.answer(a) for a in self.queued]


async def check(client: FakeRedis, **settings: Any) -> list[str]:
    rs = RedisSettings(url=URL, **settings)
    return await check_acl(client, rs, Allowlist(rs.keys), "cache", Secrets(URL))


async def test_restricted_user_and_no_acls_are_not_warned(caplog: pytest.LogCaptureFixture) -> None:
    """A user refused ACL WHOAMI or ACL DRYRUN, and Redis before 6.0 (no ACL command), are not checked: info only."""
    caplog.set_level(logging.INFO, logger="responders.services.redis.acl")
    refused = rx.NoPermissionError("this user has no permissions to run the 'acl|dryrun' command")
    for client in (
        FakeRedis(rx.NoPermissionError("no permissions to run 'acl|whoami'"), None, lambda a: None),
        FakeRedis(rx.ResponseError("unknown command 'ACL'"), None, lambda a: None),
        FakeRedis(b"mcp_reader", rx.NoPermissionError("getuser"), lambda a: refused),
    ):
        assert await check(client, keys=["app:*"]) == []
    assert [r.levelname for r in caplog.records] == ["INFO"] * 3
    assert "Redis enforces its ACL either way" in caplog.records[2].getMessage()


async def test_redis_6_reads_getuser_flags(caplog: pytest.LogCaptureFixture) -> None:
    """Redis 6 answers DRYRUN as an unknown subcommand: `allcommands` and `allkeys` from GETUSER are warned."""
    unknown = rx.ResponseError("Unknown subcommand or wrong number of arguments for 'DRYRUN'. Try ACL HELP.")
    admin = {b"flags": [b"on", b"allkeys", b"allcommands"], b"keys": [], b"commands": b"+@all"}
    assert await check(FakeRedis(b"default", admin, lambda a: unknown), keys=["app:*"]) == ["write", "keys"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "may run every command (+@all)" in warning and "(every key: allkeys)" in warning
    reader = {b"flags": [b"on"], b"keys": [b"app:*"], b"commands": b"-@all +get"}
    assert await check(FakeRedis(b"reader", reader, lambda a: unknown), keys=["app:*"]) == []


async def test_dryrun_answers_decide_and_nothing_raises(caplog: pytest.LogCaptureFixture) -> None:
    """Redis 7: DRYRUN's OK is a problem, its refusal sentence is not; a write service without --keys asks
    nothing; a broken connection is logged at info and the start goes on."""
    caplog.set_level(logging.INFO, logger="responders.services.redis.acl")
    info = {b"flags": [b"on"], b"keys": b"%R~*", b"selectors": []}

    def reads_only(cmd: tuple[str, ...]) -> bytes:
        return b"OK" if cmd[0] == "GET" else b"This user has no permissions to run the 'set' command"

    client = FakeRedis(b"reader", info, reads_only)
    assert await check(client, keys=["app:*"]) == ["keys"]
    assert await check(client) == []
    none = FakeRedis(b"x", None, lambda a: b"OK")
    assert await check(none, write=True) == [] and none.sent == []
    broken = FakeRedis(rx.ConnectionError("lost pw1234"), None, lambda a: None)
    assert await check(broken, keys=["app:*"]) == []
    assert "pw1234" not in caplog.text and "could not check" in caplog.text


def test_pipeline_errors_read_as_redis_said_them() -> None:
    """redis-py's `Command # 1 (...) of pipeline caused error:` prefix is dropped, so NOPERM and WRONGTYPE
    from the `get` tool's pipeline read like any other call's."""
    secrets = Secrets(URL)
    with pytest.raises(ToolError) as info, map_redis_errors(secrets, service="r", timeout_s=1):
        raise rx.NoPermissionError(
            "Command # 1 (EXISTS secret:1) of pipeline caused error: this user has no permissions to access "
            "one of the keys used as arguments"
        )
    assert str(info.value) == (
        "permission denied by Redis: this user has no permissions to access one of the keys used as arguments"
    )
    with pytest.raises(ToolError, match="^wrong type"), map_redis_errors(secrets, service="r", timeout_s=1):
        raise rx.ResponseError("Command # 2 (STRLEN h) of pipeline caused error: WRONGTYPE Operation against")
