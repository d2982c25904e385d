"""Permissions derived from a policy and the subjects (bus/permissions.py), and the JWTs that carry them."""

from __future__ import annotations

import pytest

from bus import jwt
from bus import permissions as perm
from bus.subjects import Subjects, subject_matches
from schemas.policy import PolicyError, check, parse_policy, with_services

from ..schemas.test_policy import ISSUE_POLICY

CATALOG = {
    "fs": [
        "read_text_file",
        "read_media_file",
        "write_file",
        "delete_file",
        "list_directory",
        "get_file_info",
        "search_files",
    ],
    "memory": ["read_graph", "search_nodes", "open_nodes", "create_entities"],
    "demo": ["add", "odd.name"],
}
S = Subjects("mcp")


def test_subject_matching_follows_nats() -> None:
    """`*` is one token, a final `>` one or more."""
    assert subject_matches("mcp.fs.tools.call.*", "mcp.fs.tools.call.read")
    assert not subject_matches("mcp.fs.tools.call.*", "mcp.fs.tools.call.a.b")
    assert subject_matches("_INBOX_ci.>", "_INBOX_ci.x.y") and not subject_matches("_INBOX_ci.>", "_INBOX_ci")
    assert not subject_matches("_INBOX_ci.>", "_INBOX_cia.x")


def test_an_identity_may_publish_only_its_allowed_tools() -> None:
    """ci (reader) may call fs read_* and list_* (prefixes expanded against the catalog), not write or delete;
    alice (writer) gets fs.* as a wildcard minus delete_file; neither may touch a service its roles do not name."""
    p = parse_policy(ISSUE_POLICY)
    ci = perm.identity(p, "ci", CATALOG, S)
    assert ci.may_publish("mcp.fs.tools.call.read_text_file") and ci.may_publish(
        "mcp.fs.tools.call.read_media_file"
    )
    assert (
        ci.may_publish("mcp.fs.tools.list")
        and ci.may_publish("mcp.fs.cancel")
        and ci.may_publish("mcp.memory.discover")
    )
    assert not ci.may_publish("mcp.fs.tools.call.write_file") and not ci.may_publish(
        "mcp.fs.tools.call.delete_file"
    )
    assert not ci.may_publish("mcp.memory.tools.call.create_entities") and not ci.may_publish(
        "mcp.demo.discover"
    )
    assert not ci.may_publish("mcp.audit.fs.read_text_file") and not ci.may_publish(
        "$JS.API.STREAM.DELETE.MCP_AUDIT"
    )
    assert ci.sub_allow[0] == "_INBOX_ci.>" and "_INBOX.>" not in ci.sub_allow
    alice = perm.identity(p, "alice", CATALOG, S)
    assert "mcp.fs.tools.call.*" in alice.pub_allow and alice.may_publish("mcp.fs.tools.call.some_new_tool")
    assert not alice.may_publish("mcp.fs.tools.call.delete_file")


def test_a_service_is_confined_to_its_own_subjects_and_cannot_touch_the_audit_stream() -> None:
    """fs subscribes only mcp.fs.> (and $SRV); publishes its events and audit records; never deletes the audit stream."""
    fs = perm.service("fs", S, "MCP_AUDIT")
    assert "mcp.fs.>" in fs.sub_allow and not any(
        subject_matches(p, "mcp.memory.tools.list") for p in fs.sub_allow
    )
    assert fs.may_publish("mcp.audit.fs.read_text_file") and not fs.may_publish("mcp.audit.memory.read_graph")
    assert not fs.may_publish("$JS.API.STREAM.DELETE.MCP_AUDIT") and not fs.may_publish(
        "$JS.API.STREAM.PURGE.MCP_AUDIT"
    )
    assert fs.may_publish("$JS.API.STREAM.INFO.MCP_EVENTS") and fs.responses > 1


def test_user_jwts_carry_the_permissions_and_creds_round_trip() -> None:
    """A minted user JWT holds the derived allow/deny lists and its name; a .creds file gives the JWT back."""
    account, user = jwt.Key.new("account"), jwt.Key.new("user")
    p = perm.identity(parse_policy(ISSUE_POLICY), "alice", CATALOG, S)
    token = jwt.user(account, user.public, "alice", p)
    claims = jwt.decode(token)
    assert claims["iss"] == account.public and claims["sub"] == user.public and claims["name"] == "alice"
    assert perm.Permissions.from_claims(claims) == perm.Permissions(
        pub_allow=p.pub_allow, sub_allow=p.sub_allow, pub_deny=p.pub_deny
    )
    assert "bearer_token" not in claims["nats"]
    assert jwt.creds_jwt(jwt.creds(token, user.seed)) == token
    assert user.public.startswith("U") and account.public.startswith("A")


def test_the_default_policys_jwt_does_not_grow_with_the_services_installed() -> None:
    """An identity allowed every tool of every service (the default policy) gets wildcard subjects, so its JWT,
    sent in the CONNECT line, is the same size with 3 or 40 services installed (and well under 4 KB)."""
    from schemas.policy import default_policy

    p = parse_policy(default_policy("me"))
    small = perm.identity(p, "me", CATALOG, S)
    big = perm.identity(p, "me", {f"svc{i}": ["a", "b", "c"] for i in range(40)} | CATALOG, S)
    assert small == big
    assert small.may_publish("mcp.svc7.tools.call.b") and small.may_publish("mcp.fs.resources.read")
    assert small.may_publish("$SRV.INFO.mcp-fs") and not small.may_publish("mcp.audit.fs.x")
    token = jwt.user(jwt.Key.new("account"), jwt.Key.new("user").public, "me", small)
    assert len(token) < 4096


def test_extra_services_get_exports_and_their_like_kinds_tools_for_prefix_patterns() -> None:
    """`[services.fs-next] like = "fs"` expands `fs-next.read_*` over fs's tools; an extra service without
    `like` is exported too (only `x.*` and exact names reach it); a `like` naming no installed service is refused."""
    text = '[roles.r]\nallow = ["fs-next.read_*", "tool1.*"]\n[identities.t]\nroles = ["r"]\n[services.fs-next]\nlike = "fs"\n[services.tool1]\n'
    p = parse_policy(text)
    catalog = with_services(p, CATALOG)
    assert catalog["fs-next"] == CATALOG["fs"] and catalog["tool1"] == []
    check(p, catalog)
    t = perm.identity(p, "t", catalog, S)
    assert t.may_publish("mcp.fs-next.tools.call.read_text_file") and not t.may_publish(
        "mcp.fs-next.tools.call.write_file"
    )
    assert t.may_publish("mcp.tool1.tools.call.anything") and not t.may_publish(
        "mcp.fs.tools.call.read_text_file"
    )
    assert {"mcp.fs-next.>", "mcp.tool1.>"} <= {e.subject for e in perm.exports(catalog, S)}
    with pytest.raises(PolicyError, match="services.x.like"):
        with_services(parse_policy('[services.x]\nlike = "nope"\n'), CATALOG)
    with pytest.raises(PolicyError):
        parse_policy("[services.bad_name]\n")  # '_' separates service and tool
