"""Resources a service offers: fixed URIs, URI templates (RFC 6570 `{var}` and `{+var}`), and a lister.

    @svc.resource("memory://knowledge-graph", mime_type="application/json")
    def graph() -> str: ...

    @svc.resource_template("file://{+path}", name="file")
    def read_file(path: str) -> bytes: ...

A reader returns `str` (text contents), `bytes` (a base64 blob) or a `ResourceContents`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET, Struct, UnsetType

from schemas.uritemplate import compile_template, match


class ResourceContents(Struct, kw_only=True, omit_defaults=True):
    uri: str
    mimeType: str | UnsetType = UNSET
    text: str | UnsetType = UNSET
    blob: str | UnsetType = UNSET


class ResourceEntry(Struct, kw_only=True, omit_defaults=True):
    """One item of `resources/list`."""

    uri: str
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    mimeType: str | UnsetType = UNSET
    size: int | UnsetType = UNSET


class TemplateEntry(Struct, kw_only=True, omit_defaults=True):
    """One item of `resources/templates/list`."""

    uriTemplate: str
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    mimeType: str | UnsetType = UNSET


class ResourceNotFound(Exception):
    """Raised by a reader (or the runtime) when no resource has the URI."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"Resource not found: {uri}")
        self.uri = uri


@dataclass
class ResourceSpec:
    entry: ResourceEntry
    fn: Callable[[], Any]


@dataclass
class TemplateSpec:
    entry: TemplateEntry
    fn: Callable[..., Any]
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = compile_template(self.entry.uriTemplate)

    def match(self, uri: str) -> dict[str, str] | None:
        return match(self.pattern, uri)


def to_contents(uri: str, value: Any, mime_type: str | UnsetType) -> list[ResourceContents]:
    if isinstance(value, ResourceContents):
        return [value]
    if isinstance(value, list) and all(isinstance(v, ResourceContents) for v in value):
        return value
    if isinstance(value, bytes):
        return [ResourceContents(uri=uri, mimeType=mime_type, blob=base64.b64encode(value).decode())]
    if isinstance(value, str):
        return [ResourceContents(uri=uri, mimeType=mime_type, text=value)]
    raise TypeError(
        f"a resource reader must return str, bytes or ResourceContents, not {type(value).__name__}"
    )
