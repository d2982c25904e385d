"""Weighted subject mappings in the clients account JWT (canaries with auth on, issue #14).

In operator mode a server-level `mappings` block applies to no account; a mapping belongs in the
account whose users publish. Bridges publish tool calls in CLIENTS, so a canary is a weighted
mapping there, from `<root>.<svc>.tools.call.*` to the stable and the candidate service, both
imported from SERVICES: the server checks the caller's publish permission on the subject it sent,
then maps it (measured: tests/cli/test_rollout_auth.py).

    DIR/mappings.json   0600   source -> [[destination, percent], ...]  (kept by `auth init` too)

`remap` re-signs the CLIENTS JWT the directory holds with the new mappings (everything else in it
unchanged) and records it in resolver.json; the caller pushes it through the system account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from . import jwt

if TYPE_CHECKING:
    from .authstore import AuthDir

MAPPINGS_FILE: Final = "mappings.json"

Mappings = Mapping[str, Sequence[tuple[str, int]]]


def read_mappings(path: Path) -> dict[str, list[tuple[str, int]]]:
    """The mappings recorded in the auth directory at `path` (none when there is no file). Raises AuthDirError."""
    try:
        data = json.loads((path / MAPPINGS_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        from .authstore import AuthDirError

        raise AuthDirError(f"cannot read {path / MAPPINGS_FILE}: {exc}") from None
    return {str(src): [(str(d), int(w)) for d, w in dests] for src, dests in dict(data).items()}


def remap(adir: AuthDir, mappings: Mappings, account_name: str) -> tuple[str, str]:
    """Record `mappings` and re-sign the account named `account_name` with them (the operator signs).
    Returns (account public key, its new JWT). Raises AuthDirError when the directory is incomplete."""
    from .authstore import AuthDirError, write_private

    resolver = adir.resolver()
    try:
        keys = json.loads((adir.path / "keys.json").read_text())
        operator = jwt.Key(str(keys["operator"]).encode())
    except (OSError, ValueError, KeyError) as exc:
        raise AuthDirError(f"cannot read the operator key in {adir.path / 'keys.json'}: {exc}") from None
    for public, token in resolver["accounts"].items():
        claims = jwt.decode(token)
        if claims.get("name") != account_name:
            continue
        nats = dict(claims["nats"])
        if mappings:
            nats["mappings"] = jwt.mappings_claim(mappings)
        else:
            nats.pop("mappings", None)
        fresh = jwt.encode({**claims, "nats": nats}, operator)
        write_private(
            adir.path / MAPPINGS_FILE,
            json.dumps({k: [list(d) for d in v] for k, v in mappings.items()}, indent=1),
        )
        resolver["accounts"][public] = fresh
        write_private(adir.resolver_file, json.dumps(resolver, indent=1, sort_keys=True))
        return public, fresh
    raise AuthDirError(f"{adir.resolver_file} holds no account named {account_name}")
