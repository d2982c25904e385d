"""Prompts and argument completion.

    @svc.prompt()
    def review(code: str, language: str = "python") -> str: ...      # str -> one user message

    @svc.completer(prompt="review", argument="language")
    def languages(value: str, context: dict[str, str]) -> list[str]: ...

A prompt's parameters are its arguments (strings; required unless they have a default).
It returns a str, a list of messages (`{"role": ..., "content": {...}}`), or a full result dict.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import ToolError

MAX_COMPLETIONS: Final = 100


@dataclass
class PromptSpec:
    name: str
    fn: Callable[..., Any]
    description: str
    title: str | None = None
    arguments: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.arguments:
            for p in inspect.signature(self.fn).parameters.values():
                arg: dict[str, Any] = {"name": p.name, "required": p.default is p.empty}
                self.arguments.append(arg)

    def definition(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "description": self.description, "arguments": self.arguments}
        if self.title:
            d["title"] = self.title
        return d

    def render(self, arguments: dict[str, str]) -> dict[str, Any]:
        """The GetPromptResult for these arguments; ToolError names a missing or unknown argument."""
        known = {a["name"] for a in self.arguments}
        for a in self.arguments:
            if a["required"] and a["name"] not in arguments:
                raise ToolError(f"prompt {self.name} needs the argument '{a['name']}'")
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ToolError(f"prompt {self.name} has no argument '{unknown[0]}'")
        value = self.fn(**arguments)
        if isinstance(value, dict) and "messages" in value:
            return value
        if isinstance(value, str):
            messages = [{"role": "user", "content": {"type": "text", "text": value}}]
        elif isinstance(value, list):
            messages = value
        else:
            raise TypeError(f"prompt {self.name} returned {type(value).__name__}; expected str, list or dict")
        return {"description": self.description, "messages": messages}


Completer = Callable[[str, dict[str, str]], list[str]]


def complete(completer: Completer | None, value: str, context: dict[str, str]) -> dict[str, Any]:
    """The `completion` member of a CompleteResult: at most 100 values, with total and hasMore."""
    values = completer(value, context) if completer is not None else []
    return {
        "values": values[:MAX_COMPLETIONS],
        "total": len(values),
        "hasMore": len(values) > MAX_COMPLETIONS,
    }
