"""A circuit breaker per service: stop hammering a service that keeps failing, then probe it back.

closed --(threshold consecutive failures)--> open --(cooldown passes)--> half-open
half-open --(the one probe call succeeds)--> closed; --(it fails)--> open again.

Failures are the bus's: no responder, an instance gone silent, a deadline, overload. A tool
error (`isError`) is an answer, not a failure. When discovery sees a new instance of an open
service, the breaker goes half-open at once instead of waiting out the cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from schemas.bus import CircuitStatus
from schemas.observe import CIRCUIT_CLOSED, CIRCUIT_HALF_OPEN, CIRCUIT_OPEN, CircuitState

from .errors import CircuitOpen

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half-open"
_GAUGE: Final[dict[str, CircuitState]] = {
    CLOSED: CIRCUIT_CLOSED,
    HALF_OPEN: CIRCUIT_HALF_OPEN,
    OPEN: CIRCUIT_OPEN,
}

Clock = Callable[[], float]
OnChange = Callable[[str, CircuitState], None]


def _ignore(service: str, state: CircuitState) -> None:
    return None


@dataclass
class Breaker:
    service: str
    threshold: int
    cooldown: float
    clock: Clock = time.monotonic
    on_change: OnChange = _ignore
    """Told every state change (the seam's circuit_changed: metrics)."""
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    trips: int = field(default=0)

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_change(self.service, _GAUGE[state])

    def before_call(self) -> None:
        """Raises CircuitOpen while open; lets exactly one probe through when half-open."""
        if self.state == OPEN:
            left = self.cooldown - (self.clock() - self.opened_at)
            if left > 0:
                raise CircuitOpen(self.service, left)
            self._set(HALF_OPEN)
            self.probing = False
        if self.state == HALF_OPEN:
            if self.probing:
                raise CircuitOpen(self.service, 0.0)
            self.probing = True

    def success(self) -> None:
        self._set(CLOSED)
        self.failures = 0
        self.probing = False

    def failure(self) -> None:
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            if self.state != OPEN:
                self.trips += 1
            self._set(OPEN)
            self.opened_at = self.clock()
            self.probing = False

    def instances_appeared(self) -> None:
        if self.state == OPEN:
            self._set(HALF_OPEN)
            self.probing = False


class Breakers:
    """One breaker per service, created on first use."""

    def __init__(
        self, threshold: int, cooldown: float, *, clock: Clock = time.monotonic, on_change: OnChange = _ignore
    ) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self.by_service: dict[str, Breaker] = {}

    def get(self, service: str) -> Breaker:
        b = self.by_service.get(service)
        if b is None:
            b = self.by_service[service] = Breaker(
                service, self._threshold, self._cooldown, self._clock, self._on_change
            )
        return b

    def instances_appeared(self, service: str) -> None:
        """Discovery saw a new instance: an open circuit probes at once instead of waiting out the cooldown."""
        b = self.by_service.get(service)
        if b is not None:
            b.instances_appeared()

    def snapshot(self) -> dict[str, CircuitStatus]:
        return {
            s: CircuitStatus(state=b.state, failures=b.failures, trips=b.trips)
            for s, b in self.by_service.items()
        }
