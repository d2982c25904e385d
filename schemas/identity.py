"""Who called: the broker-verified identity from the server-set `Nats-Request-Info` header (issue #11).

When a request crosses a service import with `share: true`, nats-server removes any
`Nats-Request-Info` header the caller wrote (exact case only) and appends its own, naming the
caller's account (`acc`), user (`user`: the user's public key for JWT users) and, for JWT users,
the JWT's name (`name_tag`). Only that exact key is read here: look-alike keys (other case, a space
before the colon) and `Mcp-Client` never set the identity. Without the header (auth off, or a
caller inside the services account) or when this process does not connect with
credentials (the server is not ours to trust), the identity is the caller's own claim and is marked
unverified. Pure: no I/O.
"""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import Struct

from .bus import CLIENT

REQUEST_INFO: Final = "Nats-Request-Info"


class RequestInfo(Struct, kw_only=True, frozen=True):
    """The parts of the server's `Nats-Request-Info` we use (other fields are tolerated and ignored)."""

    acc: str = ""
    user: str = ""
    name_tag: str = ""


class Caller(Struct, kw_only=True, frozen=True):
    identity: str
    """The JWT name where there is one, else the user, else the account; unverified: the `Mcp-Client` claim."""
    verified: bool
    account: str = ""
    user: str = ""


_decoder: Final = msgspec.json.Decoder(RequestInfo)
UNVERIFIED_NONE: Final = ""


def caller(headers: dict[str, str] | None, *, broker: bool) -> Caller:
    """The caller of a request, from its headers as nats-py delivers them (the last line of a key wins,
    and the server's line comes last).

    `broker`: this responder is in the services account of an auth-enabled server, so every caller
    comes through a service import and the server wrote the header. Without auth nothing strips a
    forged header, so it is never trusted then."""
    if broker and headers:
        raw = headers.get(REQUEST_INFO)
        if raw:
            try:
                info = _decoder.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                info = None
            if info is not None and info.acc:
                name = info.name_tag or info.user or info.acc
                return Caller(identity=name, verified=True, account=info.acc, user=info.user)
    claimed = (headers or {}).get(CLIENT, UNVERIFIED_NONE)
    return Caller(identity=claimed, verified=False)
