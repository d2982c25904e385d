"""The auth directory (issue #11): keys, account JWTs and `.creds` files compiled from a policy.

    DIR/                    0700
      keys.json             0600  every nkey seed (operator, accounts, users)
      resolver.json         0600  operator JWT, system account, every account JWT (the server loads these)
      revocations.json      0600  user keys revoked so far (removed identities, rotated keys)
      policy.toml           0600  the policy compiled last (responders read it for rate limits)
      admin.creds           0600  admin: everything in the services account
      sys.creds             0600  the system account's user (pushes account JWTs to a running server)
      callout.creds         0600  the auth callout service (AUTH account; `mcp-nats auth callout`)
      callout.json          0600  identity -> certificate subject, of the identities that have one
      callout-issued.json   0600  user keys the callout issued (written by it; revoked with their identity)
      users/<identity>.creds      one per identity (clients account)
      services/<service>.creds    one per service (services account)

Accounts: SYS (the system account), SERVICES (responders, JetStream, admin; exports every
service's subjects as `stream` services and the events as a stream) and CLIENTS (identities;
imports all of it with `share: true`) and AUTH (the auth callout: a connection without credentials is
the bearer "sentinel" user of AUTH, which may do nothing, and nats-server asks the callout service
who it is; with mTLS it answers from the client's verified certificate, `bus/callout.py`). Compiling again keeps every key it can: an identity whose
permissions did not change keeps its credentials; one whose permissions changed gets a new key
and its old key is revoked (its connections are cut once the account JWT reaches the server, and
a bridge connects again with the new file); a removed identity's key is revoked.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from schemas.policy import Policy

from . import jwt
from . import permissions as perm
from .accountmap import read_mappings
from .subjects import Subjects

OPERATOR_NAME: Final = "mcp-nats"
SYS: Final = "SYS"
SERVICES: Final = "SERVICES"
CLIENTS: Final = "CLIENTS"
AUTH: Final = "AUTH"


class AuthDirError(Exception):
    """Raised when the auth directory cannot be read or written; the message names the file."""


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, atomically (a reader sees the old file or the new one)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file ({} when missing). Raises AuthDirError naming an unreadable one."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AuthDirError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise AuthDirError(f"{path} is not a JSON object")
    return data


@dataclass
class Compiled:
    """What one `compile` did: the account JWTs to push to a running server, and the changes."""

    accounts: dict[str, str]
    """account public key -> JWT (all of them; pushing an unchanged one is harmless)."""
    system_account: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class AuthDir:
    """One auth directory; see the module docstring for its layout."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()

    # -- paths ----------------------------------------------------------------------------------

    def user_creds(self, identity: str) -> Path:
        return self.path / "users" / f"{identity}.creds"

    def service_creds(self, service: str) -> Path:
        return self.path / "services" / f"{service}.creds"

    @property
    def admin_creds(self) -> Path:
        return self.path / "admin.creds"

    @contextmanager
    def callout_lock(self) -> Iterator[None]:
        """Held by `compile` and by the callout while it admits someone: a key the callout issues is either in
        callout-issued.json before `compile` reads it, or issued against the certificate map `compile` wrote."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path / ".callout.lock", "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            yield

    def key(self, name: str) -> jwt.Key:
        """A key compiled here ("account:CLIENTS", "user:callout", ...). Raises AuthDirError when there is none."""
        seed = read_json(self.path / "keys.json").get(name)
        if not isinstance(seed, str):
            raise AuthDirError(
                f"{self.path / 'keys.json'} has no key {name!r}; run: mcp-nats auth init --policy FILE"
            )
        return jwt.Key(seed.encode())

    @property
    def callout_creds(self) -> Path:
        return self.path / "callout.creds"

    @property
    def callout_map_file(self) -> Path:
        return self.path / "callout.json"

    @property
    def callout_issued_file(self) -> Path:
        return self.path / "callout-issued.json"

    @property
    def sys_creds(self) -> Path:
        return self.path / "sys.creds"

    @property
    def policy_file(self) -> Path:
        return self.path / "policy.toml"

    @property
    def resolver_file(self) -> Path:
        return self.path / "resolver.json"

    def exists(self) -> bool:
        return self.resolver_file.is_file()

    def users(self) -> list[str]:
        """The JWT names of every user compiled here (identities, services, admin, sys)."""
        names = [p.stem for p in sorted((self.path / "users").glob("*.creds"))]
        names += [f"service-{p.stem}" for p in sorted((self.path / "services").glob("*.creds"))]
        return [*names, "admin", "sys", "callout"]

    # -- compile --------------------------------------------------------------------------------

    def compile(
        self,
        policy: Policy,
        policy_text: str,
        catalog: perm.Catalog,
        subjects: Subjects,
        audit_stream: str,
        *,
        now: float | None = None,
    ) -> Compiled:
        """Mint every key, JWT and `.creds` file for `policy`; write them (0600 in a 0700 directory)."""
        with self.callout_lock():
            return self._compile(policy, policy_text, catalog, subjects, audit_stream, now)

    def _compile(
        self,
        policy: Policy,
        policy_text: str,
        catalog: perm.Catalog,
        subjects: Subjects,
        audit_stream: str,
        now: float | None,
    ) -> Compiled:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        stamp = int(now if now is not None else time.time())
        keys = read_json(self.path / "keys.json")
        revoked: dict[str, int] = {k: int(v) for k, v in read_json(self.path / "revocations.json").items()}

        def key(name: str, kind: str) -> jwt.Key:
            seed = keys.get(name)
            if isinstance(seed, str):
                return jwt.Key(seed.encode())
            k = jwt.Key.new(kind)
            keys[name] = k.seed.decode()
            return k

        op = key("operator", "operator")
        accounts = {name: key(f"account:{name}", "account") for name in (SYS, SERVICES, CLIENTS, AUTH)}

        compiled = Compiled(accounts={}, system_account=accounts[SYS].public)
        creds: dict[Path, tuple[jwt.Key, str, str, perm.Permissions]] = {}
        # identities: keep the key while the permissions stay the same; else rotate and revoke
        previous = {n[len("user:identity:") :] for n in keys if n.startswith("user:identity:")}
        for name in policy.identities:
            p = perm.identity(policy, name, catalog, subjects)
            path = self.user_creds(name)
            old = _creds_permissions(path)
            kname = f"user:identity:{name}"
            if kname in keys and old is not None and old != _claims_permissions(p):
                revoked[jwt.Key(keys.pop(kname).encode()).public] = stamp
                compiled.changed.append(name)
            elif kname not in keys:
                compiled.added.append(name)
            creds[path] = (key(kname, "user"), CLIENTS, perm.user_name("identity", name), p)
        for name in sorted(previous - set(policy.identities)):
            revoked[jwt.Key(keys.pop(f"user:identity:{name}").encode()).public] = stamp
            self.user_creds(name).unlink(missing_ok=True)
            compiled.removed.append(name)
        # the callout's users of an identity that is gone, or whose permissions or certificate changed
        certificates = {n: i.certificate for n, i in policy.identities.items() if i.certificate}
        before = read_json(self.callout_map_file)
        for public, entry in read_json(self.callout_issued_file).items():
            who = entry.get("identity") if isinstance(entry, dict) else None
            if who not in certificates or who in compiled.changed or before.get(who) != certificates.get(who):
                revoked[public] = stamp
        audit_pattern = audit_stream
        for svc in sorted(catalog):
            creds[self.service_creds(svc)] = (
                key(f"user:service:{svc}", "user"),
                SERVICES,
                perm.user_name("service", svc),
                perm.service(svc, subjects, audit_pattern),
            )
        creds[self.admin_creds] = (
            key("user:admin", "user"),
            SERVICES,
            perm.user_name("admin", ""),
            perm.admin(),
        )
        creds[self.sys_creds] = (key("user:sys", "user"), SYS, "sys", perm.admin())
        callout = key("user:callout", "user")
        creds[self.callout_creds] = (callout, AUTH, perm.user_name("callout", ""), perm.callout())
        sentinel = key("user:sentinel", "user")

        exports = perm.exports(catalog, subjects)
        services_pub = accounts[SERVICES].public
        jwts = {
            SYS: jwt.account(op, accounts[SYS], SYS),
            SERVICES: jwt.account(
                op,
                accounts[SERVICES],
                SERVICES,
                jetstream=True,
                exports=exports,
                response_threshold=perm.RESPONSE_THRESHOLD_S,
                imports=perm.client_exports(subjects),
                import_from=accounts[CLIENTS].public,
            ),
            CLIENTS: jwt.account(
                op,
                accounts[CLIENTS],
                CLIENTS,
                imports=exports,
                import_from=services_pub,
                revocations=revoked,
                exports=perm.client_exports(subjects),
                mappings=read_mappings(self.path),  # canaries (bus/accountmap.py) survive a new policy
            ),
            AUTH: jwt.account(
                op,
                accounts[AUTH],
                AUTH,
                callout_users=[callout.public],
                callout_accounts=[accounts[CLIENTS].public],
            ),
        }
        compiled.accounts = {accounts[n].public: j for n, j in jwts.items()}

        write_private(self.path / "keys.json", json.dumps(keys, indent=1, sort_keys=True))
        write_private(self.path / "revocations.json", json.dumps(revoked, indent=1, sort_keys=True))
        for path, (ukey, acct, uname, p) in creds.items():
            write_private(path, jwt.creds(jwt.user(accounts[acct], ukey.public, uname, p), ukey.seed))
        resolver = {
            "operator": jwt.operator(op, OPERATOR_NAME, accounts[SYS].public),
            "system_account": accounts[SYS].public,
            "accounts": compiled.accounts,
            "root": subjects.root,
            # nameless: the server keeps the sentinel's name as `name_tag` in Nats-Request-Info, where it would
            # hide the identity the callout names (`user`)
            "sentinel": jwt.user(accounts[AUTH], sentinel.public, "", perm.nothing(), bearer=True),
        }
        write_private(self.resolver_file, json.dumps(resolver, indent=1, sort_keys=True))
        write_private(self.policy_file, policy_text)
        write_private(self.callout_map_file, json.dumps(certificates, indent=1, sort_keys=True))
        for sub in ("users", "services"):
            (self.path / sub).mkdir(mode=0o700, exist_ok=True)
            os.chmod(self.path / sub, 0o700)
        return compiled

    # -- reading ---------------------------------------------------------------------------------

    def resolver(self) -> dict[str, Any]:
        data = read_json(self.resolver_file)
        if not data:
            raise AuthDirError(f"{self.resolver_file} does not exist; run: mcp-nats auth init --policy FILE")
        return data

    def server_config(self) -> str:
        """The nats-server configuration lines for operator mode with a memory resolver."""
        from .certs import TlsFiles

        data = self.resolver()
        preload = "\n".join(f'  {pub}: "{token}"' for pub, token in data["accounts"].items())
        tls = TlsFiles(self.path)
        # mTLS: a connection without credentials is the callout account's sentinel, admitted by its certificate
        sentinel = (
            f'default_sentinel: "{data["sentinel"]}"\n'
            if tls.exists() and tls.verify and data.get("sentinel")
            else ""
        )
        return (
            sentinel
            + (
                f'operator: "{data["operator"]}"\n'
                f"system_account: {data['system_account']}\n"
                "resolver: MEMORY\n"
                f"resolver_preload: {{\n{preload}\n}}\n"
            )
            + (tls.server_config() if tls.exists() else "")
        )


def _claims_permissions(p: perm.Permissions) -> dict[str, Any]:
    return {
        "pub": sorted(p.pub_allow),
        "pub_deny": sorted(p.pub_deny),
        "sub": sorted(p.sub_allow),
        "sub_deny": sorted(p.sub_deny),
        "resp": p.responses,
    }


def _creds_permissions(path: Path) -> dict[str, Any] | None:
    """The permissions in an existing `.creds` file (None when there is none or it is unreadable)."""
    try:
        claims = jwt.decode(jwt.creds_jwt(path.read_text()))
    except (OSError, ValueError):
        return None
    nats: Mapping[str, Any] = claims.get("nats") or {}
    pub = nats.get("pub") or {}
    sub = nats.get("sub") or {}
    return {
        "pub": sorted(pub.get("allow") or []),
        "pub_deny": sorted(pub.get("deny") or []),
        "sub": sorted(sub.get("allow") or []),
        "sub_deny": sorted(sub.get("deny") or []),
        "resp": (nats.get("resp") or {}).get("max", 0),
    }
