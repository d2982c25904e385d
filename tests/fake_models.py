"""An in-repo model server for the ai service's tests: speaks Ollama's /api/* and OpenAI's /v1/* on a
loopback port, streams chunked responses (NDJSON and SSE), and notices when a client goes away.

Deterministic text, keyed by model name:
    echo     answers "echo: <prompt>" word by word (chat: the last user message; with tools, a tool call)
    slow     ten chunks, a tenth of a second apart
    endless  a chunk every 50 ms until the client disconnects (recorded in `disconnects`)
    stall    one chunk, then silence until the client disconnects
    other    404 "model not found", in each API's error shape
Embeddings are real ones from the shared default embedder (`FakeModelServer(embedder_settings=...)`; else 501).

Runs its own event loop on a thread so any test (sync or async) can use it; `with FakeModelServer()
as server:` starts it (bounded wait for readiness) and stops it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

MODELS = ("echo", "slow", "endless", "stall")


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    gone: bool = False


class Disconnected(Exception):
    pass


@dataclass
class FakeModelServer:
    embedder_settings: Any = None
    requests: list[Seen] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def __enter__(self) -> FakeModelServer:
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-models", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fake model server did not start within 30 s")
        if self._error is not None:
            raise RuntimeError("the fake model server failed to start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to __enter__ if it happens before readiness
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            self.embedder = None
            if self.embedder_settings is not None:
                from responders.embeddings import load_embedder

                self.embedder = await stack.enter_async_context(load_embedder(self.embedder_settings))
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            async with server:
                await self._stop.wait()

    # -- HTTP/1.1 -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(reader, writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:] if ":" in h)
                }
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = msgspec.json.decode(raw) if raw else None
                self.requests.append(Seen(method, target, body, headers))
                await self._route(conn, method, target, body)
        except (asyncio.IncompleteReadError, ConnectionError, Disconnected):
            pass
        finally:
            writer.close()

    async def _send(self, conn: _Conn, status: int, payload: Any) -> None:
        data = msgspec.json.encode(payload)
        conn.writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await conn.writer.drain()

    async def _stream(self, conn: _Conn, kind: str, model: str, events: AsyncIterator[bytes]) -> None:
        ctype = "text/event-stream" if kind == "sse" else "application/x-ndjson"
        conn.writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            async for event in events:
                conn.writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                await conn.writer.drain()
            conn.writer.write(b"0\r\n\r\n")
            await conn.writer.drain()
        except (ConnectionError, Disconnected):
            self.disconnects.append(model)
            self.disconnected.set()
            raise Disconnected from None

    async def _pause(self, conn: _Conn, seconds: float) -> None:
        """Wait, noticing a client that closes the connection meanwhile."""
        try:
            got = await asyncio.wait_for(conn.reader.read(1), seconds)
        except TimeoutError:
            return
        if not got:
            raise Disconnected

    # -- behaviour ----------------------------------------------------------------------------

    async def _pieces(self, conn: _Conn, model: str, text: str) -> AsyncIterator[str]:
        if model == "echo":
            for i, word in enumerate(text.split(" ")):
                yield word if i == 0 else " " + word
        elif model == "slow":
            for i in range(10):
                await self._pause(conn, 0.1)
                yield f"tick{i} "
        elif model == "endless":
            i = 0
            while True:
                yield f"more{i} "
                i += 1
                await self._pause(conn, 0.05)
        elif model == "stall":
            yield "first "
            while True:
                await self._pause(conn, 3600)

    async def _route(self, conn: _Conn, method: str, path: str, body: Any) -> None:
        model = (body or {}).get("model", "") if isinstance(body, dict) else ""
        if path in ("/api/generate", "/api/chat", "/v1/chat/completions") and model not in MODELS:
            if path.startswith("/v1"):
                return await self._send(
                    conn,
                    404,
                    {
                        "error": {
                            "message": f"The model `{model}` does not exist.",
                            "type": "invalid_request_error",
                        }
                    },
                )
            return await self._send(conn, 404, {"error": f"model '{model}' not found"})
        if path == "/api/generate":
            return await self._stream(conn, "ndjson", model, self._ollama_generate(conn, body))
        if path == "/api/chat":
            return await self._stream(conn, "ndjson", model, self._ollama_chat(conn, body))
        if path == "/v1/chat/completions":
            return await self._stream(conn, "sse", model, self._openai_chat(conn, body))
        if path in ("/api/embed", "/v1/embeddings"):
            if self.embedder is None:
                return await self._send(conn, 501, {"error": "no embedder installed in the fake server"})
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            vectors = await self.embedder.embed(inputs)
            if path == "/api/embed":
                return await self._send(conn, 200, {"model": model, "embeddings": vectors})
            return await self._send(
                conn,
                200,
                {
                    "object": "list",
                    "model": model,
                    "data": [
                        {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
                    ],
                },
            )
        if path == "/api/tags":
            return await self._send(
                conn,
                200,
                {
                    "models": [
                        {
                            "name": m,
                            "model": m,
                            "size": 1000 + i,
                            "modified_at": "2026-12-06T00:00:00Z",
                            "details": {"family": "fake", "parameter_size": "1M"},
                        }
                        for i, m in enumerate(MODELS)
                    ]
                },
            )
        if path == "/v1/models":
            return await self._send(
                conn,
                200,
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model", "owned_by": "tests"} for m in MODELS],
                },
            )
        if path == "/api/show":
            if model not in MODELS:
                return await self._send(conn, 404, {"error": f"model '{model}' not found"})
            return await self._send(
                conn,
                200,
                {
                    "details": {"family": "fake", "format": "none"},
                    "parameters": "temperature 0",
                    "license": "x" * 10,
                    "capabilities": ["completion", "tools"],
                },
            )
        if path == "/api/pull":
            return await self._stream(conn, "ndjson", model, self._pull(body))
        if path == "/api/delete" and method == "DELETE":
            return await self._send(
                conn,
                200 if model in MODELS else 404,
                {} if model in MODELS else {"error": f"model '{model}' not found"},
            )
        return await self._send(conn, 404, {"error": f"no route {method} {path}"})

    async def _ollama_generate(self, conn: _Conn, body: Any) -> AsyncIterator[bytes]:
        model = body["model"]
        n = 0
        async for piece in self._pieces(conn, model, f"echo: {body['prompt']}"):
            n += 1
            yield msgspec.json.encode({"model": model, "response": piece, "done": False}) + b"\n"
        yield (
            msgspec.json.encode(
                {
                    "model": model,
                    "response": "",
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": len(body["prompt"].split()),
                    "eval_count": n,
                }
            )
            + b"\n"
        )

    async def _ollama_chat(self, conn: _Conn, body: Any) -> AsyncIterator[bytes]:
        model = body["model"]
        last = next((m["content"] for m in reversed(body["messages"]) if m["role"] in ("user", "tool")), "")
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            call = {"function": {"name": name, "arguments": {"query": last}}}
            yield (
                msgspec.json.encode(
                    {
                        "model": model,
                        "message": {"role": "assistant", "content": "", "tool_calls": [call]},
                        "done": False,
                    }
                )
                + b"\n"
            )
        else:
            async for piece in self._pieces(conn, model, f"echo: {last}"):
                yield (
                    msgspec.json.encode(
                        {"model": model, "message": {"role": "assistant", "content": piece}, "done": False}
                    )
                    + b"\n"
                )
        yield (
            msgspec.json.encode(
                {
                    "model": model,
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": 3,
                    "eval_count": 5,
                }
            )
            + b"\n"
        )

    async def _openai_chat(self, conn: _Conn, body: Any) -> AsyncIterator[bytes]:
        model = body["model"]

        def sse(obj: Any) -> bytes:
            return b"data: " + msgspec.json.encode(obj) + b"\n\n"

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse(
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
            )

        last = next((m["content"] for m in reversed(body["messages"]) if m["role"] in ("user", "tool")), "")
        yield b": keep-alive comment\n\n"
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            args = msgspec.json.encode({"query": last}).decode()
            yield chunk(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": name, "arguments": args[:5]},
                        }
                    ],
                }
            )
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[5:]}}]})
            finish = "tool_calls"
        else:
            yield chunk({"role": "assistant", "content": ""})
            async for piece in self._pieces(conn, model, f"echo: {last}"):
                yield chunk({"content": piece})
            finish = "stop"
        yield chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            yield sse(
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 5},
                }
            )
        yield b"data: [DONE]\n\n"

    async def _pull(self, body: Any) -> AsyncIterator[bytes]:
        yield msgspec.json.encode({"status": "pulling manifest"}) + b"\n"
        for done in (0, 50, 100):
            yield msgspec.json.encode({"status": "downloading", "completed": done, "total": 100}) + b"\n"
        yield msgspec.json.encode({"status": "success"}) + b"\n"
