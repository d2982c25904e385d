"""`python -m bench` (also `make bench`): run the benchmark, print the tables and one JSON line.

    python -m bench                 # 3 interleaved repetitions (about 10 minutes on 2 vCPUs)
    python -m bench --quick         # 1 short repetition, to check that everything works
    python -m bench profile         # py-spy profiles of the bridge and the fs responder at K=64
    python -m bench latency         # where a sequential call's time goes, process by process
    python -m bench auth            # auth on versus off (operator mode, crossing the import), same run
    python -m bench vector          # the vector service through the bridge (store, find) and embeddings/s
    python -m bench search          # search queries/s on a 10,000-document index through the bridge
    python -m bench postgres        # one-row primary-key query: bridge vs @modelcontextprotocol/server-postgres

Exit status: 0 when every call succeeded (whether or not the targets were met), 1 when a
call failed, 2 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bus import EmbeddedServerError

from .rig import FS_VERSION, REPO, Rig, default_cache


def _git(code: Path) -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=code,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return rev + ("-dirty" if dirty else "") if rev else "unknown"


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPU {model}, Linux {platform.release()}, Python {platform.python_version()}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark the mcp-nats bridge against direct stdio MCP servers."
    )
    p.add_argument(
        "command", nargs="?", default="run", choices=("run", "profile", "latency", "auth", "vector", "search")
    )
    p.add_argument(
        "--quick", action="store_true", help="one short repetition (a smoke run; numbers are rough)"
    )
    p.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    p.add_argument(
        "--only",
        default="bridge,node-fs,sdk,npx,nats,scaling",
        help="comma-separated parts: bridge, node-fs, sdk, npx (cold start only), nats, scaling",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        help="where npm installs the reference server (default: %(default)s)",
    )
    p.add_argument(
        "--fs-version",
        default=FS_VERSION,
        help="@modelcontextprotocol/server-filesystem version (default: %(default)s)",
    )
    p.add_argument(
        "--code",
        type=Path,
        help="measure the mcp-nats packages of another checkout (put first on PYTHONPATH)",
    )
    p.add_argument("--json-out", type=Path, help="also write the full JSON document here")
    p.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, data) for inspection"
    )
    p.add_argument(
        "--seconds", type=float, default=15.0, help="profile: seconds of sampling (default: %(default)s)"
    )
    p.add_argument("--rate", type=int, default=250, help="profile: samples per second (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["postgres"]:
        from .postgres import main as postgres

        return postgres(raw[1:])
    args = _parser().parse_args(argv)
    if args.command == "auth":
        from .auth import auth_bench

        return auth_bench(reps=args.reps or (1 if args.quick else 3), count=500 if args.quick else 2000)
    if args.command == "search":  # its own nats-server and responders; none of the fs rig
        from .search import bench_search

        return bench_search(quick=args.quick)
    code = args.code.resolve() if args.code else None
    meta = {
        "git": _git(code or REPO),
        "code": str(code or REPO),
        "machine": _machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    try:
        rig = Rig(code=code, cache=args.cache, fs_version=args.fs_version, keep=args.keep)
    except OSError as exc:
        sys.stderr.write(f"bench: cannot set up: {exc}\n")
        return 2
    try:
        rig.start()
    except (RuntimeError, OSError, EmbeddedServerError) as exc:
        sys.stderr.write(f"bench: cannot set up: {exc}\n")
        return 2
    try:
        if args.command == "profile":
            from .profile import profile

            return profile(rig, seconds=args.seconds, rate=args.rate)
        if args.command == "vector":
            from .vector import vector_bench

            return vector_bench(rig, quick=args.quick, reps=args.reps or 3)
        if args.command == "latency":
            from .latency import latency

            return latency(
                rig, reps=args.reps or (1 if args.quick else 3), count=1000 if args.quick else 2000
            )
        from .report import render
        from .run import Plan, run

        plan = Plan.quick() if args.quick else Plan()
        if args.reps:
            plan = Plan(**{**plan.__dict__, "reps": args.reps})
        only = {x.strip() for x in args.only.split(",") if x.strip()}
        candidates = [
            rig.bridge() if "bridge" in only else None,
            rig.bridge_plain() if "bridge" in only else None,
            rig.node_fs() if "node-fs" in only else None,
            rig.sdk() if "sdk" in only else None,
        ]
        targets = [t for t in candidates if t is not None]
        npx = rig.npx_fs() if "npx" in only else None
        res = run(rig, plan, targets, [npx] if npx else [], nats="nats" in only, scaling="scaling" in only)
        labels = {t.name: t.label for t in targets}
        if npx is not None:
            labels[npx.name] = npx.label
        labels["nats-echo"] = "bench echo responder(s)"
        text, doc = render(res, plan, labels, meta)
    finally:
        rig.close()
    sys.stdout.write(text + "\n\n")
    line = json.dumps(doc, separators=(",", ":"), default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if args.json_out:
        args.json_out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    failed = sum(sum(p["failures"].values()) for p in doc["phases"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
