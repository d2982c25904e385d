"""log_format = "json" in a real responder: a handler's log line carries the call's id and trace id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from bus import Bus
from schemas import bus as h

from ..audit_helpers import REPO, SERVICE, call_body
from ..conftest import Responders, child_env

pytestmark = pytest.mark.anyio

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_json_log_lines_name_the_call_they_were_written_in(
    responders: Responders, bus: Bus, root: str, tmp_path: Path
) -> None:
    """Every stderr line is one JSON object; the traceback of a crashing tool carries callId and traceId, start-up lines carry neither."""
    stderr = tmp_path / "responder.stderr"
    argv = [
        sys.executable,
        "-m",
        "tests.telemetry.metered_service",
        responders.url,
        root,
        str(tmp_path / "s"),
        "json",
    ]
    with stderr.open("wb") as err:
        responders.procs.append(
            subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stderr=err, env=child_env())
        )
    await responders.wait_instances(SERVICE, 1)
    headers = {h.CALL_ID: "crash-1", h.TRACEPARENT: f"00-{TRACE}-00f067aa0ba902b7-01"}
    with anyio.fail_after(20):
        reply = await bus.request(
            f"{root}.{SERVICE}.tools.call.crash", call_body("crash", {}), headers, timeout=10
        )
        assert (
            msgspec.json.decode(reply.data)["isError"] is True
        )  # logged (and flushed) before the reply went out
    lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    (crash,) = [line for line in lines if "crashed on purpose" in line.get("exc", "")]
    assert crash["level"] == "error" and crash["callId"] == "crash-1" and crash["traceId"] == TRACE
    assert "RuntimeError" in crash["exc"]
    assert any("callId" not in line for line in lines)  # lines outside a call (start-up) have none
