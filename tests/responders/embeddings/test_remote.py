"""The HTTP embedders against a real loopback HTTP server speaking the OpenAI and Ollama embedding
APIs: request shape, bearer key from the environment, order by index, normalisation, batching,
the dimension learnt from the probe, and failures as one sentence naming the endpoint."""

from __future__ import annotations

import pytest

from responders.embeddings import EmbedderFailed, EmbedderSettings, EmbedderUnavailable, load_embedder
from tests.embedding_server import Server
from tests.embedding_server import server as server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.anyio


async def test_openai_embeddings(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /v1/embeddings with the model, the key as a bearer token, results put back in index order and normalised, 64 texts a request."""
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-test")
    settings = EmbedderSettings(
        kind="openai", url=server.url + "/v1", model="text-embedding-3-small", api_key_env="TEST_EMBED_KEY"
    )
    async with load_embedder(settings) as e:
        assert e.dimension == 3 and e.model == "openai:text-embedding-3-small"
        texts = ["a" * (i + 1) for i in range(100)]
        vectors = await e.embed(texts)
    assert len(vectors) == 100
    assert all(v == pytest.approx([1 / 3, 2 / 3, 2 / 3]) for v in vectors)
    paths = [(p, len(b["input"])) for p, b, _ in server.requests]
    assert paths == [("/v1/embeddings", 1), ("/v1/embeddings", 64), ("/v1/embeddings", 36)]
    assert all(
        h["Authorization"] == "Bearer sk-test" and b["model"] == "text-embedding-3-small"
        for _, b, h in server.requests
    )


async def test_ollama_embeddings(server: Server) -> None:
    """POST /api/embed with the model and the inputs; no Authorization header without a key variable."""
    async with load_embedder(EmbedderSettings(kind="ollama", url=server.url, model="all-minilm")) as e:
        (v,) = await e.embed(["hello"])
    assert v == pytest.approx([1 / 3, 2 / 3, 2 / 3]) and e.model == "ollama:all-minilm"
    assert [p for p, _, _ in server.requests] == ["/api/embed", "/api/embed"]
    assert all("Authorization" not in h for _, _, h in server.requests)


async def test_http_errors_become_one_sentence(server: Server) -> None:
    """An HTTP 500 and an unreachable port are EmbedderFailed naming the endpoint; the probe's failure does not stop entry."""
    server.status = 500
    async with load_embedder(EmbedderSettings(kind="ollama", url=server.url, model="m")) as e:
        assert e.dimension == 0
        with pytest.raises(EmbedderFailed, match=r"/api/embed answered HTTP 500"):
            await e.embed(["x"])
    async with load_embedder(
        EmbedderSettings(kind="openai", url="http://127.0.0.1:9", model="m", timeout=2)
    ) as e:
        with pytest.raises(EmbedderFailed, match="127.0.0.1:9/v1/embeddings"):
            await e.embed(["x"])


async def test_incomplete_settings_are_refused(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    """No URL, no model, or an unset key variable (at entry, before any request) is EmbedderUnavailable naming the missing setting."""
    with pytest.raises(EmbedderUnavailable, match="embedder.url"):
        load_embedder(EmbedderSettings(kind="openai", model="m"))
    with pytest.raises(EmbedderUnavailable, match="embedder.model"):
        load_embedder(EmbedderSettings(kind="ollama", url=server.url))
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(EmbedderUnavailable, match="NO_SUCH_KEY_VAR"):
        async with load_embedder(
            EmbedderSettings(kind="openai", url=server.url, model="m", api_key_env="NO_SUCH_KEY_VAR")
        ):
            pass
    assert server.requests == []
