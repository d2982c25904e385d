"""Embedders that call a model server over HTTP: an OpenAI-compatible `/v1/embeddings` endpoint
(OpenAI, llama.cpp's server, vLLM, LiteLLM...) and Ollama's `/api/embed`.

Each owns one `httpx.AsyncClient` for its lifetime (`async with`); only the configured base URL
is contacted. httpx's exceptions are mapped to `EmbedderFailed` sentences in one place
(`map_http_errors`). Vectors are L2-normalised here, so every embedder returns unit vectors.
The dimension is learnt from the first reply (a probe on entry, when the server answers then).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Final, Self

import msgspec

from .errors import EmbedderFailed, EmbedderUnavailable
from .settings import EmbedderSettings

log = logging.getLogger(__name__)

BATCH: Final = 64


class _OpenAIItem(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class _OpenAIReply(msgspec.Struct):
    data: list[_OpenAIItem]


class _OllamaReply(msgspec.Struct):
    embeddings: list[list[float]]


_openai_decoder = msgspec.json.Decoder(_OpenAIReply)
_ollama_decoder = msgspec.json.Decoder(_OllamaReply)


def _unit(v: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in v))
    return [x / norm for x in v] if norm > 0 else v


class HttpEmbedder:
    """Base of the HTTP embedders: settings, the client, error mapping and the dimension."""

    kind: str = ""
    path: str = ""

    def __init__(self, settings: EmbedderSettings) -> None:
        if not settings.url:
            raise EmbedderUnavailable(f"the {settings.kind} embedder needs a base URL (embedder.url)")
        if not settings.model:
            raise EmbedderUnavailable(f"the {settings.kind} embedder needs a model name (embedder.model)")
        self.settings = settings
        self._dimension = 0
        self._client: Any = None
        self.url = settings.url.rstrip("/") + self.path

    @property
    def model(self) -> str:
        return f"{self.kind}:{self.settings.model}"

    @property
    def dimension(self) -> int:
        """The model's dimension, known after the first successful reply (0 before)."""
        return self._dimension

    def _headers(self) -> dict[str, str]:
        if not self.settings.api_key_env:
            return {}
        key = os.environ.get(self.settings.api_key_env, "")
        if not key:
            raise EmbedderUnavailable(
                f"the environment variable {self.settings.api_key_env} (embedder.api_key_env) is not set"
            )
        return {"Authorization": f"Bearer {key}"}

    @contextlib.contextmanager
    def map_http_errors(self) -> Iterator[None]:
        """httpx and decoding failures as one EmbedderFailed sentence naming the endpoint."""
        import httpx

        try:
            yield
        except httpx.TimeoutException as exc:
            raise EmbedderFailed(
                f"the embedding endpoint {self.url} did not answer within {self.settings.timeout:g} s"
            ) from exc
        except httpx.HTTPStatusError as exc:
            raise EmbedderFailed(
                f"the embedding endpoint {self.url} answered HTTP {exc.response.status_code}: {exc.response.text[:200]}"
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbedderFailed(f"cannot reach the embedding endpoint {self.url}: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise EmbedderFailed(
                f"the embedding endpoint {self.url} sent a reply that is not an embeddings response: {exc}"
            ) from exc

    def _body(self, texts: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def _vectors(self, content: bytes) -> list[list[float]]:
        raise NotImplementedError

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if self._client is None:
            raise EmbedderUnavailable(f"the {self.kind} embedder is used outside its `async with`")
        out: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            with self.map_http_errors():
                reply = await self._client.post(self.url, json=self._body(batch), headers=self._headers())
                reply.raise_for_status()
                vectors = self._vectors(reply.content)
            if len(vectors) != len(batch) or any(len(v) != len(vectors[0]) for v in vectors):
                raise EmbedderFailed(
                    f"the embedding endpoint {self.url} returned {len(vectors)} vectors for {len(batch)} texts"
                )
            out.extend(_unit(v) for v in vectors)
        if self._dimension == 0:
            self._dimension = len(out[0])
        elif len(out[0]) != self._dimension:
            raise EmbedderFailed(
                f"the embedding endpoint {self.url} changed dimension from {self._dimension} to {len(out[0])}"
            )
        return out

    async def __aenter__(self) -> Self:
        try:
            import httpx
        except ImportError as exc:
            raise EmbedderUnavailable(
                "the HTTP embedders need the Python module 'httpx', which is not installed; "
                "install it with: pip install 'mcp-nats[vector]'"
            ) from exc
        self._client = httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=False)
        try:
            await self.embed(["dimension probe"])
        except EmbedderFailed as exc:  # the server may come later; the first real call reports it then
            log.warning("embedder %s: %s", self.model, exc)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class OpenAIEmbedder(HttpEmbedder):
    """POST `<url>/v1/embeddings` `{"model", "input": [...]}`; reads `data[i].embedding` in `index` order."""

    kind = "openai"
    path = "/v1/embeddings"

    def __init__(self, settings: EmbedderSettings) -> None:
        base = settings.url.rstrip("/")
        if base.endswith("/v1"):  # both http://host:port and http://host:port/v1 are common spellings
            settings = msgspec.structs.replace(settings, url=base[: -len("/v1")])
        super().__init__(settings)

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self.settings.model, "input": texts, "encoding_format": "float"}

    def _vectors(self, content: bytes) -> list[list[float]]:
        items = sorted(_openai_decoder.decode(content).data, key=lambda item: item.index)
        return [item.embedding for item in items]


class OllamaEmbedder(HttpEmbedder):
    """POST `<url>/api/embed` `{"model", "input": [...]}`; reads `embeddings`."""

    kind = "ollama"
    path = "/api/embed"

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self.settings.model, "input": texts, "truncate": True}

    def _vectors(self, content: bytes) -> list[list[float]]:
        return _ollama_decoder.decode(content).embeddings
