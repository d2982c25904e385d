"""Real PostgreSQL and Redis servers for the database service tests.

PostgreSQL: `MCP_NATS_TEST_PG_URL` (an admin URL; the word `throwaway` skips the next step), else the machine's server at 127.0.0.1:5432
(user postgres), else a throwaway cluster from the installed binaries (initdb + pg_ctl, as user
postgres when we are root), else None with the reason. Redis: `MCP_NATS_TEST_REDIS_URL`, else a
throwaway `redis-server` on a free port, else None. Throwaway servers bind 127.0.0.1, live in a
temporary directory and are stopped by whoever started them.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(url: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _pg_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        candidates.insert(0, str(Path(out) / "initdb"))
    if shutil.which("initdb"):
        candidates.insert(0, str(shutil.which("initdb")))
    for c in candidates:
        if Path(c).is_file() and (Path(c).parent / "pg_ctl").is_file():
            return Path(c).parent
    return None


@contextlib.contextmanager
def postgres_admin_url() -> Iterator[str | None]:
    """An admin URL for a PostgreSQL server (see the module docstring); None when there is none, with
    `postgres_admin_url.reason` set."""
    env = os.environ.get("MCP_NATS_TEST_PG_URL", "")
    if env and env != "throwaway":
        yield env
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if env != "throwaway" and _reachable(local):
        yield local
        return
    bindir = _pg_bindir()
    if bindir is None:
        missing.reason = "no PostgreSQL: set MCP_NATS_TEST_PG_URL, run a server on 127.0.0.1:5432, or install initdb (Debian: postgresql)"
        yield None
        return
    with _throwaway_postgres(bindir) as url:
        yield url


class missing:  # noqa: N801 - a namespace for the last skip reason
    reason = ""


@contextlib.contextmanager
def _throwaway_postgres(bindir: Path) -> Iterator[str]:
    root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="mcp-nats-pg-"))
    run_as: list[str] = []
    if root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True, timeout=30)
        shutil.chown(base, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200"
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            opts,
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def redis_url() -> Iterator[str | None]:
    """A Redis URL: `MCP_NATS_TEST_REDIS_URL`, else a throwaway redis-server, else None (reason in `missing`)."""
    env = os.environ.get("MCP_NATS_TEST_REDIS_URL")
    if env:
        yield env
        return
    binary = shutil.which("redis-server")
    if binary is None:
        missing.reason = (
            "no Redis: set MCP_NATS_TEST_REDIS_URL or install redis-server (Debian: redis-server)"
        )
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="mcp-nats-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(base),
            "--requirepass",
            "redis-test-secret",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if proc.poll() is not None:
                raise RuntimeError("redis-server exited at start")
            time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not listen within 20 s")
        yield f"redis://:redis-test-secret@127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(base, ignore_errors=True)
