"""`mcp-nats backup DIR` and `mcp-nats restore DIR`: the audit stream, the events stream, the memory
bucket and the auth directory, as JetStream snapshots plus files, with a manifest.

    DIR/manifest.json            what was saved: per stream its config, message count, sequences,
                                 file size and SHA-256; per auth file its mode, size and SHA-256
    DIR/streams/<STREAM>.snap    the server's own snapshot of the stream (s2-compressed tar)
    DIR/auth/...                 <state_dir>/auth as it was (keys and credentials: keep DIR private)

A backup writes into an empty or new DIR (mode 0700). A restore checks every checksum first,
refuses to overwrite a stream or an auth file that exists unless `--replace`, restores, and
checks that each stream holds the messages the manifest counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from schemas.config import Settings

from .config import resolve_url, state_dir

log = logging.getLogger("mcp-nats")

FORMAT: Final = 1


class StreamEntry(msgspec.Struct, kw_only=True):
    name: str
    kind: str
    file: str
    size: int
    sha256: str
    messages: int
    first_seq: int
    last_seq: int
    config: dict[str, Any]
    state: dict[str, Any]


class FileEntry(msgspec.Struct, kw_only=True):
    path: str
    mode: int
    size: int
    sha256: str


class Manifest(msgspec.Struct, kw_only=True):
    format: int
    created: str
    root: str
    server_version: str
    streams: list[StreamEntry]
    files: list[FileEntry]
    absent: list[str] = []
    """Streams that did not exist when the backup ran (nothing to save)."""


def add_parsers(sub: Any, common: Callable[..., None]) -> None:
    b = sub.add_parser(
        "backup",
        help="save the audit and events streams, the memory bucket and the auth directory into DIR",
        description="Snapshot the audit stream, the events stream and the memory bucket (JetStream snapshots) and copy "
        "<state_dir>/auth into DIR, with a manifest of counts and SHA-256 checksums. DIR must be new or empty.",
    )
    common(b)
    b.add_argument("dir", metavar="DIR")
    b.add_argument("--state-dir", help="where the auth directory lives (default: $XDG_STATE_HOME/mcp-nats)")
    b.add_argument(
        "--memory-bucket",
        help="the memory service's KV bucket (default: [memory] bucket, else <root>-memory)",
    )
    r = sub.add_parser(
        "restore",
        help="restore what `mcp-nats backup` saved in DIR into a server (and the state directory)",
        description="Check every checksum in DIR's manifest, then restore the streams into the server and the auth "
        "files into <state_dir>/auth. Existing streams or files are refused unless --replace.",
    )
    common(r)
    r.add_argument("dir", metavar="DIR")
    r.add_argument("--state-dir", help="where to put the auth directory (default: $XDG_STATE_HOME/mcp-nats)")
    r.add_argument(
        "--replace", action="store_true", help="delete streams and overwrite auth files that exist"
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _streams(settings: Settings, bucket: str | None) -> list[tuple[str, str]]:
    from bus import audit_stream, events_stream

    root = settings.nats.root
    memory = settings.services.get("memory")
    configured = getattr(memory, "bucket", "") if memory is not None else ""
    return [
        ("audit", audit_stream(root, settings.audit).name),
        ("events", events_stream(root, settings.events).name),
        ("memory", f"KV_{bucket or configured or f'{root}-memory'}"),
    ]


async def backup(settings: Settings, target: Path, *, bucket: str | None = None) -> Manifest:
    """Write a backup into `target` (new or empty). Raises BusError, or ValueError for a non-empty target."""
    from bus import StreamNotFound, connect, snapshot_stream

    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{target} is not empty; back up into a new directory")
    (target / "streams").mkdir(parents=True, exist_ok=True, mode=0o700)
    target.chmod(0o700)
    streams: list[StreamEntry] = []
    absent: list[str] = []
    async with connect(settings.nats, name="mcp-nats backup", ident=f"backup{os.getpid()}") as bus:
        version = bus.server.version
        for kind, name in _streams(settings, bucket):
            file = target / "streams" / f"{name}.snap"
            try:
                snap = await snapshot_stream(bus, name, file)
            except StreamNotFound:
                log.info("no stream %s: nothing to save for %s", name, kind)
                absent.append(name)
                continue
            st = snap.state
            streams.append(
                StreamEntry(
                    name=name,
                    kind=kind,
                    file=str(file.relative_to(target)),
                    size=snap.size,
                    sha256=snap.sha256,
                    messages=int(st.get("messages", 0)),
                    first_seq=int(st.get("first_seq", 0)),
                    last_seq=int(st.get("last_seq", 0)),
                    config=snap.config,
                    state=snap.state,
                )
            )
            log.info("saved %s (%s): %d messages, %d bytes", name, kind, streams[-1].messages, snap.size)
    files: list[FileEntry] = []
    auth = state_dir(settings) / "auth"
    if auth.is_dir():
        for src in sorted(p for p in auth.rglob("*") if p.is_file()):
            rel = src.relative_to(auth)
            dst = target / "auth" / rel
            dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(src, dst)
            mode = src.stat().st_mode & 0o777
            dst.chmod(mode)
            files.append(
                FileEntry(
                    path=str(Path("auth") / rel), mode=mode, size=dst.stat().st_size, sha256=_sha256(dst)
                )
            )
    manifest = Manifest(
        format=FORMAT,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        root=settings.nats.root,
        server_version=str(version),
        streams=streams,
        files=files,
        absent=absent,
    )
    tmp = target / ".manifest.json.partial"
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    tmp.replace(target / "manifest.json")  # the manifest appears last: a backup without one is incomplete
    return manifest


def verify(source: Path) -> Manifest:
    """The manifest, after checking that every file it names has its size and checksum. Raises ValueError."""
    try:
        manifest = msgspec.json.decode((source / "manifest.json").read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise ValueError(f"{source} has no manifest.json: not a backup, or an incomplete one") from None
    except msgspec.ValidationError as exc:
        raise ValueError(f"{source}/manifest.json is not a backup manifest: {exc}") from None
    if manifest.format != FORMAT:
        raise ValueError(f"backup format {manifest.format} is not supported (this version reads {FORMAT})")
    for name, size, digest in [(s.file, s.size, s.sha256) for s in manifest.streams] + [
        (f.path, f.size, f.sha256) for f in manifest.files
    ]:
        path = source / name
        if not path.is_file() or path.stat().st_size != size or _sha256(path) != digest:
            raise ValueError(
                f"{path} is missing or does not match its checksum in the manifest; refusing to restore"
            )
    return manifest


async def restore(settings: Settings, source: Path, *, replace: bool = False) -> Manifest:
    """Restore a verified backup. Raises ValueError (bad backup, something exists) or BusError."""
    from bus import JetStream, JetStreamError, StreamNotFound, connect, delete_stream, restore_stream

    manifest = verify(source)
    auth = state_dir(settings) / "auth"
    if not replace:
        clashes = [f.path for f in manifest.files if (auth.parent / f.path).exists()]
        if clashes:
            raise ValueError(f"{auth.parent / clashes[0]} exists; restore with --replace to overwrite")
    async with connect(settings.nats, name="mcp-nats restore", ident=f"restore{os.getpid()}") as bus:
        js = JetStream(bus)
        for s in manifest.streams:
            try:
                await js.stream_state(s.name)
                exists = True
            except StreamNotFound:
                exists = False
            if exists and not replace:
                raise ValueError(
                    f"stream {s.name} exists in the server; restore with --replace to delete it first"
                )
            if exists:
                await delete_stream(bus, s.name)
                log.warning("deleted stream %s to restore it", s.name)
            state = await restore_stream(bus, s.name, source / s.file, s.config, s.state)
            if int(state.get("messages", -1)) != s.messages or int(state.get("last_seq", -1)) != s.last_seq:
                raise JetStreamError(
                    f"{s.name} restored with {state.get('messages')} messages up to {state.get('last_seq')}, "
                    f"the backup had {s.messages} up to {s.last_seq}"
                )
            log.info("restored %s (%s): %d messages", s.name, s.kind, s.messages)
    for f in manifest.files:
        dst = auth.parent / f.path
        dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = dst.with_name(f".{dst.name}.partial")
        shutil.copyfile(source / f.path, tmp)
        tmp.chmod(f.mode)
        tmp.replace(dst)
    return manifest


def backup_command(args: argparse.Namespace, settings: Settings) -> int:
    from bus import BusError

    from .main import _run

    settings = msgspec.structs.replace(
        settings, nats=msgspec.structs.replace(settings.nats, url=resolve_url(settings))
    )
    target = Path(args.dir)
    holder: list[Manifest] = []

    async def go() -> None:
        if args.command == "backup":
            holder.append(await backup(settings, target, bucket=args.memory_bucket))
        else:
            holder.append(await restore(settings, target, replace=args.replace))

    try:
        _run(go())
    except (ValueError, OSError, BusError) as exc:
        log.error("%s failed: %s", args.command, exc)
        return 1
    m = holder[0]
    done = "saved" if args.command == "backup" else "restored"
    for s in m.streams:
        log.info(
            "%s %s: %d messages (seq %d..%d), sha256 %s",
            done,
            s.name,
            s.messages,
            s.first_seq,
            s.last_seq,
            s.sha256[:16],
        )
    log.info(
        "%s %d auth files; %s",
        done,
        len(m.files),
        f"absent streams: {', '.join(m.absent)}" if m.absent else "no stream absent",
    )
    return 0
