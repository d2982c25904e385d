"""Consul registration of one responder instance, for the estate outside NATS (bridges discover
through NATS; load balancers, dashboards and inventories read Consul).

    async with registered(settings.consul, service, instance=instance, root=root):
        await runner.run(stop)          # registered while it serves; deregistered after the drain

With `[consul] address` set, the instance registers with the local agent as service
`mcp-<service>`, id `mcp-<service>-<instance>`, tags `mcp`, the service name and its version,
meta with the protocol, version, capabilities, subject root and instance, and a TTL check that it
reports passing every ttl/3 while it lives. An agent that forgot the instance (restarted) answers
the pass with 404: the instance registers again. Leaving the context deregisters it. Consul is
never in the call path: an agent that is down or refuses is logged and retried, and the responder
serves on; Consul removes an instance killed without draining after `deregister_after`.

Only the agent endpoints below are used, with plain httpx. python-consul2 (0.1.5, the last release,
2020) was not used: its asyncio client builds aiohttp's TCPConnector with `loop=` and
`verify_ssl=` (removed or deprecated in current aiohttp), calls `asyncio.get_event_loop()` when
constructed, opens a session per request, and its `__del__` always emits a ResourceWarning; its
default client is the blocking `requests`.

    PUT /v1/agent/service/register            the service definition with its TTL check
    PUT /v1/agent/check/pass/<check id>       the TTL heartbeat
    PUT /v1/agent/service/deregister/<id>     on drain
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import httpx

from schemas.config import ConsulSettings
from schemas.mcp import LATEST_MODERN

from .service import Service

log = logging.getLogger(__name__)

_RETRY: Final = 5.0


class ConsulError(Exception):
    """Raised when the agent refuses a request or cannot be reached (always handled here: logged, retried)."""


def definition(service: Service, *, instance: str, root: str, settings: ConsulSettings) -> dict[str, Any]:
    """The agent's service definition for this instance (PUT /v1/agent/service/register)."""
    svc_id = f"mcp-{service.name}-{instance}"
    caps = ["tools"] if service.tools else []
    if service.has_resources:
        caps.append("resources")
    if service.prompts:
        caps.append("prompts")
    if service.prompts or service.completers:
        caps.append("completions")
    if service.subscribable:
        caps.append("subscribe")
    return {
        "ID": svc_id,
        "Name": f"mcp-{service.name}",
        "Tags": ["mcp", service.name, service.version],
        "Meta": {
            "mcp_protocol": LATEST_MODERN,
            "mcp_version": service.version,
            "mcp_capabilities": ",".join(caps),
            "mcp_root": root,
            "mcp_instance": instance,
            "mcp_tools": str(len(service.tools)),
        },
        "Check": {
            "CheckID": f"{svc_id}-ttl",
            "Name": f"mcp-nats {service.name} instance {instance}",
            "TTL": f"{settings.ttl:g}s",
            "DeregisterCriticalServiceAfter": f"{settings.deregister_after:g}s",
            "Status": "passing",
        },
    }


class Registration:
    """One instance's registration on one agent. Every method raises ConsulError only."""

    def __init__(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        self._client = client
        self.body = body
        self.service_id: str = body["ID"]
        self.check_id: str = body["Check"]["CheckID"]

    async def _put(self, path: str, **kw: Any) -> httpx.Response:
        try:
            return await self._client.put(path, **kw)
        except httpx.HTTPError as exc:
            raise ConsulError(
                f"the Consul agent at {self._client.base_url} cannot be reached: {exc}"
            ) from exc

    async def register(self) -> None:
        r = await self._put("/v1/agent/service/register", json=self.body)
        if r.status_code != 200:
            raise ConsulError(
                f"the Consul agent refused to register {self.service_id}: {r.status_code} {r.text[:200]}"
            )

    async def passing(self) -> bool:
        """Report the TTL check passing; False when the agent does not know the check (register again)."""
        r = await self._put(f"/v1/agent/check/pass/{self.check_id}", params={"note": "serving"})
        if r.status_code == 404 or (r.status_code == 500 and "does not have associated TTL" in r.text):
            return False
        if r.status_code != 200:
            raise ConsulError(
                f"the Consul agent refused the TTL pass of {self.check_id}: {r.status_code} {r.text[:200]}"
            )
        return True

    async def deregister(self) -> None:
        r = await self._put(f"/v1/agent/service/deregister/{self.service_id}")
        if r.status_code not in (200, 404):
            raise ConsulError(
                f"the Consul agent refused to deregister {self.service_id}: {r.status_code} {r.text[:200]}"
            )


@contextlib.asynccontextmanager
async def registered(
    settings: ConsulSettings, service: Service, *, instance: str, root: str
) -> AsyncIterator[None]:
    """Registered with Consul for the life of the context (nothing at all without `address`)."""
    if not settings.address:
        yield
        return
    headers = {"X-Consul-Token": settings.token} if settings.token else {}
    async with httpx.AsyncClient(
        base_url=settings.address, headers=headers, timeout=settings.timeout
    ) as client:
        reg = Registration(client, definition(service, instance=instance, root=root, settings=settings))
        async with asyncio.TaskGroup() as tg:
            ready = asyncio.Event()
            keeper = tg.create_task(_keep(reg, settings.ttl / 3, ready), name=f"consul {reg.service_id}")
            try:
                async with asyncio.timeout(settings.timeout):
                    await (
                        ready.wait()
                    )  # the first registration tried (not necessarily accepted) before serving
            except TimeoutError:
                pass
            try:
                yield
            finally:
                keeper.cancel()
                try:
                    async with asyncio.timeout(settings.timeout):
                        await reg.deregister()
                    log.info("deregistered %s from Consul", reg.service_id)
                except (ConsulError, TimeoutError) as exc:
                    log.warning(
                        "could not deregister %s from Consul (it goes critical, then away): %s",
                        reg.service_id,
                        exc,
                    )


async def _keep(reg: Registration, every: float, ready: asyncio.Event) -> None:
    """Register, then report passing every `every` seconds; register again when the agent forgot us."""
    registered_ = False
    while True:
        try:
            if not registered_:
                await reg.register()
                registered_ = True
                log.info("registered %s with Consul", reg.service_id)
            elif not await reg.passing():
                log.warning("the Consul agent forgot %s; registering again", reg.service_id)
                registered_ = False
                continue
        except ConsulError as exc:
            log.warning("%s; retrying in %.0f s", exc, min(every, _RETRY))
            ready.set()
            await asyncio.sleep(min(every, _RETRY))
            continue
        ready.set()
        await asyncio.sleep(every)
