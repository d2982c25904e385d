"""The bridge process: stdio on one side, the bus on the other, until stdin closes.

Wires the parts and owns their lifetimes, in one task group: the upstream connection
(bridge/upstream.py), the stdin pump into the JSON-RPC dispatcher (bridge/dispatch.py) that
serves the MCP methods (bridge/methods.py), and the signal watch. On stdin EOF, SIGTERM or
SIGINT it cancels what is in flight, closes the connection and returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

from schemas.config import Settings
from schemas.errors import INTERNAL_ERROR
from schemas.jsonrpc import encode_error
from schemas.observe import Observers

from .dispatch import Dispatcher
from .methods import Methods
from .notices import Notices
from .seam import BridgeSeam
from .stdio import LineReader, LineWriter, claim_stdout
from .upstream import Upstream

log = logging.getLogger(__name__)


async def run_bridge(
    settings: Settings, url: str | Callable[[], str], *, observers: Observers | None = None
) -> None:
    """Serve one MCP client on stdin/stdout until stdin closes (or SIGTERM/SIGINT)."""
    t0 = time.monotonic()
    observers = observers or Observers()
    proto_fd = claim_stdout()
    writer = LineWriter(proto_fd)
    await writer.attach()
    reader = LineReader(settings.bridge.max_line_bytes)
    await reader.attach(0)
    seam = BridgeSeam(observers.bridge, observers.connection)
    notices = Notices(writer.write)
    upstream = Upstream(settings, url, notices, seam)
    methods = Methods(settings, writer.write, upstream, seam, notices)
    dispatcher = Dispatcher(
        writer.write,
        methods,
        max_line_bytes=settings.bridge.max_line_bytes,
        max_inflight=settings.bridge.max_inflight,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.debug("bridge ready in %.1f ms", (time.monotonic() - t0) * 1000)

    async def pump() -> None:
        while (line := await reader.readline()) is not None:
            await dispatcher.room()  # at max_inflight, stop reading: the client's pipe fills and it waits
            try:
                dispatcher.feed(line)
            except Exception:  # a bug must cost one message, never the session
                log.exception("could not handle a message")
                writer.write(
                    encode_error(
                        None,
                        INTERNAL_ERROR,
                        "internal error in the bridge (details are in its log on stderr)",
                    )
                )

    try:
        async with asyncio.TaskGroup() as tg:
            up_task = tg.create_task(upstream.run(), name="upstream")
            pump_task = tg.create_task(pump(), name="stdin")
            stop_task = tg.create_task(stop.wait(), name="signals")
            await asyncio.wait({pump_task, stop_task, up_task}, return_when=asyncio.FIRST_COMPLETED)
            pump_task.cancel()
            stop_task.cancel()
            await dispatcher.close()
            up_task.cancel()
    finally:
        writer.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
