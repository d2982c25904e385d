"""The default search backend: SQLite FTS5 in one file in the state dir.

Per index `n` (its row in `indices`): `docs_n` holds the documents (id, title, text, metadata JSON,
source path, embedding as float32 bytes); `fts_n` is an external-content FTS5 table over title and
text (porter stemming, unicode61), kept in step by triggers; `files_n` remembers the modification
stamp of every file `index_paths` indexed. Ranking is FTS5's BM25 with a title weight; snippets
come from FTS5's `snippet()`. All SQL runs on Database's worker threads.
"""

from __future__ import annotations

import array
import heapq
import json
import math
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from .backend import FileChunks, Page, Vectors
from .database import Database
from .errors import EmbedderMismatch, NoSuchIndex
from .outputs import Document, Field, Hit, IndexInfo
from .query import Node, to_fts5

MARK = ("<mark>", "</mark>")
EXCERPT = 300


def schema(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS indices (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, "
        "created REAL NOT NULL, model TEXT, dimension INTEGER)"
    )


def _create_index(conn: sqlite3.Connection, name: str) -> int:
    n = int(
        conn.execute(
            "INSERT INTO indices (name, created) VALUES (?, ?) RETURNING id", (name, time.time())
        ).fetchone()[0]
    )
    statements = (
        f"CREATE TABLE docs_{n} (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, title TEXT NOT NULL, "
        "text TEXT NOT NULL, metadata TEXT, path TEXT, vector BLOB)",
        f"CREATE INDEX docs_{n}_path ON docs_{n} (path) WHERE path IS NOT NULL",
        f"CREATE VIRTUAL TABLE fts_{n} USING fts5 (title, text, content='docs_{n}', content_rowid='rowid', "
        "tokenize='porter unicode61')",
        f"CREATE TRIGGER docs_{n}_ai AFTER INSERT ON docs_{n} BEGIN "
        f"INSERT INTO fts_{n} (rowid, title, text) VALUES (new.rowid, new.title, new.text); END",
        f"CREATE TRIGGER docs_{n}_ad AFTER DELETE ON docs_{n} BEGIN "
        f"INSERT INTO fts_{n} (fts_{n}, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text); END",
        f"CREATE TRIGGER docs_{n}_au AFTER UPDATE ON docs_{n} BEGIN "
        f"INSERT INTO fts_{n} (fts_{n}, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text); "
        f"INSERT INTO fts_{n} (rowid, title, text) VALUES (new.rowid, new.title, new.text); END",
        f"CREATE TABLE files_{n} (path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL)",
    )
    for statement in statements:  # not executescript: it would commit the open transaction
        conn.execute(statement)
    return n


def _lookup(conn: sqlite3.Connection, name: str) -> tuple[int, str | None, int | None]:
    row = conn.execute("SELECT id, model, dimension FROM indices WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NoSuchIndex(name)
    return int(row[0]), row[1], row[2]


def _writable(conn: sqlite3.Connection, name: str, vectors: Vectors | None) -> int:
    """The index's number (created if new), after checking that `vectors` fit the index's embedder."""
    row = conn.execute("SELECT id, model, dimension FROM indices WHERE name = ?", (name,)).fetchone()
    if row is None:
        n = _create_index(conn, name)
        if vectors is not None:
            conn.execute(
                "UPDATE indices SET model = ?, dimension = ? WHERE id = ?",
                (vectors.model, vectors.dimension, n),
            )
        return n
    n, model, dim = int(row[0]), row[1], row[2]
    if vectors is None and model is not None:
        raise EmbedderMismatch(
            f"index {name!r} is a hybrid index embedded with {model} ({dim} dimensions); "
            "write to it from a search service started with hybrid = true and the same embedder"
        )
    if vectors is not None and model is None:
        if conn.execute(f"SELECT 1 FROM docs_{n} LIMIT 1").fetchone() is not None:
            raise EmbedderMismatch(
                f"index {name!r} was built without embeddings; hybrid mode needs every document embedded: "
                "index into a new index"
            )
        conn.execute(
            "UPDATE indices SET model = ?, dimension = ? WHERE id = ?", (vectors.model, vectors.dimension, n)
        )
    elif vectors is not None and (model, dim) != (vectors.model, vectors.dimension):
        raise EmbedderMismatch(
            f"index {name!r} is embedded with {model} ({dim} dimensions), this service embeds with "
            f"{vectors.model} ({vectors.dimension} dimensions)"
        )
    return n


def _pack(v: Sequence[float]) -> bytes:
    return array.array("f", v).tobytes()


def _insert(
    conn: sqlite3.Connection, n: int, docs: Sequence[Document], vectors: Vectors | None, path: str | None
) -> None:
    rows = [
        (
            d.id,
            d.title,
            d.text,
            json.dumps(d.metadata) if d.metadata is not None else None,
            path,
            _pack(vectors.values[i]) if vectors is not None else None,
        )
        for i, d in enumerate(docs)
    ]
    conn.executemany(
        f"INSERT INTO docs_{n} (id, title, text, metadata, path, vector) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET title = excluded.title, text = excluded.text, "
        "metadata = excluded.metadata, path = excluded.path, vector = excluded.vector",
        rows,
    )


def _match(query: Node, fields: Sequence[Field]) -> str:
    expr = to_fts5(query)
    if fields and set(fields) != {"title", "text"}:
        return "{" + " ".join(fields) + "} : " + expr
    return expr


def _fragments(snip: str | None) -> list[str]:
    return [snip] if snip and MARK[0] in snip else []


class FtsBackend:
    """SearchBackend on SQLite FTS5 (see the module docstring). The Database is owned by the service's lifespan."""

    kind = "sqlite"

    def __init__(self, db: Database, *, title_weight: float) -> None:
        self.db = db
        self.title_weight = title_weight

    async def list_indices(self) -> list[IndexInfo]:
        def run(conn: sqlite3.Connection) -> list[IndexInfo]:
            out = []
            for n, name, model, dim in conn.execute(
                "SELECT id, name, model, dimension FROM indices ORDER BY name"
            ).fetchall():
                docs = conn.execute(f"SELECT count(*) FROM docs_{n}").fetchone()[0]
                out.append(IndexInfo(name=name, documents=docs, embedder=model, dimension=dim))
            return out

        return await self.db.read(run)

    async def index_documents(self, index: str, docs: Sequence[Document], vectors: Vectors | None) -> int:
        def run(conn: sqlite3.Connection) -> int:
            _insert(conn, _writable(conn, index, vectors), docs, vectors, None)
            return len(docs)

        return await self.db.write(run)

    async def search(
        self, index: str, query: Node, *, size: int, offset: int, fields: Sequence[Field], highlight: bool
    ) -> Page:
        match = _match(query, fields)
        rank = f"bm25({float(self.title_weight)!r}, 1.0)"

        def run(conn: sqlite3.Connection) -> Page:
            n, _, _ = _lookup(conn, index)
            total = conn.execute(f"SELECT count(*) FROM fts_{n} WHERE fts_{n} MATCH ?", (match,)).fetchone()[
                0
            ]
            # FTS5's own `rank` ordering (configured as weighted bm25) sorts inside the extension, and
            # snippets are computed for the rows returned only: 3x faster than ORDER BY bm25() here
            rows = conn.execute(
                f"SELECT d.id, d.title, d.metadata, fts_{n}.rank, "
                f"snippet(fts_{n}, 0, ?, ?, '…', 12), snippet(fts_{n}, 1, ?, ?, '…', 24), substr(d.text, 1, ?) "
                f"FROM fts_{n} JOIN docs_{n} d ON d.rowid = fts_{n}.rowid WHERE fts_{n} MATCH ? AND fts_{n}.rank MATCH ? "
                f"ORDER BY fts_{n}.rank LIMIT ? OFFSET ?",
                (*MARK, *MARK, EXCERPT, match, rank, size, offset),
            ).fetchall()
            hits = []
            for doc_id, title, meta, score, s_title, s_text, excerpt in rows:
                hit = Hit(id=doc_id, score=-score, title=title, metadata=json.loads(meta) if meta else None)
                if highlight:
                    hl = {
                        f: frags
                        for f, frags in (("title", _fragments(s_title)), ("text", _fragments(s_text)))
                        if frags
                    }
                    hit.highlights = hl
                else:
                    hit.excerpt = excerpt
                hits.append(hit)
            return Page(total=total, hits=hits)

        return await self.db.read(run)

    async def count(self, index: str, query: Node | None) -> int:
        def run(conn: sqlite3.Connection) -> int:
            n, _, _ = _lookup(conn, index)
            if query is None:
                return int(conn.execute(f"SELECT count(*) FROM docs_{n}").fetchone()[0])
            return int(
                conn.execute(
                    f"SELECT count(*) FROM fts_{n} WHERE fts_{n} MATCH ?", (to_fts5(query),)
                ).fetchone()[0]
            )

        return await self.db.read(run)

    async def get_documents(self, index: str, ids: Sequence[str]) -> list[Document]:
        def run(conn: sqlite3.Connection) -> list[Document]:
            n, _, _ = _lookup(conn, index)
            found: dict[str, Document] = {}
            for doc_id, title, text, meta in conn.execute(
                f"SELECT id, title, text, metadata FROM docs_{n} WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids)),),
            ):
                found[doc_id] = Document(
                    id=doc_id, title=title, text=text, metadata=json.loads(meta) if meta else None
                )
            return [found[i] for i in ids if i in found]

        return await self.db.read(run)

    async def delete_documents(self, index: str, ids: Sequence[str]) -> int:
        def run(conn: sqlite3.Connection) -> int:
            n, _, _ = _lookup(conn, index)
            cur = conn.execute(
                f"DELETE FROM docs_{n} WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
            )
            return cur.rowcount

        return await self.db.write(run)

    async def delete_index(self, index: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT id FROM indices WHERE name = ?", (index,)).fetchone()
            if row is None:
                return False
            n = int(row[0])
            for table in (f"fts_{n}", f"docs_{n}", f"files_{n}"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute("DELETE FROM indices WHERE id = ?", (n,))
            return True

        return await self.db.write(run)

    async def file_states(self, index: str) -> dict[str, tuple[int, int]]:
        def run(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
            row = conn.execute("SELECT id FROM indices WHERE name = ?", (index,)).fetchone()
            if row is None:
                return {}
            return {
                p: (m, s) for p, m, s in conn.execute(f"SELECT path, mtime_ns, size FROM files_{int(row[0])}")
            }

        return await self.db.read(run)

    async def apply_files(self, index: str, changed: Sequence[FileChunks], removed: Sequence[str]) -> int:
        vectors = next((f.vectors for f in changed if f.vectors is not None), None)

        def run(conn: sqlite3.Connection) -> int:
            n = _writable(conn, index, vectors)
            written = 0
            for path in [*removed, *(f.path for f in changed)]:
                conn.execute(f"DELETE FROM docs_{n} WHERE path = ?", (path,))
                conn.execute(f"DELETE FROM files_{n} WHERE path = ?", (path,))
            for f in changed:
                _insert(conn, n, f.docs, f.vectors, f.path)
                conn.execute(
                    f"INSERT INTO files_{n} (path, mtime_ns, size) VALUES (?, ?, ?)",
                    (f.path, f.mtime_ns, f.size),
                )
                written += len(f.docs)
            return written

        return await self.db.write(run)

    async def nearest(
        self, index: str, vector: Sequence[float], model: str, k: int
    ) -> list[tuple[str, float]]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, float]]:
            n, have, dim = _lookup(conn, index)
            if have is None:
                raise EmbedderMismatch(
                    f"index {index!r} has no embeddings (it was not built by a hybrid search service)"
                )
            if have != model or dim != len(vector):
                raise EmbedderMismatch(
                    f"index {index!r} is embedded with {have} ({dim} dimensions), the query with {model} ({len(vector)} dimensions)"
                )
            rows = conn.execute(f"SELECT id, vector FROM docs_{n} WHERE vector IS NOT NULL").fetchall()
            return _top_k(vector, rows, k)

        return await self.db.read(run)


def _top_k(query: Sequence[float], rows: list[tuple[str, bytes]], k: int) -> list[tuple[str, float]]:
    """Cosine similarity of `query` with each stored vector; the k best, best first (numpy when installed)."""
    if not rows:
        return []
    try:
        import numpy as np
    except ImportError:
        q = list(query)
        qn = math.sqrt(sum(x * x for x in q)) or 1.0
        scored = []
        for doc_id, blob in rows:
            v = array.array("f")
            v.frombytes(blob)
            vn = math.sqrt(sum(x * x for x in v)) or 1.0
            scored.append((sum(a * b for a, b in zip(q, v, strict=True)) / (qn * vn), doc_id))
        return [(d, s) for s, d in heapq.nlargest(k, scored)]
    matrix: Any = np.frombuffer(b"".join(b for _, b in rows), dtype=np.float32).reshape(len(rows), -1)
    qv: Any = np.asarray(query, dtype=np.float32)
    sims = matrix @ qv / ((np.linalg.norm(matrix, axis=1) * (np.linalg.norm(qv) or 1.0)) + 1e-12)
    best = np.argsort(-sims)[:k]
    return [(rows[int(i)][0], float(sims[int(i)])) for i in best]
