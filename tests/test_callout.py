"""A client certificate as an identity (issue #11): the auth callout (`bus/callout.py`, `mcp-nats auth
callout`) in operator mode with mTLS. Unit tests of the answer without a server, then the real thing:
nats-server 2.15.1 with `default_sentinel`, the callout and an fs responder started as users start them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
import nkeys
import pytest

from bus import (
    AuthDir,
    Authorizer,
    EmbeddedServer,
    JetStream,
    NotConnected,
    PermissionDenied,
    audit_stream,
    connect,
    jwt,
)
from bus.certs import TlsFiles, ensure
from cli.auth import compile_policy, push
from schemas import errors as codes
from schemas.audit import AuditRecord
from schemas.config import AuditSettings, NatsSettings

from .audit_helpers import read_records
from .conftest import MCP_NATS, child_env
from .security_helpers import POLICY, _settings

pytestmark = pytest.mark.anyio

CERT_POLICY = POLICY.replace(
    '[identities.alice]\nroles = ["writer"]',
    '[identities.alice]\nroles = ["writer"]\ncertificate = "CN=alice"',
)
assert CERT_POLICY != POLICY


def _call(tool: str, args: dict[str, object]) -> bytes:
    return msgspec.json.encode({"name": tool, "arguments": args})


def request(files: TlsFiles, who: str, server: jwt.Key, user: jwt.Key) -> str:
    """An authorization request as nats-server 2.15.1 sends it for a client presenting `who`'s certificate."""
    pem = files.client(who)[0].read_text()
    nats = {
        "type": "authorization_request", "version": 2, "user_nkey": user.public,
        "server_id": {"id": server.public, "name": "n1", "version": "2.15.1"},
        "client_tls": {"version": "1.3", "verified_chains": [[pem, files.ca.read_text()]]},
    }  # fmt: skip
    return jwt.encode({"sub": "AUTH", "aud": "nats-authorization-request", "nats": nats}, server)


def server_key() -> jwt.Key:
    return jwt.Key(bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER)))


def test_a_mapped_certificate_gets_exactly_its_identitys_permissions_and_others_are_refused(
    tmp_path: Path,
) -> None:
    """alice's certificate gets a CLIENTS-issued JWT for the connection's key, named alice, with the permissions of
    alice.creds; an unmapped certificate gets an error; after alice is removed she is refused and her key revoked."""
    root = "t" + uuid.uuid4().hex[:12]
    adir = AuthDir(tmp_path / "auth")
    compile_policy(_settings(root), adir, CERT_POLICY, "the test policy")
    files = TlsFiles(adir.path)
    ensure(files, [*adir.users(), "mallory"], verify=True)
    srv, user = server_key(), jwt.Key.new("user")
    decision = Authorizer(adir).answer(request(files, "alice", srv, user))
    assert decision.identity == "alice" and not decision.error
    response = jwt.verify(decision.response, "A")
    assert response["iss"] == adir.key("account:AUTH").public
    assert (response["sub"], response["aud"]) == (user.public, srv.public)
    issued = jwt.verify(response["nats"]["jwt"], "A")
    assert issued["iss"] == adir.key("account:CLIENTS").public
    assert (issued["sub"], issued["name"]) == (user.public, "alice") and issued["exp"] > time.time()
    assert issued["nats"] == jwt.decode(jwt.creds_jwt(adir.user_creds("alice").read_text()))["nats"]
    for who in ("mallory", "ci"):  # not in the policy; in it, but without a certificate
        refused = Authorizer(adir).answer(request(files, who, srv, jwt.Key.new("user")))
        assert refused.error and not refused.identity
        assert "jwt" not in jwt.verify(refused.response, "A")["nats"]
    with pytest.raises(ValueError):  # a request signed by someone else than its issuer
        Authorizer(adir).answer(request(files, "alice", srv, user)[:-4] + "AAAA")
    compiled = compile_policy(
        _settings(root), adir, CERT_POLICY.replace('certificate = "CN=alice"', ""), "the test policy"
    )
    clients = jwt.decode(compiled.accounts[adir.key("account:CLIENTS").public])
    assert user.public in clients["nats"]["revocations"]
    assert Authorizer(adir).answer(request(files, "alice", srv, jwt.Key.new("user"))).error


@dataclass
class Mtls:
    adir: AuthDir
    files: TlsFiles
    server: EmbeddedServer
    root: str
    base: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def settings(self, who: str, creds: str = "") -> NatsSettings:
        cert, key = self.files.client(who)
        return NatsSettings(
            url=self.server.url, root=self.root, credentials=creds, connect_timeout=3.0, max_reconnect_attempts=0,
            tls_ca=str(self.files.ca), tls_cert=str(cert), tls_key=str(key),
        )  # fmt: skip

    def spawn(self, *argv: str) -> None:
        self.procs.append(
            subprocess.Popen(
                [MCP_NATS, *argv],
                stdin=subprocess.DEVNULL,
                env=child_env(MCP_NATS_STATE_DIR=str(self.base / "state")),
            )
        )


@pytest.fixture
def mtls(tmp_path: Path) -> Iterator[Mtls]:
    """An mTLS operator-mode server from CERT_POLICY, the callout and an fs responder; all stopped after the test."""
    root = "t" + uuid.uuid4().hex[:12]
    adir = AuthDir(tmp_path / "auth")
    compile_policy(_settings(root), adir, CERT_POLICY, "the test policy")
    files = TlsFiles(adir.path)
    ensure(files, [*adir.users(), "mallory"], verify=True)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("a\n")
    server = EmbeddedServer(tmp_path / "server", extra_config=adir.server_config()).start()
    env = Mtls(adir, files, server, root, tmp_path)
    try:
        asyncio.run(_streams(env))
        env.spawn(
            "auth", "callout", "--dir", str(adir.path), "--nats-url", server.url, "--log-level", "warning"
        )
        cert, key = files.client("service-fs")
        conf = tmp_path / "fs.toml"
        conf.write_text(f'[nats]\ntls_ca = "{files.ca}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
        env.spawn(
            "serve", "fs", "--config", str(conf), "--nats-url", server.url, "--subject-root", root, "--log-level", "warning",
            "--credentials", str(adir.service_creds("fs")), "--root", str(tmp_path / "files"),
        )  # fmt: skip
        yield env
    finally:
        for p in env.procs:
            p.terminate()
        for p in env.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        server.stop()


async def _streams(env: Mtls) -> None:
    async with connect(env.settings("admin", str(env.adir.admin_creds)), name="test", ident="setup") as bus:
        await JetStream(bus).ensure_stream(audit_stream(env.root, AuditSettings()))


async def wait_read(env: Mtls, path: Path, timeout: float = 30.0) -> tuple[str, bytes]:
    """Connect with alice's certificate only and read `path` through fs, retrying until the callout and fs are up."""
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        call_id = uuid.uuid4().hex
        try:
            async with connect(env.settings("alice"), name="test", ident="a" + call_id[:6]) as bus:
                subject = bus.subjects.tool_call("fs", "read_text_file")
                reply = await bus.request(
                    subject,
                    _call("read_text_file", {"path": str(path)}),
                    {"Mcp-Call-Id": call_id},
                    timeout=3.0,
                )
                return call_id, reply.data
        except Exception as exc:  # noqa: BLE001 - not up yet: the callout (refused) or fs (no responders)
            last = exc
            await asyncio.sleep(0.2)
    raise AssertionError(f"alice's certificate was not admitted within {timeout} s: {last!r}")


async def test_alices_certificate_without_credentials_is_admitted_as_alice_with_alices_permissions(
    mtls: Mtls,
) -> None:
    """With alice's certificate and no credentials: the audit records identity alice (verified), her denied tool is
    refused by the server, and a certificate mapped to no identity cannot connect."""
    with anyio.fail_after(90):
        call_id, data = await wait_read(mtls, mtls.base / "files" / "a.txt")
        assert b"a\\n" in data
        async with connect(mtls.settings("alice"), name="test", ident="alice2") as bus:
            assert bus.user == "alice"
            with pytest.raises(PermissionDenied) as denied:
                await bus.request(
                    bus.subjects.tool_call("fs", "delete_file"),
                    _call("delete_file", {"path": "a.txt"}),
                    timeout=600.0,
                )
            assert denied.value.code == codes.PERMISSION
        for who in ("mallory", "ci"):
            with pytest.raises(NotConnected):
                async with connect(mtls.settings(who), name="test", ident=who):
                    pass
        async with connect(
            mtls.settings("admin", str(mtls.adir.admin_creds)), name="test", ident="adm"
        ) as admin:
            records: list[AuditRecord] = []
            while not records:
                records = [r for r in await read_records(admin, mtls.root) if r.callId == call_id]
                await asyncio.sleep(0.1)
        assert [(r.identity, r.verified) for r in records] == [("alice", True)]
    assert (mtls.base / "files" / "a.txt").exists()


async def test_removing_a_certificate_identity_cuts_its_connection_and_refuses_it_after(mtls: Mtls) -> None:
    """After alice is removed from the policy and the accounts are pushed, her certificate connection is closed within
    5 s and her certificate is refused from then on."""
    with anyio.fail_after(90):
        await wait_read(mtls, mtls.base / "files" / "a.txt")
        async with connect(mtls.settings("alice"), name="test", ident="held") as held:
            policy = CERT_POLICY.replace(
                '[identities.alice]\nroles = ["writer"]\ncertificate = "CN=alice"\n', ""
            )
            compiled = compile_policy(_settings(mtls.root), mtls.adir, policy, "the test policy")
            assert "alice" in compiled.removed
            await push(mtls.adir, compiled, mtls.server.url)
            with anyio.fail_after(5):
                await held.closed.wait()
        with pytest.raises(NotConnected):
            async with connect(mtls.settings("alice"), name="test", ident="again"):
                pass
