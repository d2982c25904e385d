"""TLS between clustered servers (issue #11): `mcp-nats auth init --tls` makes route certificates, the
infra/cluster-3-tls/ configs use them, the routes of a real three-node cluster form over TLS, a message
crosses them, and a node whose route certificate comes from another CA is refused (`nats-server -t` on
these configs is in tests/test_infra.py, with the certificates made here by `auth_init_tls`).

The configs are the shipped files with only their ports (free ones here), the cluster name and a log
file changed; they are started from a directory holding `./auth` (made by the real CLI) and `./data`,
the way infra/README.md says to.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import nats
import pytest

from bus.certs import TlsFiles, ensure
from bus.embedded import find_binary

from .conftest import MCP_NATS, child_env
from .test_cluster import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

INFRA = Path(__file__).resolve().parent.parent / "infra" / "cluster-3-tls"
POLICY = '[roles.reader]\nallow = ["fs.read_*"]\n[identities.ci]\nroles = ["reader"]\n'


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    http_port: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def auth_init_tls(base: Path) -> TlsFiles:
    """Run the real `mcp-nats auth init --tls` into `base/auth` (no server recorded: nothing is pushed)."""
    (base / "policy.toml").write_text(POLICY)
    argv = [
        MCP_NATS,
        "auth",
        "init",
        "--policy",
        "policy.toml",
        "--dir",
        "auth",
        "--tls",
        "--state-dir",
        str(base / "state"),
    ]
    done = subprocess.run(argv, cwd=base, capture_output=True, timeout=120, check=False, env=child_env())
    assert done.returncode == 0, done.stderr.decode()
    return TlsFiles(base / "auth")


def node_config(text: str, ports: dict[int, int], cluster: str, log: Path) -> str:
    """A shipped config with its fixed ports mapped to free ones, its own cluster name and a log file."""
    text = re.sub(r"127\.0\.0\.1:(\d{4})\b", lambda m: f"127.0.0.1:{ports.get(int(m[1]), int(m[1]))}", text)
    text = text.replace("name: mcp\n", f"name: {cluster}\n")
    return text + f'log_file: "{log}"\n'


def start(base: Path, name: str, config: str) -> subprocess.Popen[bytes]:
    path = base / f"{name}.conf"
    path.write_text(config)
    return subprocess.Popen(
        [find_binary(), "-c", str(path)],
        cwd=base,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[tuple[list[Node], TlsFiles, dict[int, int], str]]:
    """The three shipped TLS nodes on free ports, started from `tmp_path`; all stopped after the test."""
    files = auth_init_tls(tmp_path)
    ports = {fixed: free_port() for fixed in (4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224)}
    cluster = "c" + uuid.uuid4().hex[:10]
    nodes: list[Node] = []
    try:
        for i in (1, 2, 3):
            log = tmp_path / f"n{i}.log"
            text = node_config((INFRA / f"n{i}.conf").read_text(), ports, cluster, log)
            nodes.append(Node(f"n{i}", start(tmp_path, f"n{i}", text), ports[4221 + i], ports[8221 + i], log))
        yield nodes, files, ports, cluster
    finally:
        stop([n.process for n in nodes])


def _get(port: int, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
        data: dict[str, object] = json.loads(r.read())
        return data


async def route_names(node: Node) -> set[str]:
    """The remote server names of a node's routes, from its /routez (empty while it is not up yet)."""
    try:
        routez = await anyio.to_thread.run_sync(_get, node.http_port, "/routez")
    except OSError:
        return set()
    return {str(r.get("remote_name", "")) for r in routez.get("routes") or []}  # type: ignore[attr-defined]


async def wait_for(what: str, check: object, timeout: float = 30.0) -> None:
    """Poll the async predicate `check` until it holds; fail after `timeout` s naming `what`."""
    assert callable(check)
    try:
        with anyio.fail_after(timeout):
            while True:
                if await check():
                    return
                await anyio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_routes_form_over_tls_and_carry_messages(
    tls_cluster: tuple[list[Node], TlsFiles, dict[int, int], str],
) -> None:
    """The three nodes route to each other over TLS and a message published on n1 reaches a subscriber on n3."""
    nodes, files, _, _ = tls_cluster

    async def all_routed() -> bool:
        return all([len(await route_names(n) - {""}) >= 2 for n in nodes])

    await wait_for("routes between all three nodes", all_routed)
    for n in nodes:
        assert await route_names(n) == {m.name for m in nodes} - {n.name}
    tls = ssl.create_default_context(cafile=str(files.ca))
    with anyio.fail_after(30):
        n1 = await nats.connect(f"tls://127.0.0.1:{nodes[0].port}", tls=tls, allow_reconnect=False)
        n3 = await nats.connect(f"tls://127.0.0.1:{nodes[2].port}", tls=tls, allow_reconnect=False)
        try:
            sub = await n3.subscribe("tls.route.check")
            await n3.flush()
            got = b""
            while not got:  # until n3's interest has crossed the route to n1 (bounded by fail_after)
                await n1.publish("tls.route.check", b"across")
                await n1.flush()
                try:
                    got = (await sub.next_msg(timeout=0.5)).data
                except nats.errors.TimeoutError:
                    continue
            assert got == b"across"
        finally:
            await n1.close()
            await n3.close()


async def test_a_route_with_a_certificate_from_another_ca_is_refused(
    tmp_path: Path, tls_cluster: tuple[list[Node], TlsFiles, dict[int, int], str]
) -> None:
    """A fourth node that trusts the cluster's CA but presents a route certificate from another CA never joins: n1 refuses its TLS handshake."""
    nodes, files, ports, cluster = tls_cluster

    async def all_routed() -> bool:
        return all([len(await route_names(n) - {""}) >= 2 for n in nodes])

    await wait_for("routes between all three nodes", all_routed)
    other = TlsFiles(tmp_path / "other")
    ensure(other, [], verify=True, routes={"rogue": []})
    cert, key = other.route("rogue")
    log = tmp_path / "rogue.log"
    rogue_conf = f"""server_name: rogue
listen: 127.0.0.1:{free_port()}
http: 127.0.0.1:{free_port()}
log_file: "{log}"
cluster {{
  name: {cluster}
  listen: 127.0.0.1:{free_port()}
  tls {{ cert_file: "{cert}", key_file: "{key}", ca_file: "{files.ca}", timeout: 5, verify: true }}
  routes: [ nats-route://127.0.0.1:{ports[6222]} ]
}}
"""
    before = nodes[0].log_text().count("TLS route handshake error")
    rogue = start(tmp_path, "rogue", rogue_conf)
    try:

        async def refused() -> bool:
            return nodes[0].log_text().count("TLS route handshake error") > before

        await wait_for("n1 to refuse the rogue route's handshake", refused)
        assert "rogue" not in await route_names(nodes[0])
        assert rogue.poll() is None  # refused, not crashed: the rogue is running and keeps failing to join
    finally:
        stop([rogue])


def test_route_certificates_serve_both_ends_and_follow_their_addresses(tmp_path: Path) -> None:
    """A route certificate has server and client auth and SANs for its node, loopback and its --route hosts; new hosts re-issue it."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from cli.auth import parse_routes
    from schemas.policy import PolicyError

    files = TlsFiles(tmp_path)
    routes = parse_routes(["n1=10.0.0.1,db1.example", "n2"])
    assert routes == {"n1": ["10.0.0.1", "db1.example"], "n2": []}
    with pytest.raises(PolicyError):
        parse_routes(["n1=10.0.0.1;rm"])
    ensure(files, [], verify=False, routes=routes)

    def names_and_usages(node: str) -> tuple[set[str], set[x509.ObjectIdentifier]]:
        cert = x509.load_pem_x509_certificate(files.route(node)[0].read_bytes())
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return {str(n.value) for n in alt}, set(eku)

    both = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert names_and_usages("n1") == (
        {"n1", "localhost", "127.0.0.1", "::1", "10.0.0.1", "db1.example"},
        both,
    )
    assert names_and_usages("n2") == ({"n2", "localhost", "127.0.0.1", "::1"}, both)
    assert ensure(files, [], verify=False, routes=routes) == []  # unchanged: nothing re-issued
    assert ensure(files, [], verify=False, routes={"n2": ["10.0.0.2"]}) == ["mcp-nats route n2"]
    assert "10.0.0.2" in names_and_usages("n2")[0]
