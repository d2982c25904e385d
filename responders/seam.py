"""The responder's per-call seam: every observer sees each tools/call begin and end.

Audit, metrics, traces, logs, RBAC and rate limits plug in here, never as branches in the
runner. Every observer sees every call begin and end, exactly once each, refused calls
included (so counts agree everywhere). `start` returns the first `Refusal` in observer order
(the call is then answered with that error and its handler never runs); a refusal from a later
observer is ignored, so put the observers that refuse (policy, then limits) first.
An observer that raises is logged (once per observer and kind, then at debug) and skipped:
it never fails the call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from schemas.observe import CallObserver, ObserverFailures, Refusal, ToolCall

log = logging.getLogger(__name__)


class Seam:
    """The observers of one service instance, in the order they were given."""

    __slots__ = ("_failures", "_observers")

    def __init__(self, observers: Iterable[CallObserver] = ()) -> None:
        self._observers: tuple[CallObserver, ...] = tuple(observers)
        self._failures = ObserverFailures(log, "call")

    @property
    def observers(self) -> tuple[CallObserver, ...]:
        return self._observers

    def start(self, call: ToolCall) -> Refusal | None:
        first: Refusal | None = None
        for obs in self._observers:
            try:
                refusal = obs.call_started(call)
            except Exception:
                self._failures.failed(obs, "call_started")
                continue
            if first is None:
                first = refusal
        return first

    def end(self, call: ToolCall) -> None:
        for obs in self._observers:
            try:
                obs.call_ended(call)
            except Exception:
                self._failures.failed(obs, "call_ended")
