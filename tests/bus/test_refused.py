"""A publish the server refuses fails the call waiting for it at once (bus/mux.py), matched by subject."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from bus import PermissionDenied
from bus.mux import Inbox


def test_a_refused_publish_fails_only_the_calls_to_that_subject() -> None:
    """nats-py lower-cases the server's text: the match ignores case; other calls keep waiting."""

    async def run() -> None:
        inbox = Inbox(cast(Any, None), "_INBOX_ci.p")
        denied = inbox.open("Root.fs.tools.call.write_file")
        other = inbox.open("root.fs.tools.call.read_text_file")
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(denied.next(600, loop.time() + 600))
        await asyncio.sleep(0)
        failed = inbox.refused(
            "root.fs.tools.call.write_file",
            lambda s: PermissionDenied(f"ci may not publish to {s!r}", subject=s, user="ci"),
        )
        assert failed == 1
        with pytest.raises(PermissionDenied) as info:
            await asyncio.wait_for(waiting, 5)
        assert info.value.subject == "Root.fs.tools.call.write_file" and info.value.user == "ci"
        with pytest.raises(Exception) as still:  # the other call was not touched: it times out on its own
            await other.next(0.05, loop.time() + 0.05)
        assert not isinstance(still.value, PermissionDenied)

    asyncio.run(run())
