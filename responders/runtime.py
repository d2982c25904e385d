"""The serve loop: one service instance on the bus, until told to stop, then drain.

Owns the queue-group endpoint `<root>.<svc>.>`, the broadcast cancel subscription, the
ADR-32 $SRV endpoint and the per-tool counters. Each request runs in its own task under
the bus endpoint's concurrency bound; the `Mcp-Deadline` header bounds the work and
`<root>.<svc>.cancel` cancels one call by its call id. Every reply is one final message;
notification frames precede it only when the caller asked for progress.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import string
import sys
import time
from typing import Any, Final

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType, field

from bus import (
    CLAIM_CHECK,
    Bus,
    BusError,
    EndpointCounters,
    MicroEndpoint,
    MicroService,
    PayloadTooLarge,
    Request,
    encode_headers,
    put_result,
    tool_token,
)
from schemas import bus as h
from schemas.bus import Capabilities, ServiceDescription, cancel_decoder
from schemas.config import ResponderSettings
from schemas.errors import DEADLINE, INTERNAL_ERROR, INVALID_PARAMS, OVERLOADED, PAYLOAD_TOO_LARGE
from schemas.identity import caller
from schemas.jsonrpc import ErrorObject
from schemas.mcp import LATEST_MODERN, CallToolResult, InputRequiredResult, TextContent
from schemas.observe import CallObserver, Refusal, ToolCall

from . import ops
from .context import Context
from .errors import InvalidArguments, ProtocolError, ToolError, unknown_operation, unknown_tool
from .events import Events
from .mrtr import InputRequired, InvalidState, StateSigner, arguments_digest
from .seam import Seam
from .service import Service, ToolSpec, error_result, to_result

log = logging.getLogger(__name__)

_encoder: Final = msgspec.json.Encoder()
_ALPHABET: Final = string.ascii_letters + string.digits
_EMPTY_ARGS: Final = b"{}"
_HEADROOM: Final = 4096  # room for the headers of the reply


def new_instance_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(22))


class _Meta(Struct, kw_only=True):
    progressToken: int | str | UnsetType = UNSET


class _CallParams(Struct, kw_only=True):
    name: str
    arguments: Raw | UnsetType = UNSET
    meta: _Meta | UnsetType = field(default=UNSET, name="_meta")
    inputResponses: dict[str, Any] | UnsetType = UNSET
    requestState: str | UnsetType = UNSET


_call_decoder: Final = msgspec.json.Decoder(_CallParams)


class ServiceRunner:
    """Serves one `Service` on a connected bus; `await runner.run(stop)` returns after draining."""

    def __init__(
        self,
        service: Service,
        bus: Bus,
        settings: ResponderSettings,
        *,
        instance: str | None = None,
        observers: tuple[CallObserver, ...] = (),
    ) -> None:
        self.service = service
        self._seam = Seam(observers)
        self.bus = bus
        self.settings = settings
        self.instance = instance or new_instance_id()
        self.subjects = bus.subjects
        svc = service.name
        self._reply_headers = {h.INSTANCE: self.instance}
        self._reply_block = encode_headers(self._reply_headers)  # the same, encoded once for the hot path
        self._counters: dict[str, EndpointCounters] = {
            t.name: EndpointCounters(
                name=t.name,
                subject=self.subjects.tool_call(svc, t.name),
                queue_group=svc,
                metadata={h.META_TOOL: t.definition.decode()},
            )
            for t in service.tools.values()
        }
        self._list_counter = EndpointCounters(
            name="tools-list", subject=self.subjects.tools_list(svc), queue_group=svc
        )
        operations = []
        if service.has_resources:
            operations += ["resources.list", "resources.templates.list", "resources.read"]
        if service.prompts:
            operations += ["prompts.list", "prompts.get"]
        if service.prompts or service.completers:
            operations += ["completion.complete"]
        self._op_counters = {
            op: EndpointCounters(
                name=op.replace(".", "-"),
                subject=self.subjects.op(svc, op + (".*" if op == "prompts.get" else "")),
                queue_group=svc,
            )
            for op in operations
        }
        self._discover_counter = EndpointCounters(
            name="discover", subject=self.subjects.discover(svc), queue_group=svc
        )
        self._running: dict[str, asyncio.Task[Any]] = {}
        self.events = Events(bus, svc, self.instance)
        key = bytes.fromhex(settings.state_key) if settings.state_key else secrets.token_bytes(32)
        self._signer = StateSigner(key)
        self._cancelled: set[str] = set()
        self._tools_list = service.list_tools_result()
        self._description = _encoder.encode(
            ServiceDescription(
                name=svc,
                version=service.version,
                description=service.description,
                instance=self.instance,
                capabilities=Capabilities(
                    tools=bool(service.tools),
                    resources=service.has_resources,
                    prompts=bool(service.prompts),
                    subscribe=service.subscribable,
                    completions=bool(service.prompts or service.completers),
                ),
                title=service.title if service.title else UNSET,
                instructions=service.instructions if service.instructions else UNSET,
            )
        )

    # -- lifecycle --------------------------------------------------------------------------

    def micro(self) -> MicroService:
        return MicroService(
            name=self.subjects.micro_name(self.service.name),
            id=self.instance,
            version=self.service.version,
            description=self.service.description,
            metadata={
                h.META_ROOT: self.subjects.root,
                h.META_SERVICE: self.service.name,
                h.META_PROTOCOL: LATEST_MODERN,
                "pid": str(os.getpid()),
            },
            endpoints=lambda: [
                self._discover_counter,
                self._list_counter,
                *self._counters.values(),
                *self._op_counters.values(),
            ],
        )

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set, then drain: no new requests, in-flight calls finish, exit.

        The service's lifespan and the observers' resources (the audit log) are owned by the caller
        (responders/process.py): they are entered before this runs and left after it returns."""
        svc = self.service.name
        s = self.settings
        cancel_sub = await self.bus.subscribe(self.subjects.cancel(svc), self._on_cancel)
        try:
            async with MicroEndpoint(self.bus, self.micro()):
                async with self.bus.serve(
                    self.subjects.service_requests(svc),
                    svc,
                    self._handle,
                    max_concurrency=s.max_concurrency,
                    max_pending=s.max_pending,
                    drain_timeout=s.drain_timeout,
                    on_refused=self._overloaded,
                ):
                    await self.bus.flush()
                    await self._lifecycle("started")
                    log.info(
                        "service %s instance %s serving on %s",
                        svc,
                        self.instance,
                        self.subjects.service_requests(svc),
                    )
                    if ready is not None:
                        ready.set()
                    await stop.wait()
                    log.info("draining %s instance %s", svc, self.instance)
                    await self._lifecycle("stopping")
        finally:
            try:
                await cancel_sub.unsubscribe()
            except Exception:  # connection already gone
                log.debug("cancel unsubscribe failed", exc_info=True)
        log.info("service %s instance %s stopped", svc, self.instance)

    async def _lifecycle(self, event: str) -> None:
        try:
            await self.events.lifecycle(event)
        except BusError:
            log.debug("lifecycle event %s not published", event, exc_info=True)

    async def _on_cancel(self, msg: Any) -> None:
        try:
            call_id = cancel_decoder.decode(msg.data).callId
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        task = self._running.get(call_id)
        if task is not None and not task.done():
            self._cancelled.add(call_id)
            task.cancel()

    # -- dispatch ---------------------------------------------------------------------------

    async def _handle(self, req: Request) -> None:
        op = self.subjects.operation(req.subject, self.service.name)
        if op is not None and op.startswith("tools.call."):
            await self._call_tool(req, op[11:])
        elif op == "tools.list":
            await self._timed(self._list_counter, req, self._tools_list)
        elif op == "discover":
            await self._timed(self._discover_counter, req, self._description)
        elif op == "cancel":
            return  # the queue member of a broadcast cancel; _on_cancel handles it on every instance
        elif op is not None and (
            op in self._op_counters or (op.startswith("prompts.get.") and self.service.prompts)
        ):
            await self._operation(req, op)
        else:
            await self._reply_error(req, unknown_operation(op or req.subject))

    async def _timed(self, counter: EndpointCounters, req: Request, body: bytes) -> None:
        t0 = time.perf_counter_ns()
        await req.respond(body, self._reply_block)
        counter.record(time.perf_counter_ns() - t0)

    async def _reply_error(
        self, req: Request, err: ProtocolError | BusError, code: int | None = None
    ) -> None:
        c = code if code is not None else getattr(err, "code", INTERNAL_ERROR)
        message = err.message if isinstance(err, ProtocolError) else str(err)
        data = err.data if isinstance(err, ProtocolError) and err.data is not None else UNSET
        body = _encoder.encode(ErrorObject(code=c, message=message, data=data))
        try:
            await req.respond_error(c, message, body, self._reply_headers)
        except BusError:
            log.debug("error reply failed on %s", req.subject, exc_info=True)

    def _new_call(self, req: Request, tool: str, arguments: bytes | Raw | None, t0: int) -> ToolCall:
        headers = req.headers
        who = caller(headers, broker=self.bus.authenticated)  # issue #11: the server-set Nats-Request-Info
        return ToolCall(
            service=self.service.name,
            tool=tool,
            call_id=headers.get(h.CALL_ID) or new_instance_id(),
            instance=self.instance,
            identity=who.identity,
            verified=who.verified,
            headers=headers,
            arguments=arguments,
            started_ns=t0,
        )

    async def _call_tool(self, req: Request, token: str) -> None:
        t0 = time.perf_counter_ns()
        try:
            params = _call_decoder.decode(req.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            call = self._new_call(req, token, None, t0)
            await self._refuse(req, call, ProtocolError(INVALID_PARAMS, f"invalid tools/call params: {exc}"))
            return
        spec = self.service.tools.get(params.name)
        arguments: bytes | Raw = b"" if params.arguments is UNSET else params.arguments
        # The subject token and the body must agree, so subject permissions cannot be bypassed.
        if spec is None or tool_token(params.name) != token:
            call = self._new_call(req, token, arguments, t0)
            await self._refuse(
                req,
                call,
                unknown_tool(params.name if spec is None else f"{params.name} (subject says {token})"),
            )
            return
        call = self._new_call(req, spec.name, arguments, t0)
        refusal = self._seam.start(call)
        if refusal is not None:
            await self._refuse(req, call, _refusal_error(refusal), started=True)
            return
        counter = self._counters[spec.name]
        deadline = _deadline(req.headers.get(h.DEADLINE))
        call_id = call.call_id
        try:
            if deadline is not None and deadline <= time.time():
                raise TimeoutError
            result = await self._run_tool(req, spec, params, call_id, deadline)
            if isinstance(result, CallToolResult) and result.isError is True:
                call.error = _first_text(result)
                call.outcome = "tool_error"
            code = await self._send_result(req, result, spec, call_id)
            if code is not None:
                call.error, call.outcome, call.code = "result too large", "protocol_error", code
        except ProtocolError as exc:
            call.error, call.outcome, call.code = exc.message, "protocol_error", exc.code
            await self._reply_error(req, exc)
        except TimeoutError:
            call.error, call.outcome, call.code = "deadline exceeded", "deadline", DEADLINE
            await self._reply_error(
                req,
                ProtocolError(
                    DEADLINE, f"{self.service.name}.{spec.name} did not finish before the call's deadline"
                ),
                DEADLINE,
            )
        except asyncio.CancelledError:
            call.outcome, call.error = "cancelled", "cancelled"
            if call_id not in self._cancelled:
                raise  # shutdown, not a client cancel
            self._cancelled.discard(call_id)  # MCP: a cancelled request gets no response
        finally:
            call.duration_ns = time.perf_counter_ns() - t0
            counter.record(call.duration_ns, call.error)
            failure = sys.exc_info()[1]
            if failure is not None and call.outcome == "ok":  # the reply could not be sent
                call.outcome, call.code = "protocol_error", getattr(failure, "code", INTERNAL_ERROR)
            call.busy = bool(self._running)
            self._seam.end(call)  # exactly once per call, whatever happened

    def _overloaded(self, req: Request) -> None:
        """A tools/call refused as overloaded (-31007, bus/serve.py) got an answer: observers see it too."""
        op = self.subjects.operation(req.subject, self.service.name)
        if op is None or not op.startswith("tools.call."):
            return
        call = self._new_call(req, op[11:], None, time.perf_counter_ns())
        self._seam.start(call)
        call.outcome, call.code, call.error, call.busy = "protocol_error", OVERLOADED, "overloaded", True
        self._seam.end(call)

    async def _refuse(
        self, req: Request, call: ToolCall, err: ProtocolError, *, started: bool = False
    ) -> None:
        """Refuse a call before its handler runs; it still counts (as an error) on the endpoint its subject
        named, if that exists, and every observer sees it begin and end."""
        if not started:
            self._seam.start(call)  # a refusal of its own would not change the answer: this one stands
        await self._reply_error(req, err)
        call.duration_ns = time.perf_counter_ns() - call.started_ns
        counter = self._counters.get(call.tool)
        if counter is not None:
            counter.record(call.duration_ns, err.message)
        call.outcome, call.code, call.error = "protocol_error", err.code, err.message
        self._seam.end(call)

    async def _run_tool(
        self, req: Request, spec: ToolSpec, params: _CallParams, call_id: str, deadline: float | None
    ) -> CallToolResult | InputRequiredResult:
        args = params.arguments
        raw = _EMPTY_ARGS if args is UNSET or bytes(args) == b"null" else args
        try:
            kwargs = msgspec.structs.asdict(spec.signature.decoder.decode(raw))
        except msgspec.ValidationError as exc:
            return error_result(str(InvalidArguments(spec.name, str(exc))))
        except msgspec.DecodeError:
            return error_result(f"invalid arguments for {spec.name}: not a JSON object")
        digest = ""
        if spec.signature.context_param is not None:
            responses: dict[str, Any] = {}
            if params.requestState is not UNSET:
                digest = arguments_digest(bytes(raw))
                try:
                    responses = self._signer.verify(params.requestState, spec.name, digest)
                except InvalidState as exc:
                    raise ProtocolError(INVALID_PARAMS, str(exc)) from None
            if params.inputResponses is not UNSET:
                responses.update(params.inputResponses)
            token = params.meta.progressToken if params.meta is not UNSET else UNSET
            kwargs[spec.signature.context_param] = Context(
                call_id=call_id,
                service=self.service.name,
                tool=spec.name,
                client=req.headers.get(h.CLIENT, ""),
                protocol_version=req.headers.get(h.PROTOCOL_VERSION, LATEST_MODERN),
                deadline=deadline,
                progress_token=None if token is UNSET else token,
                send=req.frame,
                log_level=req.headers.get(h.LOG_LEVEL),
                client_capabilities=_capabilities(req.headers.get(h.CLIENT_CAPABILITIES)),
                responses=responses,
                events=self.events,
            )
        # A quick synchronous tool runs to its end without yielding: no cancel and no deadline timer
        # could interrupt it, so it gets neither a registration nor a timer (the deadline was checked).
        if not spec.inline:
            task = asyncio.current_task()
            assert task is not None
            self._running[call_id] = task
        try:
            if spec.inline:
                value = spec.fn(**kwargs)
            elif deadline is None:
                value = await spec.invoke(kwargs)
            else:
                async with asyncio.timeout(deadline - time.time()):
                    value = await spec.invoke(kwargs)
            return to_result(value, spec)
        except InputRequired as need:
            ctx = kwargs[spec.signature.context_param] if spec.signature.context_param else None
            answered = dict(ctx._responses) if isinstance(ctx, Context) else {}
            state = self._signer.sign(spec.name, digest or arguments_digest(bytes(raw)), answered)
            return InputRequiredResult(inputRequests=need.requests, requestState=state)
        except ToolError as exc:
            return error_result(str(exc))
        except (TimeoutError, asyncio.CancelledError, ProtocolError):
            raise
        except Exception:
            log.exception("tool %s.%s failed (call %s)", self.service.name, spec.name, call_id)
            return error_result(
                f"{self.service.name}.{spec.name} failed with an internal error (call id {call_id})"
            )
        finally:
            if not spec.inline:
                self._running.pop(call_id, None)

    async def _send_result(
        self, req: Request, result: CallToolResult | InputRequiredResult, spec: ToolSpec, call_id: str = ""
    ) -> int | None:
        """Reply with the result; returns the error code when an error went out instead (too large to deliver)."""
        body = _encoder.encode(result)
        if len(body) <= self.bus.max_payload - _HEADROOM:
            await req.respond(body, self._reply_block)
            return None
        # Too big for one message: claim check through the object store (never a silent truncation).
        try:
            claim = await put_result(self.bus, call_id or new_instance_id(), body)
        except BusError as exc:
            sentence = (
                f"the result of {self.service.name}.{spec.name} is {len(body)} bytes, more than one message allows "
                f"({self.bus.max_payload} bytes), and {exc}"
            )
            await self._reply_error(req, ProtocolError(PAYLOAD_TOO_LARGE, sentence), PAYLOAD_TOO_LARGE)
            return PAYLOAD_TOO_LARGE
        await req.respond(b"{}", {**self._reply_headers, CLAIM_CHECK: claim})
        return None

    async def _operation(self, req: Request, op: str) -> None:
        """Resources, prompts and completion: answered by responders/ops.py, counted per endpoint."""
        t0 = time.perf_counter_ns()
        error: str | None = None
        svc = self.service
        counter = self._op_counters["prompts.get" if op.startswith("prompts.get.") else op]
        try:
            if svc.upstream is not None:
                body = await svc.upstream.operation(op, req.data, req.headers)
            elif op == "resources.list":
                body = ops.resources_list(svc)
            elif op == "resources.templates.list":
                body = ops.templates_list(svc)
            elif op == "resources.read":
                body = await ops.resources_read(
                    svc, req.data, req.headers.get(h.PROTOCOL_VERSION, LATEST_MODERN) >= "2026"
                )
            elif op == "prompts.list":
                body = ops.prompts_list(svc)
            elif op == "completion.complete":
                body = ops.completion_complete(svc, req.data)
            else:
                body = ops.prompts_get(svc, op[len("prompts.get.") :], req.data)
            await req.respond(body, self._reply_block)
        except ProtocolError as exc:
            error = exc.message
            await self._reply_error(req, exc)
        except PayloadTooLarge as exc:
            error = "payload too large"
            req.replied = False
            await self._reply_error(
                req,
                ProtocolError(
                    PAYLOAD_TOO_LARGE,
                    f"the result is {exc.size} bytes, more than the bus allows ({exc.limit})",
                ),
            )
        finally:
            counter.record(time.perf_counter_ns() - t0, error)


def _refusal_error(refusal: Refusal) -> ProtocolError:
    data = {"retryAfterMs": int(refusal.retry_after * 1000)} if refusal.retry_after is not None else None
    return ProtocolError(refusal.code, refusal.message, data)


def _capabilities(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        caps = msgspec.json.decode(value)
    except msgspec.DecodeError:
        return {}
    return caps if isinstance(caps, dict) else {}


def _deadline(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return int(value) / 1000
    except ValueError:
        return None


def _first_text(result: CallToolResult) -> str:
    for c in result.content:
        if isinstance(c, TextContent) and c.text:
            return c.text[:200]
    return "tool error"
