"""The `demo` service: one of everything MCP can carry, to see (and test) each feature end to end."""

from msgspec import Struct

from ...plugin import ServicePlugin
from .service import build as build


class DemoSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The demo service has no settings; the section exists so that a stray key is refused."""


plugin = ServicePlugin(
    name="demo",
    summary="one of every MCP feature (progress, sampling, elicitation, roots, resources, prompts) to try",
    settings=DemoSettings,
    build=lambda _settings, options: build(options.name),
)

__all__ = ["DemoSettings", "build", "plugin"]
