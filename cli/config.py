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

from responders import MissingExtra, ServicePlugin, UnknownService, registry
from schemas.config import DEFAULT_URL, Settings

CONFIG_FILE: Final = "mcp-nats.toml"
_SECTIONS: Final = tuple(
    f.name
    for f in msgspec.structs.fields(Settings)
    if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct)
)
"""The core sections ([nats], [bridge], ...); every other section belongs to a service plugin."""
_ALIASES: Final = {"URL": ("nats", "url"), "ROOT": ("nats", "root"), "CREDENTIALS": ("nats", "credentials")}
_NOT_SETTINGS: Final = {
    "CONFIG",
    "LOG_LEVEL",
    "SERVER_BINARY",
    "STORE_KEY",
    "PREV_STORE_KEY",
    "SERVER_STORE_KEY",
    "SERVER_PREV_STORE_KEY",
}
_LIST_KEYS: Final = {("audit", "redact")}


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
        list_keys = _LIST_KEYS
        if key in _ALIASES:
            section, field = _ALIASES[key]
        elif key.lower() in fields and key.lower() not in _SECTIONS and key.lower() != "services":
            out[key.lower()] = value
            continue
        else:
            section, _, field = key.lower().partition("_")
            if section in _SECTIONS:
                known = {f.name for f in msgspec.structs.fields(fields[section].type)}
            else:
                plugin = _plugin(section, f"environment variable {name}")
                known = {f.name for f in msgspec.structs.fields(plugin.settings)}
                list_keys = {(section, k) for k in plugin.list_keys}
            if field not in known:
                raise ConfigError(
                    f"unknown environment variable {name} (see the README's Configuration section)"
                )
        parsed: Any = (
            [v.strip() for v in value.split(",") if v.strip()] if (section, field) in list_keys else value
        )
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
    services: dict[str, msgspec.Struct] = {}
    for section in [k for k, v in data.items() if isinstance(v, dict) and k not in _SECTIONS]:
        plugin = _plugin(section, f"section [{section}]")
        try:
            services[section] = plugin.parse_settings(data.pop(section))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    try:
        return msgspec.structs.replace(msgspec.convert(data, Settings, strict=False), services=services)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit(" - at `$", 1)
        if len(where) == 2:
            raise ConfigError(
                f"bad configuration value for {where[1].rstrip('`').lstrip('.')}: {where[0]}"
            ) from None
        raise ConfigError(f"bad configuration: {text}") from None


def _plugin(name: str, where: str) -> ServicePlugin[Any]:
    """The service plugin a config section or variable belongs to; ConfigError when there is none."""
    try:
        return registry.get(name, check=False)
    except UnknownService:
        raise ConfigError(
            f"unknown {where}: not one of the sections {', '.join(_SECTIONS)} nor a service ({', '.join(registry.names())})"
        ) from None
    except MissingExtra as exc:
        raise ConfigError(f"{where}: {exc}") from None


def service_settings(settings: Settings, plugin: ServicePlugin[Any]) -> msgspec.Struct:
    """The plugin's section as loaded (its defaults when the configuration has none)."""
    section: msgspec.Struct = plugin.parse_settings(settings.services.get(plugin.name))
    return section


def state_dir(settings: Settings) -> Path:
    if settings.state_dir:
        return Path(settings.state_dir).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mcp-nats"


def auth_dir(settings: Settings) -> Path:
    """Where `up` and `auth init` keep keys and credentials (issue #11)."""
    return state_dir(settings) / "auth"


def credentials_for(settings: Settings, kind: str, name: str = "", *, expect_auth: bool = False) -> str:
    """The `.creds` file this process should use: `[nats] credentials` when set; else, when the state
    directory holds an auth directory (or `expect_auth`: `up` is creating one) and the URL in use is
    the one `up` recorded there, `users/<name>.creds` (kind "identity"), `services/<name>.creds`
    ("service") or `admin.creds` ("admin"). Otherwise "" (a server someone else runs)."""
    if settings.nats.credentials:
        return settings.nats.credentials
    adir = auth_dir(settings)
    if not (expect_auth or (adir / "resolver.json").is_file()) or not _state_server(settings, expect_auth):
        return ""
    if kind == "identity":
        return str(adir / "users" / f"{name}.creds")
    if kind == "service":
        return str(adir / "services" / f"{name}.creds")
    return str(adir / "admin.creds")


def _state_server(settings: Settings, expect: bool = False) -> bool:
    """The URL in use is the server `up` recorded in this state directory (or `up` is starting one)."""
    try:
        recorded = url_file(settings).read_text().strip()
    except OSError:
        recorded = ""
    return not ((settings.nats.url and settings.nats.url != recorded) or not (recorded or expect))


def with_state_auth(settings: Settings, kind: str, name: str = "", *, expect_auth: bool = False) -> Settings:
    """`settings` with the credentials and TLS files this process finds in the state directory's auth/
    (see credentials_for; TLS: tls/ca.pem and tls/clients/<user>.pem when `auth init --tls` made them)."""
    from msgspec.structs import replace

    nats = settings.nats
    creds = credentials_for(settings, kind, name, expect_auth=expect_auth)
    if creds:
        nats = replace(nats, credentials=creds)
    tls = auth_dir(settings) / "tls"
    if not nats.tls_ca and (tls / "ca.pem").is_file() and _state_server(settings, expect_auth):
        user = name if kind == "identity" else f"service-{name}" if kind == "service" else "admin"
        cert, key = tls / "clients" / f"{user}.pem", tls / "clients" / f"{user}.key"
        nats = replace(nats, tls_ca=str(tls / "ca.pem"))
        if cert.is_file() and not nats.tls_cert:
            nats = replace(nats, tls_cert=str(cert), tls_key=str(key))
    return replace(settings, nats=nats)


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
