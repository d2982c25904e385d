"""Loaded by `python -m bench latency` into the bridge and one fs responder (on PYTHONPATH, with
BENCH_LATENCY_TRACE set to an output path): stamps when bytes arrive and when bytes leave.

Arrivals: stdin lines (bridge `LineReader.feed`) and NATS bytes (asyncio `StreamReader.feed_data`,
which nats-py reads through). Departures: NATS writes (asyncio `StreamWriter.writelines`, nats-py's
flusher) and stdout writes (bridge `LineWriter._flush`). With one call in flight, the time from
an arrival to the next departure is this process's share of the call. At exit, the spans go to
the path as JSON: {"stdin->nats": [µs, ...], "nats->stdout": [...], "nats->nats": [...]}.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import sys
import time

_OUT = os.environ.get("BENCH_LATENCY_TRACE")

if _OUT:
    _now = time.perf_counter_ns
    _state: dict[str, object] = {"since": 0, "kind": "", "patched": False}
    _spans: dict[str, list[float]] = {}

    def _arrived(kind: str) -> None:
        _state["since"] = _now()
        _state["kind"] = kind

    def _left(kind: str) -> None:
        since = _state["since"]
        if since:
            _spans.setdefault(f"{_state['kind']}->{kind}", []).append((_now() - int(since)) / 1000)  # type: ignore[call-overload]
            _state["since"] = 0

    def _patch_bridge() -> None:
        import bridge.stdio as stdio

        feed, flush = stdio.LineReader.feed, stdio.LineWriter._flush

        def traced_feed(self: object, data: bytes) -> None:
            _arrived("stdin")
            feed(self, data)  # type: ignore[arg-type]

        def traced_flush(self: object) -> None:
            _left("stdout")
            flush(self)  # type: ignore[arg-type]

        stdio.LineReader.feed = traced_feed  # type: ignore[method-assign,assignment]
        stdio.LineWriter._flush = traced_flush  # type: ignore[method-assign,assignment]

    feed_data, writelines = asyncio.StreamReader.feed_data, asyncio.StreamWriter.writelines

    def traced_feed_data(self: asyncio.StreamReader, data: bytes) -> None:
        if not _state["patched"]:  # the first NATS bytes: the bridge's modules are loaded by now
            _state["patched"] = True
            if "bridge.stdio" in sys.modules:
                _patch_bridge()
        _arrived("nats")
        feed_data(self, data)

    def traced_writelines(self: asyncio.StreamWriter, data: object) -> None:
        _left("nats")
        writelines(self, data)  # type: ignore[arg-type]

    asyncio.StreamReader.feed_data = traced_feed_data  # type: ignore[method-assign]
    asyncio.StreamWriter.writelines = traced_writelines  # type: ignore[method-assign,assignment]

    @atexit.register
    def _dump() -> None:
        with open(_OUT, "w") as f:
            json.dump(_spans, f)
