"""infra/: every nats-server config parses (`nats-server -t`), the compose file is valid YAML with
the parts the README promises, and the systemd units drain within their stop timeout."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bus import find_binary
from schemas.config import ResponderSettings

INFRA = Path(__file__).resolve().parent.parent / "infra"
CONFIGS = sorted(INFRA.rglob("*.conf"))
UNITS = sorted([*INFRA.glob("systemd/*.service"), *INFRA.glob("systemd/*.timer")])
COMPOSE = INFRA / "compose" / "compose.yaml"
# The telemetry files (issue #10): mounted into Prometheus and Grafana.
ELSEWHERE = {"../prometheus.yml", "../alerts.yml", "../grafana/mcp-nats.json"}


TLS_FILES = "./auth/tls/"
"""The TLS configs (cluster-3-tls/) name the certificates `mcp-nats auth init --tls --dir ./auth` makes,
relative to the directory the servers start in."""


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ./auth/tls, made by the real `mcp-nats auth init --tls` (once per module)."""
    from .test_cluster_tls import auth_init_tls

    base = tmp_path_factory.mktemp("infra-tls")
    auth_init_tls(base)
    return base


@pytest.mark.parametrize("conf", CONFIGS, ids=[str(c.relative_to(INFRA)) for c in CONFIGS])
def test_every_server_config_parses(conf: Path, request: pytest.FixtureRequest) -> None:
    """`nats-server -t -c` accepts every .conf under infra/ (a TLS one with the certificates `auth init --tls` made)."""
    cwd = request.getfixturevalue("tls_dir") if TLS_FILES in conf.read_text() else None
    r = subprocess.run(
        [find_binary(), "-t", "-c", str(conf)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_tls_config_whose_route_certificate_is_missing_is_refused(tls_dir: Path, tmp_path: Path) -> None:
    """`nats-server -t` refuses cluster-3-tls/n2.conf when the route certificate it names does not exist."""
    import shutil

    shutil.copytree(tls_dir / "auth", tmp_path / "auth")
    (tmp_path / "auth" / "tls" / "routes" / "n2.pem").unlink()
    conf = INFRA / "cluster-3-tls" / "n2.conf"
    r = subprocess.run(
        [find_binary(), "-t", "-c", str(conf)], cwd=tmp_path, capture_output=True, timeout=30, check=False
    )
    assert r.returncode != 0


def test_there_are_configs_for_single_cluster_and_compose() -> None:
    """The single node, the 3-node cluster (plain and with TLS routes) and the compose cluster all have configs."""
    names = {str(c.relative_to(INFRA)) for c in CONFIGS}
    assert {
        "single.conf",
        "cluster-3/n1.conf",
        "cluster-3-tls/n1.conf",
        "compose/nats/n1.conf",
        "compose/nats/n3.conf",
    } <= names


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _seconds(value: str) -> float:
    if value.endswith("min"):
        return float(value[:-3]) * 60
    return float(value.rstrip("s"))


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_units_parse(unit: Path) -> None:
    """Every unit has its sections; long-running services restart on failure and stop by SIGTERM."""
    u = _unit(unit)
    if unit.suffix == ".timer":
        assert "Timer" in u and "Install" in u
        return
    svc = u["Service"]
    assert svc["ExecStart"][0].startswith("/")
    if svc.get("Type", ["simple"])[0] == "simple":
        assert svc["Restart"] == ["on-failure"]
        assert svc["KillSignal"] == ["SIGTERM"]
        assert "Install" in u


def test_responder_units_outlast_the_drain() -> None:
    """Responder and attach units wait longer than drain_timeout before SIGKILL."""
    drain = ResponderSettings().drain_timeout
    for name in ("mcp-nats-responder@.service", "mcp-nats-attach@.service"):
        svc = _unit(INFRA / "systemd" / name)["Service"]
        assert _seconds(svc["TimeoutStopSec"][0]) > drain
        assert svc["KillMode"] == ["mixed"]


def test_backup_timer_meets_the_rpo() -> None:
    """The backup timer fires at least every 15 minutes, so the RPO stays under 1 hour even if runs fail."""
    timer = _unit(INFRA / "systemd" / "mcp-nats-backup.timer")["Timer"]
    assert timer["OnCalendar"] == ["*:0/15"] and timer["Persistent"] == ["true"]
    service = _unit(INFRA / "systemd" / "mcp-nats-backup.service")["Service"]
    assert "mcp-nats backup" in service["ExecStart"][0]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_a_three_node_cluster_services_prometheus_and_grafana() -> None:
    """The compose file parses and has nats-1..3, responders, Prometheus and Grafana; only loopback ports are published."""
    services = _compose()["services"]
    assert {"nats-1", "nats-2", "nats-3", "fs", "memory", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    for name in ("fs", "memory"):
        assert services[name]["stop_signal"] == "SIGTERM"
        grace = services[name]["stop_grace_period"]
        assert _seconds(grace) > ResponderSettings().drain_timeout
        assert "nats-1:4222" in services[name]["environment"]["MCP_NATS_NATS_URL"]


def test_compose_mounts_exist_or_are_the_telemetry_files() -> None:
    """Every host path the compose file mounts exists, the Prometheus config, alert rules and dashboard among them."""
    data = _compose()
    mounts: list[str] = []
    for svc in data["services"].values():
        for vol in svc.get("volumes", []):
            src = str(vol).split(":", 1)[0]
            if src.startswith((".", "/")):
                mounts.append(src)
    assert ELSEWHERE <= set(mounts)
    for src in set(mounts):
        assert (COMPOSE.parent / src).exists(), src
    for n in (1, 2, 3):
        assert f"./nats/n{n}.conf" in mounts
