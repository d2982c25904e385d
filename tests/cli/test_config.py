"""Settings: `mcp-nats.toml`, then `MCP_NATS_*`, then flags; everything unknown or bad is refused
with a sentence naming it. Also the command line's help and its exit code on bad configuration."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest

from cli.config import ConfigError, load_settings, resolve_url, state_dir, url_file
from cli.main import build_parser
from responders.services.fs import FsSettings
from schemas.config import DEFAULT_URL, Settings

from ..conftest import MCP_NATS, child_env

TOML = """\
state_dir = "/var/tmp/mcp-state"

[nats]
url = "nats://file:4222"
root = "fromfile"

[bridge]
call_timeout = 30.0
client_name = "file-client"

[responder]
max_concurrency = 8

[fs]
roots = ["/srv/a", "/srv/b:ro"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(TOML)
    return path


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_defaults_without_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no file, no variables and no flags, every setting has its documented default."""
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}) == Settings()
    s = load_settings(environ={})
    assert (s.nats.url, s.nats.root, s.bridge.call_timeout, s.services) == ("", "mcp", 120.0, {})


def test_toml_file_values_are_loaded(config_file: Path) -> None:
    """Every section of the TOML file lands in the matching setting."""
    s = load_settings(str(config_file), environ={})
    assert s.state_dir == "/var/tmp/mcp-state"
    assert s.nats.url == "nats://file:4222" and s.nats.root == "fromfile"
    assert s.bridge.call_timeout == 30.0 and s.bridge.client_name == "file-client"
    assert s.responder.max_concurrency == 8
    assert s.services["fs"] == FsSettings(roots=["/srv/a", "/srv/b:ro"])
    assert s.bridge.heartbeat == 1.0, "keys the file does not set keep their defaults"


def test_file_is_found_through_mcp_nats_config_and_the_current_directory(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an explicit path, $MCP_NATS_CONFIG is read, else ./mcp-nats.toml; an explicit path wins over both."""
    assert load_settings(environ={"MCP_NATS_CONFIG": str(config_file)}).nats.root == "fromfile"
    here = tmp_path / "cwd"
    here.mkdir()
    (here / "mcp-nats.toml").write_text('[nats]\nroot = "fromcwd"\n')
    monkeypatch.chdir(here)
    assert load_settings(environ={}).nats.root == "fromcwd"
    assert (
        load_settings(str(config_file), environ={"MCP_NATS_CONFIG": "/nonexistent.toml"}).nats.root
        == "fromfile"
    )


def test_env_overrides_the_file(config_file: Path) -> None:
    """MCP_NATS_URL, MCP_NATS_BRIDGE_CALL_TIMEOUT (converted to a number) and MCP_NATS_FS_ROOTS (a comma list) beat the file."""
    env = {
        "MCP_NATS_URL": "nats://env:4222",
        "MCP_NATS_BRIDGE_CALL_TIMEOUT": "7.5",
        "MCP_NATS_FS_ROOTS": "/env/one, /env/two:ro,,",
        "MCP_NATS_ROOT": "fromenv",
        "MCP_NATS_RESPONDER_MAX_CONCURRENCY": "3",
        "MCP_NATS_STATE_DIR": "/env/state",
        "MCP_NATS_LOG_LEVEL": "debug",  # read by the command line, not a setting: ignored here
        "UNRELATED": "x",
    }
    s = load_settings(str(config_file), environ=env)
    assert s.nats.url == "nats://env:4222"
    assert s.bridge.call_timeout == 7.5 and isinstance(s.bridge.call_timeout, float)
    assert s.services["fs"] == FsSettings(roots=["/env/one", "/env/two:ro"])
    assert s.nats.root == "fromenv"
    assert s.responder.max_concurrency == 3
    assert s.state_dir == "/env/state"
    assert s.bridge.client_name == "file-client", "the env overrides one key, not the whole section"


def test_overrides_beat_env_and_file(config_file: Path) -> None:
    """Command-line overrides beat both the variables and the file, key by key."""
    env = {"MCP_NATS_URL": "nats://env:4222", "MCP_NATS_BRIDGE_CALL_TIMEOUT": "7.5"}
    s = load_settings(
        str(config_file),
        environ=env,
        overrides={"nats": {"url": "nats://flag:4222"}, "fs": {"roots": ["/flag"]}},
    )
    assert s.nats.url == "nats://flag:4222"
    assert s.services["fs"] == FsSettings(roots=["/flag"])
    assert s.bridge.call_timeout == 7.5
    assert s.nats.root == "fromfile"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("bogus = 1\n", "`bogus`"),
        ("[nats]\nbogus = 1\n", "`bogus`"),
        ("[weird]\nx = 1\n", r"\[weird\]"),
        ("[fs]\nrootz = []\n", "`rootz`"),
    ],
)
def test_unknown_toml_key_is_refused_by_name(tmp_path: Path, text: str, named: str) -> None:
    """An unknown key or section in the TOML file (a service's section included) is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="unknown (field|section) " + named):
        load_settings(write(tmp_path, text), environ={})


@pytest.mark.parametrize("name", ["MCP_NATS_BOGUS", "MCP_NATS_FS", "MCP_NATS_BRIDGE_BOGUS"])
def test_unknown_mcp_nats_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """An MCP_NATS_ variable that is no setting is a ConfigError that names it (or the unknown key it maps to)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={name: "1"})
    text = str(err.value)
    assert name in text or "`bogus`" in text, text


@pytest.mark.parametrize(
    ("env", "text", "key"),
    [
        ({"MCP_NATS_BRIDGE_CALL_TIMEOUT": "-1"}, "", "bridge.call_timeout"),
        ({"MCP_NATS_BRIDGE_CALL_TIMEOUT": "soon"}, "", "bridge.call_timeout"),
        ({}, "[bridge]\ncall_timeout = 0\n", "bridge.call_timeout"),
        ({"MCP_NATS_ROOT": "a.b"}, "", "nats.root"),
        ({}, '[nats]\nroot = "mcp.prod"\n', "nats.root"),
        ({"MCP_NATS_ROOT": "mcp\n"}, "", "nats.root"),
        ({}, '[audit]\nstream = "AUDIT\\n"\n', "audit.stream"),
        ({"MCP_NATS_RESPONDER_MAX_CONCURRENCY": "0"}, "", "responder.max_concurrency"),
        ({}, '[fs]\nroots = "/one"\n', "fs.roots"),
        ({}, "[bridge]\nmax_tool_name = 500\n", "bridge.max_tool_name"),
    ],
)
def test_bad_value_is_refused_naming_the_key(
    tmp_path: Path, env: dict[str, str], text: str, key: str
) -> None:
    """A value that breaks its constraint (negative timeout, a root with a dot, wrong type) is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=rf"^bad configuration value for {key}: "):
        load_settings(write(tmp_path, text), environ=env)


def test_bad_value_in_overrides_is_refused(tmp_path: Path) -> None:
    """A flag value is checked like any other: --subject-root with a dot is refused naming nats.root."""
    with pytest.raises(ConfigError, match="nats.root"):
        load_settings(write(tmp_path, ""), environ={}, overrides={"nats": {"root": "a.b"}})


def test_unreadable_or_invalid_file_is_refused(tmp_path: Path) -> None:
    """A missing file or invalid TOML is a ConfigError naming the file."""
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=f"cannot read the config file {missing}"):
        load_settings(str(missing), environ={})
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(write(tmp_path, "[nats\n"), environ={})


def test_url_resolution_prefers_setting_then_recorded_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """resolve_url: the configured URL, else the one `up` recorded in the state directory, else the default."""
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={"MCP_NATS_STATE_DIR": str(tmp_path / "st")})
    assert state_dir(s) == tmp_path / "st"
    assert resolve_url(s) == DEFAULT_URL
    url_file(s).parent.mkdir(parents=True)
    url_file(s).write_text("nats://127.0.0.1:4999\n")
    assert resolve_url(s) == "nats://127.0.0.1:4999"
    s2 = load_settings(environ={"MCP_NATS_STATE_DIR": str(tmp_path / "st"), "MCP_NATS_URL": "nats://other:1"})
    assert resolve_url(s2) == "nats://other:1"


_COMMON = ["--config", "--url", "--nats-url", "--subject-root", "--credentials", "--log-level"]
OPTIONS = {
    "up": [*_COMMON, "--port", "--root", "--fs-root", "--state-dir", "--policy", "--no-auth"],
    "serve fs": [*_COMMON, "--instances", "--max-concurrency", "--name", "--root", "--fs-root"],
    "bridge": [*_COMMON, "--call-timeout", "--client-name", "--autostart"],
}


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    for word in words:
        parser = next(a for a in parser._subparsers._group_actions if a.choices).choices[word]  # type: ignore[union-attr,index]
    return parser


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_help_exits_0_and_mentions_every_option(command: str, tmp_path: Path) -> None:
    """`mcp-nats <cmd> --help` exits 0 and lists every option the command accepts."""
    done = subprocess.run(
        [MCP_NATS, *command.split(), "--help"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    sub = _subparser(build_parser(), command.split())
    declared = {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    assert declared == set(OPTIONS[command]), "the test's list of options is out of date"
    missing = [o for o in OPTIONS[command] if not re.search(rf"(?<![\w-]){o}(?![\w-])", done.stdout)]
    assert not missing, f"`mcp-nats {command} --help` does not mention {missing}"
    assert f"usage: mcp-nats {command}" in done.stdout


@pytest.mark.parametrize(
    ("env", "args", "sentence"),
    [
        (
            {"MCP_NATS_BRIDGE_CALL_TIMEOUT": "-1"},
            [],
            "bad configuration value for bridge.call_timeout: Expected `float` > 0.0",
        ),
        ({"MCP_NATS_ROOT": "a.b"}, [], "bad configuration value for nats.root"),
        ({"MCP_NATS_BOGUS": "1"}, [], "unknown environment variable MCP_NATS_BOGUS"),
        ({}, ["--subject-root", "a.b"], "bad configuration value for nats.root"),
    ],
)
def test_serve_with_bad_configuration_exits_2_with_the_sentence(
    tmp_path: Path, env: dict[str, str], args: list[str], sentence: str
) -> None:
    """`mcp-nats serve fs` with a bad variable or flag exits 2 before connecting, the sentence on stderr."""
    done = subprocess.run(
        [MCP_NATS, "serve", "fs", "--url", "nats://127.0.0.1:1", *args],
        cwd=tmp_path,
        env=child_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2, done.stderr
    assert sentence in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
