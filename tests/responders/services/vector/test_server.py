"""The same tools against a Qdrant server (server mode): run when QDRANT_URL is set (and
QDRANT_API_KEY when the server wants one); skipped otherwise, since no Qdrant server can be
installed from the registries this project uses."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from responders.services.vector.errors import CollectionMissing

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not os.environ.get("QDRANT_URL"),
        reason="QDRANT_URL is not set: no Qdrant server to test server mode against",
    ),
]


def server_settings() -> dict[str, Any]:
    settings: dict[str, Any] = {"url": os.environ.get("QDRANT_URL", ""), "path": ""}
    if os.environ.get("QDRANT_API_KEY"):
        settings["api_key_env"] = "QDRANT_API_KEY"
    return settings


async def test_server_mode_store_find_filter_and_points(make_vector: Any) -> None:
    """store/find, a filter, raw points and delete_collection work against the server; a missing collection is CollectionMissing."""
    name = "mcpnats-test-" + uuid.uuid4().hex[:8]
    async with make_vector(**server_settings()) as call:
        try:
            for text, kind in [
                ("Paris is the capital of France.", "geo"),
                ("Bananas are rich in potassium.", "food"),
            ]:
                await call("store", information=text, collection=name, metadata={"kind": kind})
            found = await call("find", query="which city is France's capital", collection=name, limit=1)
            assert found.entries[0].document == "Paris is the capital of France."
            only = await call(
                "find",
                query="capital",
                collection=name,
                filter={"must": [{"key": "metadata.kind", "match": "food"}]},
            )
            assert [e.metadata["kind"] for e in only.entries if e.metadata] == ["food"]
            assert (await call("count", collection=name)).count == 2
            info = await call("collection_info", collection=name)
            assert info.embedder is not None and info.embedder.dimension == 384
            with pytest.raises(CollectionMissing):
                await call("find", query="x", collection=name + "-missing")
        finally:
            await call("delete_collection", collection=name)
