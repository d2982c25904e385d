"""For the same calls, a responder's metrics count exactly what its audit log records, outcome by outcome."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bus import Bus

from ..audit_helpers import REPO, SERVICE, read_records, wait_count
from ..conftest import Responders, child_env
from ..test_audit import PLAN, TOTAL, _drive

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _scrape(state_dir: Path) -> dict[str, float]:
    """tool call counts by outcome, from the /metrics endpoint named in the responder's file-SD target."""
    (target,) = (state_dir / "prometheus").glob(f"responder-{SERVICE}-*.json")
    address = json.loads(target.read_text())[0]["targets"][0]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        text = r.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "mcp_tool_calls":
            for s in family.samples:
                if s.name == "mcp_tool_calls_total":
                    counts[s.labels["outcome"]] = counts.get(s.labels["outcome"], 0.0) + s.value
        if family.name == "mcp_tool_calls_in_flight":
            counts["in_flight"] = family.samples[0].value
    return counts


async def test_metrics_equal_audit_counts_for_every_outcome(
    responders: Responders, bus: Bus, root: str, tmp_path: Path
) -> None:
    """2,000 calls (ok, tool errors, refused, deadlines, cancels): mcp_tool_calls_total by outcome equals the audit records by outcome."""
    state = tmp_path / "state"
    argv = [
        sys.executable,
        "-m",
        "tests.telemetry.metered_service",
        responders.url,
        responders.root,
        str(state),
    ]
    responders.procs.append(subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, env=child_env()))
    await responders.wait_instances(SERVICE, 1)
    with anyio.fail_after(90):
        await _drive(bus, root)
        assert await wait_count(bus, root, TOTAL, timeout=30) == TOTAL
        audited = Counter(r.outcome for r in await read_records(bus, root))
        end = time.monotonic() + 10
        metered = _scrape(state)
        while (
            metered.get("in_flight") != 0 and time.monotonic() < end
        ):  # the last call_ended may trail its record
            await anyio.sleep(0.05)
            metered = _scrape(state)
    assert audited == Counter(PLAN)
    assert {k: v for k, v in metered.items() if k != "in_flight" and v} == {
        k: float(v) for k, v in audited.items()
    }
    assert metered["in_flight"] == 0
