"""`mcp-nats bridge --autostart`: start `mcp-nats up` in the background when no server is there.

The bridge must answer its client within a few seconds, so this only spawns and returns: the
bridge's upstream keeps re-reading the URL `up` records until it connects. A lock in the state
directory keeps two bridges starting at once from starting two servers. The detached `up`
outlives the bridge (it is shared by every later session); stop it with
`kill $(cat <state_dir>/up.pid)`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys

from schemas.config import Settings

from .config import resolve_url, state_dir

log = logging.getLogger("mcp-nats")


def _alive(pid_file: str) -> bool:
    try:
        pid = int(open(pid_file).read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def ensure_server(settings: Settings) -> bool:
    """Spawn a detached `mcp-nats up` unless a suitable server answers. True when the bridge must wait
    for the URL `up` records (it started one, or another bridge is starting one)."""
    from .config import with_state_auth
    from .up import check_server

    if settings.nats.url:
        return False  # an explicit URL is the operator's choice; never start a server in its place
    admin = with_state_auth(settings, "admin").nats
    if check_server(resolve_url(settings), admin.credentials, admin) is None:
        return False
    sdir = state_dir(settings)
    sdir.mkdir(parents=True, exist_ok=True)
    pid_file = str(sdir / "up.pid")
    with open(sdir / "autostart.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(pid_file):
            return True  # another bridge started it; its URL will appear in the state dir
        root = os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd()
        argv = [sys.executable, "-m", "cli", "up", "--root", root, "--subject-root", settings.nats.root]
        if settings.state_dir:
            argv += ["--state-dir", settings.state_dir]
        with open(sdir / "up.log", "ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, cwd=root
            )
        with open(pid_file, "w") as f:
            f.write(f"{proc.pid}\n")
        log.warning(
            "no NATS server was running; started `mcp-nats up` (pid %d, log %s)", proc.pid, sdir / "up.log"
        )
    return True


def recorded_url(settings: Settings) -> str:
    """The URL `up` recorded, or "" while it has not recorded one yet."""
    try:
        return (state_dir(settings) / "nats.url").read_text().strip()
    except OSError:
        return ""
