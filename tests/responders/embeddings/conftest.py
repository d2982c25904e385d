from tests.embedder_fixture import onnx_model as onnx_model  # noqa: F401  (a fixture)
