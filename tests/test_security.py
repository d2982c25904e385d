"""Security through the broker (issue #11), against a real nats-server in operator mode compiled from
the issue's policy: unauthenticated connections refused, per-tool publish permissions, inbox confinement,
the audit stream out of reach, broker-verified identity in audit records, and live revocation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

from bus import NotConnected, PermissionDenied, connect
from bus.authstore import AuthDir
from bus.errors import CredentialsError
from schemas import errors as codes
from schemas.config import NatsSettings
from schemas.identity import REQUEST_INFO

from .audit_helpers import read_records
from .e2e_helpers import bridge_client
from .security_helpers import POLICY, RawClient, Secured, audit_name, start_secured

pytestmark = pytest.mark.anyio


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    yield from start_secured(tmp_path)


WRITE_TOOLS = {"write_file", "edit_file", "create_directory", "move_file", "copy_file", "delete_file"}


def _call(tool: str, args: dict[str, object]) -> bytes:
    return msgspec.json.encode({"name": tool, "arguments": args})


async def test_a_connection_without_credentials_is_refused(secured: Secured) -> None:
    """The operator-mode server refuses a client that presents no credentials."""
    with pytest.raises(NotConnected):
        async with connect(secured.settings(), name="test", ident="anon"):
            pass


async def test_a_missing_credentials_file_is_a_sentence_naming_it(secured: Secured, tmp_path: Path) -> None:
    """A credentials path that does not exist fails before connecting, with an error naming the file."""
    missing = tmp_path / "nope.creds"
    with pytest.raises(CredentialsError) as info:
        async with connect(secured.settings(missing), name="test", ident="x"):
            pass
    assert str(missing) in str(info.value)


async def test_ci_sees_no_write_tool_and_the_server_refuses_its_write(
    secured: Secured, tmp_path: Path
) -> None:
    """ci's bridge lists no write tool; a raw request to fs write_file with ci's credentials is refused by the
    server at once (PermissionDenied, not a timeout) and the file does not appear; a read still works."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello\n")
    secured.serve("fs", "--root", str(files))
    await secured.wait_instances("fs")
    argv = [
        "bridge",
        "--url",
        secured.url,
        "--subject-root",
        secured.root,
        "--credentials",
        str(secured.adir.user_creds("ci")),
    ]
    with anyio.fail_after(60):
        async with bridge_client(argv, mode="legacy") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "fs_read_text_file" in names and "fs_list_directory" in names, names
            assert not {f"fs_{t}" for t in WRITE_TOOLS} & names, names
            assert not any(n.startswith("demo_") for n in names)
    async with connect(secured.settings(secured.adir.user_creds("ci")), name="test", ident="ci1") as bus:
        target = files / "pwned.txt"
        # the request's own deadline is 600 s: only the refusal itself can end it within the 30 s bound
        with anyio.fail_after(30), pytest.raises(PermissionDenied) as denied:
            await bus.request(
                bus.subjects.tool_call("fs", "write_file"),
                _call("write_file", {"path": str(target), "content": "x"}),
                timeout=600.0,
            )
        assert denied.value.code == codes.PERMISSION
        reply = await bus.request(
            bus.subjects.tool_call("fs", "read_text_file"),
            _call("read_text_file", {"path": str(files / "hello.txt")}),
            timeout=10.0,
        )
        assert b"hello" in reply.data
    assert not target.exists()


async def test_forged_identity_headers_leave_the_recorded_identity_ci(
    secured: Secured, tmp_path: Path
) -> None:
    """Mcp-Client, Nats-Request-Info and a look-alike key written by ci do not change the audit record's identity."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_text("a\n")
    secured.serve("fs", "--root", str(files))
    await secured.wait_instances("fs")
    forged = msgspec.json.encode({"acc": "SERVICES", "user": "root", "name_tag": "root"}).decode()
    call_id = uuid.uuid4().hex
    async with connect(secured.settings(secured.adir.user_creds("ci")), name="test", ident="ci2") as bus:
        headers = {
            "Mcp-Client": "root",
            REQUEST_INFO: forged,
            "nats-request-info": forged,
            "Mcp-Call-Id": call_id,
        }
        reply = await bus.request(
            bus.subjects.tool_call("fs", "read_text_file"),
            _call("read_text_file", {"path": str(files / "a.txt")}),
            headers,
            timeout=10.0,
        )
        assert b'"a\\n"' in reply.data or b"a\\n" in reply.data
    async with connect(secured.settings(secured.adir.admin_creds), name="test", ident="adm") as admin:
        end = time.monotonic() + 15
        records = []
        while time.monotonic() < end:
            records = [r for r in await read_records(admin, secured.root) if r.callId == call_id]
            if records:
                break
            await asyncio.sleep(0.1)
    assert [(r.identity, r.verified) for r in records] == [("ci", True)]


async def test_ci_cannot_subscribe_to_service_subjects_or_other_inboxes(secured: Secured) -> None:
    """Subscribing to <root>.fs.>, _INBOX.> or alice's inbox with ci's credentials is refused by the server."""
    for subject in (f"{secured.root}.fs.>", "_INBOX.>", "_INBOX_alice.>"):
        raw = RawClient()
        nc = await raw.connect(secured.url, secured.adir.user_creds("ci"), inbox="_INBOX_ci.test")
        try:
            await nc.subscribe(subject)
            await nc.flush(timeout=5)
            await raw.wait_error(f'permissions violation for subscription to "{subject.lower()}"')
        finally:
            await raw.close()


async def test_the_audit_stream_is_out_of_reach_of_identities_and_services(secured: Secured) -> None:
    """ci may not delete or purge the audit stream nor publish a record; a service may not delete or purge it either."""
    stream = audit_name(secured.root)
    record = msgspec.json.encode({"callId": "forged", "identity": "root"})
    attempts = {
        "ci": [
            (f"$JS.API.STREAM.DELETE.{stream}", b""),
            (f"$JS.API.STREAM.PURGE.{stream}", b""),
            (f"{secured.root}.audit.fs.write_file", record),
        ],
        "fs": [(f"$JS.API.STREAM.DELETE.{stream}", b""), (f"$JS.API.STREAM.PURGE.{stream}", b"")],
    }
    for who, tries in attempts.items():
        creds = secured.adir.user_creds(who) if who == "ci" else secured.adir.service_creds(who)
        raw = RawClient()
        inbox = "_INBOX_ci.t" if who == "ci" else "_INBOX_service-fs.t"
        nc = await raw.connect(secured.url, creds, inbox=inbox)
        try:
            for subject, body in tries:
                await nc.publish(subject, body, reply=f"{inbox}.r")
                await nc.flush(timeout=5)
                await raw.wait_error(f'permissions violation for publish to "{subject.lower()}"')
        finally:
            await raw.close()
    async with connect(secured.settings(secured.adir.admin_creds), name="test", ident="adm") as admin:
        info = await admin.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5.0)
        assert msgspec.json.decode(info.data).get("config", {}).get("name") == stream, (
            "the stream is still there"
        )


async def test_a_service_cannot_subscribe_to_another_services_subjects(secured: Secured) -> None:
    """fs's credentials may not subscribe to memory's subjects (nor publish a call to them)."""
    raw = RawClient()
    nc = await raw.connect(secured.url, secured.adir.service_creds("fs"), inbox="_INBOX_service-fs.t")
    try:
        await nc.subscribe(f"{secured.root}.memory.>", queue="memory")
        await nc.flush(timeout=5)
        await raw.wait_error(f'permissions violation for subscription to "{secured.root}.memory.>"')
    finally:
        await raw.close()


async def test_removing_an_identity_cuts_its_connections_within_5_s(secured: Secured, tmp_path: Path) -> None:
    """auth init without alice, pushed to the running server, closes alice's connection within 5 s; ci keeps
    calling the same running responder, and alice's old credentials no longer connect."""
    from cli.auth import push

    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_text("a\n")
    secured.serve("fs", "--root", str(files))
    await secured.wait_instances("fs")
    alice_creds = secured.adir.user_creds("alice").read_text()
    raw = RawClient()
    await raw.connect(secured.url, secured.adir.user_creds("alice"), inbox="_INBOX_alice.t")
    try:
        without_alice = POLICY.replace('[identities.alice]\nroles = ["writer"]\n', "")
        compiled = secured.compile(without_alice)
        assert compiled.removed == ["alice"]
        assert not secured.adir.user_creds("alice").exists()
        await push(secured.adir, compiled, secured.url)
        with anyio.fail_after(5):
            await raw.closed.wait()
        assert raw.nc is not None and "revoked" in str(raw.nc.last_error), (
            raw.nc and raw.nc.last_error,
            raw.errors,
        )
    finally:
        await raw.close()
    old = tmp_path / "old-alice.creds"
    old.write_text(alice_creds)
    with pytest.raises(NotConnected):
        async with connect(secured.settings(old), name="test", ident="alice-again"):
            pass
    async with connect(secured.settings(secured.adir.user_creds("ci")), name="test", ident="ci3") as bus:
        reply = await bus.request(
            bus.subjects.tool_call("fs", "read_text_file"),
            _call("read_text_file", {"path": str(files / "a.txt")}),
            timeout=10.0,
        )
        assert b"a\\n" in reply.data
    assert all(p.poll() is None for p in secured.procs), "the responder kept running"


async def test_a_burst_over_the_rate_limit_gets_a_retry_after_and_traffic_under_it_does_not(
    secured: Secured, tmp_path: Path
) -> None:
    """With ci limited to 3 calls a minute, three calls succeed and the fourth is refused at once with
    RATE_LIMITED and data.retryAfterMs; alice, without a rate, is never refused."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_text("a\n")
    secured.compile(POLICY.replace('rate = "20/s"', 'rate = "3/m"'))
    secured.serve("fs", "--root", str(files))
    await secured.wait_instances("fs")
    body = _call("read_text_file", {"path": str(files / "a.txt")})
    for who in ("alice", "ci"):
        async with connect(
            secured.settings(secured.adir.user_creds(who)), name="test", ident=f"{who}-rl"
        ) as bus:
            subject = bus.subjects.tool_call("fs", "read_text_file")
            for _ in range(3 if who == "ci" else 10):
                reply = await bus.request(subject, body, timeout=10.0)
                assert b"a\\n" in reply.data, reply.data
            if who == "ci":
                refused = await bus.request(subject, body, timeout=10.0)
                error = msgspec.json.decode(refused.data)
                assert error["code"] == codes.RATE_LIMITED, error
                assert error["data"]["retryAfterMs"] > 0


async def test_a_bridge_whose_permissions_change_reconnects_with_its_new_credentials(
    secured: Secured, tmp_path: Path
) -> None:
    """alice's bridge lists fs_write_file; after auth init makes her a reader (new key, old one revoked and pushed),
    the server cuts the bridge's connection, the bridge connects again with the new file and no longer lists it,
    while the fs responder keeps running."""
    from cli.auth import push

    files = tmp_path / "files"
    files.mkdir()
    secured.serve("fs", "--root", str(files))
    await secured.wait_instances("fs")
    argv = [
        "bridge",
        "--url",
        secured.url,
        "--subject-root",
        secured.root,
        "--credentials",
        str(secured.adir.user_creds("alice")),
    ]
    with anyio.fail_after(90):
        async with bridge_client(argv, mode="legacy") as client:
            assert "fs_write_file" in {t.name for t in (await client.list_tools()).tools}
            compiled = secured.compile(
                POLICY.replace(
                    '[identities.alice]\nroles = ["writer"]', '[identities.alice]\nroles = ["reader"]'
                )
            )
            assert compiled.changed == ["alice"]
            await push(secured.adir, compiled, secured.url)
            names: set[str] = set()
            for _ in range(300):  # bounded by fail_after; the bridge reconnects within its backoff
                names = {t.name for t in (await client.list_tools()).tools}
                if names and "fs_write_file" not in names:
                    break
                await anyio.sleep(0.1)
            assert "fs_read_text_file" in names and "fs_write_file" not in names, names
    assert all(p.poll() is None for p in secured.procs), "the responder kept running"


@pytest.mark.parametrize("mtls", [False, True])
async def test_tls_refuses_a_client_without_the_ca_and_mtls_one_without_a_certificate(
    tmp_path: Path, mtls: bool
) -> None:
    """With TLS a client that does not trust the local CA cannot connect (one that does can); with mTLS a
    client that trusts the CA but presents no certificate cannot connect either (one with its certificate can)."""
    from bus import EmbeddedServer
    from bus.certs import TlsFiles, ensure
    from cli.auth import compile_policy

    from .security_helpers import _settings

    root = "t" + uuid.uuid4().hex[:12]
    adir = AuthDir(tmp_path / "auth")
    compile_policy(_settings(root), adir, POLICY, "the test policy")
    files = TlsFiles(adir.path)
    ensure(files, adir.users(), verify=mtls)
    assert "verify: true" in adir.server_config() if mtls else "verify" not in adir.server_config()
    cert, key = files.client("ci")
    creds = str(adir.user_creds("ci"))

    def settings(tls_ca: str = "", tls_cert: str = "", tls_key: str = "") -> NatsSettings:
        return NatsSettings(
            url=server.url, root=root, credentials=creds, connect_timeout=2.0, max_reconnect_attempts=0,
            tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
        )  # fmt: skip

    with EmbeddedServer(tmp_path / "server", extra_config=adir.server_config()) as server:
        with pytest.raises(NotConnected):  # does not trust the local CA
            async with connect(settings(), name="test", ident="no-ca"):
                pass
        if mtls:
            with pytest.raises(NotConnected):  # trusts the CA but has no certificate
                async with connect(settings(tls_ca=str(files.ca)), name="test", ident="no-cert"):
                    pass
        full = settings(str(files.ca), str(cert), str(key)) if mtls else settings(str(files.ca))
        async with connect(full, name="test", ident="ok") as bus:
            assert bus.connected and bus.user == "ci"
            assert bus.nc.connected_url is not None
