"""The `[search]` settings section."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from ...embeddings import EmbedderSettings


class SearchSettings(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    backend: Literal["sqlite", "opensearch"] = "sqlite"
    """"sqlite": an FTS5 index in the state dir (nothing to install); "opensearch": a server at `url`."""
    path: str = ""
    """The SQLite index file. Empty: <state_dir>/search/search.db (every instance on the machine shares it)."""
    roots: list[str] = field(default_factory=list)
    """Directories `index_paths` may read, with the fs service's rules (`DIR` or `DIR:ro`). Empty: the current directory."""
    read_only: bool = False
    """Register only the read tools (search, count, list_indices, get_document, get_mapping)."""
    title_weight: Annotated[float, Meta(gt=0)] = 3.0
    """BM25 weight of the title field (text is 1.0)."""
    chunk_chars: Annotated[int, Meta(ge=200, le=100_000)] = 2000
    """`index_paths` cuts files into chunks of about this many characters, on line boundaries."""
    max_file_bytes: Annotated[int, Meta(gt=0)] = 2 * 1024 * 1024
    """Larger files are skipped by `index_paths`."""
    max_files: Annotated[int, Meta(gt=0)] = 20_000
    """`index_paths` stops after this many files per call and says so."""
    busy_timeout: Annotated[float, Meta(gt=0)] = 30.0
    """Seconds a writer waits for another instance's batch to commit."""
    hybrid: bool = False
    """Embed every document at index time with `embedder` (slow: tens of documents/s on CPU); enables mode=hybrid."""
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    url: str = ""
    """OpenSearch: the one URL ever contacted (e.g. https://127.0.0.1:9200)."""
    username: str = ""
    password_env: str = ""
    """OpenSearch: the environment variable holding the password (never the password in a file)."""
    verify_certs: bool = True
    allow_raw_query: bool = False
    """OpenSearch: register `raw_query(index, query_dsl)` (query DSL passed through, size still capped)."""
    timeout: Annotated[float, Meta(gt=0)] = 30.0
