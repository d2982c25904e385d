"""Prometheus' own binaries for the infra and scrape tests.

`prometheus_bin` finds `prometheus` and `promtool` on PATH; when they are missing and this is a
root shell with apt-get (CI's fresh Debian machine), it installs Debian's `prometheus` package
once per test session (no recommends; bounded in time; the service is not started: the tests
run their own instance on a free port). Otherwise the tests that need them skip, naming the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

PACKAGE = "prometheus"
_APT_TIMEOUT = 600


@dataclass(frozen=True)
class PrometheusBinaries:
    prometheus: str
    promtool: str


def _find() -> PrometheusBinaries | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return PrometheusBinaries(prometheus, promtool) if prometheus and promtool else None


def _apt_install() -> str:
    """Install the package; returns "" on success, else why not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root with apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confdef",
        PACKAGE,
    ]
    for step in (install, ["apt-get", "update"], install):
        try:
            done = subprocess.run(
                step, env=env, capture_output=True, text=True, timeout=_APT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            return f"`{' '.join(step)}` took more than {_APT_TIMEOUT} s"
        if done.returncode == 0 and step is install:
            return ""
    return f"apt-get install {PACKAGE} failed: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def prometheus_bin() -> PrometheusBinaries:
    found = _find()
    if found is None:
        why = _apt_install()
        found = _find()
        if found is None:
            pytest.skip(
                f"prometheus and promtool not installed (Debian package `{PACKAGE}`; {why or 'not on PATH after install'})"
            )
    return found
