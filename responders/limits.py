"""Rate limits and a concurrency cap per identity, on the responder's per-call seam (issue #11).

A `CallObserver`: before a tools/call runs it takes one token from the caller's bucket (policy
`identities.<name>.rate`) and from the bucket of every `[tools."<pattern>"]` rate the tool
matches (per identity and pattern), and counts the call against `identities.<name>.concurrency`.
When any of them is exhausted the call is refused at once with RATE_LIMITED and a retry-after
(data.retryAfterMs on the wire); no token is taken then.

Limits are **per responder instance**: N instances of a service in one queue group let an
identity make up to N times the rate (and N times the concurrency) in total, and each service
counts on its own. The policy file is read again when it changes (checked at most every
RELOAD_S seconds), so `auth init` changes the limits without a restart. Pure apart from that
stat and read; the clock is injected for tests.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Final

from schemas.errors import RATE_LIMITED
from schemas.observe import Refusal, ToolCall
from schemas.policy import Policy, PolicyError, matches, parse_policy, parse_rate

log = logging.getLogger(__name__)

RELOAD_S: Final = 2.0
MAX_BUCKETS: Final = 10_000
"""Buckets kept at most (least recently used dropped first): callers' names are not bounded when unverified."""
CONCURRENCY_RETRY_S: Final = 0.1


class Bucket:
    """A token bucket: `burst` tokens, refilled at `per_second`."""

    __slots__ = ("burst", "last", "per_second", "tokens")

    def __init__(self, per_second: float, burst: float, now: float) -> None:
        self.per_second = per_second
        self.burst = burst
        self.tokens = burst
        self.last = now

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0: now), after refilling to `now`."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.per_second)
        self.last = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.per_second

    def take(self) -> None:
        self.tokens -= 1.0


class RateLimiter:
    """See the module docstring. `policy` may be a Policy or a file to (re)load it from."""

    def __init__(self, policy: Policy | Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._file: Path | None = None
        self._mtime = 0.0
        self._checked = 0.0
        self._policy = Policy()
        self._buckets: OrderedDict[tuple[str, str], Bucket] = OrderedDict()
        self._inflight: dict[str, int] = {}
        self._key = f"limits-{id(self)}"
        if isinstance(policy, Path):
            self._file = policy
            self._reload(force=True)
        else:
            self._policy = policy

    def _reload(self, force: bool = False) -> None:
        assert self._file is not None
        try:
            mtime = self._file.stat().st_mtime
            if not force and mtime == self._mtime:
                return
            policy = parse_policy(self._file.read_text(), str(self._file))
        except (OSError, PolicyError) as exc:
            log.warning("rate limits: cannot read %s (%s); keeping the limits in force", self._file, exc)
            return
        self._mtime = mtime
        self._policy = policy
        self._buckets.clear()  # new rates: start full (a refill cannot be carried over meaningfully)

    def _bucket(self, key: tuple[str, str], rate: str, now: float) -> Bucket:
        b = self._buckets.get(key)
        if b is None:
            r = parse_rate(rate)
            b = Bucket(r.per_second, r.burst, now)
            self._buckets[key] = b
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return b

    def call_started(self, call: ToolCall) -> Refusal | None:
        now = self._clock()
        if self._file is not None and now - self._checked >= RELOAD_S:
            self._checked = now
            self._reload()
        who = call.identity
        ident = self._policy.identities.get(who)
        cap = ident.concurrency if ident is not None else None
        if cap is not None and self._inflight.get(who, 0) >= cap:
            return Refusal(
                code=RATE_LIMITED,
                message=f"{who} already has {cap} calls running on this instance of {call.service} (its concurrency limit)",
                retry_after=CONCURRENCY_RETRY_S,
            )
        buckets: list[tuple[str, Bucket]] = []
        if ident is not None and ident.rate is not None:
            buckets.append((f"{who}'s rate limit of {ident.rate}", self._bucket((who, ""), ident.rate, now)))
        for pattern, limit in self._policy.tools.items():
            if matches(pattern, call.service, call.tool):
                buckets.append(
                    (f"the limit of {limit.rate} on {pattern}", self._bucket((who, pattern), limit.rate, now))
                )
        worst = max(((b.wait(now), what) for what, b in buckets), default=(0.0, ""))
        if worst[0] > 0.0:
            return Refusal(
                code=RATE_LIMITED,
                message=f"{who} called {call.service}.{call.tool} too often ({worst[1]}, per instance); retry in {worst[0]:.2f} s",
                retry_after=worst[0],
            )
        for _, b in buckets:
            b.take()
        if cap is not None:
            self._inflight[who] = self._inflight.get(who, 0) + 1
            call.scratch[self._key] = who
        return None

    def call_ended(self, call: ToolCall) -> None:
        who = call.scratch.pop(self._key, None)
        if isinstance(who, str):
            left = self._inflight.get(who, 1) - 1
            if left > 0:
                self._inflight[who] = left
            else:
                self._inflight.pop(who, None)
