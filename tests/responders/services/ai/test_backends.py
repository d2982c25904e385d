"""Both model-server backends against the in-repo fake server (tests/fake_models.py): the HTTP contract,
streaming into progress, tool calls, error mapping, timeouts and cancellation closing the request."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import msgspec
import pytest

from responders.context import Context
from responders.embeddings import EmbedderSettings
from responders.services.ai.backend import ModelBackend, Progress
from responders.services.ai.errors import AiError, UpstreamRefused, UpstreamTimeout, UpstreamUnavailable
from responders.services.ai.ollama import OllamaBackend
from responders.services.ai.openai import OpenAIBackend
from responders.services.ai.outputs import Message
from responders.services.ai.settings import AiSettings
from responders.services.ai.upstream import Upstream

from ....fake_models import FakeModelServer

pytestmark = pytest.mark.anyio
KINDS = ["ollama", "openai"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as s:
        yield s


@contextlib.asynccontextmanager
async def backend(kind: str, url: str, **settings: Any) -> AsyncIterator[ModelBackend]:
    cfg = AiSettings(backend=kind, url=url, **settings)  # type: ignore[arg-type]
    async with Upstream.open(cfg, url) as http:
        yield OllamaBackend(http) if kind == "ollama" else OpenAIBackend(http)


class Notes:
    """A Context whose notifications are kept (progress messages in order)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.ctx = Context(
            call_id="c",
            service="ai",
            tool="t",
            client="test",
            protocol_version="2025-11-25",
            deadline=None,
            progress_token="tok",
            send=self._send,
        )

    async def _send(self, data: bytes) -> None:
        self.sent.append(msgspec.json.decode(data))

    @property
    def progress(self) -> list[float]:
        return [m["params"]["progress"] for m in self.sent if m["method"] == "notifications/progress"]


async def _nothing(_: str) -> None:
    return None


@pytest.mark.parametrize("kind", KINDS)
async def test_generate_streams_and_returns_the_whole_text(server: FakeModelServer, kind: str) -> None:
    """generate sends the model, prompt and options in the API's shape and joins the streamed pieces."""
    chunks: list[str] = []

    async def on_chunk(piece: str) -> None:
        chunks.append(piece)

    async with backend(kind, server.url) as b:
        out = await b.generate(
            "echo", "hello there world", None, {"temperature": 0, "num_predict": 20}, on_chunk
        )
    assert out.text == "echo: hello there world" and out.model == "echo"
    assert len(chunks) == 4 and "".join(chunks) == out.text
    assert out.usage is not None and out.usage.completion_tokens is not None
    req = server.requests[-1]
    if kind == "ollama":
        assert req.path == "/api/generate"
        assert req.body == {
            "model": "echo",
            "prompt": "hello there world",
            "stream": True,
            "options": {"temperature": 0, "num_predict": 20},
        }
    else:
        assert req.path == "/v1/chat/completions"
        assert req.body["messages"] == [{"role": "user", "content": "hello there world"}]
        assert (req.body["temperature"], req.body["max_tokens"], req.body["stream"]) == (0, 20, True)


@pytest.mark.parametrize("kind", KINDS)
async def test_chat_returns_tool_calls_with_decoded_arguments(server: FakeModelServer, kind: str) -> None:
    """With tools, the model's tool call comes back as a name and an arguments object (OpenAI's fragments joined)."""
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "description": "find", "parameters": {"type": "object"}},
        }
    ]
    msgs = [Message(role="system", content="be brief"), Message(role="user", content="weather in Oslo")]
    async with backend(kind, server.url) as b:
        out = await b.chat("echo", msgs, tools, {}, _nothing)
        plain = await b.chat("echo", msgs, [], {}, _nothing)
    assert out.message.tool_calls is not None
    call = out.message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("lookup", {"query": "weather in Oslo"})
    assert plain.message.content == "echo: weather in Oslo" and plain.message.tool_calls is None


@pytest.mark.parametrize("kind", KINDS)
async def test_models_are_listed_and_shown(server: FakeModelServer, kind: str) -> None:
    """list_models reads /api/tags or /v1/models; show_model one model; an unknown one is refused with 404."""
    async with backend(kind, server.url) as b:
        listed = await b.list_models()
        assert [m.name for m in listed.models] == ["echo", "slow", "endless", "stall"]
        shown = await b.show_model("slow")
        assert shown.details
        with pytest.raises(UpstreamRefused) as err:
            await b.show_model("nope")
        assert err.value.status == 404
        with pytest.raises(UpstreamRefused) as err:
            await b.generate("nope", "x", None, {}, _nothing)
        assert err.value.status == 404 and "nope" in str(err.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_streamed_chunks_become_progress_notifications(server: FakeModelServer, kind: str) -> None:
    """A slow stream reports progress while it runs, with increasing counts."""
    notes = Notes()
    async with backend(kind, server.url) as b:
        out = await b.generate("slow", "x", None, {}, Progress(notes.ctx, every=0.15))
    assert out.text.split() == [f"tick{i}" for i in range(10)]
    assert len(notes.progress) >= 2 and notes.progress == sorted(notes.progress)


def test_progress_is_throttled_by_its_clock() -> None:
    """The first chunk is reported at once, then at most one per interval (an injected clock, no sleeping)."""
    notes = Notes()
    now = [0.0]
    p = Progress(notes.ctx, every=1.0, clock=lambda: now[0])

    async def run() -> None:
        for t in (0.0, 0.1, 0.5, 1.2, 1.3, 2.3):
            now[0] = t
            await p("x")

    asyncio.run(run())
    assert notes.progress == [1, 4, 6]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_silent_server_times_out_and_the_request_is_closed(
    server: FakeModelServer, kind: str
) -> None:
    """A stream that goes quiet for longer than read_timeout fails with UpstreamTimeout; the server sees the client leave."""
    server.disconnected.clear()
    before = len(server.disconnects)
    with anyio.fail_after(20):
        async with backend(kind, server.url, read_timeout=0.5) as b:
            with pytest.raises(UpstreamTimeout):
                await b.generate("stall", "x", None, {}, _nothing)
        assert await anyio.to_thread.run_sync(server.disconnected.wait, 10)
    assert server.disconnects[before:] == ["stall"]


@pytest.mark.parametrize("kind", KINDS)
async def test_cancelling_a_call_closes_the_upstream_request(server: FakeModelServer, kind: str) -> None:
    """Cancelling a streaming generation mid-way disconnects from the server, which stops generating."""
    server.disconnected.clear()
    before = len(server.disconnects)
    started = asyncio.Event()

    async def on_chunk(_: str) -> None:
        started.set()

    with anyio.fail_after(20):
        async with backend(kind, server.url) as b:
            task = asyncio.get_running_loop().create_task(b.generate("endless", "x", None, {}, on_chunk))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await anyio.to_thread.run_sync(server.disconnected.wait, 10)
    assert server.disconnects[before:] == ["endless"]


async def test_an_unreachable_server_is_unavailable() -> None:
    """Nothing listening: UpstreamUnavailable naming the URL, not an httpx exception."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    async with backend("ollama", url, connect_timeout=2.0) as b:
        with pytest.raises(UpstreamUnavailable) as err:
            await b.list_models()
    assert url in str(err.value)


async def test_the_api_key_is_sent_as_a_bearer_token(
    server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api_key_env names the variable; its value goes in Authorization, never in settings."""
    monkeypatch.setenv("FAKE_KEY_FOR_TEST", "sk-test-123")
    async with backend("openai", server.url, api_key_env="FAKE_KEY_FOR_TEST") as b:
        await b.list_models()
    assert server.requests[-1].headers["authorization"] == "Bearer sk-test-123"


async def test_pull_and_delete_on_ollama_and_refused_on_openai(server: FakeModelServer) -> None:
    """pull streams statuses into progress and ends with the last one; OpenAI-compatible servers have neither."""
    seen: list[str] = []

    async def on_chunk(s: str) -> None:
        seen.append(s)

    async with backend("ollama", server.url) as b:
        assert (await b.pull("echo", on_chunk)).status == "success"
        assert "downloading 50/100" in seen
        assert (await b.delete("echo")).status == "deleted"
        with pytest.raises(UpstreamRefused):
            await b.delete("nope")
    async with backend("openai", server.url) as b:
        with pytest.raises(AiError):
            await b.pull("echo", on_chunk)


async def test_openai_refuses_options_it_does_not_know(server: FakeModelServer) -> None:
    """An Ollama-only option is refused by name on an OpenAI-compatible backend instead of being dropped."""
    async with backend("openai", server.url) as b:
        with pytest.raises(AiError, match="mirostat"):
            await b.generate("echo", "x", None, {"mirostat": 2}, _nothing)


def _dot(x: list[float], y: list[float]) -> float:
    return sum(p * q for p, q in zip(x, y, strict=True))


@pytest.mark.parametrize("kind", KINDS)
async def test_embeddings_are_real_vectors_in_order(kind: str) -> None:
    """embed returns one unit-length vector per input, and paraphrases are closer than unrelated texts."""
    with FakeModelServer(embedder_settings=EmbedderSettings()) as s:
        async with backend(kind, s.url) as b:
            out = await b.embed(
                "minilm", ["a cat sat on the mat", "a kitten rested on the rug", "tax law of 1990"]
            )
    assert len(out.embeddings) == 3 and out.dimension == len(out.embeddings[0]) > 0
    a, b2, c = out.embeddings
    assert _dot(a, b2) > _dot(a, c)
