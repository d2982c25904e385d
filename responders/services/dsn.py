"""Database URLs as they may be shown: the password (and any secret query parameter) replaced.

Every place a database service prints its URL (logs, errors, the service description) goes
through `redact`; `Secrets.scrub` removes the password from any other text (a driver's message)."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK: Final = "***"
_SECRET_PARAMS: Final = frozenset(
    {"password", "passwd", "pwd", "sslpassword", "token", "auth", "apikey", "api_key"}
)


def redact(url: str) -> str:
    """`url` with its password and secret query parameters masked; an unparsable URL becomes its scheme only."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, sep, _pw = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{hostport}" if sep else f"{user}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        scheme = url.partition("://")[0] if "://" in url else ""
        return f"{scheme}://{MASK}" if scheme else MASK


def secrets_of(url: str) -> list[str]:
    """The secret strings inside `url` (the password, raw and percent-decoded; secret query values)."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:
            raw = userinfo.partition(":")[2]
            found += [raw, unquote(raw), quote(unquote(raw), safe="")]
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k.lower() in _SECRET_PARAMS and v:
            found.append(v)
    return sorted({s for s in found if len(s) >= 1}, key=len, reverse=True)


class Secrets:
    """Removes a URL's secrets from any text before it is logged or sent."""

    __slots__ = ("_values",)

    def __init__(self, url: str) -> None:
        self._values = secrets_of(url)

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text
