"""Input and output JSON Schemas derived from a handler's signature, and the argument decoder.

A handler's parameters become a msgspec Struct (one per tool, built once), so arguments are
validated by msgspec's decoder in one pass and the JSON Schema is msgspec's own.
Parameter names are the wire names (the reference servers' camelCase where they use it); a Python
keyword with a trailing underscore (`from_`) is the keyword on the wire (`from`).
"""

from __future__ import annotations

import inspect
import keyword
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from .context import Context


class Signature:
    """A handler's arguments struct, schemas, and where the Context goes."""

    def __init__(self, fn: Callable[..., Any], tool_name: str) -> None:
        hints = typing.get_type_hints(fn, include_extras=True)
        fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
        self.context_param: str | None = None
        self.params: list[str] = []
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"tool {tool_name}: *args/**kwargs cannot be described by a schema")
            ann = hints.get(p.name, Any)
            if ann is Context or (
                typing.get_origin(ann) in (typing.Union, types.UnionType) and Context in typing.get_args(ann)
            ):
                # `ctx: Context` or `ctx: Context | None = None` (handy for direct unit tests)
                self.context_param = p.name
                continue
            self.params.append(p.name)
            wire = p.name[:-1] if p.name.endswith("_") and keyword.iskeyword(p.name[:-1]) else None
            if wire is not None:
                default = msgspec.NODEFAULT if p.default is p.empty else p.default
                fields.append((p.name, ann, msgspec.field(default=default, name=wire)))
            else:
                fields.append((p.name, ann) if p.default is p.empty else (p.name, ann, p.default))
        self.args_type: type[msgspec.Struct] = msgspec.defstruct(
            f"{tool_name}_arguments", fields, kw_only=True, forbid_unknown_fields=True
        )
        self.decoder = msgspec.json.Decoder(self.args_type)
        self.input_schema = object_schema(self.args_type)
        ret = hints.get("return", Any)
        self.returns = ret
        self.output_schema = (
            object_schema(ret) if isinstance(ret, type) and issubclass(ret, msgspec.Struct) else None
        )


def object_schema(tp: Any) -> dict[str, Any]:
    """A self-contained JSON Schema whose top level is the object itself (MCP wants `type: object` there)."""
    (ref,), components = msgspec.json.schema_components([tp], ref_template="#/$defs/{name}")
    name = ref["$ref"].rsplit("/", 1)[1]
    top = dict(components.pop(name))
    top.pop("title", None)
    top.setdefault("properties", {})
    if components:
        top["$defs"] = components
    return top


class _Arguments(msgspec.Struct):
    arguments: dict[str, Any]


class _WholeObject:
    """Decodes the arguments object whole, as the one keyword argument `arguments`."""

    _decoder = msgspec.json.Decoder(dict[str, Any])

    def decode(self, raw: bytes | msgspec.Raw) -> _Arguments:
        return _Arguments(self._decoder.decode(raw))


class ForeignSignature:
    """The signature of a tool whose schemas come from elsewhere (an attached server): the handler is
    `fn(arguments: dict, ctx: Context)`, the input schema is published as given, and the only check
    here is that the arguments are a JSON object (the tool's owner validates the rest)."""

    context_param = "ctx"
    params = ["arguments"]
    returns: Any = Any

    def __init__(self, input_schema: dict[str, Any], output_schema: dict[str, Any] | None) -> None:
        self.args_type = _Arguments
        self.decoder = _WholeObject()
        self.input_schema = input_schema
        self.output_schema = output_schema
