"""The SQLite file behind the FTS5 backend, shared by every instance on the machine.

`Database.open(path)` owns one writer connection on one worker thread and a small pool of reader
connections on their own threads, so SQLite never runs on the event loop. The file is in WAL mode:
readers see the last committed batch while a writer works. Writers are serialised twice: within a
process by the single writer thread, across processes by SQLite's write lock (`BEGIN IMMEDIATE`,
waiting up to `busy_timeout`). Each `write` is one transaction, so no reader ever sees half a batch.

sqlite3's exceptions are translated here and nowhere else (`map_sqlite_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .errors import BackendFailed, BadQuery, NoSuchIndex

log = logging.getLogger(__name__)
T = TypeVar("T")
READERS = 2


@contextlib.contextmanager
def map_sqlite_errors(busy_timeout: float) -> Iterator[None]:
    """sqlite3 errors as the search service's ToolErrors (the one place that sees sqlite3's exceptions)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "no such table" in text:
            raise NoSuchIndex(text.rsplit("_", 1)[-1]) from exc  # dropped by another instance meanwhile
        if "locked" in text or "busy" in text:
            raise BackendFailed(
                f"the search index is locked by another writer for more than {busy_timeout:g} s; try again"
            ) from exc
        if "fts5" in text:
            raise BadQuery("", text) from exc
        raise BackendFailed(f"the search index failed: {text}") from exc
    except sqlite3.DatabaseError as exc:
        raise BackendFailed(f"the search index failed: {exc}") from exc


class Database:
    """One SQLite file: a writer thread and a pool of reader threads (see the module docstring)."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="search-writer")
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="search-reader")
        self._pool: queue.Queue[sqlite3.Connection] = queue.Queue()
        self._write_conn: sqlite3.Connection | None = None
        self._all: list[sqlite3.Connection] = []

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a commit survives a process crash
        self._all.append(conn)
        return conn

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, path: Path, *, busy_timeout: float, schema: Callable[[sqlite3.Connection], None]
    ) -> AsyncIterator[Database]:
        """Open (creating) the file in WAL mode, run `schema` in a write transaction, yield; on exit wait
        for the queries in flight and close every connection."""
        db = cls(path, busy_timeout)
        try:
            await db._run(db._writer, db._setup, schema)
            yield db
        finally:
            await asyncio.to_thread(db._shutdown)

    def _setup(self, schema: Callable[[sqlite3.Connection], None]) -> None:
        os.makedirs(self.path.parent, exist_ok=True)
        with map_sqlite_errors(self.busy_timeout):
            conn = self._connect()
            self._write_conn = conn
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise BackendFailed(f"{self.path} cannot be put in WAL mode (a network filesystem?)")
            self._transaction(conn, schema, immediate=True)
            for _ in range(READERS):
                self._pool.put(self._connect())

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        for conn in self._all:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _transaction(
        self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], *, immediate: bool
    ) -> T:
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._write_conn is not None
        with map_sqlite_errors(self.busy_timeout):
            return self._transaction(self._write_conn, fn, immediate=True)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._pool.get()
        try:
            with map_sqlite_errors(self.busy_timeout):
                return self._transaction(conn, fn, immediate=False)  # one snapshot for every statement
        finally:
            self._pool.put(conn)

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` as one write transaction on the writer thread (committed whole, or rolled back)."""
        return await self._run(self._writer, self._write, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one read transaction (a consistent snapshot) on a reader thread."""
        return await self._run(self._readers, self._read, fn)
