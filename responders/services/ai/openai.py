"""An OpenAI-compatible server (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`), streamed as SSE.

`generate` is a one-message chat (the legacy /v1/completions is not offered by most servers now).
Options use Ollama's names where they differ (num_predict -> max_tokens) and are limited to the ones
every compatible server accepts; pull and delete have no OpenAI equivalent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from .backend import OnChunk
from .errors import AiError, UpstreamRefused
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

OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "num_predict": "max_tokens",
    "max_tokens": "max_tokens",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise AiError(
            f"option(s) {', '.join(unknown)} not supported by OpenAI-compatible servers; use {', '.join(sorted(OPTIONS))}"
        )
    return {OPTIONS[k]: v for k, v in options.items()}


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": c.function.name,
                    "arguments": msgspec.json.encode(c.function.arguments).decode(),
                },
            }
            for c in m.tool_calls
        ]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _event(line: str) -> dict[str, Any] | None:
    """One SSE `data:` line as JSON; None for comments, other fields and the closing [DONE]."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    event = msgspec.json.decode(data)
    if not isinstance(event, dict):
        raise UpstreamRefused(200, f"unexpected stream event {data[:200]!r}")
    if "error" in event:
        err = event["error"]
        raise UpstreamRefused(200, str(err.get("message") if isinstance(err, dict) else err))
    return event


class OpenAIBackend:
    kind = "openai"

    def __init__(self, http: Upstream) -> None:
        self.http = http

    async def _complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        options: dict[str, Any],
        on_chunk: OnChunk,
    ) -> ChatOutput:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **_options(options),
        }
        if tools:
            body["tools"] = list(tools)
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        usage: Usage | None = None
        used = model
        async with self.http.stream("/v1/chat/completions", body) as lines:
            async for line in lines:
                event = _event(line)
                if event is None:
                    if line.strip() == "data: [DONE]":
                        break
                    continue
                used = str(event.get("model") or used)
                if event.get("usage"):
                    u = event["usage"]
                    usage = Usage(
                        prompt_tokens=u.get("prompt_tokens"), completion_tokens=u.get("completion_tokens")
                    )
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    piece = str(delta.get("content") or "")
                    if piece:
                        parts.append(piece)
                        await on_chunk(piece)
                    for tc in delta.get("tool_calls") or []:
                        slot = calls.setdefault(
                            int(tc.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                        )
                        fn = tc.get("function") or {}
                        slot["id"] = tc.get("id") or slot["id"]
                        slot["name"] += fn.get("name") or ""
                        slot["arguments"] += fn.get("arguments") or ""
                    finish = choice.get("finish_reason") or finish
        tool_calls = []
        for _, c in sorted(calls.items()):
            try:
                args = msgspec.json.decode(c["arguments"]) if c["arguments"].strip() else {}
            except msgspec.DecodeError as exc:
                raise UpstreamRefused(
                    200, f"tool call {c['name']!r} has arguments that are not JSON: {c['arguments'][:200]!r}"
                ) from exc
            tool_calls.append(ToolCall(id=c["id"], function=FunctionCall(name=c["name"], arguments=args)))
        reply = Message(role="assistant", content="".join(parts), tool_calls=tool_calls or None)
        return ChatOutput(model=used, message=reply, done_reason=finish, usage=usage)

    async def generate(
        self, model: str, prompt: str, system: str | None, options: dict[str, Any], on_chunk: OnChunk
    ) -> Generation:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        out = await self._complete(model, messages, (), options, on_chunk)
        return Generation(
            model=out.model, text=out.message.content, done_reason=out.done_reason, usage=out.usage
        )

    async def chat(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        options: dict[str, Any],
        on_chunk: OnChunk,
    ) -> ChatOutput:
        return await self._complete(model, [_message(m) for m in messages], tools, options, on_chunk)

    async def embed(self, model: str, inputs: Sequence[str]) -> EmbedOutput:
        r = await self.http.json("POST", "/v1/embeddings", {"model": model, "input": list(inputs)})
        rows = sorted((r or {}).get("data") or [], key=lambda d: int(d.get("index", 0)))
        vectors = [list(map(float, d["embedding"])) for d in rows]
        if len(vectors) != len(inputs):
            raise UpstreamRefused(200, f"asked for {len(inputs)} embeddings, got {len(vectors)}")
        return EmbedOutput(
            model=str(r.get("model") or model),
            dimension=len(vectors[0]) if vectors else 0,
            embeddings=vectors,
        )

    async def list_models(self) -> ModelsOutput:
        r = await self.http.json("GET", "/v1/models")
        return ModelsOutput(
            models=[
                ModelInfo(name=str(m["id"]), owned_by=m.get("owned_by")) for m in (r or {}).get("data") or []
            ]
        )

    async def show_model(self, model: str) -> ModelDetails:
        # /v1/models/{id} is not served by every compatible server, and ids may contain '/': read the list
        r = await self.http.json("GET", "/v1/models")
        for m in (r or {}).get("data") or []:
            if m.get("id") == model:
                return ModelDetails(model=model, details=dict(m))
        raise UpstreamRefused(404, f"the server lists no model {model!r}")

    async def pull(self, model: str, on_chunk: OnChunk) -> Status:
        raise AiError("pull is an Ollama operation; OpenAI-compatible servers have no model download API")

    async def delete(self, model: str) -> Status:
        raise AiError("delete is an Ollama operation; OpenAI-compatible servers have no model delete API")
