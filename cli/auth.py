"""`mcp-nats auth init --policy FILE [--dir DIR]`: compile a policy into keys, JWTs and `.creds` files
(`bus/authstore.py`), and push the accounts to the running server, if one answers, so that the
change applies without restarting it or the responders (issue #11)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

from bus import BusError, NoResponders, NotConnected
from bus.authstore import AUTH, AuthDir, AuthDirError, Compiled
from bus.jetstream import stream_name
from bus.subjects import Subjects, is_token
from schemas.config import Settings
from schemas.policy import PolicyError, check, default_policy, parse_policy, with_services

from .config import auth_dir, url_file

log = logging.getLogger("mcp-nats")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def recorded_url(settings: Settings) -> str:
    try:
        return url_file(settings).read_text().strip()
    except OSError:
        return ""


def local_identity() -> str:
    """The OS user as an identity name (one subject token)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "local"
    token = "".join(c if c.isalnum() or c in "_-" else "_" for c in user)[:64]
    return token if is_token(token) else "local"


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    auth = sub.add_parser(
        "auth", help="security: compile a policy into credentials (see the README's Security section)"
    )
    verbs = auth.add_subparsers(dest="auth_command", required=True, metavar="VERB")
    init = verbs.add_parser(
        "init",
        help="compile a policy into accounts, user JWTs and .creds files; push them to the running server",
        description="Read the policy (TOML: roles of allowed/denied <service>.<tool> patterns, identities with roles), "
        "write DIR/users/<identity>.creds, DIR/services/<service>.creds and DIR/admin.creds (mode 0600, DIR 0700), "
        "and send the account JWTs to the running server through its system account: changed permissions apply "
        "at once and a removed identity's connections are closed.",
    )
    common(init)
    init.add_argument("--policy", required=True, metavar="FILE", help="the policy file (TOML)")
    init.add_argument("--dir", metavar="DIR", help="the auth directory (default: <state_dir>/auth)")
    init.add_argument("--state-dir", help="the state directory (default: $XDG_STATE_HOME/mcp-nats)")
    init.add_argument(
        "--tls",
        action="store_true",
        help="also create a CA, the server's certificate and one client certificate per user under DIR/tls; "
        "the embedded server and every client then use TLS (takes effect when `mcp-nats up` starts the server)",
    )
    init.add_argument(
        "--mtls",
        action="store_true",
        help="as --tls, and the server refuses clients without a certificate from that CA",
    )
    init.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="NODE[=HOST,...]",
        help="with TLS: a route certificate for cluster node NODE (server and client auth, valid for NODE, "
        "loopback and each HOST); repeat per node. Default when none exists yet: n1, n2, n3 on loopback "
        "(infra/cluster-3-tls/)",
    )
    callout = verbs.add_parser(
        "callout",
        help="run the auth callout: admit clients by their certificate (mTLS) as the policy identity it names",
        description="Answer nats-server's authorization requests for connections without credentials: a client whose "
        "verified certificate subject matches an identity's `certificate` in the policy is admitted as that identity, "
        "with the permissions of its .creds file. `mcp-nats up` runs it when mTLS is on.",
    )
    common(callout)
    callout.add_argument("--dir", metavar="DIR", help="the auth directory (default: <state_dir>/auth)")
    callout.add_argument("--state-dir", help="the state directory (default: $XDG_STATE_HOME/mcp-nats)")

    from .auth_service import add_parser as add_service_parser

    common(add_service_parser(verbs))


def parse_routes(specs: list[str]) -> dict[str, list[str]]:
    """`--route NODE[=HOST,...]` values as {node: [hosts]}. Raises PolicyError naming a bad one."""
    routes: dict[str, list[str]] = {}
    for spec in specs:
        node, _, hosts = spec.partition("=")
        names = [h.strip() for h in hosts.split(",") if h.strip()]
        if not is_token(node.strip()) or not all(re.fullmatch(r"[A-Za-z0-9.:-]+", h) for h in names):
            raise PolicyError(
                f"--route {spec!r}: expected NODE[=HOST,...], a node name then host names or IP addresses"
            )
        routes[node.strip()] = names
    return routes


def read_policy(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc.strerror or exc}") from None


def compile_policy(settings: Settings, adir: AuthDir, text: str, source: str) -> Compiled:
    """Check the policy against the installed services and write the auth directory. Raises PolicyError, AuthDirError."""
    from .catalog import catalog

    policy = parse_policy(text, source)
    tools = with_services(policy, catalog(settings), source)
    check(policy, tools, source)
    audit = stream_name("audit", settings.nats.root, settings.audit.stream)
    return adir.compile(policy, text, tools, Subjects(settings.nats.root), audit)


def ensure_auth(settings: Settings, policy_file: str | None) -> tuple[AuthDir, Compiled]:
    """For `up`: compile `policy_file`, else the policy compiled last, else a default one (the local user may
    call every tool). Compiling again picks up services installed since, and keeps every key it can."""
    adir = AuthDir(auth_dir(settings))
    if policy_file:
        text, source = read_policy(Path(policy_file)), policy_file
    elif adir.policy_file.is_file():
        text, source = read_policy(adir.policy_file), str(adir.policy_file)
    else:
        text, source = default_policy(local_identity()), "the default policy"
    compiled = compile_policy(settings, adir, text, source)
    from bus.certs import TlsFiles, ensure

    tls = TlsFiles(adir.path)
    if tls.exists():
        ensure(tls, adir.users(), verify=tls.verify)
    return adir, compiled


STORE_KEY_ENV = "MCP_NATS_STORE_KEY"
PREV_STORE_KEY_ENV = "MCP_NATS_PREV_STORE_KEY"


def store_keys(settings: Settings) -> tuple[str, str]:
    """The embedded server's JetStream encryption key and the previous one (during a rotation):
    $MCP_NATS_STORE_KEY / $MCP_NATS_PREV_STORE_KEY when set, else `<auth dir>/store.key` (created once,
    0600) and `<auth dir>/store.key.prev` when it exists. Raises AuthDirError naming an unreadable file."""
    import os
    import secrets

    from bus.authstore import write_private

    adir = AuthDir(auth_dir(settings))
    key = os.environ.get(STORE_KEY_ENV, "")
    path = adir.path / "store.key"
    if not key:
        try:
            key = path.read_text().strip()
        except FileNotFoundError:
            key = secrets.token_urlsafe(32)
            write_private(path, key + "\n")
        except OSError as exc:
            raise AuthDirError(
                f"cannot read the JetStream encryption key {path}: {exc.strerror or exc}"
            ) from None
    prev = os.environ.get(PREV_STORE_KEY_ENV, "")
    if not prev:
        try:
            prev = (adir.path / "store.key.prev").read_text().strip()
        except FileNotFoundError:
            prev = ""
        except OSError as exc:
            raise AuthDirError(
                f"cannot read the previous JetStream encryption key {adir.path / 'store.key.prev'}: {exc}"
            ) from None
    return key, prev


async def push(adir: AuthDir, compiled: Compiled, url: str) -> list[str]:
    """Send the compiled accounts (not the system account's own) to the server at `url`."""
    import os
    from contextlib import AsyncExitStack

    from msgspec.structs import replace

    from bus import connect
    from bus.certs import TlsFiles
    from bus.claims import push_accounts
    from schemas.config import NatsSettings

    tls = TlsFiles(adir.path)
    # AUTH (the callout's account) is in use only with mTLS; otherwise no client of it ever connects, the
    # server would skip the update, and it keeps the preloaded claims (the same: its keys are kept stable).
    unused = set() if tls.verify else {adir.key(f"account:{AUTH}").public}
    accounts = {
        k: v for k, v in compiled.accounts.items() if k != compiled.system_account and k not in unused
    }
    settings = NatsSettings(
        url=url, credentials=str(adir.sys_creds), max_reconnect_attempts=0, connect_timeout=5.0
    )
    if tls.exists():
        cert, key = tls.client("sys")
        settings = NatsSettings(
            url=url, credentials=str(adir.sys_creds), max_reconnect_attempts=0, connect_timeout=5.0,
            tls_ca=str(tls.ca), tls_cert=str(cert) if cert.is_file() else "", tls_key=str(key) if key.is_file() else "",
        )  # fmt: skip
    # A server skips ("jwt update skipped") an account it has not loaded yet (no client of it connected), and
    # later loads it from its memory resolver as it was when the server started: the update would be lost.
    # Connected as one identity and as admin for the push, the clients and services accounts are loaded and take it.
    async with AsyncExitStack() as stack:
        loaders = [(p, p.stem) for p in sorted((adir.path / "users").glob("*.creds"))[:1]]
        for creds, name in [*loaders, (adir.admin_creds, "admin")]:
            user = replace(settings, credentials=str(creds), tls_cert="", tls_key="")
            if tls.exists():
                cert, key = tls.client(name)
                user = replace(
                    user,
                    tls_cert=str(cert) if cert.is_file() else "",
                    tls_key=str(key) if key.is_file() else "",
                )
            try:
                await stack.enter_async_context(
                    connect(user, name="mcp-nats auth", ident=f"auth-{os.getpid()}")
                )
            except BusError as exc:
                log.debug("cannot load an account as %s: %s", name, exc)
        return await push_accounts(settings, accounts)


def auth_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.auth_command == "callout":
        from .callout import callout_command

        return callout_command(args, settings)
    if args.auth_command == "service":
        from .auth_service import service_command

        return service_command(args, settings)
    adir = AuthDir(Path(args.dir).expanduser() if args.dir else auth_dir(settings))
    try:
        routes = parse_routes(args.route)
        compiled = compile_policy(settings, adir, read_policy(Path(args.policy)), args.policy)
    except (PolicyError, AuthDirError) as exc:
        log.error("%s", exc)
        return 2
    _say(f"Compiled {args.policy} into {adir.path}")
    from bus.certs import DEFAULT_NODES, TlsFiles, ensure

    files = TlsFiles(adir.path)
    if args.tls or args.mtls or routes or files.exists():  # once on, every new user gets its certificate too
        was = files.exists() and files.verify
        if not routes and not any((files.dir / "routes").glob("*.pem")):
            routes = {node: [] for node in DEFAULT_NODES}
        verify = args.mtls if (args.tls or args.mtls) else files.verify
        made = ensure(files, adir.users(), verify=verify, routes=routes)
        _say(
            f"TLS{' with client certificates (mTLS)' if args.mtls else ''}: {files.dir} ({', '.join(made) or 'nothing new'})"
        )
        if "CA" in made or was != files.verify:
            _say("Restart `mcp-nats up` for the server to take up its TLS settings.")
    for what, names in (
        ("added", compiled.added),
        ("changed (new key, old one revoked)", compiled.changed),
        ("removed (revoked)", compiled.removed),
    ):
        if names:
            _say(f"  identities {what}: {', '.join(names)}")
    url = settings.nats.url or recorded_url(settings)
    if not url:
        _say("No server is recorded in the state directory; the next `mcp-nats up` loads the accounts.")
        return 0
    try:
        said = asyncio.run(push(adir, compiled, url))
    except NotConnected as exc:
        _say(f"No server took the accounts ({exc}); the next `mcp-nats up` loads them.")
        return 0
    except NoResponders:
        log.error("the server at %s does not take account JWTs (it is not in operator mode)", url)
        return 1
    except BusError as exc:
        log.error("the server at %s did not take the new accounts: %s", url, exc)
        return 1
    _say(f"Pushed {len(said)} account JWTs to {url}: {', '.join(sorted(set(said)))}")
    return 0
