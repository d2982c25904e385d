"""Child processes that never outlive us: started in order, stopped in reverse, SIGTERM first.

Each child asks the kernel for SIGTERM when its parent dies (Linux PR_SET_PDEATHSIG), so even
a SIGKILL of the supervisor leaves no orphan behind.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Sequence

from bus.embedded import die_with_parent

log = logging.getLogger(__name__)


class Supervisor:
    """Owns a list of child processes; `stop()` terminates them all (reverse order) and waits."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, argv: Sequence[str], *, new_session: bool = False) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, preexec_fn=die_with_parent, start_new_session=new_session
        )
        self.children.append((name, proc))
        log.info("started %s (pid %d)", name, proc.pid)
        return proc

    def exited(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.children if p.poll() is not None]

    def stop(self, timeout: float = 35.0) -> None:
        for _name, p in reversed(self.children):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout
        for name, p in reversed(self.children):
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) did not stop in time; killing it", name, p.pid)
                p.kill()
                p.wait(5)
        self.children.clear()
