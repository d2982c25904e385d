"""The reference `@modelcontextprotocol/server-everything`, installed with npm into a cache directory
once (like bench/ installs server-filesystem), and `mcp-nats attach` processes that never outlive a test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Final

import pytest

from .conftest import MCP_NATS, child_env

EVERYTHING: Final = "@modelcontextprotocol/server-everything"
EVERYTHING_VERSION: Final = "2026.8.31"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcp-nats-test"


def everything_entry() -> Path:
    """dist/index.js of the pinned server-everything; skips the test (naming the package) when npm cannot fetch it."""
    prefix = cache_dir() / "npm"
    pkg = prefix / "node_modules" / EVERYTHING
    entry = pkg / "dist" / "index.js"
    if entry.exists() and f'"version": "{EVERYTHING_VERSION}"' in (pkg / "package.json").read_text():
        return entry
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip(f"node/npm are not installed: {EVERYTHING} cannot be run")
    prefix.mkdir(parents=True, exist_ok=True)
    if not (prefix / "package.json").exists():
        (prefix / "package.json").write_text('{"name": "mcp-nats-test-servers", "private": true}\n')
    r = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--save-exact", f"{EVERYTHING}@{EVERYTHING_VERSION}"],
        cwd=prefix,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if r.returncode != 0 or not entry.exists():
        pytest.skip(f"npm could not install {EVERYTHING}@{EVERYTHING_VERSION}: {r.stderr[-300:]}")
    return entry


class Attached:
    """`mcp-nats attach` processes started by one test, stopped (SIGTERM, then SIGKILL) after it."""

    def __init__(self, url: str, root: str) -> None:
        self.url = url
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, service: str, command: list[str], *flags: str) -> subprocess.Popen[bytes]:
        argv = [
            MCP_NATS,
            "attach",
            service,
            "--nats-url",
            self.url,
            "--subject-root",
            self.root,
            "--log-level",
            "warning",
            *flags,
            "--",
            *command,
        ]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=child_env())
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
