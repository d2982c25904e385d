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
from .stdio_load import LoadError, Phase, StdioServer, Workload

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


def _row(who: str, name: str, phases: list[Phase]) -> dict[str, Any]:
    """The median repetition (by calls/s) of one phase, with every repetition's calls/s."""
    ordered = sorted(phases, key=lambda p: p.ops)
    p = ordered[len(ordered) // 2]
    return {"server": who, "phase": name, "k": p.k, "ok": sum(x.ok for x in phases),
            "failures": sum(sum(x.failures.values()) for x in phases), "calls_per_s": round(p.ops, 1),
            "all_calls_per_s": [round(x.ops, 1) for x in phases],
            "p50_ms": round(p.pct(0.5) / 1000, 2), "p99_ms": round(p.pct(0.99) / 1000, 2)}  # fmt: skip


class _Server:
    """One server under test and its two workloads."""

    def __init__(self, who: str, proc: StdioServer, store: Workload, find: Workload) -> None:
        self.who, self.proc, self.store, self.find = who, proc, store, find


def _reference(rig: Rig, store: Workload, find: Workload) -> tuple[_Server | None, str]:
    """mcp-server-qdrant over stdio with the same calls, when MCP_SERVER_QDRANT is set; else why not."""
    exe = os.environ.get("MCP_SERVER_QDRANT")
    if not exe:
        return None, (
            "mcp-server-qdrant: not measured; set MCP_SERVER_QDRANT to its executable and FASTEMBED_CACHE_PATH to a prepared "
            "offline model cache (its FastEmbed downloads the model at run time, which fails offline)"
        )
    env = {**os.environ, "QDRANT_LOCAL_PATH": str(rig.tmp / "mcpq"), "COLLECTION_NAME": "bench", "QDRANT_SEARCH_LIMIT": "5",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    ref_store = Workload("tools/call", "qdrant-store", store.args, store.markers)
    queries = [msgspec.json.encode({"query": msgspec.json.decode(a)["query"]}) for a in find.args]
    ref_find = Workload("tools/call", "qdrant-find", queries, find.markers)
    proc = StdioServer([exe], env=env, stderr=rig.logs / "mcp-server-qdrant.err")
    try:
        proc.spawn().handshake("qdrant-store")
    except LoadError as exc:
        proc.close()
        return (
            None,
            f"mcp-server-qdrant did not start (is FASTEMBED_CACHE_PATH a prepared offline cache?): {exc}",
        )
    note = "mcp-server-qdrant 0.8.1: direct stdio, QDRANT_LOCAL_PATH, FastEmbed from a prepared offline cache, QDRANT_SEARCH_LIMIT=5"
    return _Server("mcp-server-qdrant", proc, ref_store, ref_find), note


def vector_bench(rig: Rig, *, quick: bool = False, reps: int = 3) -> int:
    """Run the vector benchmark on `rig`'s nats-server; print a table and one JSON line. 1 if a call failed.

    Each phase runs on every server in turn, `reps` times (interleaved, so a busy machine hurts
    both alike); the table shows the median repetition."""
    reps = 1 if quick else reps
    emb = anyio.run(_embedder_numbers, quick)
    root = rig.root + "vec"
    argv = [MCP_NATS, "serve", "vector", "--path", str(rig.tmp / "qdrant"), "--collection", "bench", "--nats-url", rig.url,
            "--subject-root", root, "--log-level", "warning"]  # fmt: skip
    responder = rig._spawn(argv, "vector.log", MCP_NATS_STATE_DIR=str(rig.tmp / "state"))
    rows: list[dict[str, Any]] = []
    servers: list[_Server] = []
    try:
        rig._wait(root, "vector", 1, "vector.log")
        n = 50 if quick else 150
        m = 50 if quick else 200
        store = Workload("tools/call", "vector_store",
                         [msgspec.json.encode({"information": _text(i), "metadata": {"i": i}}) for i in range(n * 2 * reps)],
                         [b"Remembered: Note "] * (n * 2 * reps))  # fmt: skip
        queries = [f"something about {t}" for t in TOPICS]
        find = Workload("tools/call", "vector_find", [msgspec.json.encode({"query": q, "limit": 5}) for q in queries],
                        [b"Results for the query"] * len(queries))  # fmt: skip
        bridge = StdioServer(
            [MCP_NATS, "bridge", "--url", rig.url, "--subject-root", root],
            stderr=rig.logs / "vector-bridge.err",
        ).spawn()
        servers.append(_Server("bridge", bridge, store, find))
        bridge.handshake("vector_store")
        ref, note = _reference(rig, store, find)
        if ref is not None:
            servers.append(ref)
        for name, k, count in (("store", 0, n), ("store", 8, n), ("find", 0, m), ("find", 8, m)):
            results: dict[str, list[Phase]] = {sv.who: [] for sv in servers}
            for _ in range(reps):
                for sv in servers:
                    results[sv.who].append(
                        sv.proc.run(sv.store if name == "store" else sv.find, k=k, count=count)
                    )
            rows += [_row(who, name, phases) for who, phases in results.items()]
    finally:
        for sv in servers:
            sv.proc.close()
        _stop(responder)
    lines = [
        f"embedder (all-MiniLM-L6-v2 int8 ONNX, in process): load {emb['load_s']:.2f} s, "
        f"{emb['emb_per_s_100tok_b32']:.1f} embeddings/s (100 tokens, batch 32), one query {emb['query_ms_median']:.1f} ms",
        "",
        "bridge: mcp-nats bridge -> NATS -> vector responder (embedded Qdrant, one process); find with limit 5",
        note,
        "",
        f"{'server':<19}{'tool':<7}{'in flight':>10}{'ok':>6}{'fail':>6}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}   calls/s per rep",
    ]
    for r in rows:
        lines.append(
            f"{r['server']:<19}{r['phase']:<7}{max(1, r['k']):>10}{r['ok']:>6}{r['failures']:>6}"
            f"{r['calls_per_s']:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}   {r['all_calls_per_s']}"
        )
    print("\n".join(lines) + "\n")
    print(json.dumps({"embedder": emb, "bridge": rows}, separators=(",", ":")))
    return 1 if any(r["failures"] for r in rows) else 0
