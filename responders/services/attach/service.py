"""The attach service: an existing stdio MCP server's catalog, served from a pool of its children.

Tools are registered with the schemas the child declared (`Service.add_tool`); each call leases a
child and forwards `tools/call`. What the child does meanwhile is mapped onto our stateless wire:
progress to `ctx.report_progress`, log messages to `ctx.log`, and its own requests (sampling,
elicitation, roots) to our multi round-trip `ctx.ask`: without an answer yet, the child's call is
cancelled and the caller gets `input_required`; the re-issued call runs again from the top and
this time the child's k-th question gets the k-th answer (as a native handler would be rerun).
Resources, templates, prompts and completion are forwarded whole (`Upstream`), so the child's
own pagination, errors and contents reach the client unchanged.

A call whose child dies before it answers is retried once on another child when the tool is
read-only or idempotent; otherwise it fails with a tool error saying the child died.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from bus import tool_token
from schemas.errors import INTERNAL_ERROR, INVALID_PARAMS, RESPONDER_LOST
from schemas.mcp import CallToolResult, ToolAnnotations

from ...context import Context
from ...errors import ProtocolError, ToolError
from ...mrtr import InputRequired
from ...prompts import PromptSpec
from ...service import Service
from .child import CallLink, Child
from .errors import ChildDied, ChildError, PoolClosed
from .pool import ChildPool

log = logging.getLogger(__name__)

_result_decoder: Final = msgspec.json.Decoder(CallToolResult)
_annotations_decoder: Final = msgspec.json.Decoder(ToolAnnotations)
_encoder: Final = msgspec.json.Encoder()
_CAPABILITY: Final = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
_OPS: Final = {
    "resources.list": "resources/list",
    "resources.templates.list": "resources/templates/list",
    "resources.read": "resources/read",
    "prompts.list": "prompts/list",
    "completion.complete": "completion/complete",
}
MAX_PAGES: Final = 100


class Catalog(msgspec.Struct, kw_only=True):
    """What the child offers, read once at start (tools are fixed for the life of an instance)."""

    server: dict[str, Any]
    capabilities: dict[str, Any]
    instructions: str | None
    tools: list[dict[str, Any]]
    prompts: list[dict[str, Any]]


async def read_catalog(pool: ChildPool) -> Catalog:
    """Initialize result, every tool and every prompt of the child (all pages)."""
    async with pool.lease() as child:
        caps = child.capabilities
        tools = await _all_pages(child, "tools/list", "tools") if "tools" in caps else []
        prompts = await _all_pages(child, "prompts/list", "prompts") if "prompts" in caps else []
        info = child.initialize_result.get("serverInfo")
        instructions = child.initialize_result.get("instructions")
        return Catalog(
            server=info if isinstance(info, dict) else {},
            capabilities=caps,
            instructions=instructions if isinstance(instructions, str) else None,
            tools=tools,
            prompts=prompts,
        )


async def _all_pages(child: Child, method: str, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        result = await child.request(method, {"cursor": cursor} if cursor else {})
        items = result.get(key)
        out.extend(
            i for i in (items if isinstance(items, list) else []) if isinstance(i, dict) and "name" in i
        )
        nxt = result.get("nextCursor")
        if not isinstance(nxt, str) or not nxt:
            break
        cursor = nxt
    return out


class _Link(CallLink):
    """One forwarded call: the child's progress, logs and questions go to the call's Context.
    A question without an answer interrupts the call (`interrupted` holds why)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.interrupted: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def progress(self, params: dict[str, Any]) -> None:
        p = params.get("progress")
        total = params.get("total")
        message = params.get("message")
        if isinstance(p, int | float):
            await self.ctx.report_progress(
                p,
                total if isinstance(total, int | float) else None,
                message if isinstance(message, str) else None,
            )

    async def log(self, params: dict[str, Any]) -> None:
        level = params.get("level")
        logger = params.get("logger")
        if isinstance(level, str):
            try:
                await self.ctx.log(level, params.get("data"), logger if isinstance(logger, str) else None)
            except ValueError:
                log.debug("a log message at unknown level %r dropped", level)

    async def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        capability = _CAPABILITY.get(method)
        if capability is None:
            raise ChildError(-32601, f"the attached server asked {method}, which mcp-nats does not relay")
        try:
            return self.ctx.ask(capability, method, params)
        except (InputRequired, ProtocolError) as exc:
            if not self.interrupted.done():
                self.interrupted.set_result(exc)
            raise ChildError(
                -32603, "the question goes to the client; this call is re-issued with the answer"
            ) from None


class Forwarder:
    """Forwards one service's requests to its pool; also the runtime's `Upstream` for non-tool operations."""

    def __init__(self, pool: ChildPool, catalog: Catalog) -> None:
        self.pool = pool
        self.catalog = catalog

    def offers(self, feature: str) -> bool:
        return feature in self.catalog.capabilities

    async def call_tool(
        self, name: str, arguments: dict[str, Any], ctx: Context, retry_safe: bool
    ) -> CallToolResult:
        avoid: Child | None = None
        for attempt in (1, 2):
            try:
                async with self.pool.lease(avoid) as child:
                    avoid = child
                    return await self._call_once(child, name, arguments, ctx)
            except ChildDied as exc:
                if attempt == 1 and retry_safe:
                    log.warning("%s; retrying %s on another child (read-only or idempotent)", exc, name)
                    continue
                raise ToolError(
                    f"{exc}; {name} is not retried (neither read-only nor idempotent)"
                    if not retry_safe
                    else str(exc)
                ) from None
            except PoolClosed as exc:
                raise ProtocolError(RESPONDER_LOST, str(exc)) from None
        raise AssertionError("unreachable")

    async def _call_once(
        self, child: Child, name: str, arguments: dict[str, Any], ctx: Context
    ) -> CallToolResult:
        link = _Link(ctx)
        request = asyncio.ensure_future(
            child.request("tools/call", {"name": name, "arguments": arguments}, call=link)
        )
        try:
            await asyncio.wait((request, link.interrupted), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not request.done():
                request.cancel()  # interrupted, or our own call was cancelled: the child hears notifications/cancelled
                await asyncio.gather(request, return_exceptions=True)
        if link.interrupted.done():
            raise link.interrupted.result()
        try:
            result = request.result()
        except ChildError as exc:
            if exc.code == INVALID_PARAMS:
                raise ToolError(exc.message) from None
            raise ProtocolError(exc.code, exc.message, exc.data) from None
        try:
            return _result_decoder.decode(_encoder.encode(result))
        except msgspec.ValidationError as exc:
            raise ProtocolError(
                INTERNAL_ERROR, f"the attached server returned a malformed result: {exc}"
            ) from None

    async def operation(self, op: str, params: bytes, headers: Mapping[str, str]) -> bytes:
        """Resources, templates, prompts and completion: the child's answer, or its error, as is."""
        try:
            body = msgspec.json.decode(params or b"{}")
        except msgspec.DecodeError:
            raise ProtocolError(INVALID_PARAMS, f"invalid {op} params: not JSON") from None
        if not isinstance(body, dict):
            raise ProtocolError(INVALID_PARAMS, f"invalid {op} params: not an object")
        method = _OPS.get(op)
        if method is None and op.startswith("prompts.get."):
            if tool_token(str(body.get("name", ""))) != op[len("prompts.get.") :]:
                raise ProtocolError(INVALID_PARAMS, f"Unknown prompt: {body.get('name')}")
            method = "prompts/get"
        if method is None:
            raise ProtocolError(INVALID_PARAMS, f"unknown operation {op}")
        try:
            async with self.pool.lease() as child:
                result = await child.request(method, body)
        except ChildError as exc:
            raise ProtocolError(exc.code, exc.message, exc.data) from None
        except (ChildDied, PoolClosed) as exc:
            raise ProtocolError(RESPONDER_LOST, str(exc)) from None
        result.setdefault("resultType", "complete")
        return _encoder.encode(result)


def build_service(name: str, forwarder: Forwarder) -> Service:
    """A Service whose tools and operations are the child's, forwarded."""
    cat = forwarder.catalog
    version = str(cat.server.get("version") or "0.0.0")
    title = cat.server.get("title") or cat.server.get("name")
    svc = Service(
        name,
        version,
        f"{cat.server.get('name', 'a stdio MCP server')} attached: {' '.join(forwarder.pool.argv)}"[:500],
        title=str(title) if title else None,
        instructions=cat.instructions,
    )
    svc.upstream = forwarder
    resources = cat.capabilities.get("resources")
    svc.subscribable = isinstance(resources, dict) and resources.get("subscribe") is True
    for tool in cat.tools:
        _add_tool(svc, forwarder, tool)
    for prompt in cat.prompts:
        args = prompt.get("arguments")
        svc.prompts[str(prompt["name"])] = PromptSpec(
            str(prompt["name"]),
            _forwarded_prompt,
            str(prompt.get("description") or ""),
            prompt.get("title"),
            [a for a in args if isinstance(a, dict)]
            if isinstance(args, list)
            else [{"name": "_", "required": False}],
        )
    return svc


def _forwarded_prompt(**_: str) -> str:
    raise ToolError("prompts of an attached server are rendered by the server itself")


def _add_tool(svc: Service, forwarder: Forwarder, tool: dict[str, Any]) -> None:
    name = str(tool["name"])
    ann = tool.get("annotations")
    try:
        annotations = (
            _annotations_decoder.decode(_encoder.encode(ann)) if isinstance(ann, dict) else ToolAnnotations()
        )
    except msgspec.ValidationError:
        annotations = ToolAnnotations()
    retry_safe = annotations.readOnlyHint is True or annotations.idempotentHint is True

    async def forward(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        return await forwarder.call_tool(name, arguments, ctx, retry_safe)

    schema = tool.get("inputSchema")
    output = tool.get("outputSchema")
    svc.add_tool(
        name,
        forward,
        input_schema=schema if isinstance(schema, dict) else {"type": "object"},
        output_schema=output if isinstance(output, dict) else None,
        description=str(tool.get("description") or name),
        annotations=annotations,
        title=tool.get("title") if isinstance(tool.get("title"), str) else None,
        extra={k: v for k, v in tool.items() if k in ("icons", "_meta", "execution")},
    )


__all__ = ["Catalog", "Forwarder", "build_service", "read_catalog"]
