"""Auth on versus off in the same run (issue #11): `python -m bench auth`.

Two embedded servers side by side: one without auth, one in operator mode compiled from a policy
(services in their own account, the caller in the clients account importing them with
`share: true`, so every request crosses an import and carries `Nats-Request-Info`). One fs
responder on each (the secured one with its service credentials, rate limits on the seam), and a
sequential loop of `fs read_text_file` requests over the bus (no bridge), the configs interleaved
rep by rep. Prints p50/p90 per config and the ratio of the p50s.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from bus import EmbeddedServer, connect
from bus.authstore import AuthDir
from schemas.config import NatsSettings, Settings

from .nats_load import wait_instances

POLICY = '[roles.all]\nallow = ["*.*"]\n[identities.bench]\nroles = ["all"]\n'
ROOT = "bench"


def _serve(url: str, files: Path, creds: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "cli",
        "serve",
        "fs",
        "--nats-url",
        url,
        "--subject-root",
        ROOT,
        "--root",
        str(files),
        "--log-level",
        "warning",
    ]
    if creds:
        argv += ["--credentials", creds]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)


async def _wait(url: str, creds: str) -> None:
    if not creds:
        await wait_instances(url, ROOT, "fs", 1)
        return
    async with connect(
        NatsSettings(url=url, root=ROOT, credentials=creds), name="bench", ident="bench-wait"
    ) as bus:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if await bus.scatter(f"$SRV.PING.{ROOT}-fs", idle=0.1, limit=1.0):
                return
            await asyncio.sleep(0.05)
    raise TimeoutError("the secured fs responder did not come up")


async def _loop(url: str, creds: str, body: bytes, count: int, warmup: int) -> list[float]:
    settings = NatsSettings(url=url, root=ROOT, credentials=creds)
    async with connect(settings, name="bench", ident=f"bench-{os.getpid()}") as bus:
        subject = bus.subjects.tool_call("fs", "read_text_file")
        out: list[float] = []
        for i in range(warmup + count):
            t0 = time.perf_counter_ns()
            reply = await bus.request(subject, body, {"Mcp-Client": "bench"}, timeout=10.0)
            dt = (time.perf_counter_ns() - t0) / 1000
            if b"hello" not in reply.data:
                raise RuntimeError(f"unexpected reply: {reply.data[:200]!r}")
            if i >= warmup:
                out.append(dt)
        return out


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def auth_bench(reps: int = 3, count: int = 2000, warmup: int = 200) -> int:
    from cli.auth import compile_policy

    with tempfile.TemporaryDirectory(prefix="mcp-nats-bench-auth-") as tmp:
        base = Path(tmp)
        files = base / "files"
        files.mkdir()
        (files / "a.txt").write_text("hello\n")
        adir = AuthDir(base / "auth")
        compile_policy(Settings(nats=NatsSettings(root=ROOT)), adir, POLICY, "the bench policy")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_NATS_")} | {
            "MCP_NATS_STATE_DIR": str(base / "state")
        }
        servers = {
            "auth off": EmbeddedServer(base / "plain").start(),
            "auth on": EmbeddedServer(base / "secured", extra_config=adir.server_config()).start(),
        }
        creds = {
            "auth off": ("", ""),
            "auth on": (str(adir.service_creds("fs")), str(adir.user_creds("bench"))),
        }
        procs = [_serve(servers[k].url, files, creds[k][0], env) for k in servers]
        try:
            for k, srv in servers.items():
                asyncio.run(_wait(srv.url, str(adir.admin_creds) if creds[k][0] else ""))
            body = msgspec.json.encode(
                {"name": "read_text_file", "arguments": {"path": str(files / "a.txt")}}
            )
            p50s: dict[str, list[float]] = {k: [] for k in servers}
            p90s: dict[str, list[float]] = {k: [] for k in servers}
            for rep in range(reps):
                for k, srv in servers.items():
                    xs = asyncio.run(_loop(srv.url, creds[k][1], body, count, warmup))
                    p50s[k].append(_pct(xs, 0.5))
                    p90s[k].append(_pct(xs, 0.9))
                    print(
                        f"rep {rep + 1} {k:8}: p50 {p50s[k][-1]:7.1f} µs  p90 {p90s[k][-1]:7.1f} µs  ({count} sequential calls)"
                    )
            off, on = statistics.median(p50s["auth off"]), statistics.median(p50s["auth on"])
            print(
                f"\nmedian p50: auth off {off:.1f} µs, auth on {on:.1f} µs: ratio {on / off:.2f} ({on - off:+.1f} µs per round trip)"
            )
            print(
                f"median p90: auth off {statistics.median(p90s['auth off']):.1f} µs, auth on {statistics.median(p90s['auth on']):.1f} µs"
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            for srv in servers.values():
                srv.stop()
    return 0
