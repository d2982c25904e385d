"""`python -m bench vector`: the vector service through the bridge, and the embedder alone.

- embeddings/s of the default embedder in this process (texts of about 100 tokens, batches of
  32), the load time to the first vector, and one short query's latency;
- `vector_store` and `vector_find` calls/s through `mcp-nats bridge` -> NATS -> one
  `mcp-nats serve vector` responder (embedded Qdrant in the rig's temporary directory), one
  call at a time and with 8 in flight. Every reply is checked for its marker.

mcp-server-qdrant is not measured here: it embeds with FastEmbed, which downloads its model
from the Hugging Face hub at first use; offline that fails after about 39 s (measured in
shared/reference/embeddings.md), and `QDRANT_LOCAL_PATH` does not change that.
"""

from __future__ import annotations

import json
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
        with StdioServer(bridge, env=None, stderr=rig.logs / "vector-bridge.err") as s:
            s.handshake("vector_store")
            half = n // 2
            rows.append(_phase_row("store", s.run(store, k=0, count=half)))
            rows.append(_phase_row("store", s.run(store, k=8, count=n - half)))
            m = 100 if quick else 500
            rows.append(_phase_row("find", s.run(find, k=0, count=m // 2)))
            rows.append(_phase_row("find", s.run(find, k=8, count=m)))
    finally:
        _stop(responder)
    lines = [
        f"embedder (all-MiniLM-L6-v2 int8 ONNX, in process): load {emb['load_s']:.2f} s, "
        f"{emb['emb_per_s_100tok_b32']:.1f} embeddings/s (100 tokens, batch 32), one query {emb['query_ms_median']:.1f} ms",
        "",
        "bridge -> NATS -> vector responder (embedded Qdrant, one process)",
        f"{'tool':<8}{'in flight':>10}{'ok':>7}{'fail':>6}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r['phase']:<8}{max(1, r['k']):>10}{r['ok']:>7}{r['failures']:>6}{r['calls_per_s']:>10}{r['p50_ms']:>9}{r['p99_ms']:>9}"
        )
    lines += [
        "",
        "mcp-server-qdrant: not measured (FastEmbed downloads its model at run time; offline it fails after ~39 s)",
    ]
    print("\n".join(lines) + "\n")
    print(json.dumps({"embedder": emb, "bridge": rows}, separators=(",", ":")))
    return 1 if any(r["failures"] for r in rows) else 0
