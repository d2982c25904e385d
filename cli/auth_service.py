"""`mcp-nats auth service NAME [--like KIND]`: credentials for a service that is no installed plugin's
name (a canary candidate `serve fs --name fs-next`, an `attach NAME`): adds `[services.NAME]` to the
policy compiled last, compiles it again (the services account exports NAME's subjects, the clients
account imports them, `DIR/services/NAME.creds` is written) and pushes the accounts to the running
server. `serve --name NAME` and `attach NAME` then find the file with no flag."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bus import BusError, NotConnected
from bus.authstore import AuthDir, AuthDirError
from schemas.config import Settings
from schemas.policy import PolicyError, parse_policy

from .config import auth_dir

log = logging.getLogger("mcp-nats")


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = verbs.add_parser(
        "service",
        help="credentials for a service name no plugin has (a canary candidate, an attached server)",
        description="Add [services.NAME] to the policy compiled last (DIR/policy.toml), compile it again and push the "
        "accounts to the running server: DIR/services/NAME.creds is written, and NAME's subjects are exported to the "
        "identities. Policies may then name NAME's tools (NAME.*, NAME.<tool>, and prefixes of KIND's tools).",
    )
    p.add_argument("auth_service", metavar="NAME", help="the service name (letters, digits and '-')")
    p.add_argument(
        "--like", metavar="KIND", help="the installed service it is an instance of (e.g. fs for fs-next)"
    )
    p.add_argument("--dir", metavar="DIR", help="the auth directory (default: <state_dir>/auth)")
    p.add_argument("--state-dir", help="the state directory (default: $XDG_STATE_HOME/mcp-nats)")
    return p


def no_service_creds(settings: Settings, name: str, like: str | None) -> bool:
    """True (and says how to make them) when this process would use `DIR/services/NAME.creds` of the state
    directory's auth and that file does not exist: a service name no plugin has needs `auth service` first."""
    adir = AuthDir(auth_dir(settings))
    if settings.nats.credentials != str(adir.service_creds(name)) or adir.service_creds(name).is_file():
        return False
    log.error(
        "auth is on and %s has no credentials (%s); make them with: mcp-nats auth service %s%s",
        name, adir.service_creds(name), name, f" --like {like}" if like and like != name else "",
    )  # fmt: skip
    return True


def with_service(text: str, name: str, like: str | None) -> str:
    """The policy text with a `[services.NAME]` table appended (the text is otherwise kept as written)."""
    entry = f'\n[services."{name}"]\n' + (f'like = "{like}"\n' if like else "")
    return text.rstrip("\n") + "\n" + entry


def service_command(args: argparse.Namespace, settings: Settings) -> int:
    from .auth import compile_policy, push, read_policy, recorded_url

    adir = AuthDir(Path(args.dir).expanduser() if args.dir else auth_dir(settings))
    name: str = args.auth_service
    try:
        text = read_policy(adir.policy_file)
        policy = parse_policy(text, str(adir.policy_file))
        if name in policy.services:
            log.error(
                "%s already names the service %s; its credentials: %s",
                adir.policy_file,
                name,
                adir.service_creds(name),
            )
            return 2
        new = with_service(text, name, args.like)
        parse_policy(new, f"[services.{name}]")  # a bad name or kind is refused before anything is written
        compiled = compile_policy(settings, adir, new, str(adir.policy_file))
    except (PolicyError, AuthDirError) as exc:
        log.error("%s", exc)
        return 2
    sys.stdout.write(f"Credentials for {name}: {adir.service_creds(name)}\n")
    url = settings.nats.url or recorded_url(settings)
    if not url:
        return 0
    try:
        said = asyncio.run(push(adir, compiled, url))
    except NotConnected as exc:
        sys.stdout.write(f"No server took the accounts ({exc}); the next `mcp-nats up` loads them.\n")
        return 0
    except BusError as exc:
        log.error("the server at %s did not take the new accounts: %s", url, exc)
        return 1
    sys.stdout.write(f"Pushed {len(said)} account JWTs to {url}\n")
    return 0
