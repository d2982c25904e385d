"""The audit tests' `audited` responder, run the way `mcp-nats serve` runs a service: under its telemetry.

python -m tests.telemetry.metered_service URL ROOT STATE_DIR
"""

from __future__ import annotations

import sys

import uvloop

from cli.config import load_settings
from cli.observe import serve_observed
from tests.audit_service import svc

if __name__ == "__main__":
    url, root, state = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = load_settings(
        None,
        environ={},
        overrides={"state_dir": state, "nats": {"url": url, "root": root, "reconnect_wait": 0.1}},
    )
    uvloop.run(serve_observed(svc, settings, svc.name))
