"""Loading Settings: `mcp-nats.toml`, then `MCP_NATS_*` variables, then command-line flags.

Every bad value, unknown key or unknown `MCP_NATS_*` variable is refused with a sentence that
names it (`ConfigError`), before anything starts.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Final

import msgspec

from schemas.config import DEFAULT_URL, Settings

CONFIG_FILE: Final = "mcp-nats.toml"
_SECTIONS: Final = ("nats", "bridge", "responder", "fs", "audit", "events", "memory", "metrics")
_ALIASES: Final = {"URL": ("nats", "url"), "ROOT": ("nats", "root"), "CREDENTIALS": ("nats", "credentials")}
_NOT_SETTINGS: Final = {"CONFIG", "LOG_LEVEL"}
_LIST_KEYS: Final = {("fs", "roots"), ("audit", "redact")}


class ConfigError(Exception):
    """Raised when the configuration cannot be used; the message names the key and the problem."""


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = {f.name: f for f in msgspec.structs.fields(Settings)}
    for name, value in environ.items():
        if not name.startswith("MCP_NATS_"):
            continue
        key = name[len("MCP_NATS_") :]
        if key in _NOT_SETTINGS:
            continue
        if key in _ALIASES:
            section, field = _ALIASES[key]
        elif key.lower() in fields and key.lower() not in _SECTIONS:
            out[key.lower()] = value
            continue
        else:
            section, _, field = key.lower().partition("_")
            known = {f.name for f in msgspec.structs.fields(fields[section].type)} if section in _SECTIONS else set()
            if field not in known:
                raise ConfigError(f"unknown environment variable {name} (see the README's Configuration section)")
        parsed: Any = [v.strip() for v in value.split(",") if v.strip()] if (section, field) in _LIST_KEYS else value
        out.setdefault(section, {})[field] = parsed
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_settings(
    path: str | None = None, environ: dict[str, str] | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Settings from the file (explicit path, $MCP_NATS_CONFIG, or ./mcp-nats.toml if present), env and flags."""
    env = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    file = path or env.get("MCP_NATS_CONFIG") or (CONFIG_FILE if Path(CONFIG_FILE).is_file() else None)
    if file:
        try:
            data = tomllib.loads(Path(file).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read the config file {file}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the config file {file} is not valid TOML: {exc}") from None
    data = _merge(data, _env_overrides(env))
    if overrides:
        data = _merge(data, overrides)
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit(" - at `$", 1)
        if len(where) == 2:
            raise ConfigError(f"bad configuration value for {where[1].rstrip('`').lstrip('.')}: {where[0]}") from None
        raise ConfigError(f"bad configuration: {text}") from None


def state_dir(settings: Settings) -> Path:
    if settings.state_dir:
        return Path(settings.state_dir).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mcp-nats"


def url_file(settings: Settings) -> Path:
    return state_dir(settings) / "nats.url"


def resolve_url(settings: Settings) -> str:
    """The configured URL; else the one `mcp-nats up` recorded; else the default."""
    if settings.nats.url:
        return settings.nats.url
    try:
        recorded = url_file(settings).read_text().strip()
    except OSError:
        recorded = ""
    return recorded or DEFAULT_URL
