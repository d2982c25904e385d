"""A JetStream key-value bucket with compare-and-set writes and change reads, over the bus.

`create` and `update(last=revision)` are conditional writes (`Nats-Expected-Last-Subject-Sequence`):
a writer that read an old revision gets RevisionConflict and must read again. `get` reads the
latest revision from the stream leader (what a CAS loop needs); `changes(after)` returns every
entry written after a stream sequence in one direct-get batch, so a reader can keep a local copy
of the whole bucket current with one round trip when nothing changed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Final

import nats.js.api as api

from .jetstream import EXPECTED_LAST_SUBJECT_SEQ, JetStream, RevisionConflict, StreamNotFound, js_error

log = logging.getLogger(__name__)

KEY: Final = re.compile(r"^[-/_=.a-zA-Z0-9]+$")
_OP: Final = "KV-Operation"
_DELETED: Final = ("DEL", "PURGE")
_NO_MESSAGE: Final = 10037


@dataclass(frozen=True)
class Entry:
    """One key's value at a revision (the stream sequence that wrote it); `deleted` for a delete marker."""

    key: str
    value: bytes
    revision: int
    deleted: bool = False


class KeyValue:
    """One bucket (stream `KV_<bucket>` on `$KV.<bucket>.>`). Every method raises BusError subclasses only."""

    def __init__(self, js: JetStream, bucket: str) -> None:
        self._js = js
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self._prefix = f"$KV.{bucket}."
        self._raw = js.bus.nc.jetstream(timeout=js.timeout)

    @classmethod
    async def open(cls, js: JetStream, bucket: str, *, replicas: int = 1, description: str = "") -> KeyValue:
        """Create the bucket if it does not exist (history 1, direct reads on); return it."""
        raw = js.bus.nc.jetstream(timeout=js.timeout)
        try:
            await raw.stream_info(f"KV_{bucket}")
        except Exception as exc:
            err = js_error(exc, stream=f"KV_{bucket}")
            if not isinstance(err, StreamNotFound):
                raise err from exc
            try:
                await raw.create_key_value(
                    api.KeyValueConfig(
                        bucket=bucket,
                        description=description or None,
                        history=1,
                        replicas=replicas or js.cluster_replicas(),  # 0: follow the cluster
                        storage=api.StorageType.FILE,
                        direct=True,
                    )
                )
            except Exception as create_exc:
                raise js_error(create_exc, stream=f"KV_{bucket}") from create_exc
            log.info("KV bucket %s created", bucket)
        return cls(js, bucket)

    def _subject(self, key: str) -> str:
        if not KEY.match(key) or key.startswith(".") or key.endswith("."):
            raise ValueError(f"invalid KV key {key!r}")
        return self._prefix + key

    async def get(self, key: str) -> Entry | None:
        """The latest live entry (from the stream leader), or None if the key is absent or deleted."""
        entry = await self.get_raw(key)
        return None if entry is None or entry.deleted else entry

    async def get_raw(self, key: str) -> Entry | None:
        """The latest entry including a delete marker, or None if the key was never written (or purged)."""
        subject = self._subject(key)
        try:
            msg = await self._raw.get_msg(self.stream, subject=subject, direct=False)
        except Exception as exc:
            if getattr(exc, "err_code", None) == _NO_MESSAGE:
                return None
            raise js_error(exc, subject=subject, stream=self.stream) from exc
        headers = msg.headers or {}
        return Entry(key, msg.data or b"", int(msg.seq or 0), headers.get(_OP) in _DELETED)

    async def create(self, key: str, value: bytes) -> int:
        """Write `key` only if it has no live value; returns the revision. Raises RevisionConflict if it exists."""
        try:
            return await self._write(key, value, 0)
        except RevisionConflict:
            pass
        current = await self.get_raw(key)
        if current is None or not current.deleted:
            raise RevisionConflict(key, "it already exists")
        return await self._write(key, value, current.revision)  # re-create over a delete marker

    async def update(self, key: str, value: bytes, last: int) -> int:
        """Write `key` only if its latest revision is `last`; returns the new revision. Raises RevisionConflict."""
        return await self._write(key, value, last)

    async def delete(self, key: str, last: int) -> int:
        """Put a delete marker only if the latest revision is `last`. Raises RevisionConflict."""
        headers = {_OP: "DEL", EXPECTED_LAST_SUBJECT_SEQ: str(last)}
        return await self._js.publish(self._subject(key), b"", headers)

    async def _write(self, key: str, value: bytes, last: int) -> int:
        return await self._js.publish(self._subject(key), value, {EXPECTED_LAST_SUBJECT_SEQ: str(last)})

    async def changes(self, after: int, *, batch: int = 1000) -> tuple[list[Entry], bool]:
        """Entries written after stream sequence `after`, oldest first, and whether more follow."""
        got = await self._js.get_batch(self.stream, self._prefix + ">", seq=after + 1, batch=batch)
        out = [
            Entry(m.subject[len(self._prefix) :], m.data, m.seq, m.headers.get(_OP) in _DELETED)
            for m in got.messages
        ]
        return out, got.pending > 0
