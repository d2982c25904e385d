"""Ollama's HTTP API (`/api/generate`, `/api/chat`, `/api/embed`, `/api/tags`, `/api/show`, `/api/pull`,
`/api/delete`), streamed as NDJSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from .backend import OnChunk
from .errors import UpstreamRefused
from .outputs import (
    ChatOutput,
    EmbedOutput,
    FunctionCall,
    Generation,
    Message,
    ModelDetails,
    ModelInfo,
    ModelsOutput,
    Status,
    ToolCall,
    Usage,
)
from .upstream import Upstream

SHOWN = ("details", "parameters", "template", "capabilities", "model_info", "modified_at")


def _line(line: str) -> dict[str, Any]:
    data = msgspec.json.decode(line)
    if not isinstance(data, dict):
        raise UpstreamRefused(200, f"unexpected stream line {line[:200]!r}")
    if "error" in data:
        raise UpstreamRefused(200, str(data["error"]))
    return data


def _usage(d: dict[str, Any]) -> Usage | None:
    if "prompt_eval_count" not in d and "eval_count" not in d:
        return None
    return Usage(prompt_tokens=d.get("prompt_eval_count"), completion_tokens=d.get("eval_count"))


def _tool_calls(raw: list[dict[str, Any]]) -> list[ToolCall]:
    out = []
    for c in raw:
        fn = c.get("function") or {}
        args = fn.get("arguments") or {}
        if isinstance(args, str):
            args = msgspec.json.decode(args) if args.strip() else {}
        out.append(
            ToolCall(
                id=str(c.get("id") or ""), function=FunctionCall(name=str(fn.get("name", "")), arguments=args)
            )
        )
    return out


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.function.name, "arguments": c.function.arguments}} for c in m.tool_calls
        ]
    if m.images:
        out["images"] = m.images
    return out


class OllamaBackend:
    kind = "ollama"

    def __init__(self, http: Upstream) -> None:
        self.http = http

    async def generate(
        self, model: str, prompt: str, system: str | None, options: dict[str, Any], on_chunk: OnChunk
    ) -> Generation:
        body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": True, "options": options}
        if system:
            body["system"] = system
        parts: list[str] = []
        last: dict[str, Any] = {}
        async with self.http.stream("/api/generate", body) as lines:
            async for line in lines:
                last = _line(line)
                piece = str(last.get("response") or "")
                if piece:
                    parts.append(piece)
                    await on_chunk(piece)
                if last.get("done"):
                    break
        return Generation(
            model=str(last.get("model") or model),
            text="".join(parts),
            done_reason=last.get("done_reason"),
            usage=_usage(last),
        )

    async def chat(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        options: dict[str, Any],
        on_chunk: OnChunk,
    ) -> ChatOutput:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_message(m) for m in messages],
            "stream": True,
            "options": options,
        }
        if tools:
            body["tools"] = list(tools)
        parts: list[str] = []
        calls: list[ToolCall] = []
        last: dict[str, Any] = {}
        async with self.http.stream("/api/chat", body) as lines:
            async for line in lines:
                last = _line(line)
                msg = last.get("message") or {}
                piece = str(msg.get("content") or "")
                if piece:
                    parts.append(piece)
                    await on_chunk(piece)
                calls += _tool_calls(msg.get("tool_calls") or [])
                if last.get("done"):
                    break
        reply = Message(role="assistant", content="".join(parts), tool_calls=calls or None)
        return ChatOutput(
            model=str(last.get("model") or model),
            message=reply,
            done_reason=last.get("done_reason"),
            usage=_usage(last),
        )

    async def embed(self, model: str, inputs: Sequence[str]) -> EmbedOutput:
        r = await self.http.json("POST", "/api/embed", {"model": model, "input": list(inputs)})
        vectors = [list(map(float, v)) for v in (r or {}).get("embeddings") or []]
        if len(vectors) != len(inputs):
            raise UpstreamRefused(200, f"asked for {len(inputs)} embeddings, got {len(vectors)}")
        return EmbedOutput(
            model=str(r.get("model") or model),
            dimension=len(vectors[0]) if vectors else 0,
            embeddings=vectors,
        )

    async def list_models(self) -> ModelsOutput:
        r = await self.http.json("GET", "/api/tags")
        models = []
        for m in (r or {}).get("models") or []:
            details = m.get("details") or {}
            models.append(
                ModelInfo(
                    name=str(m.get("name") or m.get("model")),
                    size=m.get("size"),
                    modified_at=m.get("modified_at"),
                    family=details.get("family"),
                    parameter_size=details.get("parameter_size"),
                )
            )
        return ModelsOutput(models=models)

    async def show_model(self, model: str) -> ModelDetails:
        r = await self.http.json("POST", "/api/show", {"model": model})
        return ModelDetails(model=model, details={k: v for k, v in (r or {}).items() if k in SHOWN})

    async def pull(self, model: str, on_chunk: OnChunk) -> Status:
        status = ""
        async with self.http.stream("/api/pull", {"model": model, "stream": True}) as lines:
            async for line in lines:
                d = _line(line)
                status = str(d.get("status") or status)
                done, total = d.get("completed"), d.get("total")
                await on_chunk(f"{status} {done}/{total}" if total else status)
        return Status(model=model, status=status or "done")

    async def delete(self, model: str) -> Status:
        await self.http.json("DELETE", "/api/delete", {"model": model})
        return Status(model=model, status="deleted")
