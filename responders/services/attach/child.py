"""One stdio MCP server as a child process: its own process group, JSON-RPC over its stdin/stdout.

    async with Child(argv, name="everything-1", client=handler) as child:   # spawned and initialized
        result = await child.request("tools/call", {...}, call=call)      # a dict, or ChildError

Owns the process, its reader and stderr tasks. The child runs in a new session (its own process
group) and asks the kernel for SIGTERM when we die; leaving the context terminates the whole group
(SIGTERM, then SIGKILL after a grace period), so npm/uvx wrappers leave no grandchildren behind.
Every line the child writes on stderr goes to our log. A child that exits fails its in-flight
requests with ChildDied; a JSON-RPC error reply is a ChildError carrying the child's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import msgspec

from bus.embedded import die_with_parent

from .errors import ChildDied, ChildError

log = logging.getLogger(__name__)

PROTOCOL: Final = "2025-06-18"
"""The version we offer a child: the newest that the reference SDKs of 2025-2026 all speak."""
CLIENT_CAPABILITIES: Final = {
    "roots": {"listChanged": True},
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
}
LINE_LIMIT: Final = 64 * 1024 * 1024
_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()


class CallLink(Protocol):
    """The call a request belongs to: where the child's progress, logs and questions go."""

    async def progress(self, params: dict[str, Any]) -> None: ...
    async def log(self, params: dict[str, Any]) -> None: ...
    async def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]: ...


Notify = Callable[[str, dict[str, Any]], Awaitable[None]]


class _Pending:
    __slots__ = ("call", "future", "progress_token")

    def __init__(
        self, future: asyncio.Future[dict[str, Any]], call: CallLink | None, token: str | None
    ) -> None:
        self.future = future
        self.call = call
        self.progress_token = token


class Child:
    """A running, initialized stdio MCP server. See the module docstring."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        notify: Notify | None = None,
        init_timeout: float = 30.0,
        grace: float = 3.0,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self._env = env
        self._cwd = cwd
        self._notify = notify
        self._init_timeout = init_timeout
        self._grace = grace
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._tokens: dict[str, _Pending] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self.started = time.monotonic()
        self.last_used = self.started
        self.initialize_result: dict[str, Any] = {}
        self.exited = asyncio.Event()
        self.closing = False

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def capabilities(self) -> dict[str, Any]:
        caps = self.initialize_result.get("capabilities")
        return caps if isinstance(caps, dict) else {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Child]:
        """Spawn, initialize, yield; on exit kill the process group and wait for it. Raises ChildError
        or ChildDied when the child does not start or does not answer `initialize`."""
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,  # its own process group: killed whole, never by our terminal's ^C
            preexec_fn=die_with_parent,
            limit=LINE_LIMIT,
        )
        log.info("%s started (pid %d): %s", self.name, self._proc.pid, " ".join(self.argv))
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._read_stdout(), name=f"{self.name} stdout"),
                    tg.create_task(self._read_stderr(), name=f"{self.name} stderr"),
                    tg.create_task(self._reap_group(), name=f"{self.name} exit watch"),
                ]
                try:
                    async with asyncio.timeout(self._init_timeout):
                        self.initialize_result = await self.request(
                            "initialize",
                            {
                                "protocolVersion": PROTOCOL,
                                "capabilities": CLIENT_CAPABILITIES,
                                "clientInfo": {"name": "mcp-nats-attach", "version": "0.1.0"},
                            },
                        )
                    await self.notify("notifications/initialized", {})
                    yield self
                finally:
                    self.closing = True
                    await self._stop()
                    for t in tasks:
                        t.cancel()
        finally:
            self._fail_pending()

    async def _stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()  # the MCP stdio shutdown: close its input first
        for sig, wait in ((signal.SIGTERM, self._grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)  # the whole group: wrappers (npx, uvx, sh) and what they started
            try:
                async with asyncio.timeout(wait):
                    await proc.wait()
                break
            except TimeoutError:
                continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # a grandchild that ignored SIGTERM after the leader left
        log.info("%s stopped (pid %d, exit %s)", self.name, proc.pid, proc.returncode)

    def kill(self) -> None:
        """SIGKILL the whole group now (tests, and a child that stopped answering)."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def _fail_pending(self) -> None:
        code = self._proc.returncode if self._proc is not None else None
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(ChildDied(self.name, code))
        self._pending.clear()
        self._tokens.clear()

    # -- the wire ------------------------------------------------------------------------------

    async def _write(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None or self.exited.is_set():
            raise ChildDied(self.name, proc.returncode if proc is not None else None)
        try:
            proc.stdin.write(_encoder.encode(message) + b"\n")
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ChildDied(self.name, proc.returncode) from exc

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self._write({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(
        self, method: str, params: dict[str, Any], *, call: CallLink | None = None
    ) -> dict[str, Any]:
        """Send one request and wait for its reply. Cancelling this sends `notifications/cancelled`.
        `call` receives the progress (a token is added to `_meta` for it), logs and questions."""
        rid = next(self._ids)
        token: str | None = None
        if call is not None and method == "tools/call":
            token = f"{self.name}-{rid}"
            params = {**params, "_meta": {**(params.get("_meta") or {}), "progressToken": token}}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        pending = _Pending(future, call, token)
        self._pending[rid] = pending
        if token is not None:
            self._tokens[token] = pending
        self.last_used = time.monotonic()
        try:
            await self._write({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
            return await future
        except asyncio.CancelledError:
            if not self.exited.is_set():
                with contextlib.suppress(ChildDied):
                    await self.notify(
                        "notifications/cancelled", {"requestId": rid, "reason": "cancelled by the caller"}
                    )
            raise
        finally:
            self._pending.pop(rid, None)
            if token is not None:
                self._tokens.pop(token, None)
            self.last_used = time.monotonic()

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        async with (
            asyncio.TaskGroup() as tg
        ):  # server-to-client requests wait for the client: never block the reader
            while True:
                try:
                    line = await stdout.readline()
                except ValueError:  # a line beyond LINE_LIMIT
                    log.error("%s wrote a line longer than %d bytes; stopping it", self.name, LINE_LIMIT)
                    break
                if not line:
                    break
                try:
                    msg = _decoder.decode(line)
                except msgspec.DecodeError:
                    log.warning("%s wrote a line that is not JSON on stdout: %.200r", self.name, line)
                    continue
                if not isinstance(msg, dict):
                    continue
                if "method" in msg and "id" in msg:
                    tg.create_task(self._answer(msg), name=f"{self.name} answers {msg.get('method')}")
                elif "method" in msg:
                    await self._on_notification(str(msg["method"]), msg.get("params") or {})
                else:
                    self._on_reply(msg)
        rc = await self._proc.wait()
        self.exited.set()
        if not self.closing:
            log.warning("%s exited unexpectedly (pid %d, exit %s)", self.name, self._proc.pid, rc)
        self._fail_pending()

    def _on_reply(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        pending = self._pending.get(rid) if isinstance(rid, int) else None
        if pending is None or pending.future.done():
            return
        err = msg.get("error")
        if isinstance(err, dict):
            pending.future.set_exception(
                ChildError(int(err.get("code", -32603)), str(err.get("message", "")), err.get("data"))
            )
        else:
            result = msg.get("result")
            pending.future.set_result(result if isinstance(result, dict) else {})

    def _sole_call(self) -> CallLink | None:
        """The call a request-less message belongs to: stdio carries no request id on the child's own
        requests and logs, so only a child with one call in flight can be attributed."""
        calls = [p.call for p in self._pending.values() if p.call is not None]
        return calls[0] if len(calls) == 1 else None

    async def _on_notification(self, method: str, params: dict[str, Any]) -> None:
        if method == "notifications/progress":
            pending = self._tokens.get(str(params.get("progressToken")))
            if pending is not None and pending.call is not None:
                await pending.call.progress(params)
            return
        if method == "notifications/message":
            call = self._sole_call()
            if call is not None:
                await call.log(params)
            else:
                log.info("%s says (%s): %s", self.name, params.get("level"), params.get("data"))
            if self._notify is None:
                return
        if self._notify is not None:
            await self._notify(method, params)

    async def _answer(self, msg: dict[str, Any]) -> None:
        method = str(msg.get("method"))
        params = msg.get("params") or {}
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg.get("id")}
        try:
            if method == "ping":
                reply["result"] = {}
            else:
                call = self._sole_call()
                if call is None:
                    if method == "roots/list":
                        reply["result"] = {
                            "roots": []
                        }  # asked outside any call (at start-up): no client to ask
                    else:
                        raise ChildError(
                            -32603, f"{method} cannot be attributed to one call (none or several in flight)"
                        )
                else:
                    reply["result"] = await call.ask(method, params if isinstance(params, dict) else {})
        except ChildError as exc:
            reply["error"] = {"code": exc.code, "message": exc.message}
        except Exception:
            log.exception("%s: answering its %s failed", self.name, method)
            reply["error"] = {"code": -32603, "message": f"answering {method} failed"}
        except asyncio.CancelledError:
            reply["error"] = {"code": -32603, "message": "the call that asked was cancelled"}
            with contextlib.suppress(ChildDied):
                await self._write(reply)
            raise
        with contextlib.suppress(ChildDied):
            await self._write(reply)

    async def _reap_group(self) -> None:
        """When the leader exits, kill what it left in its group (a wrapper's server would otherwise keep
        our pipes open, and run on as an orphan)."""
        assert self._proc is not None
        await self._proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            try:
                line = await self._proc.stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            log.info("[%s] %s", self.name, line.decode(errors="replace").rstrip())
