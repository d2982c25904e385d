"""The auth callout (issue #11): a client certificate as an identity, in operator mode.

nats-server maps certificates to users (`verify_and_map`) only for users in its config file, not in
operator mode, which the revocation push needs. So the certificate is mapped here instead: with
mTLS, the server treats a connection without credentials as the bearer "sentinel" user of the AUTH
account (`default_sentinel`), whose account hands every such connection to this callout
(`$SYS.REQ.USER.AUTH`). The request carries the client's certificate chain as the server verified
it (`verify: true`, the local CA). Its leaf's subject is matched against the `certificate` of each
identity in the policy (`callout.json`, written by `auth init`); exactly one must match. The answer
is a user JWT for the connection's own key, named after the identity, issued by the CLIENTS account,
with the permissions of that identity's `.creds` copied unchanged (so a certificate never gets more
than the credentials would), expiring after `lifetime` seconds. Anything else gets an error, which
the server logs; the client only sees 'Authorization Violation'.

Revocation: the user key of every answer is recorded in `callout-issued.json`; `auth init` revokes
the recorded keys of an identity that was removed or whose permissions or certificate changed, and
the callout refuses a removed identity from then on (it reads the auth directory on every request).

Owns nothing long-lived: `Authorizer.answer` is a pure function of the request and the auth
directory's files (plus the clock), so it is unit-testable without a server.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509

from schemas.policy import PolicyError, certificate_selector

from . import jwt
from .authstore import AUTH, CLIENTS, AuthDir, read_json, write_private

log = logging.getLogger(__name__)

SUBJECT: Final = "$SYS.REQ.USER.AUTH"
LIFETIME_S: Final = 86400
"""How long a user JWT the callout issues is valid; the client connects again (through the callout) after."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One answer: the signed response for the server, and who was admitted (or why not)."""

    response: str
    identity: str = ""
    error: str = ""


def subject_attributes(pem: str) -> set[tuple[str, str]]:
    """The (attribute, value) pairs of a PEM certificate's subject, e.g. {("CN", "alice"), ("O", "mcp-nats")}."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    return {(a.rfc4514_attribute_name, str(a.value)) for a in cert.subject}


def match(attributes: set[tuple[str, str]], certificates: dict[str, str]) -> list[str]:
    """The identities whose certificate selector the subject `attributes` all have."""
    found = []
    for identity, text in sorted(certificates.items()):
        try:
            selector = certificate_selector(text)
        except PolicyError:
            continue
        if set(selector) <= attributes:
            found.append(identity)
    return found


class Authorizer:
    """Answers authorization requests from the auth directory `adir` (see the module docstring)."""

    def __init__(
        self, adir: AuthDir, *, lifetime: int = LIFETIME_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.adir = adir
        self.lifetime = lifetime
        self.clock = clock

    def answer(self, request: str) -> Decision:
        """The response to one request (a JWT signed by the server). Raises ValueError when the request is
        not a well-formed, correctly signed authorization request (then there is nobody to answer)."""
        with (
            self.adir.callout_lock()
        ):  # `auth init` sees this key in callout-issued.json, or we see its new map
            return self._answer(request)

    def _answer(self, request: str) -> Decision:
        claims = jwt.verify(request, "N")
        nats: dict[str, Any] = claims.get("nats") or {}
        user_nkey, server = nats.get("user_nkey"), nats.get("server_id") or {}
        if (
            nats.get("type") != "authorization_request"
            or not isinstance(user_nkey, str)
            or not server.get("id")
        ):
            raise ValueError("not an authorization request")
        auth = self.adir.key(f"account:{AUTH}")

        def refuse(why: str) -> Decision:
            return Decision(jwt.authorization_response(auth, user_nkey, server["id"], error=why), error=why)

        chains = (nats.get("client_tls") or {}).get("verified_chains") or []
        if not chains or not chains[0]:
            return refuse("no verified client certificate (mTLS) and no credentials")
        try:
            attributes = subject_attributes(chains[0][0])
        except ValueError:
            return refuse("the client certificate cannot be read")
        shown = ",".join(f"{k}={v}" for k, v in sorted(attributes))
        certificates = read_json(self.adir.callout_map_file)
        found = match(attributes, {k: v for k, v in certificates.items() if isinstance(v, str)})
        if len(found) != 1:
            why = "no identity" if not found else f"more than one identity ({', '.join(found)})"
            return refuse(f"{why} has the certificate subject {shown}")
        identity = found[0]
        try:
            creds = jwt.decode(jwt.creds_jwt(self.adir.user_creds(identity).read_text()))
        except (OSError, ValueError):
            return refuse(f"the identity {identity} has no credentials (removed?)")
        expires = int(self.clock()) + self.lifetime
        user = jwt.encode(
            {"sub": user_nkey, "name": identity, "exp": expires, "nats": creds["nats"]},
            self.adir.key(f"account:{CLIENTS}"),
        )
        self._record(user_nkey, identity, expires)
        return Decision(
            jwt.authorization_response(auth, user_nkey, server["id"], user_jwt=user), identity=identity
        )

    def _record(self, user_nkey: str, identity: str, expires: int) -> None:
        """Add the issued key to callout-issued.json, dropping expired ones (under the callout lock)."""
        now = self.clock()
        issued = {
            k: v
            for k, v in read_json(self.adir.callout_issued_file).items()
            if isinstance(v, dict) and v.get("exp", 0) > now
        }
        issued[user_nkey] = {"identity": identity, "exp": expires}
        write_private(self.adir.callout_issued_file, json.dumps(issued, indent=1, sort_keys=True))
