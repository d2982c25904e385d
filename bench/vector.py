"""`python -m bench vector`: the vector service through the bridge, and the embedder alone.

- embeddings/s of the default embedder in this process (texts of about 100 tokens, batches of
  32), the load time to the first vector, and one short query's latency;
- `vector_store` and `vector_find` calls/s through `mcp-nats bridge` -> NATS -> one
  `mcp-nats serve vector` responder (embedded Qdrant in the rig's temporary directory), one
  call at a time and with 8 in flight. Every reply is checked for its marker.

mcp-server-qdrant (direct stdio, `QDRANT_LOCAL_PATH`, the same calls) is measured only when
`MCP_SERVER_QDRANT` names its executable: it embeds with FastEmbed, which downloads its model
from the Hugging Face hub at first use, and offline that fails after about 39 s (embeddings.md).
It runs offline when `FASTEMBED_CACHE_PATH` holds a prepared hub-cache snapshot of
`Qdrant/all-MiniLM-L6-v2-onnx` (`models--Qdrant--all-MiniLM-L6-v2-onnx/refs/main` naming a
revision, `snapshots/<revision>/` with model.onnx, config.json, tokenizer.json,
tokenizer_config.json, special_tokens_map.json) and `HF_HUB_OFFLINE=1`; put the same int8
model.onnx there and both servers embed with the same weights.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

import anyio
import msgspec

from .rig import MCP_NATS, Rig, _stop
from .stdio_load import Phase, StdioServer, Workload

TOPICS = ["weather", "a train timetable", "the garden", "a database migration", "the football match", "a recipe for soup",
          "the quarterly budget", "a trip to Lisbon", "the new laptop", "a bird in the park"]  # fmt: skip


def _text(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return f"Note {i}: a short remark about {topic}, written on day {i % 31 + 1} by person {i % 17}."


async def _embedder_numbers(quick: bool) -> dict[str, float]:
    from responders.embeddings import load_embedder

    t0 = time.perf_counter()
    async with load_embedder() as e:
        await e.embed(["warm up"])
        load = time.perf_counter() - t0
        long = [
            ("The quick brown fox jumps over the lazy dog near the river bank while the sun sets. " * 5)
            + str(i)
            for i in range(64 if quick else 256)
        ]
        t0 = time.perf_counter()
        await e.embed(long)
        per_s = len(long) / (time.perf_counter() - t0)
        times = []
        for i in range(20 if quick else 100):
            t0 = time.perf_counter()
            await e.embed([f"what is the capital of country number {i}"])
            times.append(time.perf_counter() - t0)
    return {"load_s": load, "emb_per_s_100tok_b32": per_s, "query_ms_median": statistics.median(times) * 1000}


def _phase_row(name: str, p: Phase) -> dict[str, Any]:
    fails = sum(p.failures.values())
    return {"phase": name, "k": p.k, "ok": p.ok, "failures": fails, "calls_per_s": round(p.ops, 1),
            "p50_ms": round(p.pct(0.5) / 1000, 2), "p99_ms": round(p.pct(0.99) / 1000, 2)}  # fmt: skip


def _phases(
    s: StdioServer, store: Workload, find: Workload, n: int, m: int, rows: list[dict[str, Any]], who: str
) -> None:
    half = n // 2
    for name, work, k, count in (
        ("store", store, 0, half),
        ("store", store, 8, n - half),
        ("find", find, 0, m // 2),
        ("find", find, 8, m),
    ):
        row = _phase_row(name, s.run(work, k=k, count=count))
        rows.append({"server": who, **row})


def _reference(rig: Rig, store: Workload, find: Workload, n: int, m: int, rows: list[dict[str, Any]]) -> str:
    """mcp-server-qdrant over stdio with the same calls, when MCP_SERVER_QDRANT is set; else why not."""
    exe = os.environ.get("MCP_SERVER_QDRANT")
    if not exe:
        return (
            "mcp-server-qdrant: not measured; set MCP_SERVER_QDRANT to its executable and FASTEMBED_CACHE_PATH to a prepared "
            "offline model cache (its FastEmbed downloads the model at run time, which fails offline)"
        )
    env = {
        **os.environ,
        "QDRANT_LOCAL_PATH": str(rig.tmp / "mcpq"),
        "COLLECTION_NAME": "bench",
        "QDRANT_SEARCH_LIMIT": "5",
        "HF_HUB_OFFLINE": "1",
    }
    ref_store = Workload("tools/call", "qdrant-store", store.args, store.markers)
    ref_find = Workload(
        "tools/call",
        "qdrant-find",
        [msgspec.json.encode({"query": msgspec.json.decode(a)["query"]}) for a in find.args],
        find.markers,
    )
    with StdioServer([exe], env=env, stderr=rig.logs / "mcp-server-qdrant.err") as s:
        s.handshake("qdrant-store")
        _phases(s, ref_store, ref_find, n, m, rows, "mcp-server-qdrant")
    return "mcp-server-qdrant 0.8.1: direct stdio, QDRANT_LOCAL_PATH, FastEmbed from a prepared offline cache, QDRANT_SEARCH_LIMIT=5"


def vector_bench(rig: Rig, *, quick: bool = False) -> int:
    """Run the vector benchmark on `rig`'s nats-server; print a table and one JSON line. 1 if a call failed."""
    emb = anyio.run(_embedder_numbers, quick)
    root = rig.root + "vec"
    argv = [MCP_NATS, "serve", "vector", "--path", str(rig.tmp / "qdrant"), "--collection", "bench", "--nats-url", rig.url,
            "--subject-root", root, "--log-level", "warning"]  # fmt: skip
    responder = rig._spawn(argv, "vector.log", MCP_NATS_STATE_DIR=str(rig.tmp / "state"))
    rows: list[dict[str, Any]] = []
    try:
        rig._wait(root, "vector", 1, "vector.log")
        n = 100 if quick else 600
        store = Workload("tools/call", "vector_store",
                         [msgspec.json.encode({"information": _text(i), "metadata": {"i": i}}) for i in range(n)],
                         [b"Remembered: Note "] * n)  # fmt: skip
        queries = [f"something about {t}" for t in TOPICS]
        find = Workload("tools/call", "vector_find", [msgspec.json.encode({"query": q, "limit": 5}) for q in queries],
                        [b"Results for the query"] * len(queries))  # fmt: skip
        bridge = [MCP_NATS, "bridge", "--url", rig.url, "--subject-root", root]
        m = 100 if quick else 500
        with StdioServer(bridge, env=None, stderr=rig.logs / "vector-bridge.err") as s:
            s.handshake("vector_store")
            _phases(s, store, find, n, m, rows, "bridge")
        note = _reference(rig, store, find, n, m, rows)
    finally:
        _stop(responder)
    lines = [
        f"embedder (all-MiniLM-L6-v2 int8 ONNX, in process): load {emb['load_s']:.2f} s, "
        f"{emb['emb_per_s_100tok_b32']:.1f} embeddings/s (100 tokens, batch 32), one query {emb['query_ms_median']:.1f} ms",
        "",
        "bridge: mcp-nats bridge -> NATS -> vector responder (embedded Qdrant, one process); find with limit 5",
        note,
        "",
        f"{'server':<19}{'tool':<7}{'in flight':>10}{'ok':>6}{'fail':>6}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r['server']:<19}{r['phase']:<7}{max(1, r['k']):>10}{r['ok']:>6}{r['failures']:>6}"
            f"{r['calls_per_s']:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}"
        )
    print("\n".join(lines) + "\n")
    print(json.dumps({"embedder": emb, "bridge": rows}, separators=(",", ":")))
    return 1 if any(r["failures"] for r in rows) else 0
