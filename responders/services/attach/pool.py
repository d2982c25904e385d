"""A pool of one stdio MCP server's children: leases under a per-child cap, idle TTL, maximum
lifetime, restart with backoff.

    async with ChildPool(argv, service="everything", limits=PoolLimits(size=2)) as pool:
        async with pool.lease() as child:
            await child.request("tools/call", {...})

Owns every child (each in a task of the pool's task group, each in its own process group).
Children start on demand up to `size`; one is started on entry (so a command that cannot start
fails at once) and one is kept warm. A child idle for `idle_ttl` is stopped (down to one); a
child older than `max_lifetime` takes no new lease and stops when its last lease ends. A child
that exits unexpectedly is replaced, the next start delayed by a backoff that doubles (from
`backoff_min` to `backoff_max`) while starts keep failing or children keep dying young.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .child import Child, Notify  # noqa: F401  (Notify: the type of `notify`)
from .errors import AttachError, PoolClosed

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PoolLimits:
    size: int = 1
    per_child: int = 8
    idle_ttl: float = 300.0
    max_lifetime: float = 3600.0
    backoff_min: float = 0.25
    backoff_max: float = 30.0
    init_timeout: float = 30.0
    healthy_after: float = 30.0
    """A child that lived this long resets the backoff."""


class ChildPool:
    """See the module docstring. `lease()` raises PoolClosed when no child can be had."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        service: str,
        limits: PoolLimits | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        notify: Notify | None = None,
        on_start: Callable[[Child], Awaitable[None]] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("attach needs a command to run (after --)")
        self.argv = list(argv)
        self.service = service
        self.limits = limits or PoolLimits()
        if self.limits.size < 1 or self.limits.per_child < 1:
            raise ValueError("the pool size and the per-child cap must be at least 1")
        self._env = env
        self._cwd = cwd
        self.notify = notify
        self.on_start = on_start
        """Run on each new child before it takes leases (e.g. resource subscriptions); failures are logged."""
        self.children: list[Child] = []
        self._leases: dict[Child, int] = {}
        self._retiring: set[Child] = set()
        self._done: dict[Child, asyncio.Event] = {}
        self._starting = 0
        self._seq = 0
        self._failures = 0
        self._next_start = 0.0
        self._closed = False
        self._cond = asyncio.Condition()
        self._tg: asyncio.TaskGroup | None = None
        self.started_total = 0
        self.died_total = 0

    async def __aenter__(self) -> ChildPool:
        self._stack = contextlib.AsyncExitStack()
        self._tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        try:
            await self._spawn()
        except BaseException:
            self._closed = True
            await self._stack.aclose()
            raise
        self._reaper = self._tg.create_task(self._reap(), name=f"{self.service} pool reaper")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closed = True
        self._reaper.cancel()
        for done in self._done.values():
            done.set()
        await self._stack.aclose()

    # -- leases --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, avoid: Child | None = None) -> AsyncIterator[Child]:
        """A live child with room under the per-child cap (the least busy), started if needed.
        `avoid` is never given (a retry after it died: its exit may not have been seen yet)."""
        child = await self._acquire(avoid)
        try:
            yield child
        finally:
            self._leases[child] = self._leases.get(child, 1) - 1
            await self._changed()

    def _pick(self, avoid: Child | None) -> Child | None:
        free = [
            c
            for c in self.children
            if c not in self._retiring
            and not c.exited.is_set()
            and self._leases.get(c, 0) < self.limits.per_child
        ]
        free = [c for c in free if c is not avoid]
        return min(free, key=lambda c: self._leases.get(c, 0)) if free else None

    def _can_start(self) -> bool:
        live = len([c for c in self.children if c not in self._retiring and not c.exited.is_set()])
        return live + self._starting < self.limits.size

    async def _acquire(self, avoid: Child | None) -> Child:
        while True:
            if self._closed:
                raise PoolClosed(self.service, "the pool is shutting down")
            child = self._pick(avoid)
            backing_off = self._next_start > time.monotonic()
            if child is not None and (
                self._leases.get(child, 0) == 0 or backing_off or not self._can_start()
            ):
                self._leases[child] = self._leases.get(child, 0) + 1
                return child
            live = [c for c in self.children if c not in self._retiring and not c.exited.is_set()]
            if self._can_start() and (not backing_off or not live):
                await self._spawn()  # another caller may take it first: loop and pick again
                continue
            # Wait for a lease to end, a child to start, or the backoff to pass (then another may start).
            wait = max(0.05, self._next_start - time.monotonic()) if backing_off else None
            async with self._cond:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._cond.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds, checked whenever a child starts or stops or a lease ends (no deadline
        here: the caller bounds it)."""
        async with self._cond:
            await self._cond.wait_for(predicate)

    async def _changed(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # -- children ------------------------------------------------------------------------------

    async def _spawn(self) -> Child:
        assert self._tg is not None
        self._starting += 1
        try:
            delay = self._next_start - time.monotonic()
            if delay > 0:
                log.info("%s: next child starts in %.2f s (backoff)", self.service, delay)
                await asyncio.sleep(delay)
            ready: asyncio.Future[Child] = asyncio.get_running_loop().create_future()
            self._seq += 1
            self._tg.create_task(self._run_child(self._seq, ready), name=f"{self.service} child {self._seq}")
            try:
                return await ready
            except AttachError as exc:
                self._backoff()
                raise PoolClosed(self.service, str(exc)) from exc
        finally:
            self._starting -= 1

    def _backoff(self) -> None:
        self._failures += 1
        wait = min(self.limits.backoff_max, self.limits.backoff_min * 2 ** (self._failures - 1))
        self._next_start = time.monotonic() + wait

    async def _run_child(self, n: int, ready: asyncio.Future[Child]) -> None:
        child = Child(
            self.argv,
            name=f"{self.service}-{n}",
            env=self._env,
            cwd=self._cwd,
            notify=self._notify,
            init_timeout=self.limits.init_timeout,
        )
        done = asyncio.Event()
        try:
            async with child.running():
                if self.on_start is not None:
                    try:
                        await self.on_start(child)
                    except AttachError as exc:
                        log.warning("%s: setting up %s failed: %s", self.service, child.name, exc)
                self.children.append(child)
                self._done[child] = done
                self.started_total += 1
                ready.set_result(child)
                await self._changed()
                await _first(child.exited.wait(), done.wait())
        except (AttachError, OSError, TimeoutError) as exc:
            if not ready.done():
                ready.set_exception(
                    exc
                    if isinstance(exc, AttachError)
                    else PoolClosed(self.service, f"cannot start {self.argv[0]}: {exc}")
                )
            else:
                log.warning("%s: %s", child.name, exc)
        finally:
            if child.exited.is_set() and not done.is_set() and not self._closed:
                self.died_total += 1
                if time.monotonic() - child.started < self.limits.healthy_after:
                    self._backoff()
                else:
                    self._failures = 0
            if child in self.children:
                self.children.remove(child)
            self._leases.pop(child, None)
            self._retiring.discard(child)
            self._done.pop(child, None)
            if not ready.done():
                ready.set_exception(PoolClosed(self.service, "the child stopped while starting"))
            await self._changed()

    async def _notify(self, method: str, params: dict[str, Any]) -> None:
        if self.notify is not None:
            await self.notify(method, params)

    async def _reap(self) -> None:
        """Once a second: retire idle and old children, and keep one child warm."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for child in list(self.children):
                leases = self._leases.get(child, 0)
                old = now - child.started > self.limits.max_lifetime
                idle = leases == 0 and now - child.last_used > self.limits.idle_ttl
                others = len([c for c in self.children if c is not child and c not in self._retiring])
                if old or (idle and others >= 1):
                    if child not in self._retiring:
                        log.info(
                            "%s: retiring %s (%s)",
                            self.service,
                            child.name,
                            "maximum lifetime" if old else "idle",
                        )
                        self._retiring.add(child)
                    if leases == 0:
                        self._done[child].set()
            live = [c for c in self.children if c not in self._retiring]
            if not live and self._starting == 0 and not self._closed:
                with contextlib.suppress(PoolClosed):
                    await self._spawn()

    def stats(self) -> dict[str, Any]:
        return {
            "children": len(self.children),
            "leases": sum(self._leases.values()),
            "started": self.started_total,
            "died": self.died_total,
            "pids": [c.pid for c in self.children],
        }


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
