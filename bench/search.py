"""`python -m bench search`: queries/s of the search service on a 10,000-document FTS5 index, through the bridge.

Starts its own nats-server and `mcp-nats serve search` processes (1, then 2, sharing one index file),
indexes a deterministic synthetic corpus through the bridge (500 documents per index_documents call),
then drives `search_search` with the stdio load generator, sequentially and with K calls in flight.
Every response must carry a hit (`"hits":[{`), so a failing query cannot look fast.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import uvloop

from bus import EmbeddedServer

from .nats_load import wait_instances
from .rig import MCP_NATS, REPO, _stop, child_env
from .stdio_load import StdioServer, Workload

DOCS = 10_000
BATCH = 500
QUERIES = 500
VOCAB = 3000


def corpus(seed: int = 7) -> tuple[list[dict[str, str]], list[bytes]]:
    """DOCS documents of Zipf-distributed words (title 3 words, text 80) and QUERIES two-word queries (JSON args):
    half AND, half OR, of words taken from one document (so each query has a hit), skipping the 50 most frequent."""
    rng = random.Random(seed)
    words = [f"w{i:04d}" + "".join(rng.choice("aeioulmnrst") for _ in range(3)) for i in range(VOCAB)]
    weights = [1.0 / (i + 1) for i in range(VOCAB)]
    docs = []
    for i in range(DOCS):
        title = " ".join(rng.choices(words, weights, k=3))
        text = " ".join(rng.choices(words, weights, k=80))
        docs.append({"id": f"d{i}", "title": title, "text": text})
    queries = []
    for i in range(QUERIES):  # words of one document, outside the 50 most frequent (no stop words)
        d = [w for w in docs[rng.randrange(DOCS)]["text"].split() if int(w[1:5]) >= 50] or words[50:52]
        a, b = rng.choice(d), rng.choice(d)
        queries.append(
            json.dumps({"index": "bench", "query": f"{a} {b}" if i % 2 else f"{a} OR {b}"}).encode()
        )
    return docs, queries


def _say(msg: str) -> None:
    sys.stderr.write(f"[bench search {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def bench_search(*, quick: bool = False) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="mcp-nats-bench-search-"))
    root = "bs" + uuid.uuid4().hex[:8]
    server = EmbeddedServer(tmp / "nats", http_port=-1).start()
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[dict[str, object]] = []
    docs, queries = corpus()
    count = 300 if quick else 3000
    try:

        def spawn() -> None:
            argv = [
                MCP_NATS,
                "serve",
                "search",
                "--index-file",
                str(tmp / "search.db"),
                "--root",
                str(tmp),
                "--nats-url",
                server.url,
                "--subject-root",
                root,
                "--log-level",
                "warning",
            ]
            with open(tmp / f"search-{len(procs)}.log", "ab") as err:
                procs.append(
                    subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=child_env(), cwd=REPO
                    )
                )
            uvloop.run(wait_instances(server.url, root, "search", len(procs)))

        spawn()
        bridge = [MCP_NATS, "bridge", "--url", server.url, "--subject-root", root]
        with StdioServer(bridge, env=child_env(), stderr=tmp / "bridge.err") as s:
            s.handshake("search_search")
            t0 = time.perf_counter()
            for i in range(0, DOCS, BATCH):
                raw, _ = s.rpc(
                    "tools/call",
                    {
                        "name": "search_index_documents",
                        "arguments": {"index": "bench", "documents": docs[i : i + BATCH]},
                    },
                    timeout=120,
                )
                if b'"isError":true' in raw:
                    raise RuntimeError(f"indexing failed: {raw[:300]!r}")
            index_s = time.perf_counter() - t0
            _say(f"indexed {DOCS} documents in {index_s:.1f} s ({DOCS / index_s:.0f} docs/s)")
            work = Workload("tools/call", "search_search", queries, [b'"hits":[{'])
            for instances in (1, 2):
                while len(procs) < instances:
                    spawn()
                for k in (0, 8, 32):
                    s.run(work, k=k, count=count // 5)
                    phase = s.run(work, k=k, count=count)
                    row = {
                        "instances": instances,
                        "mode": "seq" if k == 0 else f"K={k}",
                        "ok": phase.ok,
                        "failures": dict(phase.failures),
                        "qps": round(phase.ops, 1),
                        "p50_ms": round(phase.pct(0.5) / 1000, 2),
                        "p99_ms": round(phase.pct(0.99) / 1000, 2),
                    }
                    rows.append(row)
                    _say(
                        f"{instances} instance(s) {row['mode']:5} {row['qps']:7.0f} queries/s  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms"
                    )
        doc = {"bench": "search", "docs": DOCS, "index_docs_per_s": round(DOCS / index_s, 1), "rows": rows}
    finally:
        for p in procs:
            _stop(p)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        f"search on a {DOCS}-document FTS5 index through the bridge (indexing: {doc['index_docs_per_s']} docs/s)",
        "instances  mode    queries/s   p50 ms   p99 ms",
    ]
    lines += [
        f"{r['instances']:9}  {r['mode']:5} {r['qps']:11} {r['p50_ms']:8} {r['p99_ms']:8}" for r in rows
    ]
    sys.stdout.write("\n".join(lines) + "\n\n" + json.dumps(doc, separators=(",", ":")) + "\n")
    return 1 if any(r["failures"] for r in rows) else 0
