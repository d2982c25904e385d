"""An in-process vector service on an embedded store in a temporary directory, with the session's
loaded ONNX model; tools are called the way the runtime calls them (arguments decoded and
validated by the tool's own schema first)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from responders.embeddings.onnx import OnnxEmbedder, OnnxModel
from responders.plugin import ServiceOptions
from responders.services.vector import VectorService, VectorSettings, build
from tests.embedder_fixture import onnx_model as onnx_model  # noqa: F401  (a fixture)


class Tools:
    def __init__(self, svc: VectorService) -> None:
        self.svc = svc

    async def __call__(self, tool: str, **arguments: Any) -> Any:
        """Decode `arguments` with the tool's schema (InvalidArguments-style failures raise msgspec.ValidationError), then run it."""
        spec = self.svc.tools[tool]
        args = spec.signature.decoder.decode(msgspec.json.encode(arguments))
        return await spec.invoke(msgspec.structs.asdict(args))


@pytest.fixture
def make_vector(tmp_path: Path, onnx_model: OnnxModel) -> Callable[..., Any]:  # noqa: F811
    """`async with make_vector(**settings) as call:` a started service whose store is under tmp_path."""

    @contextlib.asynccontextmanager
    async def make(**settings: Any) -> AsyncIterator[Tools]:
        settings.setdefault("path", str(tmp_path / "qdrant"))
        svc = build(
            msgspec.convert(settings, VectorSettings), ServiceOptions(name="vector", state_dir=tmp_path)
        )
        svc.use_embedder(OnnxEmbedder(loaded=onnx_model))
        async with svc.attach():
            yield Tools(svc)

    return make
