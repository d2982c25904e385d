"""NATS JWTs and nkeys, minted in Python (issue #11): operator, accounts, users, `.creds` files.

The claims follow nats-server's v2 JWT schema (github.com/nats-io/jwt/v2): a JWT is
`base64url(header).base64url(claims).base64url(ed25519 signature)` with the header
`{"typ":"JWT","alg":"ed25519-nkey"}`; `iss` is the signer's public nkey, `sub` the subject's.
Pure apart from randomness: no I/O and no nats client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .permissions import Export, Permissions

# nkeys (and PyNaCl under it) is imported where keys are made or used: reading a .creds file to connect
# needs neither, and they cost a bridge's cold start ~15 ms.
_HEADER: Final = {"typ": "JWT", "alg": "ed25519-nkey"}
_PREFIX: Final = {
    "operator": "PREFIX_BYTE_OPERATOR",
    "account": "PREFIX_BYTE_ACCOUNT",
    "user": "PREFIX_BYTE_USER",
}
_NS: Final = 1_000_000_000
_CREDS_JWT: Final = re.compile(r"-----BEGIN NATS USER JWT-----\s*(\S+)\s*------END NATS USER JWT------")


class Key:
    """One nkey pair: `seed` (secret, `S...`) and `public` (`O...`, `A...` or `U...`)."""

    __slots__ = ("_kp", "public", "seed")

    def __init__(self, seed: bytes) -> None:
        import nkeys

        self._kp = nkeys.from_seed(bytearray(seed))
        self.seed = bytes(seed)
        self.public: str = bytes(self._kp.public_key).decode()

    @classmethod
    def new(cls, kind: str) -> Key:
        import nkeys

        return cls(bytes(nkeys.encode_seed(os.urandom(32), getattr(nkeys, _PREFIX[kind]))))

    def sign(self, data: bytes) -> bytes:
        return bytes(self._kp.sign(data))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode(claims: dict[str, Any], signer: Key) -> str:
    """Sign `claims` (iss, iat and jti are filled in) as a JWT."""
    claims = {"iat": int(time.time()), **claims, "iss": signer.public}
    claims.pop("jti", None)
    body = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    claims["jti"] = base64.b32encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    head = _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = signer.sign(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{_b64(signature)}"


def decode(token: str) -> dict[str, Any]:
    """The claims of a JWT, not verified (for our own files: names, permissions, revocations)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise ValueError("not a JWT") from exc
    if not isinstance(claims, dict):
        raise ValueError("not a JWT")
    return claims


def operator(key: Key, name: str, system_account: str) -> str:
    return encode(
        {
            "sub": key.public,
            "name": name,
            "nats": {"type": "operator", "version": 2, "system_account": system_account},
        },
        key,
    )


def _limits(jetstream: bool) -> dict[str, Any]:
    unlimited = -1 if jetstream else 0
    return {
        "subs": -1,
        "data": -1,
        "payload": -1,
        "imports": -1,
        "exports": -1,
        "wildcards": True,
        "conn": -1,
        "leaf": -1,
        "mem_storage": unlimited,
        "disk_storage": unlimited,
        "streams": unlimited,
        "consumer": unlimited,
        "max_ack_pending": unlimited,
        "mem_max_stream_bytes": unlimited,
        "disk_max_stream_bytes": unlimited,
        "max_bytes_required": False,
    }


def account(
    signer: Key,
    key: Key,
    name: str,
    *,
    jetstream: bool = False,
    exports: Sequence[Export] = (),
    imports: Sequence[Export] = (),
    import_from: str = "",
    response_threshold: float = 600.0,
    revocations: Mapping[str, int] | None = None,
    callout_users: Sequence[str] = (),
    callout_accounts: Sequence[str] = (),
    mappings: Mapping[str, Sequence[tuple[str, int]]] | None = None,
) -> str:
    """An account JWT signed by the operator. Exports are `stream` services with a response
    threshold; imports (from `import_from`) carry `share: true`, so the caller's identity travels
    in `Nats-Request-Info`; `mappings` are weighted subject mappings applied to what the account's
    users publish (canaries)."""
    nats: dict[str, Any] = {
        "type": "account",
        "version": 2,
        "limits": _limits(jetstream),
        "default_permissions": {"pub": {}, "sub": {}},
    }
    if exports:
        nats["exports"] = [
            {"name": e.subject, "subject": e.subject, "type": e.kind}
            | (
                {"response_type": "Stream", "response_threshold": int(response_threshold * _NS)}
                if e.kind == "service"
                else {}
            )
            for e in exports
        ]
    if imports:
        nats["imports"] = [
            {"name": e.subject, "subject": e.subject, "account": import_from, "type": e.kind}
            | ({"share": True} if e.kind == "service" else {})
            for e in imports
        ]
    if revocations:
        nats["revocations"] = dict(revocations)
    if callout_users:  # auth callout: every other user of this account is decided by the callout service
        nats["authorization"] = {
            "auth_users": list(callout_users),
            "allowed_accounts": list(callout_accounts),
        }
    if mappings:
        nats["mappings"] = mappings_claim(mappings)
    return encode({"sub": key.public, "name": name, "nats": nats}, signer)


def mappings_claim(mappings: Mapping[str, Sequence[tuple[str, int]]]) -> dict[str, list[dict[str, Any]]]:
    """An account's weighted subject mappings (`source -> [(destination, percent)]`) as the JWT holds them."""
    return {
        src: [{"subject": dst, "weight": weight} for dst, weight in dests]
        for src, dests in sorted(mappings.items())
    }


def _list(key: str, subjects: Sequence[str]) -> dict[str, list[str]]:
    return {key: list(subjects)} if subjects else {}


def user(
    signer: Key, public: str, name: str, perms: Permissions, *, bearer: bool = False, expires: int = 0
) -> str:
    """A user JWT signed by its account's key. Never a bearer token (it is forwarded with `share: true`),
    except the sentinel of the callout account, which may do nothing at all."""
    nats: dict[str, Any] = {
        "type": "user",
        "version": 2,
        "subs": -1,
        "data": -1,
        "payload": -1,
        "pub": _list("allow", perms.pub_allow) | _list("deny", perms.pub_deny),
        "sub": _list("allow", perms.sub_allow) | _list("deny", perms.sub_deny),
    }
    if perms.responses:
        nats["resp"] = {"max": perms.responses, "ttl": int(perms.response_ttl * _NS)}
    if bearer:
        nats["bearer_token"] = True
    claims = (
        {"sub": public, "nats": nats}
        | ({"name": name} if name else {})
        | ({"exp": expires} if expires else {})
    )
    return encode(claims, signer)


def authorization_response(
    signer: Key, user_nkey: str, server_id: str, *, user_jwt: str = "", error: str = ""
) -> str:
    """The auth callout's answer to one authorization request: the user JWT for `user_nkey`, or an error
    (which nats-server logs; the client only sees 'Authorization Violation')."""
    nats: dict[str, Any] = {"type": "authorization_response", "version": 2}
    nats |= {"jwt": user_jwt} if user_jwt else {"error": error or "not authorized"}
    return encode({"sub": user_nkey, "aud": server_id, "nats": nats}, signer)


def verify(token: str, issuer_prefix: str = "") -> dict[str, Any]:
    """The claims of a JWT whose ed25519 signature is valid for its `iss` (a public nkey starting with
    `issuer_prefix`). Raises ValueError otherwise. nkeys 0.2.1 cannot load a public key, so the key is
    base32-decoded here (prefix byte, 32 key bytes, CRC16)."""
    import nacl.exceptions
    import nacl.signing

    claims = decode(token)
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss.startswith(issuer_prefix):
        raise ValueError("the JWT's issuer is not of the expected kind")
    try:
        raw = base64.b32decode(iss + "=" * (-len(iss) % 8))
        head, _, signature = token.rpartition(".")
        nacl.signing.VerifyKey(raw[1:33]).verify(
            head.encode(), base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        )
    except (ValueError, nacl.exceptions.BadSignatureError) as exc:
        raise ValueError("the JWT's signature does not verify") from exc
    return claims


def creds(jwt: str, seed: bytes) -> str:
    """The text of a `.creds` file (what nats-py's `user_credentials` and the nats CLI read)."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed.decode()}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


def creds_jwt(text: str) -> str:
    """The user JWT inside a `.creds` file's text. Raises ValueError when there is none."""
    m = _CREDS_JWT.search(text)
    if m is None:
        raise ValueError("no NATS user JWT in it")
    return m[1]
