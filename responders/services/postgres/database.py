"""The connection pool and the transaction every call runs in.

`Database.lifespan` is the service's lifespan: it opens the asyncpg pool before the instance
serves (checking the login role once, warning about dangerous privileges in read-only mode) and
closes it after drain. `Database.transaction` is the only way a tool reaches a connection:

- every connection starts (in its startup packet: no round trip) with `statement_timeout`,
  `idle_in_transaction_session_timeout` and `default_transaction_read_only = on` as its session
  defaults, the values `RESET ALL` returns to;
- the driver keeps no named statements (asyncpg's statement cache is off): they share a namespace with
  SQL `PREPARE`/`DEALLOCATE`, so a call could drop them or put its own statement under their name for a
  later call's schema tool to run;
- read-only mode: `BEGIN READ ONLY` (what asyncpg's `transaction(readonly=True)` sends), the statement,
  then always `ROLLBACK`, which also undoes whatever the statement did to the session (SET, set_config,
  SET ROLE, LISTEN, NOTIFY, cursors). In the same round trip (`_END_READ`), the three things a rollback
  keeps: session advisory locks (`pg_advisory_unlock_all()`), SQL `PREPARE`d statements (`DEALLOCATE
  ALL`: a DO block can prepare too, so no command tag tells) and random()'s seed (`setseed`, `SET seed`:
  reseeded from our own random number every call);
- write mode (`execute`): `BEGIN READ WRITE`, committed when the statement succeeds, then the full reset
  (`_FULL_RESET`: settings first, then role, locks, seed, cursors, listens, prepared statements, temp
  tables and currval: what `DISCARD ALL` does, which cannot run in a transaction block) in the same round
  trip, since a commit keeps what the statement did to the session;
- after a failure, or a statement that ended the transaction itself (COMMIT, also AND CHAIN), the full
  reset runs before anyone else gets the connection (the pool's reset when the call was cancelled: it
  first waits for the server to confirm the cancel).

That is four round trips per call (BEGIN; Parse/Describe; Bind/Execute; the end), five statements for
PostgreSQL to run. The per-call `SET LOCAL`s an earlier version sent are the session defaults now,
which the ROLLBACK (or the reset) restores, so every call still starts with the configured timeouts.
What no reset undoes: custom settings a call created (`set_config('x.y', ...)`) stay defined, empty,
after the rollback (PostgreSQL keeps such placeholders for the session's life).

Cancelling the call's task (a deadline, `notifications/cancelled`) makes asyncpg send a cancel
request, so the statement stops on the server too. Errors are mapped by `map_pg_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

import asyncpg
import msgspec

from schemas.observe import BackendTracer, NoTracer

from ...plugin import ServiceRuntime
from ..dsn import Secrets, redact
from .errors import ENDED_TRANSACTION, ConnectionLost, OneStatement, map_pg_errors
from .settings import PostgresSettings

log = logging.getLogger(__name__)

DANGEROUS_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
_ROLE_CHECK = """
SELECT r.rolsuper, r.rolbypassrls,
       ARRAY(SELECT g FROM unnest($1::text[]) AS g WHERE pg_has_role(current_user, g, 'USAGE')) AS granted
FROM pg_roles r WHERE r.rolname = current_user
"""

_END_READ = (
    "ROLLBACK;\nSELECT pg_catalog.pg_advisory_unlock_all(), pg_catalog.setseed({seed});\nDEALLOCATE ALL"
)
"""After a read: what a ROLLBACK keeps (session advisory locks, PREPAREd statements, random()'s seed)."""
_FULL_RESET = (
    "RESET ALL;\nRESET SESSION AUTHORIZATION;\nRESET ROLE;\n"
    "SELECT pg_catalog.pg_advisory_unlock_all(), pg_catalog.setseed({seed});\n"
    "CLOSE ALL;\nUNLISTEN *;\nDEALLOCATE ALL;\nDISCARD TEMP;\nDISCARD SEQUENCES"
)
"""After a commit or a failure: DISCARD ALL's parts (it refuses a transaction block, which a message of several
statements is), settings first, so a committed search_path or timeout cannot bend the rest; functions qualified."""


def _expected_reset(record: logging.LogRecord) -> bool:
    """Drop asyncpg's "Resetting connection with an active transaction" (logged as an asyncio ERROR): a cancelled
    call leaves its BEGIN open on purpose, for the pool to roll back once the server has confirmed the cancel."""
    return not record.getMessage().startswith("Resetting connection with an active transaction")


def _seed() -> str:
    """A fresh seed for random() (setseed takes -1..1), from the OS: no earlier call can know it."""
    return repr(secrets.randbits(52) / (1 << 52))


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
            statement_cache_size=0,  # no named statements: see the module docstring
            max_inactive_connection_lifetime=300.0,
            reset=self._reset,
        )
        with self.errors():
            await pool
        self._pool = pool
        asyncio_log = logging.getLogger("asyncio")
        asyncio_log.addFilter(_expected_reset)
        try:
            await self._check_role()
            yield
        finally:
            asyncio_log.removeFilter(_expected_reset)
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
            "%s: connected to %s (PostgreSQL %s)",
            self.service,
            self.shown_url,
            # since PostgreSQL 10 the second number is the patch level, which asyncpg calls micro
            f"{version.major}.{version.micro}" if version.major >= 10 else f"{version.major}.{version.minor}",
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
        call that ended cleanly (it reset the session itself); otherwise the full reset (see the module
        docstring). Nothing a call did reaches the next call."""
        pid = conn.get_server_pid()
        if pid in self._clean:
            self._clean.discard(pid)
            return
        await conn.execute(_FULL_RESET.format(seed=_seed()))

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ConnectionLost(
                f"the {self.service} service is not connected to its database (starting or stopping)"
            )
        return self._pool

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside this call's transaction (READ ONLY unless `write`); see the module docstring.
        Raises OneStatement when the statement ended the transaction itself (COMMIT, ROLLBACK, PREPARE TRANSACTION;
        `fetch_capped` refuses the AND CHAIN forms, which leave a new transaction open)."""
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
                        raise OneStatement(ENDED_TRANSACTION)
                except Exception:
                    # Roll back and reset here (a cancelled call leaves that to the pool, which waits for the
                    # server to confirm the cancel first); a connection that cannot is dropped by the pool.
                    with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                        await self._end(
                            conn, ("ROLLBACK;\n" if conn.is_in_transaction() else "") + _FULL_RESET
                        )
                    raise
                await self._end(conn, _END_READ if readonly else "COMMIT;\n" + _FULL_RESET)

    async def _end(self, conn: asyncpg.Connection, sql: str) -> None:
        """End the transaction and reset the session in one round trip (`sql`: `_END_READ`, or the end of the
        transaction and `_FULL_RESET`); the pool's reset then knows (by the backend pid) that this connection
        is clean."""
        if conn.is_closed():
            return
        await conn.execute(sql.format(seed=_seed()))
        self._clean.add(conn.get_server_pid())
