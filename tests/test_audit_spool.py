"""The audit spool file: durable appends, ordered replay with a committed offset, a bound, and taking over dead instances' files."""

from __future__ import annotations

import os
from pathlib import Path

from responders.audit import redact, trace_id
from responders.audit_spool import HEADER, Spool, encode_line


def _lines(n: int, start: int = 0) -> list[bytes]:
    return [
        encode_line(f"mcp.audit.s.t{i}", f"id-{i}", b'{"callId":"id-%d"}' % i)
        for i in range(start, start + n)
    ]


def test_records_are_read_back_in_order_and_the_offset_moves_only_on_commit(tmp_path: Path) -> None:
    """Appended records come back in order; reading does not consume them, committing does, and an emptied file shrinks to its header."""
    spool = Spool(tmp_path, "a", max_bytes=1 << 20)
    assert spool.append(_lines(5)) == 5 and spool.records == 5
    first, end = spool.read(3)
    assert [r.msg_id for r in first] == ["id-0", "id-1", "id-2"]
    assert first[0].subject == "mcp.audit.s.t0" and first[0].record == b'{"callId":"id-0"}'
    again, _ = spool.read(3)
    assert [r.msg_id for r in again] == ["id-0", "id-1", "id-2"], (
        "reading twice without commit replays the same window"
    )
    spool.commit(end, len(first))
    rest, end2 = spool.read(10)
    assert [r.msg_id for r in rest] == ["id-3", "id-4"] and spool.records == 2
    spool.commit(end2, len(rest))
    assert spool.records == 0 and spool.path.stat().st_size == HEADER
    spool.close()
    assert not spool.path.exists(), "an empty spool is removed when its instance exits"


def test_a_full_spool_takes_what_fits_and_says_how_many(tmp_path: Path) -> None:
    """Appends stop at max_bytes of records waiting; the count tells the caller what was refused."""
    lines = _lines(10)
    spool = Spool(tmp_path, "a", max_bytes=len(lines[0]) * 4 + 1)
    assert spool.append(lines) == 4
    assert spool.append(lines[4:]) == 0
    out, end = spool.read(100)
    spool.commit(end, len(out))
    assert spool.append(lines[4:]) == 4, "room comes back once records are replayed"


def test_a_dead_instances_spool_is_taken_over_once_and_a_live_ones_is_left_alone(tmp_path: Path) -> None:
    """A file whose lock is held (its instance lives) is not claimed; once the holder is gone, another instance copies its unreplayed records and deletes it."""
    dead = Spool(tmp_path, "dead", max_bytes=1 << 20)
    dead.append(_lines(4))
    first, end = dead.read(1)
    dead.commit(end, 1)  # one record was already replayed before the crash
    heir = Spool(tmp_path, "heir", max_bytes=1 << 20)
    assert heir.claim_orphans() == 0 and dead.path.exists(), "the owner still holds the lock"
    assert dead._fd is not None
    os.close(dead._fd)  # what SIGKILL does: the lock goes with the process, the file stays
    dead._fd = None
    assert heir.claim_orphans() == 3
    assert not dead.path.exists()
    got, _ = heir.read(10)
    assert [r.msg_id for r in got] == ["id-1", "id-2", "id-3"]
    assert Spool(tmp_path, "third", max_bytes=1 << 20).claim_orphans() == 0, "the heir's own file is live"


def test_a_torn_last_line_is_ignored_when_a_spool_is_taken_over(tmp_path: Path) -> None:
    """A record cut short by a crash mid-write is dropped; the complete ones before it survive."""
    dead = Spool(tmp_path, "dead", max_bytes=1 << 20)
    dead.append(_lines(2))
    assert dead._fd is not None
    os.pwrite(
        dead._fd, b'{"s":"mcp.audit.s.t","i":"torn","r":{"callId"', os.fstat(dead._fd).st_size
    )  # the writer died here
    os.close(dead._fd)
    dead._fd = None
    heir = Spool(tmp_path, "heir", max_bytes=1 << 20)
    assert heir.claim_orphans() == 2
    got, _ = heir.read(10)
    assert [r.msg_id for r in got] == ["id-0", "id-1"]


def test_redaction_masks_named_values_at_any_depth() -> None:
    """Values of secret-named keys are replaced wherever they appear; names match case-insensitively; other values stay."""
    value = {"user": "ann", "Password": "p", "nested": [{"token": "t", "keep": 1}], "api": {"API_KEY": "k"}}
    assert redact(value, frozenset({"password", "token", "api_key"})) == {
        "user": "ann",
        "Password": "[redacted]",
        "nested": [{"token": "[redacted]", "keep": 1}],
        "api": {"API_KEY": "[redacted]"},
    }


def test_trace_id_is_read_from_a_valid_traceparent_only() -> None:
    """The W3C trace id is taken from a well-formed traceparent; malformed or all-zero ids give none."""
    assert (
        trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        == "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
    assert trace_id("garbage") is None and trace_id(None) is None
