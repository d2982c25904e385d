"""The bridge's per-request seam: every observer sees each request it forwards, and its routing
decisions (retries, circuit changes, instance counts) and reconnects.

Metrics and traces plug in here (telemetry/, handed in by the CLI), never as branches in the
session or the caller. An observer that raises is logged once (then at debug) and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from schemas.observe import BridgeObserver, BridgeRequest, CircuitState, ConnectionObserver, ObserverFailures

log = logging.getLogger(__name__)


class BridgeSeam:
    __slots__ = ("_connection", "_failures", "_observers")

    def __init__(
        self, observers: Iterable[BridgeObserver] = (), connection: Iterable[ConnectionObserver] = ()
    ) -> None:
        self._observers: tuple[BridgeObserver, ...] = tuple(observers)
        self._connection: tuple[ConnectionObserver, ...] = tuple(connection)
        self._failures = ObserverFailures(log, "request")

    def started(self, req: BridgeRequest) -> None:
        for obs in self._observers:
            try:
                obs.request_started(req)
            except Exception:
                self._failures.failed(obs, "request_started")

    def ended(self, req: BridgeRequest) -> None:
        for obs in self._observers:
            try:
                obs.request_ended(req)
            except Exception:
                self._failures.failed(obs, "request_ended")

    def retried(self, service: str) -> None:
        for obs in self._observers:
            try:
                obs.retried(service)
            except Exception:
                self._failures.failed(obs, "retried")

    def circuit_changed(self, service: str, state: CircuitState) -> None:
        for obs in self._observers:
            try:
                obs.circuit_changed(service, state)
            except Exception:
                self._failures.failed(obs, "circuit_changed")

    def instances_changed(self, service: str, count: int) -> None:
        for obs in self._observers:
            try:
                obs.instances_changed(service, count)
            except Exception:
                self._failures.failed(obs, "instances_changed")

    def reconnected(self) -> None:
        for obs in self._connection:
            try:
                obs.reconnected()
            except Exception:
                self._failures.failed(obs, "reconnected")
