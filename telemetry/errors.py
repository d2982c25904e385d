"""Errors of the telemetry package.

TelemetryError          Raised when telemetry cannot start (the process should not run half-observed).
└── EndpointError       Raised when the /metrics address cannot be bound.
"""

from __future__ import annotations


class TelemetryError(Exception):
    """Raised when telemetry cannot start."""


class EndpointError(TelemetryError):
    """Raised when the /metrics endpoint cannot listen on the configured address."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        super().__init__(
            f"cannot serve /metrics on {host}:{port} ({reason}); set [metrics] port = 0 for a free port, "
            "or [metrics] enabled = false"
        )
