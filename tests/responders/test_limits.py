"""Rate limits and the concurrency cap on the seam (responders/limits.py), with an injected clock."""

from __future__ import annotations

import os
from pathlib import Path

from responders.limits import RateLimiter
from schemas.errors import RATE_LIMITED
from schemas.observe import ToolCall
from schemas.policy import parse_policy

POLICY = """
[roles.all]
allow = ["*.*"]
[identities.ci]
roles = ["all"]
rate = "5/s"
concurrency = 2
[identities.alice]
roles = ["all"]
[tools."fs.write_*"]
rate = "2/m"
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(identity: str, tool: str = "read_text_file", service: str = "fs") -> ToolCall:
    return ToolCall(
        service=service,
        tool=tool,
        call_id="c",
        instance="i",
        identity=identity,
        verified=True,
        headers={},
        arguments=b"{}",
        started_ns=0,
    )


def test_a_burst_over_the_identity_rate_is_refused_with_a_retry_after() -> None:
    """ci's sixth call within one second is refused with RATE_LIMITED and a retry-after that, once waited, lets it through."""
    clock = Clock()
    lim = RateLimiter(parse_policy(POLICY), clock=clock)
    for _ in range(5):
        c = call("ci")
        assert lim.call_started(c) is None
        lim.call_ended(c)
    refused = lim.call_started(call("ci"))
    assert refused is not None and refused.code == RATE_LIMITED
    assert refused.retry_after is not None and 0 < refused.retry_after <= 0.2 + 1e-9
    clock.now += refused.retry_after
    assert lim.call_started(call("ci")) is None


def test_traffic_under_the_rate_is_never_refused() -> None:
    """Calls at 4/s against a 5/s limit are never refused, however long they go on."""
    clock = Clock()
    lim = RateLimiter(parse_policy(POLICY), clock=clock)
    for _ in range(400):
        c = call("ci")
        assert lim.call_started(c) is None
        lim.call_ended(c)
        clock.now += 0.25


def test_tool_limits_apply_per_identity_and_identities_without_a_rate_are_free() -> None:
    """fs.write_* allows 2 per minute per identity; alice has no rate of her own; ci's count is not alice's."""
    clock = Clock()
    lim = RateLimiter(parse_policy(POLICY), clock=clock)
    for _ in range(50):
        assert lim.call_started(call("alice", "read_text_file")) is None
    assert lim.call_started(call("alice", "write_file")) is None
    assert lim.call_started(call("alice", "write_file")) is None
    third = lim.call_started(call("alice", "write_file"))
    assert (
        third is not None
        and third.code == RATE_LIMITED
        and third.retry_after is not None
        and third.retry_after > 20
    )
    assert lim.call_started(call("ci", "write_file")) is None


def test_the_concurrency_cap_counts_calls_in_flight() -> None:
    """ci may have 2 calls running; a third is refused until one ends."""
    lim = RateLimiter(parse_policy(POLICY), clock=Clock())
    a, b = call("ci"), call("ci")
    assert lim.call_started(a) is None and lim.call_started(b) is None
    third = lim.call_started(call("ci"))
    assert third is not None and third.code == RATE_LIMITED
    lim.call_ended(a)
    assert lim.call_started(call("ci")) is None


def test_a_changed_policy_file_applies_without_a_restart(tmp_path: Path) -> None:
    """The limiter reads the policy file again when it changes: a lifted rate stops refusing."""
    clock = Clock()
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    lim = RateLimiter(path, clock=clock)
    for _ in range(5):
        c = call("ci", "search_files")
        assert lim.call_started(c) is None
        lim.call_ended(c)
    assert lim.call_started(call("ci", "search_files")) is not None
    path.write_text(POLICY.replace('rate = "5/s"', 'rate = "1000/s"'))
    os.utime(path, (clock.now + 5, clock.now + 5))
    clock.now += 2.0
    assert lim.call_started(call("ci", "search_files")) is None
