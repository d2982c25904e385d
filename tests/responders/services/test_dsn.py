"""Database URLs shown without their passwords (responders/services/dsn.py)."""

from __future__ import annotations

import pytest

from responders.services.dsn import Secrets, redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://reader:s3cret@db:5432/app", "postgresql://reader:***@db:5432/app"),
        ("postgresql://reader@db/app", "postgresql://reader@db/app"),
        ("redis://:p%40ss@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "postgresql://u@h/db?sslmode=require&password=x",
            "postgresql://u@h/db?sslmode=require&password=***",
        ),
        ("neo4j://neo:pw@graph:7687", "neo4j://neo:***@graph:7687"),
    ],
)
def test_redact_masks_passwords(url: str, shown: str) -> None:
    """A URL is shown with its password and secret query parameters masked, everything else kept."""
    assert redact(url) == shown


def test_secrets_scrub_raw_and_decoded_password() -> None:
    """Scrubbing removes the password from any text, in its raw and percent-decoded forms."""
    s = Secrets("redis://:p%40ss-word@cache:6379/0")
    assert s.scrub("auth failed for p@ss-word and p%40ss-word") == "auth failed for *** and ***"
