"""The benchmark's world: a data directory, its own nats-server, responder processes, baselines.

Owns every process it starts (nats-server via bus.EmbeddedServer, `mcp-nats serve fs`, the
`bench` echo responders) and stops them all on exit, responders first so they drain. The
baselines are installed from their registries: `@modelcontextprotocol/server-filesystem`
with npm into a cache directory (run with `node` directly), the Python SDK server from the
virtualenv's `mcp`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import uvloop

from bus import EmbeddedServer
from bus.embedded import die_with_parent

from .nats_load import wait_instances
from .stdio_load import Workload

FS_PACKAGE: Final = "@modelcontextprotocol/server-filesystem"
FS_VERSION: Final = "2026.8.31"  # the version performance.md measured
FILES: Final = 1024
FILE_BYTES: Final = 1024
BIN: Final = Path(sys.executable).parent
MCP_NATS: Final = str(BIN / "mcp-nats")
REPO: Final = Path(__file__).resolve().parent.parent


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcp-nats-bench"


def child_env(code: Path | None = None) -> dict[str, str]:
    """The environment of every child: no MCP_NATS_* from the caller (the config refuses unknown keys)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_NATS_")}
    if code is not None:
        env["PYTHONPATH"] = str(
            code
        )  # before the editable install's finder, so another checkout can be measured
    return env


def make_data(root: Path) -> tuple[list[bytes], list[bytes]]:
    """FILES text files of FILE_BYTES bytes, each starting with its own marker; (JSON args, markers)."""
    root.mkdir(parents=True, exist_ok=True)
    args: list[bytes] = []
    markers: list[bytes] = []
    for i in range(FILES):
        marker = b"MARK-%04d-" % i
        path = root / f"f{i:04d}.txt"
        body = (marker + b"abcdefghijklmnopqrstuvwxyz0123456789 " * 40)[: FILE_BYTES - 1] + b"\n"
        path.write_bytes(body)
        args.append(b'{"path":"%s"}' % str(path).encode())
        markers.append(marker)
    return args, markers


def npm_install(cache: Path, version: str, package: str = FS_PACKAGE) -> Path:
    """A reference server's entry point (`package`, by default server-filesystem), installed with npm into
    `cache` once. Raises RuntimeError."""
    prefix = cache / "npm"
    entry = prefix / "node_modules" / package / "dist" / "index.js"
    pkg = prefix / "node_modules" / package / "package.json"
    if entry.exists() and f'"version": "{version}"' in pkg.read_text():
        return entry
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is not installed; the reference server {package} cannot be installed")
    prefix.mkdir(parents=True, exist_ok=True)
    manifest = prefix / "package.json"
    if not manifest.exists():
        manifest.write_text('{"name": "mcp-nats-bench-baselines", "private": true}\n')
    r = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--save-exact", f"{package}@{version}"],
        cwd=prefix,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if r.returncode != 0 or not entry.exists():
        raise RuntimeError(f"npm install {package}@{version} failed: {r.stderr[-800:]}")
    return entry


@dataclass
class Target:
    """A stdio server under test: how to start it, which tool to call, which other processes work for it."""

    name: str
    label: str
    argv: list[str]
    tool: str
    env: dict[str, str]
    cwd: str | None = None
    helpers: dict[str, int] = field(default_factory=dict)
    """Processes behind the server (responder, nats-server): their CPU counts toward each call."""


class Rig:
    """Owns the temporary directory, the nats-server and every responder; `with Rig(...) as rig:`."""

    def __init__(self, *, code: Path | None, cache: Path, fs_version: str, keep: bool = False) -> None:
        self.code = code
        self.cache = cache
        self.fs_version = fs_version
        self.keep = keep
        self.root = "bench" + uuid.uuid4().hex[:8]
        self.tmp = Path(tempfile.mkdtemp(prefix="mcp-nats-bench-"))
        self.data = self.tmp / "data"
        self.logs = self.tmp / "logs"
        self.logs.mkdir()
        self.args, self.markers = make_data(self.data)
        self.server: EmbeddedServer | None = None
        self.fs: list[subprocess.Popen[bytes]] = []
        self.fs_plain: subprocess.Popen[bytes] | None = None
        """An fs responder with the audit log off, under its own subject root (None: this code has no audit)."""
        self.plain_root = self.root + "na"
        self.echo: list[subprocess.Popen[bytes]] = []
        self.echo_plain: subprocess.Popen[bytes] | None = None
        self.notes: list[str] = []

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Rig:
        return self.start()

    def start(self) -> Rig:
        """Start the server and the responders; on any failure stop what started and re-raise."""
        try:
            self.server = EmbeddedServer(self.tmp / "nats", http_port=-1).start()
            self.start_fs()
            if _has_audit():
                self.start_fs_plain()
            self.start_echo()
            if self.fs_plain is not None:
                self.start_echo_plain()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for p in [*self.echo, *self.fs, *[x for x in (self.fs_plain, self.echo_plain) if x is not None]]:
            _stop(p)
        self.fs_plain = self.echo_plain = None
        self.echo.clear()
        self.fs.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def nats_pid(self) -> int:
        assert self.server is not None and self.server.process is not None
        return self.server.process.pid

    def _spawn(self, argv: list[str], log: str, **env: str) -> subprocess.Popen[bytes]:
        with open(self.logs / log, "ab") as err:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env={**child_env(self.code), **env},
                cwd=REPO,
                preexec_fn=die_with_parent,
            )

    def start_fs_plain(self) -> subprocess.Popen[bytes]:
        argv = [
            MCP_NATS,
            "serve",
            "fs",
            "--config",
            str(self.no_audit_config()),
            "--root",
            str(self.data),
            "--url",
            self.url,
            "--subject-root",
            self.plain_root,
            "--log-level",
            "warning",
        ]
        self.fs_plain = self._spawn(argv, "fs-plain.log", MCP_NATS_STATE_DIR=str(self.tmp / "state"))
        self._wait(self.plain_root, "fs", 1, "fs-plain.log")
        return self.fs_plain

    def no_audit_config(self) -> Path:
        config = self.tmp / "no-audit.toml"
        config.write_text("[audit]\nenabled = false\n")
        return config

    def start_echo_plain(self) -> subprocess.Popen[bytes]:
        """An echo responder with the audit log off, under the audit-off subject root."""
        self.echo_plain = self._spawn(
            [sys.executable, "-m", "bench.echo_service", self.url, self.plain_root],
            "echo-plain.log",
            MCP_NATS_STATE_DIR=str(self.tmp / "state"),
            MCP_NATS_CONFIG=str(self.no_audit_config()),
        )
        self._wait(self.plain_root, "bench", 1, "echo-plain.log")
        return self.echo_plain

    def _wait(self, root: str, svc: str, count: int, log: str) -> None:
        try:
            uvloop.run(wait_instances(self.url, root, svc, count))
        except TimeoutError as exc:
            tail = (self.logs / log).read_bytes()[-1500:].decode(errors="replace")
            raise RuntimeError(f"{exc}; {log}:\n{tail}") from None

    def start_fs(self) -> subprocess.Popen[bytes]:
        argv = [
            MCP_NATS,
            "serve",
            "fs",
            "--root",
            str(self.data),
            "--url",
            self.url,
            "--subject-root",
            self.root,
            "--log-level",
            "warning",
        ]
        p = self._spawn(argv, f"fs-{len(self.fs) + 1}.log", MCP_NATS_STATE_DIR=str(self.tmp / "state"))
        self.fs.append(p)
        self._wait(self.root, "fs", len(self.fs), f"fs-{len(self.fs)}.log")
        return p

    def start_echo(self) -> subprocess.Popen[bytes]:
        p = self._spawn(
            [sys.executable, "-m", "bench.echo_service", self.url, self.root],
            f"echo-{len(self.echo) + 1}.log",
            MCP_NATS_STATE_DIR=str(self.tmp / "state"),
        )
        self.echo.append(p)
        self._wait(self.root, "bench", len(self.echo), f"echo-{len(self.echo)}.log")
        return p

    def stop_echo_beyond(self, n: int) -> None:
        while len(self.echo) > n:
            _stop(self.echo.pop())
        uvloop.run(wait_instances(self.url, self.root, "bench", n))

    # -- targets ----------------------------------------------------------------------------

    def bridge(self) -> Target:
        """The bridge in front of the default fs responder (with the JetStream audit log, when the code has one)."""
        audit = " + JetStream audit" if self.fs_plain is not None else ""
        return Target(
            "bridge",
            f"mcp-nats bridge -> NATS -> fs responder{audit}",
            [MCP_NATS, "bridge", "--url", self.url, "--subject-root", self.root],
            "fs_read_text_file",
            child_env(self.code),
            helpers={"responder": self.fs[0].pid, "nats-server": self.nats_pid},
        )

    def bridge_plain(self) -> Target | None:
        """The bridge in front of an fs responder with the audit log off (None when the code has no audit log)."""
        if self.fs_plain is None:
            return None
        return Target(
            "bridge-noaudit",
            "mcp-nats bridge -> NATS -> fs responder, audit off",
            [MCP_NATS, "bridge", "--url", self.url, "--subject-root", self.plain_root],
            "fs_read_text_file",
            child_env(self.code),
            helpers={"responder": self.fs_plain.pid, "nats-server": self.nats_pid},
        )

    def node_fs(self) -> Target | None:
        node = shutil.which("node")
        if node is None:
            self.notes.append("node is not installed: the reference filesystem server was not measured")
            return None
        try:
            entry = npm_install(self.cache, self.fs_version)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            self.notes.append(f"reference filesystem server not measured: {exc}")
            return None
        return Target(
            "node-fs",
            f"server-filesystem {self.fs_version} (node, direct stdio)",
            [node, str(entry), str(self.data)],
            "read_text_file",
            child_env(),
        )

    def npx_fs(self) -> Target | None:
        npx = shutil.which("npx")
        if npx is None or self.node_fs() is None:
            return None
        env = child_env()
        env["npm_config_offline"] = "true"  # the local install, nothing fetched
        return Target(
            "npx-fs",
            "server-filesystem via npx -y (local install, offline)",
            [npx, "-y", f"{FS_PACKAGE}@{self.fs_version}", str(self.data)],
            "read_text_file",
            env,
            cwd=str(self.cache / "npm"),
        )

    def sdk(self) -> Target:
        import mcp  # noqa: F401 - fail here, with a clear ImportError, if the test extras are missing

        return Target(
            "sdk",
            "Python mcp SDK MCPServer (direct stdio)",
            [sys.executable, "-m", "bench.sdk_server"],
            "read_file",
            child_env(),
            cwd=str(REPO),
        )

    def read_workload(self, target: Target) -> Workload:
        return Workload("tools/call", target.tool, self.args, self.markers)


def _has_audit() -> bool:
    """Whether this code has the JetStream audit log (issue #5), which can then be switched off for a row."""
    import msgspec

    from schemas.config import Settings

    return any(f.name == "audit" for f in msgspec.structs.fields(Settings))


def _stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
