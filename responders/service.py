"""A service: a name, a version and a registry of tools. Decorators register, they don't wrap.

    svc = Service("fs", "1.0.0", "Files under configured roots")

    @svc.tool(read_only=True)
    async def read_text_file(path: str, head: int | None = None) -> str: ...

`read_text_file` is still the plain function afterwards, directly unit-testable.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

import msgspec
from msgspec import UNSET

from schemas.mcp import CallToolResult, Content, TextContent, ToolAnnotations

from .plugin import ServiceRuntime
from .prompts import Completer, PromptSpec
from .resources import ResourceEntry, ResourceSpec, TemplateEntry, TemplateSpec
from .schema import ForeignSignature, Signature

F = TypeVar("F", bound=Callable[..., Any])
Lifespan = Callable[[ServiceRuntime], contextlib.AbstractAsyncContextManager[None]]
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")
_encoder = msgspec.json.Encoder()


@dataclass
class ToolSpec:
    """A registered tool: its MCP definition and how to invoke it."""

    name: str
    fn: Callable[..., Any]
    description: str
    signature: Signature | ForeignSignature
    annotations: ToolAnnotations
    title: str | None = None
    blocking: bool = False
    """A synchronous handler that may block runs in a worker thread; a quick one runs inline."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Further members of the definition as given (an attached server's `icons`, `_meta`, `execution`)."""
    definition: bytes = field(init=False, default=b"")
    is_async: bool = field(init=False, default=False)
    inline: bool = field(init=False, default=False)
    """Synchronous and quick: runs in the loop without yielding (no timer, nothing to cancel)."""

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.fn)
        self.inline = not self.is_async and not self.blocking
        body: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.title:
            body["title"] = self.title
        body["inputSchema"] = self.signature.input_schema
        if self.signature.output_schema is not None:
            body["outputSchema"] = self.signature.output_schema
        body["annotations"] = self.annotations
        body.update(self.extra)
        self.definition = _encoder.encode(body)

    async def invoke(self, kwargs: dict[str, Any]) -> Any:
        if self.is_async:
            return await self.fn(**kwargs)
        if self.blocking:
            return await asyncio.to_thread(self.fn, **kwargs)
        return self.fn(**kwargs)


class Upstream(Protocol):
    """Answers a service's non-tool operations itself (an attached server): `op` is the subject's
    operation (`resources.read`, `prompts.get.<token>`, ...), `params` the request body. Returns the
    encoded result; raises ProtocolError."""

    def offers(self, feature: str) -> bool:
        """Whether the upstream has `resources`, `prompts` or `completions`."""
        ...

    async def operation(self, op: str, params: bytes, headers: Mapping[str, str]) -> bytes: ...


class Service:
    """A named set of tools served as one queue group (start more processes to scale)."""

    def __init__(
        self,
        name: str,
        version: str,
        description: str,
        *,
        title: str | None = None,
        instructions: str | None = None,
    ) -> None:
        if not SERVICE_NAME.match(name):
            raise ValueError(
                f"service name {name!r} must be letters, digits and '-' (no '_': it separates service and tool)"
            )
        self.name = name
        self.version = version
        self.description = description
        self.title = title
        self.instructions = instructions
        self.tools: dict[str, ToolSpec] = {}
        self.resources: dict[str, ResourceSpec] = {}
        self.templates: list[TemplateSpec] = []
        self.lister: Callable[[], list[ResourceEntry]] | None = None
        self.prompts: dict[str, PromptSpec] = {}
        self.completers: dict[tuple[str, str, str], Completer] = {}
        self.subscribable = False
        self.lifespan_fn: Lifespan | None = None
        self.upstream: Upstream | None = None
        """When set, resources, templates, prompts and completion are forwarded to it whole."""

    @overload
    def prompt(
        self, fn: F, *, name: str | None = None, title: str | None = None, description: str | None = None
    ) -> F: ...

    @overload
    def prompt(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> Callable[[F], F]: ...

    def prompt(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> Any:
        """Register a prompt; its string parameters are the prompt's arguments. Returns the function unchanged."""

        def register(f: F) -> F:
            pname = name or f.__name__
            doc = description or inspect.cleandoc(f.__doc__ or "") or pname
            self.prompts[pname] = PromptSpec(pname, f, doc, title)
            return f

        return register(fn) if fn is not None else register

    def completer(
        self, *, argument: str, prompt: str | None = None, template: str | None = None
    ) -> Callable[[Completer], Completer]:
        """Register completion for one argument of a prompt, or one variable of a resource template."""
        if (prompt is None) == (template is None):
            raise ValueError("a completer is for exactly one of prompt= or template=")
        key = (
            ("ref/prompt", prompt, argument)
            if prompt is not None
            else ("ref/resource", template or "", argument)
        )

        def register(f: Completer) -> Completer:
            self.completers[key] = f
            return f

        return register

    def lifespan(self, fn: Lifespan) -> Lifespan:
        """Register the async context manager that owns this service's backends for the life of an instance.

        It gets the `ServiceRuntime` (bus, events, instance), is entered before the instance serves and
        left after it has drained; background work runs in a task group it owns. Returns `fn` unchanged."""
        if self.lifespan_fn is not None:
            raise ValueError(f"service {self.name!r} already has a lifespan")
        self.lifespan_fn = fn
        return fn

    def open(self, runtime: ServiceRuntime) -> contextlib.AbstractAsyncContextManager[None]:
        """The registered lifespan for this runtime, or one that does nothing."""
        return self.lifespan_fn(runtime) if self.lifespan_fn is not None else contextlib.nullcontext()

    @property
    def has_resources(self) -> bool:
        return bool(self.resources or self.templates or self.lister) or (
            self.upstream is not None and self.upstream.offers("resources")
        )

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
    ) -> Callable[[F], F]:
        """Register a reader for one fixed URI; returns the function unchanged."""

        def register(f: F) -> F:
            entry = ResourceEntry(
                uri=uri,
                name=name or f.__name__,
                description=description or inspect.cleandoc(f.__doc__ or "") or UNSET,
                mimeType=mime_type or UNSET,
            )
            self.resources[uri] = ResourceSpec(entry, f)
            return f

        return register

    def resource_template(
        self,
        template: str,
        *,
        name: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
    ) -> Callable[[F], F]:
        """Register a reader for every URI matching `template`; variables arrive as keyword arguments."""

        def register(f: F) -> F:
            entry = TemplateEntry(
                uriTemplate=template,
                name=name or f.__name__,
                description=description or inspect.cleandoc(f.__doc__ or "") or UNSET,
                mimeType=mime_type or UNSET,
            )
            self.templates.append(TemplateSpec(entry, f))
            return f

        return register

    def resource_list(self, f: Callable[[], list[ResourceEntry]]) -> Callable[[], list[ResourceEntry]]:
        """Register the function that lists concrete resources (beyond the fixed ones); returns it unchanged."""
        self.lister = f
        return f

    @overload
    def tool(
        self,
        fn: F,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        destructive: bool | None = None,
        idempotent: bool = False,
        open_world: bool = False,
        blocking: bool = False,
    ) -> F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        destructive: bool | None = None,
        idempotent: bool = False,
        open_world: bool = False,
        blocking: bool = False,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        destructive: bool | None = None,
        idempotent: bool = False,
        open_world: bool = False,
        blocking: bool = False,
    ) -> Any:
        """Register `fn` as a tool and return it unchanged. Annotations default to a safe reading:
        not read-only, destructive unless read-only, not idempotent, closed world."""

        def register(f: F) -> F:
            tool_name = name or f.__name__
            if tool_name in self.tools:
                raise ValueError(f"tool {tool_name!r} is already registered on service {self.name!r}")
            doc = description or inspect.cleandoc(f.__doc__ or "") or tool_name
            ann = ToolAnnotations(
                title=title if title is not None else UNSET,
                readOnlyHint=read_only,
                destructiveHint=(not read_only) if destructive is None else destructive,
                idempotentHint=idempotent or read_only,
                openWorldHint=open_world,
            )
            self.tools[tool_name] = ToolSpec(
                name=tool_name,
                fn=f,
                description=doc,
                signature=Signature(f, tool_name),
                annotations=ann,
                title=title,
                blocking=blocking,
            )
            return f

        return register(fn) if fn is not None else register

    def add_tool(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        input_schema: dict[str, Any],
        output_schema: dict[str, Any] | None = None,
        description: str,
        annotations: ToolAnnotations,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Register a tool whose schemas are given rather than derived (an attached server's tools).

        `fn(arguments: dict, ctx: Context)` gets the arguments object whole (checked only to be an
        object: the schema's owner validates the rest) and returns what a decorated tool may."""
        if name in self.tools:
            raise ValueError(f"tool {name!r} is already registered on service {self.name!r}")
        self.tools[name] = ToolSpec(
            name=name,
            fn=fn,
            description=description,
            signature=ForeignSignature(input_schema, output_schema),
            annotations=annotations,
            title=title,
            extra=dict(extra or {}),
        )

    def list_tools_result(self) -> bytes:
        """The encoded `tools/list` result: every tool, one page, definitions in registration order."""
        return (
            b'{"tools":['
            + b",".join(t.definition for t in self.tools.values())
            + b'],"resultType":"complete"}'
        )


def to_result(value: Any, spec: ToolSpec) -> CallToolResult:
    """A handler's return value as a CallToolResult: text for str, structuredContent for structs."""
    if isinstance(value, CallToolResult):
        return value
    if isinstance(value, str):
        return CallToolResult(content=[TextContent(text=value)])
    if isinstance(value, list) and all(isinstance(v, Content.__args__) for v in value):
        return CallToolResult(content=value)
    to_text = getattr(value, "__mcp_text__", None)
    text = to_text() if to_text is not None else _encoder.encode(value).decode()
    if spec.signature.output_schema is not None:
        return CallToolResult(content=[TextContent(text=text)], structuredContent=value)
    return CallToolResult(content=[TextContent(text=text)])


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=message)], isError=True)
