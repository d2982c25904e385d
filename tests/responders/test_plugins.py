"""Services as plugins: a service package that lives outside this repository, registered only by a
test distribution's entry point, is served, listed and called through the real bridge."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import anyio
import pytest

from cli.config import ConfigError, load_settings
from responders import MissingExtra, ServicePlugin, UnknownService, registry
from responders.services.fs import FsSettings

from ..conftest import MCP_NATS, Responders, child_env
from ..e2e_helpers import bridge_client

PLUGIN = '''
"""A service that ships in its own distribution."""
import contextlib
import os
from pathlib import Path

from msgspec import Struct

from responders import Argument, ServicePlugin, Service


class WeatherSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    city: str = "Oslo"
    log: str = ""


def build(settings, options):
    svc = Service(options.name, "0.1.0", "forecasts for tests")
    state = {"open": False}

    @svc.tool(read_only=True)
    def forecast(days: int = 1) -> str:
        """The forecast."""
        return f"{settings.city}: sunny for {days} days (backend open: {state['open']})"

    @svc.lifespan
    @contextlib.asynccontextmanager
    async def lifespan(runtime):
        state["open"] = True
        Path(settings.log).write_text(f"entered {runtime.service} {runtime.instance}\\n")
        yield
        with open(settings.log, "a") as f:
            f.write("left\\n")

    return svc


plugin = ServicePlugin(
    name="weather",
    summary="forecasts (a plugin from another distribution)",
    settings=WeatherSettings,
    build=build,
    arguments=(Argument("--city", key="city", help="the city"), Argument("--log", key="log", help="a file")),
)

broken = ServicePlugin(
    name="broken",
    summary="needs a backend that is not installed",
    settings=WeatherSettings,
    build=build,
    extra="weather-backends",
    requires=("no_such_backend_module_xyz",),
)
'''


def make_distribution(site: Path) -> Path:
    """A distribution `weather-plugin` installed into `site` (a directory put on PYTHONPATH)."""
    pkg = site / "weather_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "weather_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: weather-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[mcp_nats.services]\nweather = weather_plugin:plugin\nbroken = weather_plugin:broken\n"
    )
    return site


@pytest.mark.anyio
async def test_a_plugin_from_another_distribution_is_served_listed_and_called(
    responders: Responders, bridge_argv: list[str], tmp_path: Path
) -> None:
    """`mcp-nats serve weather` finds the plugin by its entry point alone, takes its flags, enters its
    lifespan before serving and leaves it after the drain; the bridge lists and calls its tool."""
    site = make_distribution(tmp_path / "site")
    log = tmp_path / "lifespan.log"
    env = {"PYTHONPATH": str(site)}
    proc = responders.start("weather", "--city", "Bergen", "--log", str(log), env=env)
    await responders.wait_instances("weather", 1)
    assert log.read_text().startswith("entered weather ")
    with anyio.fail_after(30):
        async with bridge_client(bridge_argv) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert "weather_forecast" in tools
            result = await c.call_tool("weather_forecast", {"days": 3})
            assert result.content[0].text == "Bergen: sunny for 3 days (backend open: True)"  # type: ignore[union-attr]
    responders.stop_all()
    assert proc.returncode == 0
    assert log.read_text().splitlines()[-1] == "left"


def test_a_plugin_whose_backend_is_missing_fails_at_start_naming_the_extra(tmp_path: Path) -> None:
    """Serving a plugin whose required module is not installed exits 2 with a sentence naming the extra."""
    site = make_distribution(tmp_path / "site")
    done = subprocess.run(
        [MCP_NATS, "serve", "broken", "--nats-url", "nats://127.0.0.1:1"],
        env=child_env(PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert (
        "pip install 'mcp-nats[weather-backends]'" in done.stderr
        and "no_such_backend_module_xyz" in done.stderr
    )


def test_a_plugin_registered_in_process_gets_its_settings_section_validated(tmp_path: Path) -> None:
    """`registry.register` adds a plugin; its `[section]` in the config is parsed by its Struct, a typo named."""
    plugin = ServicePlugin(
        name="extrafs",
        summary="fs again",
        settings=FsSettings,
        build=lambda s, o: None,  # type: ignore[arg-type,return-value]
        list_keys=frozenset({"roots"}),
    )
    registry.register(plugin)
    try:
        assert "extrafs" in registry.names() and registry.get("extrafs") is plugin
        settings = load_settings(environ={"MCP_NATS_EXTRAFS_ROOTS": "/a,/b:ro"})
        assert settings.services["extrafs"] == FsSettings(roots=["/a", "/b:ro"])
        config = tmp_path / "c.toml"
        config.write_text('[extrafs]\nrotos = ["/x"]\n')
        with pytest.raises(ConfigError, match="rotos"):
            load_settings(str(config), environ={})
    finally:
        registry.unregister("extrafs")
    with pytest.raises(UnknownService, match="unknown service 'extrafs'"):
        registry.get("extrafs")


def test_missing_extra_names_the_extra() -> None:
    """MissingExtra's sentence says which module is missing and which extra brings it."""
    plugin = ServicePlugin(
        name="needy",
        summary="x",
        settings=FsSettings,
        build=lambda s, o: None,  # type: ignore[arg-type,return-value]
        extra="db",
        requires=("no_such_mod_abc",),
    )
    with pytest.raises(MissingExtra) as err:
        registry.check_requirements(plugin)
    assert str(err.value) == (
        "the needy service needs the Python module 'no_such_mod_abc', which is not installed; "
        "install it with: pip install 'mcp-nats[db]'"
    )
