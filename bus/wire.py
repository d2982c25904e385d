"""The hot path on the wire: publishes encoded in one step, and our own subscriptions' messages
handed straight to a plain callback.

nats-py stays the connection: it connects, reconnects, pings, subscribes and resubscribes. Per
message, though, it validates and encodes headers key by key, builds a `Msg`, parses headers
line by line, queues the message on the subscription and wakes a task to run the callback:
about half of the bridge's and the responders' Python time per call (bench/profile.py).
`Wire` replaces those steps for the calls, replies and acks that carry MCP traffic:

- `publish` writes `HPUB`/`PUB` into nats-py's outgoing buffer and kicks its flusher, as
  nats-py's own publish does, with the headers encoded by one join (or pre-encoded once with
  `encode_headers`). Anything unusual (not connected, closed, draining, too large, a bad
  subject) takes nats-py's publish, which buffers or raises exactly as before.
- `subscribe` registers a synchronous `Deliver(subject, reply, data, headers)` for the
  subscription's sid; the parser's call to `Client._process_msg` comes here first and goes on
  to nats-py only for the other subscriptions.

It also closes three gaps of nats-py: headers count toward `max_payload` (over it the server
answers -ERR and nats-py closes the connection for good); `flush` writes the buffer before its
PING (nats-py pings ahead of a buffered SUB or UNSUB, so its PONG proves nothing about them);
and a draining `Endpoint` keeps its route until that flush (bus/serve.py).

Both hook private points of nats-py (pinned in pyproject.toml): `Client._process_msg`,
`_pending`, `_pending_data_size`, `_flush_queue` and `_flush_pending`. `Wire` checks they exist
when it is made; when one is missing (another nats-py), it leaves nats-py's path in place
(`fast` is False): slower, never broken. tests/bus/test_wire.py pins the behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from .errors import PayloadTooLarge, translate

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

Deliver = Callable[[str, str, bytes, "dict[str, str] | None"], None]
"""(subject, reply, data, headers) of one message; must not block, must not raise."""

Headers = Mapping[str, str] | bytes | None
"""Headers as a mapping, or a block pre-encoded by `encode_headers`, or none."""

_STATUS: Final = "Status"
_DESCRIPTION: Final = "Description"
_HDR_LINE: Final = b"NATS/1.0"
_HDR_START: Final = b"NATS/1.0\r\n"
_CRLF: Final = b"\r\n"
_KEY: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_SUBJECT: Final = re.compile(r"[\s]")
_VALUE_NEWLINES: Final = str.maketrans({"\r": " ", "\n": " "})
_HOOKS: Final = (
    "_process_msg",
    "_pending",
    "_pending_data_size",
    "_max_pending_size",
    "_flush_queue",
    "_flush_pending",
    "_flusher_task",
    "_max_payload",
    "_status",
)
_CONNECTED: Final = 1  # nats.aio.client.Client.CONNECTED

_good_keys: set[str] = set()


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """The NATS header block for `headers` (b"" for none), as nats-py would send it: keys must be
    RFC 7230 tokens (ValueError otherwise), values are stripped with CR and LF made spaces."""
    if not headers:
        return b""
    parts = []
    for k, v in headers.items():
        if k not in _good_keys:
            if not _KEY.fullmatch(k):
                raise ValueError(f"invalid NATS header name {k!r}")
            if len(_good_keys) < 4096:
                _good_keys.add(k)
        if "\r" in v or "\n" in v:
            v = v.translate(_VALUE_NEWLINES)
        parts.append(f"{k}: {v.strip()}\r\n")
    return _HDR_START + "".join(parts).encode() + _CRLF


def add_headers(block: bytes, more: Mapping[str, str]) -> bytes:
    """`block` (from `encode_headers`) with the headers of `more`; a key of `more` replaces the
    block's (a key is never sent twice: readers disagree on which one wins)."""
    extra = encode_headers(more)
    if not block or not extra:
        return block or extra
    if any(f"\r\n{k}:".encode() in block for k in more):
        return encode_headers({**parse_headers(block), **more})
    return block[:-2] + extra[len(_HDR_START) :]


def parse_headers(raw: bytes) -> dict[str, str]:
    """A received header block as a dict, with nats-py's conventions: an inline status
    (`NATS/1.0 503`) becomes `Status` (and `Description`); names that are not ASCII tokens are
    dropped; values are stripped and decoded as UTF-8 with replacement."""
    lines = raw.decode("utf-8", "replace").split(
        "\r\n"
    )  # one decode: CR and LF never end inside a UTF-8 sequence
    out: dict[str, str] = {}
    first = lines[0]
    if len(first) > len(_HDR_LINE):
        status = first[len(_HDR_LINE) + 1 : len(_HDR_LINE) + 4].strip()
        if status.isdigit() and status.isascii():
            out[_STATUS] = status
        desc = first[len(_HDR_LINE) + 5 :].strip()
        if desc:
            out[_DESCRIPTION] = desc
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key not in _good_keys:
            if not key or not key.isascii() or any(c.isspace() for c in key):
                continue
            if _KEY.fullmatch(key) and len(_good_keys) < 4096:
                _good_keys.add(key)
        out[key] = value.strip()
    return out


class Wire:
    """The fast publish and delivery paths of one nats-py client (see the module docstring)."""

    def __init__(self, nc: Client, url: str = "") -> None:
        self._nc = nc
        self._url = url
        self._routes: dict[int, Deliver] = {}
        self._kick: asyncio.Future[None] | None = None
        self.fast = all(hasattr(nc, a) for a in _HOOKS)
        if self.fast:
            self._slow = nc._process_msg
            nc._process_msg = self._process_msg  # type: ignore[method-assign,assignment]  # the parser calls this per message
        else:
            log.warning(
                "nats-py %s lacks the hooks the fast path needs; using its own (slower) path", _version()
            )

    # -- publish ------------------------------------------------------------------------------

    async def publish(self, subject: str, data: bytes, headers: Headers = None, reply: str = "") -> None:
        """Publish (headers as a mapping or a pre-encoded block). Raises BusError like Bus.publish."""
        nc = self._nc
        try:
            hdr = headers if isinstance(headers, bytes) else encode_headers(headers) if headers else b""
        except (
            ValueError,
            TypeError,
            AttributeError,
        ):  # a bad header: nats-py's publish raises its own error for it
            await self._publish_slow(subject, data, headers, reply)
            return
        limit = getattr(nc, "_max_payload", 0) or nc.max_payload
        if len(hdr) + len(data) > limit:
            # nats-py checks the body only; the server answers headers + body over the limit with
            # -ERR, after which nats-py closes the connection for good.
            raise PayloadTooLarge(len(hdr) + len(data), limit)
        if (
            not self.fast
            or nc._status != _CONNECTED
            or not subject
            or _BAD_SUBJECT.search(subject)
            or (reply and _BAD_SUBJECT.search(reply))
        ):
            await self._publish_slow(subject, data, headers, reply)
            return
        try:
            subj, rep = subject.encode(), reply.encode()
        except UnicodeEncodeError:  # a lone surrogate: nats-py refuses it in its own words
            await self._publish_slow(subject, data, headers, reply)
            return
        if hdr:
            n = len(hdr)
            cmd = b"".join((b"HPUB %b %b %d %d\r\n" % (subj, rep, n, n + len(data)), hdr, data, _CRLF))
        else:
            cmd = b"".join((b"PUB %b %b %d\r\n" % (subj, rep, len(data)), data, _CRLF))
        nc._pending.append(cmd)
        nc._pending_data_size += len(cmd)
        try:
            task = nc._flusher_task
            if nc._pending_data_size > nc._max_pending_size > 0:
                await nc._flush_pending(force_flush=True)
            elif task is None or task.done():
                await nc._flush_pending()  # no flusher (being replaced): nats-py writes inline
            elif nc._flush_queue is not None and nc._flush_queue.empty():
                # nats-py's flusher takes a future per kick and resolves it unless already done: a
                # done one, shared, wakes it for the cost of a put (nobody waits on an ordinary kick).
                kick = self._kick
                if kick is None or kick.get_loop() is not asyncio.get_running_loop():
                    kick = self._kick = asyncio.get_running_loop().create_future()
                    kick.set_result(None)
                nc._flush_queue.put_nowait(kick)
        except Exception as exc:
            raise translate(
                exc, subject=subject, url=self._url, size=len(data), limit=nc.max_payload
            ) from exc

    async def _publish_slow(self, subject: str, data: bytes, headers: Headers, reply: str) -> None:
        hdrs = parse_headers(headers) if isinstance(headers, bytes) and headers else headers or None
        try:
            await self._nc.publish(subject, data, reply=reply, headers=hdrs)  # type: ignore[arg-type]
        except Exception as exc:
            raise translate(
                exc, subject=subject, url=self._url, size=len(data), limit=self._nc.max_payload
            ) from exc

    async def flush(self, timeout: float = 5.0) -> None:
        """Return once the server has processed everything sent so far, subscriptions included.

        nats-py's `flush()` writes its PING straight to the socket, ahead of commands still in its
        buffer (a SUB or UNSUB just made), so its PONG alone proves nothing about them: write
        the buffer first, then ping."""
        nc = self._nc
        try:
            if self.fast and nc._status == _CONNECTED and nc._pending_data_size:
                await nc._flush_pending(force_flush=True)
            await nc.flush(timeout=timeout)  # type: ignore[arg-type]
        except Exception as exc:
            raise translate(exc, url=self._url) from exc

    # -- delivery -----------------------------------------------------------------------------

    async def subscribe(self, subject: str, deliver: Deliver, queue: str = "") -> Subscription:
        """Subscribe with `deliver` called synchronously for each message (on nats-py's read loop)."""
        nc = self._nc
        try:
            if not self.fast:
                return await nc.subscribe(
                    subject,
                    queue=queue,
                    cb=_as_callback(deliver),
                    pending_msgs_limit=1_000_000,
                    pending_bytes_limit=1024**3,
                )
            sub = await nc.subscribe(
                subject, queue=queue
            )  # no callback: no task, nothing queued (routed here)
        except Exception as exc:
            raise translate(exc, subject=subject) from exc
        self._routes[sub._id] = deliver
        q = sub._pending_queue  # anything that arrived before the route existed
        while not q.empty():
            m = q.get_nowait()
            q.task_done()
            deliver(m.subject, m.reply, m.data, m.headers)
        return sub

    def forget(self, sub: Subscription) -> None:
        """Stop routing `sub`'s messages (after it is unsubscribed or drained)."""
        self._routes.pop(sub._id, None)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, hdr: bytes | None
    ) -> None:
        deliver = self._routes.get(sid)
        if deliver is None:
            await self._slow(sid, subject, reply, data, hdr)  # type: ignore[arg-type]  # nats-py passes None too
            return
        try:
            deliver(subject.decode(), reply.decode(), data, parse_headers(hdr) if hdr else None)
        except Exception:  # never into the parser: that would end the read loop
            log.exception("delivery on %s failed", subject[:200])


def _as_callback(deliver: Deliver) -> Callable[[Any], Any]:
    async def cb(msg: Any) -> None:
        deliver(msg.subject, msg.reply, msg.data, msg.headers)

    return cb


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nats-py")
    except Exception:  # metadata missing: the version only decorates a log line
        return "?"
