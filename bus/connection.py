"""The connection: `connect(settings, ...)` opens it, `Bus` is what the rest of the code uses.

Owns the nats-py client, the inbox multiplexer and every endpoint started through it.
Explicit timeouts, reconnect for ever by default, an inbox prefix `_INBOX_<id>` so that
subject permissions can confine each process to its own replies, and drain on exit.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas.config import NatsSettings

from .errors import BusError, CredentialsError, DeadlineExceeded, NotConnected, PermissionDenied, translate
from .jwt import creds_jwt
from .jwt import decode as decode_jwt
from .mux import Call, Inbox
from .permissions import Permissions
from .serve import Endpoint, Handler, Request
from .subjects import Subjects, inbox_prefix
from .wire import Headers, Wire

log = logging.getLogger(__name__)

_DENIED_PUBLISH = re.compile(r'permissions violation for publish to "([^"]+)"')


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """The TLS context for `settings.tls_*` (None: plain TCP). Raises CredentialsError naming an unusable file."""
    if not (settings.tls_ca or settings.tls_cert):
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.tls_ca or None)
        if settings.tls_cert:
            ctx.load_cert_chain(settings.tls_cert, settings.tls_key or None)
    except (OSError, ssl.SSLError) as exc:
        bad = settings.tls_ca if getattr(exc, "filename", None) in (None, settings.tls_ca) else exc.filename
        raise CredentialsError(
            str(bad or settings.tls_cert), getattr(exc, "strerror", None) or str(exc)
        ) from None
    return ctx


def credentials_user(path: str) -> str:
    """The user name (JWT `name`) in a `.creds` file. Raises CredentialsError naming the file."""
    return _credentials(path)[0]


def _credentials(path: str) -> tuple[str, Permissions | None]:
    """The user name and permissions in a `.creds` file. Raises CredentialsError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialsError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(path, getattr(exc, "strerror", None) or str(exc)) from None
    try:
        claims = decode_jwt(creds_jwt(text))
    except ValueError as exc:
        raise CredentialsError(path, str(exc)) from None
    name = claims.get("name")
    return (name if isinstance(name, str) else ""), Permissions.from_claims(claims)


def certificate_user(path: str) -> str:
    """The common name of a PEM certificate ("" when it has none or cannot be read): the identity the auth
    callout admits a client certificate as, when the policy maps it by `CN=` (its inbox prefix must match)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        names = x509.load_pem_x509_certificate(Path(path).read_bytes()).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME
        )
    except (OSError, ValueError):
        return ""
    return str(names[0].value) if names else ""


class ServerInfo:
    """What the connected server announced: version, JetStream, max_payload."""

    __slots__ = ("jetstream", "max_payload", "name", "version")

    def __init__(self, info: dict[str, Any]) -> None:
        self.version: str = str(info.get("version", "0.0.0"))
        self.jetstream: bool = bool(info.get("jetstream", False))
        self.max_payload: int = int(info.get("max_payload", 1024 * 1024))
        self.name: str = str(info.get("server_name", ""))

    def at_least(self, major: int, minor: int) -> bool:
        try:
            parts = [int(p) for p in self.version.split("-")[0].split(".")[:2]]
        except ValueError:
            return False
        return (parts[0], parts[1]) >= (major, minor)


class Bus:
    """A connected bus: publish, call (multiplexed request-reply), serve (queue groups), scatter."""

    def __init__(
        self,
        nc: Client,
        settings: NatsSettings,
        ident: str,
        closed: asyncio.Event | None = None,
        user: str = "",
        permissions: Permissions | None = None,
    ) -> None:
        self.nc = nc
        self.closed = closed or asyncio.Event()
        """Set when nats-py has closed the connection for good (it does on most -ERR replies of the
        server, e.g. a limit of the account): the connection will not come back; make a new one."""
        self.settings = settings
        self.ident = ident
        self.subjects = Subjects(settings.root)
        self._urls = settings.url
        self.wire = Wire(nc, settings.url)
        self.user = user
        self.permissions = permissions
        """The publish/subscribe permissions in this user's JWT (None: no credentials, or no limits)."""
        """The user this process connected as (the JWT name in its credentials); "" without credentials."""
        info = getattr(nc, "_server_info", {}) or {}
        self.authenticated = bool(settings.credentials) and bool(info.get("auth_required"))
        """Connected with credentials to a server that requires them: ours in operator mode, where every
        caller of a service crosses an import and the server writes `Nats-Request-Info`."""
        self.inbox = Inbox(self.wire, inbox_prefix(ident, _token(user)))

    def may_publish(self, subject: str) -> bool:
        """Would the server let this connection publish to `subject`? (the bridge lists only what it may call)"""
        return self.permissions is None or self.permissions.may_publish(subject)

    @property
    def server(self) -> ServerInfo:
        return ServerInfo(getattr(self.nc, "_server_info", {}) or {})

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    def close_reason(self) -> str:
        err = self.nc.last_error
        return str(err) if err else "closed"

    async def publish(self, subject: str, data: bytes, headers: Headers = None, reply: str = "") -> None:
        """Publish; `headers` may be a block pre-encoded with `encode_headers` (a hot path's constant headers)."""
        await self.wire.publish(subject, data, headers, reply)

    async def request(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None, *, timeout: float
    ) -> Msg:
        """One request, one final reply (interim frames are skipped). Uses the multiplexed inbox."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.inbox.open(subject) as call:
            await self.publish(subject, data, headers, reply=call.reply)
            while True:
                frame = await call.next(timeout, deadline)
                if frame.is_final:
                    return _as_msg(subject, frame.data, frame.headers)

    def open_call(self, subject: str) -> Call:
        return self.inbox.open(subject)

    async def scatter(
        self, subject: str, data: bytes = b"{}", *, idle: float = 0.05, limit: float = 0.5
    ) -> list[Msg]:
        """Publish once and collect every reply until `idle` passes without one, or `limit` in total."""
        loop = asyncio.get_running_loop()
        end = loop.time() + limit
        replies: list[Msg] = []
        with self.inbox.open(subject) as call:
            await self.publish(subject, data, reply=call.reply)
            while True:
                try:
                    frame = await call.next(idle, end)
                except (DeadlineExceeded, BusError):
                    return replies
                replies.append(_as_msg(subject, frame.data, frame.headers))

    async def subscribe(self, subject: str, cb: Callable[[Msg], Awaitable[None]], queue: str = "") -> Any:
        try:
            return await self.nc.subscribe(subject, queue=queue, cb=cb)
        except Exception as exc:
            raise translate(exc, subject=subject) from exc

    def serve(
        self,
        subject: str,
        queue: str,
        handler: Handler,
        *,
        max_concurrency: int = 64,
        max_pending: int = 2048,
        drain_timeout: float = 30.0,
        on_refused: Callable[[Request], None] | None = None,
    ) -> Endpoint:
        """A queue-group endpoint; use with `async with` (drains on exit). `on_refused` sees each
        request refused as overloaded (after the refusal is on its way)."""
        return Endpoint(
            self.wire,
            subject,
            queue,
            handler,
            max_concurrency=max_concurrency,
            max_pending=max_pending,
            drain_timeout=drain_timeout,
            on_refused=on_refused,
        )

    async def flush(self, timeout: float = 5.0) -> None:
        """Return once the server has processed everything this connection sent (subscriptions too)."""
        await self.wire.flush(timeout)


def _token(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)


def _as_msg(subject: str, data: bytes, headers: dict[str, str]) -> Msg:
    return Msg(_client=None, subject=subject, data=data, headers=headers or None)  # type: ignore[arg-type]


def server_urls(url: str) -> list[str]:
    return [u.strip() for u in url.split(",") if u.strip()]


@asynccontextmanager
async def connect(
    settings: NatsSettings,
    *,
    name: str,
    ident: str,
    url: str | None = None,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Bus]:
    """Connect, start the inbox, yield the Bus; on exit drain (finish queued work) and close.

    `ident` names this process in the inbox prefix (`_INBOX_<ident>`) and in the server's
    connection list. Raises NotConnected when no server answers within connect_timeout.
    """
    urls = server_urls(url or settings.url)
    user, permissions = _credentials(settings.credentials) if settings.credentials else ("", None)
    if (
        not user and settings.tls_cert
    ):  # mTLS without credentials: the auth callout names us after the certificate
        user = certificate_user(settings.tls_cert)
    holder: list[Bus] = []

    early: list[str] = []  # what the server said before the connection was up (a refused login)

    async def error_cb(exc: Exception) -> None:
        if not holder:
            early.append(str(exc))
        if isinstance(exc, nats.errors.SlowConsumerError):
            log.warning("slow consumer on %s: a message was dropped", exc.subject)
            return
        m = _DENIED_PUBLISH.search(str(exc))
        if m is not None and holder:
            # nats-py reports a refused publish only here; fail the call waiting for it at once
            denied = m[1]
            who = user or "this connection"
            failed = holder[0].inbox.refused(
                denied,
                lambda subject: PermissionDenied(
                    f"{who} may not publish to {subject!r}", subject=subject, user=user
                ),
            )
            if failed:
                log.info("nats: publish to %s refused for %s (%d call(s) failed)", denied, who, failed)
                return
        log.warning("nats: %s", exc)

    async def disconnected_cb() -> None:
        if not (nc.is_closed or nc.is_draining):
            log.warning("disconnected from NATS; reconnecting")

    closed = asyncio.Event()

    async def closed_cb() -> None:
        closed.set()

    async def reconnected_cb() -> None:
        log.info("reconnected to NATS at %s", nc.connected_url.netloc if nc.connected_url else "?")
        if on_reconnect is not None:
            await on_reconnect()

    options: dict[str, Any] = {
        "servers": urls,
        "name": name,
        "connect_timeout": settings.connect_timeout,
        "reconnect_time_wait": settings.reconnect_wait,
        "max_reconnect_attempts": settings.max_reconnect_attempts,
        "allow_reconnect": True,
        "inbox_prefix": inbox_prefix(ident, _token(user)),
        "error_cb": error_cb,
        "disconnected_cb": disconnected_cb,
        "reconnected_cb": reconnected_cb,
        "closed_cb": closed_cb,
        "ping_interval": 20,
        "max_outstanding_pings": 3,
        "pending_size": 64 * 1024 * 1024,
    }
    if settings.credentials:
        options["user_credentials"] = settings.credentials
    tls = tls_context(settings)
    if tls is not None:
        options["tls"] = tls
    started = time.monotonic()
    try:
        # nats-py retries the initial connect only when this flag is set; bound it ourselves
        nc = await asyncio.wait_for(nats.connect(**options), timeout=settings.connect_timeout + 1)
    except Exception as exc:
        reason = (
            "no server answered"
            if isinstance(exc, TimeoutError | nats.errors.NoServersError)
            else str(exc) or type(exc).__name__
        )
        refused = [
            e for e in early if "authorization violation" in e.lower() or "authentication" in e.lower()
        ]
        if refused:
            who = (
                f"the credentials in {settings.credentials}"
                if settings.credentials
                else "a connection without credentials"
            )
            reason = f"the server refused {who} ({refused[-1].removeprefix('nats: ')})"
        raise NotConnected(",".join(urls), reason) from exc
    log.debug("connected to %s in %.1f ms", urls, (time.monotonic() - started) * 1000)
    bus = Bus(nc, settings, ident, closed, user, permissions)
    holder.append(bus)
    try:
        await bus.inbox.start()
        yield bus
    finally:
        await bus.inbox.stop()
        if not nc.is_closed:
            try:
                await nc.drain()
            except Exception:  # reconnecting, or the server is gone: close is all that is left
                log.debug("drain failed; closing", exc_info=True)
                try:
                    await nc.close()
                except Exception:  # the transport is already gone; nothing left to release
                    log.debug("close failed", exc_info=True)


async def probe(
    url: str, timeout: float = 1.0, credentials: str = "", tls: NatsSettings | None = None
) -> ServerInfo:
    """Connect once (no reconnect) and return what the server announced. Raises NotConnected.
    `tls`: settings whose tls_* files to use."""
    extra: dict[str, Any] = {"user_credentials": credentials} if credentials else {}
    if credentials:
        credentials_user(credentials)
    ctx = tls_context(tls) if tls is not None else None
    if ctx is not None:
        extra["tls"] = ctx
    try:
        nc = await asyncio.wait_for(
            nats.connect(
                servers=server_urls(url),
                connect_timeout=timeout,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                name="mcp-nats probe",
                error_cb=_quiet,
                **extra,
            ),
            timeout + 0.5,
        )
    except Exception as exc:
        raise NotConnected(url, str(exc) or type(exc).__name__) from exc
    try:
        return ServerInfo(getattr(nc, "_server_info", {}) or {})
    finally:
        await nc.close()


async def _quiet(exc: Exception) -> None:
    log.debug("probe: %s", exc)
