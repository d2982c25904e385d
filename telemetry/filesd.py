"""Prometheus file-based service discovery: each process writes its own target file.

`<state_dir>/prometheus/<name>.json` holds `[{"targets": ["HOST:PORT"], "labels": {...}}]`, the
format of Prometheus' `file_sd_configs`. Owns the file: `with sd_target(...)` writes it atomically
(a temporary file renamed over it, so Prometheus never reads half a file), and removes it on exit.
Before writing, files whose `pid` label names a process that no longer runs on this machine are
removed (left by a process that was killed); files Prometheus cannot use are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import msgspec

log = logging.getLogger(__name__)

SD_DIR: Final = "prometheus"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]")


class _Group(msgspec.Struct, frozen=True):
    targets: list[str]
    labels: dict[str, str] = {}


_decode = msgspec.json.Decoder(list[_Group]).decode
_encode = msgspec.json.Encoder().encode


def sd_dir(state_dir: Path) -> Path:
    """The directory `infra/prometheus.yml` points file_sd_configs at."""
    return state_dir / SD_DIR


def target_address(host: str, port: int) -> str:
    """HOST:PORT as Prometheus should dial it: a wildcard bind is reached on loopback."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(directory: Path) -> list[Path]:
    """Remove target files whose process is gone; returns what was removed."""
    removed: list[Path] = []
    try:
        paths = sorted(directory.glob("*.json"))
    except OSError:
        return removed
    for path in paths:
        try:
            groups = _decode(path.read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        pids = [g.labels.get("pid", "") for g in groups]
        if pids and all(p.isdigit() and not _alive(int(p)) for p in pids):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    if removed:
        log.info("removed %d stale Prometheus target file(s) from %s", len(removed), directory)
    return removed


@contextlib.contextmanager
def sd_target(state_dir: Path, name: str, address: str, labels: Mapping[str, str]) -> Iterator[Path]:
    """Write this process's target file for the life of the block; yields its path.

    `name` makes the file unique (e.g. `responder-fs-<instance>`); a `pid` label is added."""
    directory = sd_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale(directory)
    pid = os.getpid()
    path = directory / f"{_UNSAFE.sub('_', name)}.json"
    tmp = directory / f".{path.name}.{pid}.tmp"
    body = _encode([_Group(targets=[address], labels={**labels, "pid": str(pid)})])
    tmp.write_bytes(body + b"\n")
    os.replace(tmp, path)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
