"""The auth directory (bus/authstore.py): file modes, stable keys, rotation and revocation on change."""

from __future__ import annotations

import stat
from pathlib import Path

from bus import jwt
from bus.authstore import AuthDir, Compiled
from bus.subjects import Subjects
from schemas.policy import parse_policy

from ..schemas.test_policy import ISSUE_POLICY
from .test_permissions import CATALOG


def _compile(adir: AuthDir, text: str, now: float = 1_000_000.0) -> Compiled:
    return adir.compile(parse_policy(text), text, CATALOG, Subjects("mcp"), "MCP_AUDIT", now=now)


def test_files_are_private_and_laid_out_as_the_issue_says(tmp_path: Path) -> None:
    """DIR is 0700; users/<identity>.creds, services/<svc>.creds, admin.creds and the keys are 0600."""
    adir = AuthDir(tmp_path / "auth")
    _compile(adir, ISSUE_POLICY)
    assert stat.S_IMODE(adir.path.stat().st_mode) == 0o700
    files = [
        adir.user_creds("ci"),
        adir.user_creds("alice"),
        adir.service_creds("fs"),
        adir.service_creds("memory"),
        adir.admin_creds,
        adir.path / "keys.json",
    ]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert "operator:" in adir.server_config() and "resolver: MEMORY" in adir.server_config()


def test_recompiling_keeps_unchanged_keys_and_rotates_changed_ones(tmp_path: Path) -> None:
    """An unchanged identity keeps its key; one whose roles changed gets a new key and the old one is revoked;
    a removed identity's key is revoked and its file deleted."""
    adir = AuthDir(tmp_path / "auth")
    _compile(adir, ISSUE_POLICY)

    def key_of(who: str) -> str:
        return str(jwt.decode(jwt.creds_jwt(adir.user_creds(who).read_text()))["sub"])

    ci, alice = key_of("ci"), key_of("alice")
    changed = ISSUE_POLICY.replace(
        '[identities.alice]\nroles = ["writer"]', '[identities.alice]\nroles = ["reader"]'
    )
    result = _compile(adir, changed, now=1_000_100.0)
    assert result.changed == ["alice"]
    assert key_of("ci") == ci and key_of("alice") != alice
    clients = [
        jwt.decode(t) for t in adir.resolver()["accounts"].values() if jwt.decode(t)["name"] == "CLIENTS"
    ][0]
    assert clients["nats"]["revocations"] == {alice: 1_000_100}
    without_ci = changed.replace('[identities.ci]\nroles = ["reader"]\nrate = "20/s"\n', "")
    result = _compile(adir, without_ci, now=1_000_200.0)
    assert result.removed == ["ci"] and not adir.user_creds("ci").exists()
    clients = [
        jwt.decode(t) for t in adir.resolver()["accounts"].values() if jwt.decode(t)["name"] == "CLIENTS"
    ][0]
    assert clients["nats"]["revocations"][ci] == 1_000_200


def test_a_canary_mapping_is_signed_into_the_clients_account_and_survives_a_new_policy(
    tmp_path: Path,
) -> None:
    """remap re-signs CLIENTS with the weighted mapping (the JWT form nats-server reads); compiling again keeps it;
    an empty mapping removes it."""
    from bus.accountmap import remap

    adir = AuthDir(tmp_path / "auth")
    _compile(adir, ISSUE_POLICY)
    table = {
        "mcp.fs.tools.call.*": [
            ("mcp.fs.tools.call.{{wildcard(1)}}", 90),
            ("mcp.fs-next.tools.call.{{wildcard(1)}}", 10),
        ]
    }
    public, token = remap(adir, table, "CLIENTS")
    want = {
        "mcp.fs.tools.call.*": [
            {"subject": "mcp.fs.tools.call.{{wildcard(1)}}", "weight": 90},
            {"subject": "mcp.fs-next.tools.call.{{wildcard(1)}}", "weight": 10},
        ]
    }
    assert jwt.decode(token)["nats"]["mappings"] == want and adir.resolver()["accounts"][public] == token
    assert jwt.decode(token)["nats"]["imports"]  # everything else kept
    _compile(adir, ISSUE_POLICY, now=1_000_100.0)
    assert jwt.decode(adir.resolver()["accounts"][public])["nats"]["mappings"] == want
    _, cleared = remap(adir, {}, "CLIENTS")
    assert "mappings" not in jwt.decode(cleared)["nats"]
