"""One loaded ONNX model per test session (loading costs about a second); tests wrap it in their own
`OnnxEmbedder`, so each event loop gets its own limiter."""

from __future__ import annotations

import pytest

from responders.embeddings.onnx import OnnxModel


@pytest.fixture(scope="session")
def onnx_model() -> OnnxModel:
    return OnnxModel(threads=0)
