"""The audit tests' `audited` responder, run the way `mcp-nats serve` runs a service: under its telemetry.

    python -m tests.telemetry.metered_service URL ROOT STATE_DIR [LOG_FORMAT]

In this process only, `audited` also has `crash`, a tool that raises an unexpected exception (logged
by the runtime inside the call).
"""

from __future__ import annotations

import sys

import uvloop

from cli.config import load_settings
from cli.observe import serve_observed
from telemetry import setup_logging
from tests.audit_service import svc


@svc.tool
def crash() -> str:
    """Fail with an unexpected exception."""
    raise RuntimeError("crashed on purpose")


if __name__ == "__main__":
    url, root, state = sys.argv[1], sys.argv[2], sys.argv[3]
    log_format = sys.argv[4] if len(sys.argv) > 4 else "text"
    settings = load_settings(
        None,
        environ={},
        overrides={
            "state_dir": state,
            "log_format": log_format,
            "nats": {"url": url, "root": root, "reconnect_wait": 0.1},
        },
    )
    setup_logging("info", settings.log_format)
    uvloop.run(serve_observed(svc, settings, svc.name))
