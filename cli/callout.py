"""`mcp-nats auth callout`: the auth callout service (issue #11). Admits a client that presents a
certificate from the local CA and no credentials as the policy identity its certificate names
(`bus/callout.py`). `mcp-nats up` runs it under its supervisor when mTLS is on; it connects with
`DIR/callout.creds` and its own client certificate, and answers until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Protocol

from bus import AuthDir, AuthDirError, Authorizer, BusError, connect
from bus.callout import SUBJECT
from bus.certs import TlsFiles
from schemas.config import NatsSettings, Settings

from .config import auth_dir

log = logging.getLogger("mcp-nats")


class _Msg(Protocol):
    data: bytes
    reply: str


def callout_settings(settings: Settings, adir: AuthDir, url: str) -> NatsSettings:
    tls = TlsFiles(adir.path)
    cert, key = tls.client("callout")
    return NatsSettings(
        url=url, root=settings.nats.root, credentials=str(adir.callout_creds), connect_timeout=settings.nats.connect_timeout,
        tls_ca=str(tls.ca) if tls.exists() else "", tls_cert=str(cert) if cert.is_file() else "", tls_key=str(key) if key.is_file() else "",
    )  # fmt: skip


async def serve_callout(nats: NatsSettings, authorizer: Authorizer, stop: asyncio.Event) -> int:
    """Answer authorization requests until `stop` is set (0) or the connection closes for good (1)."""
    async with connect(nats, name="mcp-nats auth callout", ident="callout") as bus:

        async def handle(msg: _Msg) -> None:
            try:
                decision = authorizer.answer(msg.data.decode(errors="replace"))
            except ValueError as exc:  # not from a server: nobody to answer
                log.warning("ignored a message on %s: %s", SUBJECT, exc)
                return
            except AuthDirError as exc:  # no answer: the server refuses the client when its wait ends
                log.error("%s", exc)
                return
            if decision.identity:
                log.info("admitted a client certificate as %s", decision.identity)
            else:
                log.warning("refused a connection: %s", decision.error)
            if msg.reply:
                await bus.publish(msg.reply, decision.response.encode())

        await bus.subscribe(SUBJECT, handle)
        log.info("auth callout: answering %s", SUBJECT)
        closed = asyncio.ensure_future(bus.closed.wait())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            stopped.cancel()
        if bus.closed.is_set() and not stop.is_set():
            log.error("the callout's connection was closed: %s", bus.close_reason())
            return 1
    return 0


def callout_command(args: argparse.Namespace, settings: Settings) -> int:
    from .auth import recorded_url

    adir = AuthDir(Path(args.dir).expanduser() if args.dir else auth_dir(settings))
    if not adir.callout_creds.is_file():
        log.error("%s does not exist; run: mcp-nats auth init --policy FILE --mtls", adir.callout_creds)
        return 2
    url = settings.nats.url or recorded_url(settings)
    if not url:
        log.error("no server URL: give --url, or start the server with `mcp-nats up`")
        return 2

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await serve_callout(callout_settings(settings, adir, url), Authorizer(adir), stop)

    try:
        return asyncio.run(main())
    except BusError as exc:
        log.error("auth callout: %s", exc)
        return 1
