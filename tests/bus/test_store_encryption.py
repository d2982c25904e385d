"""JetStream encryption at rest for the embedded server (EmbeddedServer(store_key=...)), and key rotation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bus import EmbeddedServer, JetStream, StreamSpec, connect
from schemas.config import NatsSettings

SECRET = b"plaintext-that-must-not-reach-the-disk-4f1c"


def _on_disk(store: Path) -> bool:
    return any(SECRET in p.read_bytes() for p in store.rglob("*") if p.is_file())


async def _write_and_read(url: str, write: bool) -> bytes:
    async with connect(NatsSettings(url=url, connect_timeout=2.0), name="test", ident="enc") as bus:
        js = JetStream(bus)
        if write:
            await js.ensure_stream(
                StreamSpec(
                    name="ENC", subjects=("enc.>",), description="encryption test", max_age=0, max_bytes=-1
                )
            )
            await js.publish("enc.x", SECRET)
        msgs = await js.get_batch("ENC", "enc.>", seq=1, batch=10)
        return msgs.messages[0].data


@pytest.mark.parametrize("encrypted", [True, False])
def test_the_store_holds_no_plaintext_with_a_key_and_rotation_keeps_the_data(
    tmp_path: Path, encrypted: bool
) -> None:
    """With a key the stored message is not on disk in plaintext (without one it is), and after a restart with a
    new key and the old one as previous key the message is still read back, and then with the new key alone."""
    key = "k1-" + "x" * 40 if encrypted else ""
    with EmbeddedServer(tmp_path, store_key=key) as server:
        assert asyncio.run(_write_and_read(server.url, True)) == SECRET
    assert _on_disk(tmp_path / "jetstream") is not encrypted
    if encrypted:
        with EmbeddedServer(tmp_path, store_key="k2-" + "y" * 40, previous_store_key=key) as server:
            assert asyncio.run(_write_and_read(server.url, False)) == SECRET
        assert "k1-" not in (tmp_path / "nats-server.conf").read_text(), "keys never go into the config file"
        with EmbeddedServer(
            tmp_path, store_key="k2-" + "y" * 40
        ) as server:  # one start with both re-keyed the store
            assert asyncio.run(_write_and_read(server.url, False)) == SECRET


@pytest.mark.parametrize("key", ["-starts-with-a-dash", "12345", "true"])
def test_any_key_starts_the_server(tmp_path: Path, key: str) -> None:
    """Keys nats-server would parse as something else than a string (a leading '-', a number, a boolean) still work."""
    with EmbeddedServer(tmp_path, store_key=key) as server:
        assert asyncio.run(_write_and_read(server.url, True)) == SECRET
