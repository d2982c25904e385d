"""A small known corpus for ranking tests: each query below has a document that should clearly win."""

from __future__ import annotations

CORPUS: list[dict[str, str]] = [
    {
        "id": "tokio",
        "title": "Tokio runtime",
        "text": "Tokio is an asynchronous runtime for Rust. Its event loop drives futures and timers.",
    },
    {
        "id": "asyncio",
        "title": "Python asyncio",
        "text": "asyncio provides an event loop, coroutines, tasks and queues for Python programs.",
    },
    {
        "id": "nats",
        "title": "NATS messaging",
        "text": "NATS is a message bus with subjects, queue groups and request reply. JetStream adds persistence.",
    },
    {
        "id": "kafka",
        "title": "Apache Kafka",
        "text": "Kafka stores streams of records in partitioned logs. Consumers track offsets.",
    },
    {
        "id": "sqlite",
        "title": "SQLite",
        "text": "SQLite is an embedded database. WAL mode lets readers run while a writer commits.",
    },
    {
        "id": "fts5",
        "title": "SQLite FTS5",
        "text": "FTS5 is a full-text search extension with BM25 ranking, snippets and prefix queries.",
    },
    {
        "id": "postgres",
        "title": "PostgreSQL",
        "text": "PostgreSQL is a relational database with transactions, indexes and a query planner.",
    },
    {
        "id": "bm25",
        "title": "Okapi BM25",
        "text": "BM25 ranks documents by term frequency, inverse document frequency and length normalisation.",
    },
    {
        "id": "lucene",
        "title": "Lucene and OpenSearch",
        "text": "OpenSearch builds on Lucene: inverted indexes, analyzers, BM25 scoring and highlighting.",
    },
    {
        "id": "sourdough",
        "title": "Sourdough bread",
        "text": "Feed the starter, mix flour and water, let the dough rise overnight, bake in a hot oven.",
    },
    {
        "id": "espresso",
        "title": "Espresso",
        "text": "Espresso is brewed by forcing hot water through finely ground coffee under pressure.",
    },
    {
        "id": "marathon",
        "title": "Marathon training",
        "text": "Build weekly mileage slowly, run one long run a week and taper before the race.",
    },
    {
        "id": "eventsourcing",
        "title": "Event sourcing",
        "text": "Store every change as an event; rebuild state by replaying the loop of events from the log.",
    },
    {
        "id": "rustlang",
        "title": "Rust language",
        "text": "Rust has ownership, borrowing and lifetimes. Unsafe blocks opt out of some checks.",
    },
    {
        "id": "golang",
        "title": "Go language",
        "text": "Go has goroutines and channels; the runtime schedules goroutines onto threads.",
    },
]

# query -> the id that must rank first
EXPECTED_TOP: dict[str, str] = {
    "bm25 ranking": "bm25",  # BM25 in its title beats BM25 in fts5's text
    "bm25 snippets": "fts5",
    "okapi": "bm25",
    "event loop": "eventsourcing",  # "event" in its title and thrice in its text
    "event loop coroutines": "asyncio",
    "database OR sqlite": "sqlite",
    "queue groups": "nats",
    "coffee pressure": "espresso",
    "dough oven": "sourdough",
    "partitioned logs": "kafka",
    "wal readers writer": "sqlite",
    "goroutines": "golang",
    "lucene highlighting": "lucene",
}
