"""Pushing account JWTs to running servers through the system account (issue #11).

A server in operator mode with a memory resolver takes an updated account JWT on
`$SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE` from the system account's user: changed imports,
exports and revocations apply at once, without a restart; a revoked user's connections are
closed by the server ("authentication revoked").
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from schemas.config import NatsSettings

from .connection import connect
from .errors import BusError
from .subjects import claims_update


class ClaimsRefused(BusError):
    """Raised when a server refuses an account JWT; the message carries the server's reason."""

    def __init__(self, account: str, reason: str) -> None:
        super().__init__(f"the NATS server refused the account JWT of {account}: {reason}")


async def push_accounts(
    settings: NatsSettings, accounts: Mapping[str, str], *, timeout: float = 5.0
) -> list[str]:
    """Send each account JWT as the system account's user (`settings.credentials`); returns the server's
    message per account. Raises NotConnected, ClaimsRefused."""
    said: list[str] = []
    async with connect(settings, name="mcp-nats auth", ident=f"auth-{os.getpid()}") as bus:
        for account, token in accounts.items():
            reply = await bus.request(claims_update(account), token.encode(), timeout=timeout)
            try:
                body = msgspec.json.decode(reply.data)
            except msgspec.DecodeError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            error = body.get("error")
            if error:
                raise ClaimsRefused(
                    account, str(error.get("description", error) if isinstance(error, dict) else error)
                )
            data = body.get("data") or {}
            said.append(str(data.get("message", "updated")) if isinstance(data, dict) else "updated")
    return said
