"""infra/: the alert rules, their unit tests and the scrape config pass promtool; every query names a real metric."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from schemas.observe import BridgeRequest, ToolCall
from telemetry.metrics import BridgeMetrics, ConnectionMetrics, ResponderMetrics, new_registry

from .conftest import PrometheusBinaries

INFRA = Path(__file__).resolve().parents[2] / "infra"
_METRIC = re.compile(r"\b(mcp_[a-z_]+)")


def _promtool(tool: PrometheusBinaries, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool.promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_alert_rules_pass_promtool_check(prometheus_bin: PrometheusBinaries) -> None:
    """`promtool check rules infra/alerts.yml` accepts the rules."""
    done = _promtool(prometheus_bin, "check", "rules", INFRA / "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_alert_rules_fire_as_their_unit_tests_say(prometheus_bin: PrometheusBinaries) -> None:
    """`promtool test rules infra/alerts.test.yml`: error ratio, p99, spool, circuit and no-responder alerts fire on their series."""
    done = _promtool(prometheus_bin, "test", "rules", INFRA / "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_config_is_valid(prometheus_bin: PrometheusBinaries, tmp_path: Path) -> None:
    """infra/prometheus.yml (with its rules and a targets directory beside it) passes `promtool check config`."""
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(INFRA / name, tmp_path / name)
    (tmp_path / "targets").mkdir()
    done = _promtool(prometheus_bin, "check", "config", tmp_path / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def _exposed_names() -> set[str]:
    """The sample names of a registry in which every observer has seen something."""
    registry = new_registry()
    responder, bridge = ResponderMetrics(registry, "s"), BridgeMetrics(registry)
    call = ToolCall(
        service="s",
        tool="t",
        call_id="c",
        instance="i",
        identity="",
        verified=False,
        headers={},
        arguments=None,
        started_ns=0,
    )
    responder.call_started(call)
    responder.call_ended(call)
    responder.audit_changed(1, 1)
    bridge.request_ended(BridgeRequest(method="m", request_id=1, protocol_version="", started_ns=0))
    bridge.retried("s")
    bridge.circuit_changed("s", 0)
    bridge.instances_changed("s", 1)
    ConnectionMetrics(registry).reconnected()
    return {s.name for family in registry.collect() for s in family.samples}


def test_dashboard_and_alerts_query_only_exposed_metrics() -> None:
    """Every mcp_* name in the alert rules and the Grafana dashboard is one the observers expose (a rename breaks this)."""
    exposed = _exposed_names()
    dashboard = json.loads((INFRA / "grafana" / "mcp-nats.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    used = set(_METRIC.findall("\n".join(exprs))) | set(_METRIC.findall((INFRA / "alerts.yml").read_text()))
    assert used, "no metric names found"
    assert used - exposed == set()
