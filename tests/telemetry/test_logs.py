"""JSON log lines: the fixed fields, and the call context a LogContext observer puts in them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

import pytest

from schemas.observe import BridgeRequest, ToolCall
from telemetry.logs import JsonFormatter, LogContext, setup_logging, trace_id_of

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def lines() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.telemetry.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def _records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _call() -> ToolCall:
    return ToolCall(
        service="demo",
        tool="echo",
        call_id="call-42",
        instance="i",
        identity="me",
        verified=False,
        headers={"traceparent": TP},
        arguments=None,
        started_ns=time.perf_counter_ns(),
    )


def test_a_line_is_one_json_object_with_the_fixed_fields(lines: tuple[logging.Logger, io.StringIO]) -> None:
    """Outside a call a line has time, level, logger and message and no callId/traceId; tracebacks go in exc."""
    logger, out = lines
    logger.warning("hello %s", "world")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    first, second = _records(out)
    assert (
        first["level"] == "warning"
        and first["logger"] == "test.telemetry.logs"
        and first["message"] == "hello world"
    )
    assert str(first["time"]).endswith("Z") and "T" in str(first["time"])
    assert "callId" not in first and "traceId" not in first
    assert "ValueError: boom" in str(second["exc"])


async def _handler(logger: logging.Logger, obs: LogContext, call: ToolCall) -> None:
    obs.call_started(call)
    await asyncio.sleep(0)
    logger.info("inside")
    obs.call_ended(call)
    logger.info("after")


@pytest.mark.anyio
async def test_call_context_is_visible_inside_the_call_only(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    """Lines logged between call_started and call_ended in the call's task carry callId and traceId; others do not."""
    logger, out = lines
    obs = LogContext()
    await asyncio.gather(_handler(logger, obs, _call()), asyncio.sleep(0))
    logger.info("outside")
    inside, after, outside = _records(out)
    assert inside["callId"] == "call-42" and inside["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "callId" not in after and "callId" not in outside


def test_bridge_requests_carry_context_too(lines: tuple[logging.Logger, io.StringIO]) -> None:
    """A bridge request's call id (set after its start) and trace id are in lines logged while it runs."""
    logger, out = lines
    obs = LogContext()
    req = BridgeRequest(
        method="tools/call", request_id=1, protocol_version="2025-06-18", started_ns=0, client_traceparent=TP
    )
    req.call_id = "b-1"
    obs.request_started(req)
    logger.info("forwarding")
    obs.request_ended(req)
    logger.info("done")
    inside, done = _records(out)
    assert inside["callId"] == "b-1" and inside["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "callId" not in done


def test_trace_id_of_rejects_malformed_and_all_zero() -> None:
    """Only a well-formed traceparent with a non-zero trace id yields a trace id."""
    assert trace_id_of(TP) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of(None) is None
    assert trace_id_of("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
    assert trace_id_of("00-xyz-00f067aa0ba902b7-01") is None
    assert trace_id_of("00-" + "g" * 32 + "-00f067aa0ba902b7-01") is None


def test_setup_logging_json_replaces_the_root_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    """setup_logging(..., "json") writes JSON to stderr and nothing to stdout (the bridge's wire)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("info", "json")
        logging.getLogger("x").info("to stderr")
        captured = capsys.readouterr()
        assert captured.out == ""
        assert json.loads(captured.err.strip().splitlines()[-1])["message"] == "to stderr"
    finally:
        root.handlers[:], root.level = saved
