"""A circuit breaker per service: stop hammering a service that keeps failing, then probe it back.

closed --(threshold consecutive failures)--> open --(cooldown passes)--> half-open
half-open --(the one probe call succeeds)--> closed; --(it fails)--> open again.

Failures are the bus's: no responder, an instance gone silent, a deadline, overload. A tool
error (`isError`) is an answer, not a failure. When discovery sees a new instance of an open
service, the breaker goes half-open at once instead of waiting out the cooldown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

from .errors import CircuitOpen

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half-open"


@dataclass
class Breaker:
    service: str
    threshold: int
    cooldown: float
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    trips: int = field(default=0)

    def before_call(self) -> None:
        """Raises CircuitOpen while open; lets exactly one probe through when half-open."""
        if self.state == OPEN:
            left = self.cooldown - (time.monotonic() - self.opened_at)
            if left > 0:
                raise CircuitOpen(self.service, left)
            self.state = HALF_OPEN
            self.probing = False
        if self.state == HALF_OPEN:
            if self.probing:
                raise CircuitOpen(self.service, 0.0)
            self.probing = True

    def success(self) -> None:
        self.state = CLOSED
        self.failures = 0
        self.probing = False

    def failure(self) -> None:
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            if self.state != OPEN:
                self.trips += 1
            self.state = OPEN
            self.opened_at = time.monotonic()
            self.probing = False

    def instances_appeared(self) -> None:
        if self.state == OPEN:
            self.state = HALF_OPEN
            self.probing = False


class Breakers:
    def __init__(self, threshold: int, cooldown: float) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self.by_service: dict[str, Breaker] = {}

    def get(self, service: str) -> Breaker:
        b = self.by_service.get(service)
        if b is None:
            b = self.by_service[service] = Breaker(service, self._threshold, self._cooldown)
        return b

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {s: {"state": b.state, "failures": b.failures, "trips": b.trips} for s, b in self.by_service.items()}
