"""The circuit breaker as pure logic, with an injected clock: no processes, no sleeps."""

from __future__ import annotations

import pytest

from bridge.breaker import CLOSED, HALF_OPEN, OPEN, Breakers
from bridge.errors import CircuitOpen
from schemas.observe import CIRCUIT_CLOSED, CIRCUIT_HALF_OPEN, CIRCUIT_OPEN


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_fails_fast_then_one_probe_closes_it() -> None:
    """Three failures open it; calls fail fast with the time left; after the cooldown exactly one probe goes, and its success closes it."""
    clock = Clock()
    changes: list[tuple[str, int]] = []
    breakers = Breakers(3, 5.0, clock=clock, on_change=lambda s, st: changes.append((s, st)))
    b = breakers.get("fs")
    for _ in range(3):
        b.before_call()
        b.failure()
    assert b.state == OPEN and b.trips == 1
    clock.now += 2.0
    with pytest.raises(CircuitOpen) as err:
        b.before_call()
    assert "retry in 3.0 s" in str(err.value)
    clock.now += 3.5
    b.before_call()  # the probe
    assert b.state == HALF_OPEN
    with pytest.raises(CircuitOpen):
        b.before_call()  # a second call while the probe is out
    b.success()
    assert b.state == CLOSED and b.failures == 0
    assert changes == [("fs", CIRCUIT_OPEN), ("fs", CIRCUIT_HALF_OPEN), ("fs", CIRCUIT_CLOSED)]


def test_a_failed_probe_opens_it_again_and_new_instances_half_open_it_at_once() -> None:
    """A failing probe re-opens the circuit for a full cooldown; discovery seeing a new instance half-opens it early."""
    clock = Clock()
    breakers = Breakers(1, 10.0, clock=clock)
    b = breakers.get("db")
    b.failure()
    clock.now += 10.0
    b.before_call()
    b.failure()
    assert b.state == OPEN and b.trips == 2
    clock.now += 1.0
    with pytest.raises(CircuitOpen):
        b.before_call()
    breakers.instances_appeared("db")
    assert b.state == HALF_OPEN
    b.before_call()  # the probe goes without waiting out the cooldown
    breakers.instances_appeared("unknown")  # a service never called has no breaker to change
    assert set(breakers.snapshot()) == {"db"}
    assert breakers.snapshot()["db"].state == HALF_OPEN
