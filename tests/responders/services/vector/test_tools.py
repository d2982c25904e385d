"""The vector tools in process: store/find shaped like mcp-server-qdrant's, the raw point tools,
the default collection, read-only mode, the embedder recorded with each collection and a
different one refused, and one owner per embedded directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from responders.embeddings import EmbedderSettings
from responders.embeddings.onnx import OnnxEmbedder, OnnxModel
from responders.errors import ToolError
from responders.plugin import ServiceOptions
from responders.service import to_result
from responders.services.vector import VectorSettings, build
from responders.services.vector.errors import (
    BackendFailed,
    CollectionMissing,
    EmbedderMismatch,
    InvalidPoint,
    NoCollection,
    StoreLocked,
)
from responders.services.vector.store import open_store
from schemas.mcp import TextContent
from tests.embedding_server import Server
from tests.embedding_server import server as server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.anyio


def text_of(value: Any, svc: Any, tool: str) -> str:
    (block,) = to_result(value, svc.tools[tool]).content
    assert isinstance(block, TextContent)
    return block.text


WRITE_TOOLS = {
    "store",
    "create_collection",
    "delete_collection",
    "upsert_points",
    "set_payload",
    "delete_points",
}
READ_TOOLS = {"find", "list_collections", "collection_info", "count", "search_points", "get_points", "scroll"}


async def test_store_and_find_read_like_mcp_server_qdrant(make_vector: Any) -> None:
    """store answers 'Remembered: ...', find answers with <entry> lines; the payload is {document, metadata} under the named vector fast-all-minilm-l6-v2."""
    async with make_vector() as call:
        stored = await call(
            "store",
            information="The office wifi password is on the fridge.",
            collection="notes",
            metadata={"room": "kitchen"},
        )
        assert (
            text_of(stored, call.svc, "store")
            == "Remembered: The office wifi password is on the fridge. in collection notes"
        )
        found = await call("find", query="where can I find the wireless network key", collection="notes")
        text = text_of(found, call.svc, "find")
        assert text.splitlines() == [
            "Results for the query 'where can I find the wireless network key'",
            '<entry><content>The office wifi password is on the fridge.</content><metadata>{"room": "kitchen"}</metadata></entry>',
        ]
        empty = await call(
            "find",
            query="anything",
            collection="notes",
            filter={"must": [{"key": "metadata.room", "match": "attic"}]},
        )
        assert text_of(empty, call.svc, "find") == "No information found for the query 'anything'"
        info = await call("collection_info", collection="notes")
        assert info.points == 1 and set(info.vectors) == {"fast-all-minilm-l6-v2"}
        assert (
            info.vectors["fast-all-minilm-l6-v2"].size == 384
            and info.vectors["fast-all-minilm-l6-v2"].distance == "Cosine"
        )
        assert info.embedder is not None and (info.embedder.model, info.embedder.dimension) == (
            "all-MiniLM-L6-v2-onnx-int8",
            384,
        )
        (point,) = (await call("scroll", collection="notes")).points
        assert point.payload == {
            "document": "The office wifi password is on the fridge.",
            "metadata": {"room": "kitchen"},
        }


async def test_default_collection_lets_calls_omit_it(make_vector: Any) -> None:
    """With a default collection store/find/count need no collection; without one they refuse with NoCollection."""
    async with make_vector(collection="mem") as call:
        await call("store", information="Alice prefers tea to coffee.")
        assert (await call("count")).count == 1
        assert (await call("find", query="what does Alice like to drink")).entries[
            0
        ].document == "Alice prefers tea to coffee."
        assert (await call("list_collections")).collections == ["mem"]
    async with make_vector() as call:
        with pytest.raises(NoCollection):
            await call("store", information="x")
        with pytest.raises(CollectionMissing):
            await call("find", query="x", collection="nope")


async def test_raw_point_tools(make_vector: Any) -> None:
    """upsert, get, search, scroll pages, set_payload and delete by ids or filter work on raw vectors; bad ids and selectors are refused."""
    async with make_vector() as call:
        created = await call("create_collection", collection="raw", dimension=3, vector="v")
        assert created.vectors["v"].size == 3 and created.embedder is None
        uid = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"
        points = [{"id": i, "vector": {"v": [1.0, float(i), 0.0]}, "payload": {"n": i}} for i in range(1, 6)]
        await call(
            "upsert_points", collection="raw", points=[*points, {"id": uid, "vector": {"v": [0.0, 0.0, 1.0]}}]
        )
        got = await call("get_points", collection="raw", ids=[2, uid, 99], with_vectors=True)
        assert {p.id for p in got.points} == {2, uid} and any(
            p.vector == {"v": pytest.approx([1 / 5**0.5, 2 / 5**0.5, 0.0])} for p in got.points
        )
        near = await call("search_points", collection="raw", vector=[0.0, 0.1, 1.0], using="v", limit=2)
        assert near.points[0].id == uid and near.points[0].score is not None
        page1 = await call("scroll", collection="raw", limit=4)
        page2 = await call("scroll", collection="raw", limit=4, offset=page1.next_offset)
        assert len(page1.points) == 4 and len(page2.points) == 2 and page2.next_offset is None
        await call(
            "set_payload",
            collection="raw",
            payload={"tag": "x"},
            filter={"must": [{"key": "n", "range": {"gte": 4}}]},
        )
        assert (
            await call("count", collection="raw", filter={"must": [{"key": "tag", "match": "x"}]})
        ).count == 2
        await call("delete_points", collection="raw", ids=[1, 2])
        await call("delete_points", collection="raw", filter={"must": [{"key": "tag", "match": "x"}]})
        assert (await call("count", collection="raw")).count == 2
        with pytest.raises(InvalidPoint, match="exactly one of 'ids' or 'filter'"):
            await call("delete_points", collection="raw")
        with pytest.raises(InvalidPoint, match="neither an unsigned integer nor a UUID"):
            await call("get_points", collection="raw", ids=["not-a-uuid"])
        with pytest.raises(ToolError, match="dimension error"):
            await call("upsert_points", collection="raw", points=[{"id": 9, "vector": {"v": [1.0, 2.0]}}])
        assert (await call("delete_collection", collection="raw")).status == "deleted"
        assert (await call("delete_collection", collection="raw")).status == "absent"
        with pytest.raises(
            msgspec.ValidationError
        ):  # names that could leave the store's directory never reach Qdrant
            await call("create_collection", collection="../escape", dimension=2)


async def test_read_only_registers_no_write_tool(make_vector: Any) -> None:
    """In read-only mode only the read tools exist, so a client cannot even try a write."""
    async with make_vector(read_only=True) as call:
        assert set(call.svc.tools) == READ_TOOLS
    async with make_vector() as call:
        assert set(call.svc.tools) == READ_TOOLS | WRITE_TOOLS
        assert all(call.svc.tools[t].annotations.readOnlyHint for t in READ_TOOLS)


class OtherEmbedder:
    """The same vectors under another model name, or cut to another dimension."""

    def __init__(self, inner: OnnxEmbedder, model: str, dimension: int) -> None:
        self.inner, self._model, self._dimension = inner, model, dimension

    @property
    def model(self) -> str:
        return self._model

    @property
    def dimension(self) -> int:
        return self._dimension

    async def embed(self, texts: Any) -> list[list[float]]:
        return [v[: self._dimension] for v in await self.inner.embed(texts)]


@pytest.mark.parametrize(
    ("model", "dimension"), [("openai:text-embedding-3-small", 384), ("all-MiniLM-L6-v2-onnx-int8", 256)]
)
async def test_another_embedder_is_refused_naming_both(
    tmp_path: Path, onnx_model: OnnxModel, model: str, dimension: int
) -> None:
    """A collection stored with the default embedder refuses store and find from a service whose embedder differs in model or dimension."""
    settings = VectorSettings(path=str(tmp_path / "q"))
    first = build(settings, ServiceOptions(name="vector", state_dir=tmp_path))
    first.use_embedder(OnnxEmbedder(loaded=onnx_model))
    async with first.attach():
        await first.tools["store"].invoke({"information": "hello", "collection": "c"})
    second = build(settings, ServiceOptions(name="vector", state_dir=tmp_path))
    second.use_embedder(OtherEmbedder(OnnxEmbedder(loaded=onnx_model), model, dimension))
    async with second.attach():
        for tool, args in (
            ("find", {"query": "hello", "collection": "c"}),
            ("store", {"information": "x", "collection": "c"}),
        ):
            with pytest.raises(EmbedderMismatch) as info:
                await second.tools[tool].invoke(args)
            assert "all-MiniLM-L6-v2-onnx-int8 (384-d)" in str(
                info.value
            ) and f"{model} ({dimension}-d)" in str(info.value)
        assert (await second.tools["count"].invoke({"collection": "c"})).count == 1


def test_more_than_one_instance_on_the_embedded_store_is_refused(tmp_path: Path) -> None:
    """--instances 2 without a server URL is refused at build with a sentence pointing to server mode."""
    with pytest.raises(ValueError, match="--instances 2 cannot share it; run a Qdrant server"):
        build(
            VectorSettings(path=str(tmp_path)), ServiceOptions(name="vector", state_dir=tmp_path, instances=2)
        )
    build(
        VectorSettings(url="http://127.0.0.1:6333"),
        ServiceOptions(name="vector", state_dir=tmp_path, instances=2),
    )


async def test_a_second_process_on_the_same_directory_is_refused(
    tmp_path: Path, onnx_model: OnnxModel
) -> None:
    """While this process owns the store, `mcp-nats serve vector --path` on it exits 2 saying it is owned and naming server mode; in process, build refuses too."""
    path = tmp_path / "q"
    svc = build(VectorSettings(path=str(path)), ServiceOptions(name="vector", state_dir=tmp_path))
    svc.use_embedder(OnnxEmbedder(loaded=onnx_model))
    async with svc.attach():
        with pytest.raises(StoreLocked):
            build(VectorSettings(path=str(path)), ServiceOptions(name="vector", state_dir=tmp_path))
        with pytest.raises(StoreLocked, match="already owned by another instance"):
            async with open_store(VectorSettings(path=str(path)), path):
                pass
        mcp_nats = str(Path(sys.executable).parent / "mcp-nats")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_NATS_")}
        out = subprocess.run(
            [mcp_nats, "serve", "vector", "--path", str(path), "--nats-url", "nats://127.0.0.1:9"],
            capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert "already owned by another instance" in out.stderr and "--url (server mode)" in out.stderr


def test_without_the_extra_serving_vector_names_it(tmp_path: Path) -> None:
    """With qdrant_client and anyio not importable, `mcp-nats serve vector` exits 2 with the sentence naming the extra mcp-nats[vector]."""
    for module in (
        "qdrant_client",
        "anyio",
    ):  # anyio too: the plugin module itself must import without the extra
        blocker = tmp_path / "block" / module
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text(f"raise ImportError('not installed (test)', name={module!r})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_NATS_")} | {
        "PYTHONPATH": str(tmp_path / "block")
    }
    mcp_nats = str(Path(sys.executable).parent / "mcp-nats")
    out = subprocess.run(
        [mcp_nats, "serve", "vector", "--nats-url", "nats://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 2
    assert "pip install 'mcp-nats[vector]'" in out.stderr and "qdrant_client" in out.stderr


async def test_an_unreachable_server_is_one_sentence(tmp_path: Path, onnx_model: OnnxModel) -> None:
    """Server mode with a URL nobody listens on: the tools answer BackendFailed naming the server, and several instances are allowed."""
    svc = build(
        VectorSettings(url="http://127.0.0.1:9", timeout=2),
        ServiceOptions(name="vector", state_dir=tmp_path, instances=3),
    )
    svc.use_embedder(OnnxEmbedder(loaded=onnx_model))
    async with svc.attach():
        with pytest.raises(BackendFailed, match="cannot reach the Qdrant server"):
            await svc.tools["list_collections"].invoke({})
        with pytest.raises(BackendFailed, match="cannot reach the Qdrant server"):
            await svc.tools["store"].invoke({"information": "x", "collection": "c"})


async def test_an_http_embedder_serves_store_and_find(tmp_path: Path, server: Server) -> None:
    """With an Ollama embedder whose server failed the start-up probe, the first store learns the dimension, records ollama:<model> 3-d, and find works."""
    server.status = 500
    settings = VectorSettings(
        path=str(tmp_path / "q"), embedder=EmbedderSettings(kind="ollama", url=server.url, model="tiny")
    )
    svc = build(settings, ServiceOptions(name="vector", state_dir=tmp_path))
    async with svc.attach():
        server.status = 200
        await svc.tools["store"].invoke({"information": "abc", "collection": "h"})
        info = await svc.tools["collection_info"].invoke({"collection": "h"})
        assert info.embedder is not None and (
            info.embedder.model,
            info.embedder.dimension,
            info.embedder.vector,
        ) == ("ollama:tiny", 3, "ollama-tiny")
        found = await svc.tools["find"].invoke({"query": "xyz", "collection": "h"})
        assert [e.document for e in found.entries] == ["abc"] and found.entries[0].score == pytest.approx(1.0)
        server.status = 500
        with pytest.raises(BackendFailed, match="/api/embed answered HTTP 500"):
            await svc.tools["find"].invoke({"query": "xyz", "collection": "h"})
