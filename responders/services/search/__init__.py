"""The `search` service: full-text indices (SQLite FTS5 in the state dir, or OpenSearch), BM25 ranking,
highlights, phrase/prefix/boolean queries, files under the fs roots, and hybrid ranking with embeddings."""

from ...plugin import Argument, ServicePlugin
from .backend import SearchBackend as SearchBackend
from .outputs import Document as Document
from .service import SearchTools as SearchTools
from .service import build as build
from .settings import SearchSettings as SearchSettings

plugin = ServicePlugin(
    name="search",
    summary="full-text search indices (SQLite FTS5 BM25, or OpenSearch) over documents and files under the fs roots",
    settings=SearchSettings,
    build=build,
    arguments=(
        Argument(
            "--root",
            key="roots",
            kind="append",
            metavar="DIR[:ro]",
            help="a directory index_paths may read (repeatable; default: the current directory)",
        ),
        Argument(
            "--backend",
            key="backend",
            metavar="sqlite|opensearch",
            help="where the indices live (default: sqlite)",
        ),
        Argument(
            "--index-file",
            key="path",
            metavar="FILE",
            help="the SQLite index file (default: <state dir>/search/search.db)",
        ),
        Argument("--url", key="url", metavar="URL", help="OpenSearch URL (the only address ever contacted)"),
        Argument("--read-only", key="read_only", kind="flag", help="register only the read tools"),
        Argument(
            "--hybrid", key="hybrid", kind="flag", help="embed documents at index time and allow mode=hybrid"
        ),
        Argument(
            "--allow-raw-query",
            key="allow_raw_query",
            kind="flag",
            help="OpenSearch: register raw_query (query DSL)",
        ),
    ),
    extra="search",
    list_keys=frozenset({"roots"}),
)

__all__ = ["Document", "SearchBackend", "SearchSettings", "SearchTools", "build", "plugin"]
