"""TLS material for the embedded server and its clients (issue #11), made with `cryptography`.

    DIR/tls/ca.pem, ca.key                 the local CA (key 0600)
    DIR/tls/server.pem, server.key         the server: 127.0.0.1, ::1 and localhost
    DIR/tls/clients/<user>.pem, .key       one client certificate per user (CN = the user's JWT name)
    DIR/tls/routes/<node>.pem, .key        one per cluster node: server and client auth (a route connection
                                           is both), SANs = the node's name, loopback and its addresses
    DIR/tls/tls.json                       {"verify": true} when clients must present a certificate (mTLS)

Keys are ECDSA P-256; certificates are valid for `days` (default 825, the longest browsers accept).
Running `auth init --tls` again keeps the CA and re-issues what is missing (and a route certificate
whose addresses changed).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .authstore import write_private

DAYS: Final = 825
LOOPBACK: Final = ("localhost", "127.0.0.1", "::1")
DEFAULT_NODES: Final = ("n1", "n2", "n3")
"""The route certificates `auth init --tls` makes when no `--route` is given: infra/cluster-3-tls/."""


class TlsFiles:
    """Paths of the TLS material under one auth directory."""

    def __init__(self, auth_dir: Path) -> None:
        self.dir = Path(auth_dir) / "tls"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    def client(self, user: str) -> tuple[Path, Path]:
        return self.dir / "clients" / f"{user}.pem", self.dir / "clients" / f"{user}.key"

    def route(self, node: str) -> tuple[Path, Path]:
        return self.dir / "routes" / f"{node}.pem", self.dir / "routes" / f"{node}.key"

    def exists(self) -> bool:
        return self.ca.is_file() and self.server_cert.is_file()

    @property
    def verify(self) -> bool:
        try:
            return bool(json.loads((self.dir / "tls.json").read_text()).get("verify"))
        except (OSError, ValueError, AttributeError):
            return False

    def server_config(self) -> str:
        """The nats-server `tls {}` block (mTLS: `verify: true`)."""
        lines = [
            "tls {",
            f'  cert_file: "{self.server_cert}"',
            f'  key_file: "{self.server_key}"',
            f'  ca_file: "{self.ca}"',
            "  timeout: 5",
        ]
        if self.verify:
            lines.append("  verify: true")
        return "\n".join([*lines, "}"]) + "\n"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mcp-nats"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _alt(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """SANs for host names and addresses, each once, in order."""
    alt: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    return alt


def _names_of(alt: list[x509.GeneralName]) -> set[str]:
    return {str(n.value) for n in alt}


def _names(cert: Path) -> set[str]:
    """The SANs of an existing certificate (empty when there is none, or it cannot be read)."""
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
        ext = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return set()
    return _names_of(list(ext.value))


def ensure(
    files: TlsFiles,
    users: list[str],
    *,
    verify: bool,
    routes: Mapping[str, Sequence[str]] | None = None,
    days: int = DAYS,
) -> list[str]:
    """Create the CA, the server certificate, a client certificate per user and a route certificate per node
    in `routes` (node -> extra host names or addresses) where missing; returns what was made."""
    made: list[str] = []
    files.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if files.ca.is_file() and files.ca_key.is_file():
        ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
        loaded = serialization.load_pem_private_key(files.ca_key.read_bytes(), None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{files.ca_key} is not an EC private key")
        ca_key = loaded
    else:
        ca_key = _key()
        ca_cert = (
            _builder(_name("mcp-nats local CA"), _name("mcp-nats local CA"), ca_key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_private(files.ca_key, _pem_key(ca_key))
        write_private(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM).decode())
        made.append("CA")

    def issue(
        cert_path: Path,
        key_path: Path,
        cn: str,
        alt: list[x509.GeneralName],
        usages: list[x509.ObjectIdentifier],
    ) -> None:
        key = _key()
        cert = (
            _builder(_name(cn), ca_cert.subject, key.public_key(), days)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write_private(key_path, _pem_key(key))
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
        made.append(cn)

    if not files.server_cert.is_file() or not files.server_key.is_file():
        issue(
            files.server_cert,
            files.server_key,
            "mcp-nats server",
            _alt(LOOPBACK),
            [ExtendedKeyUsageOID.SERVER_AUTH],
        )
    for user in users:
        cert, key = files.client(user)
        if not cert.is_file() or not key.is_file():
            issue(cert, key, user, [x509.DNSName(user)], [ExtendedKeyUsageOID.CLIENT_AUTH])
    for node, hosts in (routes or {}).items():
        cert, key = files.route(node)
        alt = _alt([node, *LOOPBACK, *hosts])
        if not key.is_file() or _names(cert) != _names_of(alt):
            both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            issue(cert, key, f"mcp-nats route {node}", alt, both)
    write_private(files.dir / "tls.json", json.dumps({"verify": verify}))
    return made
