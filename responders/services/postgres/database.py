"""The connection pool and the transaction every call runs in.

`Database.lifespan` is the service's lifespan: it opens the asyncpg pool before the instance
serves (checking the login role once, warning about dangerous privileges in read-only mode) and
closes it after drain. `Database.transaction` is the only way a tool reaches a connection:

- every connection starts (in its startup packet: no round trip) with `statement_timeout`,
  `idle_in_transaction_session_timeout` and `default_transaction_read_only = on` as its session
  defaults, the values `RESET ALL` returns to;
- read-only mode: `BEGIN READ ONLY` (what asyncpg's `transaction(readonly=True)` sends), the statement,
  then always `ROLLBACK`, which also undoes whatever the statement did to the session (SET, set_config,
  LISTEN, NOTIFY, cursors), with `pg_advisory_unlock_all()` in the same round trip for the one thing a
  rollback keeps (session advisory locks);
- write mode (`execute`): `BEGIN READ WRITE`, committed when the statement succeeds, then asyncpg's full
  reset (advisory locks released, cursors closed, UNLISTEN *, RESET ALL) in the same round trip, since
  a commit keeps what the statement did to the session;
- after a failure, or a statement that ended the transaction itself, the full reset runs before anyone
  else gets the connection (the pool's reset when the call was cancelled: it first waits for the server
  to confirm the cancel).

That is four round trips per call (BEGIN; Parse/Describe; Bind/Execute; the end), five statements for
PostgreSQL to run. The per-call `SET LOCAL`s an earlier version sent are the session defaults now,
which the ROLLBACK (or the reset) restores, so every call still starts with the configured timeouts.

Cancelling the call's task (a deadline, `notifications/cancelled`) makes asyncpg send a cancel
request, so the statement stops on the server too. Errors are mapped by `map_pg_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
import msgspec

from schemas.observe import BackendTracer, NoTracer

from ...plugin import ServiceRuntime
from ..dsn import Secrets, redact
from .errors import ConnectionLost, OneStatement, map_pg_errors
from .settings import PostgresSettings

log = logging.getLogger(__name__)

DANGEROUS_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
_ROLE_CHECK = """
SELECT r.rolsuper, r.rolbypassrls,
       ARRAY(SELECT g FROM unnest($1::text[]) AS g WHERE pg_has_role(current_user, g, 'USAGE')) AS granted
FROM pg_roles r WHERE r.rolname = current_user
"""


async def _init(conn: asyncpg.Connection) -> None:
    """Per connection: json and jsonb decoded to JSON values (msgspec), encoded from them for parameters."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=lambda v: msgspec.json.encode(v).decode(),
            decoder=msgspec.json.decode,
        )


class Database:
    """Owns the asyncpg pool of one service instance (see the module docstring)."""

    def __init__(self, settings: PostgresSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.secrets = Secrets(settings.url)
        self.shown_url = redact(settings.url)
        self.tracer: BackendTracer = NoTracer()
        self._pool: asyncpg.Pool | None = None
        self._clean: set[int] = set()
        """Backend pids of connections whose call ended with its own rollback and reset."""
        self.warnings: list[str] = []
        """What the role check found at start (superuser, server file/program roles)."""

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return map_pg_errors(self.secrets, timeout_s=self.settings.statement_timeout, service=self.service)

    @contextlib.asynccontextmanager
    async def lifespan(self, runtime: ServiceRuntime) -> AsyncIterator[None]:
        """Open the pool (connections are made on demand), check the role once, close the pool after drain."""
        self.tracer = runtime.tracer
        pool = asyncpg.create_pool(
            self.settings.url,
            min_size=0,
            max_size=self.settings.pool_size,
            init=_init,
            timeout=self.settings.connect_timeout,
            server_settings=self.session_defaults(runtime.instance),
            max_inactive_connection_lifetime=300.0,
            reset=self._reset,
        )
        with self.errors():
            await pool
        self._pool = pool
        try:
            await self._check_role()
            yield
        finally:
            self._pool = None
            try:
                async with asyncio.timeout(10):
                    await pool.close()
            except TimeoutError:
                log.warning("%s: closing the pool took over 10 s; terminating its connections", self.service)
                pool.terminate()

    def session_defaults(self, instance: str) -> dict[str, str]:
        """What every connection's startup packet sets: the session defaults RESET ALL returns to."""
        return {
            "application_name": f"mcp-nats {self.service} {instance}"[:63],
            "statement_timeout": str(int(self.settings.statement_timeout * 1000)),
            "idle_in_transaction_session_timeout": str(int(self.settings.idle_in_transaction_timeout * 1000)),
            # a second lock: a statement outside our BEGIN (there is none) would be read-only too
            "default_transaction_read_only": "on",
        }

    async def _check_role(self) -> None:
        try:
            with self.errors():
                async with self.pool().acquire(timeout=self.settings.connect_timeout) as conn:
                    row = await conn.fetchrow(_ROLE_CHECK, list(DANGEROUS_ROLES))
                    version = conn.get_server_version()
        except ConnectionLost as exc:
            log.warning(
                "%s: cannot connect to %s yet: %s (each call retries)", self.service, self.shown_url, exc
            )
            return
        log.info(
            "%s: connected to %s (PostgreSQL %d.%d)",
            self.service,
            self.shown_url,
            version.major,
            version.minor,
        )
        if row is None or self.settings.write:
            return
        self.warnings = ["superuser"] if row["rolsuper"] else list(row["granted"])
        if self.warnings:
            log.warning(
                "%s: read-only mode, but the login role has %s: read-only transactions do not stop it from reading "
                "server files or running programs (COPY ... TO PROGRAM, pg_read_file). Connect as a role without them "
                "(see the README: the mcp_reader role)",
                self.service,
                " and ".join(self.warnings),
            )

    async def _reset(self, conn: asyncpg.Connection) -> None:
        """The pool's reset on release (after asyncpg has rolled back an open transaction): nothing to do for a
        call that ended cleanly (it reset the session itself); otherwise asyncpg's reset query (session advisory
        locks released, cursors closed, UNLISTEN *, RESET ALL). Nothing a call did reaches the next call."""
        pid = conn.get_server_pid()
        if pid in self._clean:
            self._clean.discard(pid)
            return
        await conn.execute(conn.get_reset_query())

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ConnectionLost(
                f"the {self.service} service is not connected to its database (starting or stopping)"
            )
        return self._pool

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside this call's transaction (READ ONLY unless `write`); see the module docstring.
        Raises OneStatement when the statement ended the transaction itself (COMMIT, ROLLBACK, PREPARE TRANSACTION)."""
        readonly = not write or not self.settings.write
        with (
            self.errors(),
            self.tracer.span("postgres.transaction", {"db.system": "postgresql", "db.readonly": readonly}),
        ):
            async with self.pool().acquire(timeout=self.settings.connect_timeout) as conn:
                self._clean.discard(conn.get_server_pid())  # a stale mark (a closed connection's reused pid)
                # What asyncpg's transaction(readonly=True) sends: our own text, never the caller's.
                await conn.execute("BEGIN READ ONLY" if readonly else "BEGIN READ WRITE")
                try:
                    yield conn
                    if not conn.is_in_transaction():
                        raise OneStatement(
                            "the statement ended the call's transaction (COMMIT, ROLLBACK, END or PREPARE TRANSACTION): "
                            "transaction control is not allowed; every call is its own transaction"
                        )
                except Exception:
                    # Roll back and reset here (a cancelled call leaves that to the pool, which waits for the
                    # server to confirm the cancel first); a connection that cannot is dropped by the pool.
                    with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                        await self._end(conn, "ROLLBACK;\n" if conn.is_in_transaction() else "", full=True)
                    raise
                if readonly:
                    await self._end(conn, "ROLLBACK;\n", full=False)
                else:
                    await self._end(conn, "COMMIT;\n", full=True)

    async def _end(self, conn: asyncpg.Connection, verb: str, *, full: bool) -> None:
        """End the transaction and reset the session in one round trip (after a rollback only the session
        advisory locks can be left; otherwise asyncpg's full reset); the pool's reset then knows (by the
        backend pid) that this connection is clean."""
        if conn.is_closed():
            return
        await conn.execute(verb + (conn.get_reset_query() if full else "SELECT pg_advisory_unlock_all()"))
        self._clean.add(conn.get_server_pid())
