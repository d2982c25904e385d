"""The knowledge graph in one JetStream KV bucket, shared by every instance of the memory service.

Key layout (KV keys allow only `[-/_=.A-Za-z0-9]`, names are any text, so keys hash them):

    e.<h(name)>                       one entity: {name, entityType, observations, created}
    r.<h(from)>.<h(to)>.<h(type)>     one relation: {from, to, relationType, created}

where h(s) is the first 32 hex digits of SHA-256 over the UTF-8 text. `created` (seconds since
the epoch, nudged to keep a batch's order) gives read_graph the reference server's insertion
order. Relations are keyed by their endpoints so a future reader can select one entity's
relations with a subject filter.

Writes. Every change to a key is a compare-and-set on its revision: creates are create-only
(an existing key means "already there", as the reference ignores existing names and duplicate
relations); updates read the key from the stream leader, compute the new value, and write it
with `last=revision`; a RevisionConflict (another instance won) reads again and retries with a
small random backoff, up to `max_retries`. So concurrent writers on any number of instances
never lose an update: the failure the reference server's users hit with one JSON file.
Deleting an entity deletes (CAS) its key, then every relation whose `from` or `to` is one of the
deleted names.

Reads. Each instance keeps a copy of the whole bucket and, before every read, brings it up to
date with one direct-get batch of the entries written after the last stream sequence it has
seen (one round trip when nothing changed). A read therefore sees every write acknowledged
before it began, on any instance. Concurrent reads share one catch-up.

Multi-key operations (several entities in one call, an entity and its relations) are not one
transaction: each key is updated atomically and in order; a concurrent reader may see some of
them done.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Final, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

from bus import BusError, KeyValue, RevisionConflict

from ...errors import ToolError

log = logging.getLogger(__name__)

T = TypeVar("T")
_CONCURRENCY: Final = 32


class Entity(Struct, kw_only=True):
    name: Annotated[str, Meta(description="The name of the entity")]
    entityType: Annotated[str, Meta(description="The type of the entity")]
    observations: Annotated[
        list[str], Meta(description="An array of observation contents associated with the entity")
    ]


class Relation(Struct, kw_only=True):
    from_: Annotated[str, Meta(description="The name of the entity where the relation starts")] = field(
        name="from"
    )
    to: Annotated[str, Meta(description="The name of the entity where the relation ends")]
    relationType: Annotated[str, Meta(description="The type of the relation")]


class StoredEntity(Struct, kw_only=True):
    name: str
    entityType: str
    observations: list[str]
    created: float = 0.0

    def public(self) -> Entity:
        return Entity(name=self.name, entityType=self.entityType, observations=list(self.observations))


class StoredRelation(Struct, kw_only=True):
    from_: str = field(name="from")
    to: str
    relationType: str
    created: float = 0.0

    def public(self) -> Relation:
        return Relation(from_=self.from_, to=self.to, relationType=self.relationType)


def as_text(value: object) -> str:
    """JSON.stringify(value, null, 2), as the reference server writes its text content."""
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


class GraphPage(Struct, kw_only=True, omit_defaults=True):
    entities: list[Entity]
    relations: list[Relation]
    nextCursor: str | UnsetType = UNSET

    def __mcp_text__(self) -> str:
        return as_text(self)


_entity_codec: Final = (msgspec.json.Encoder(), msgspec.json.Decoder(StoredEntity))
_relation_decoder: Final = msgspec.json.Decoder(StoredRelation)
_cursor_decoder: Final = msgspec.json.Decoder(tuple[float, str])


class StoreUnavailable(ToolError):
    """Raised when the KV bucket cannot be reached or refuses a request; the sentence says which."""

    def __init__(self, bucket: str, detail: str) -> None:
        super().__init__(f"the memory store (JetStream KV bucket {bucket!r}) is unavailable: {detail}")


class EntityNotFound(ToolError):
    """Raised when an operation needs an entity that does not exist (the reference server's sentence)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Entity with name {name} not found")


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def entity_key(name: str) -> str:
    return f"e.{h(name)}"


def relation_key(r: Relation | StoredRelation) -> str:
    return f"r.{h(r.from_)}.{h(r.to)}.{h(r.relationType)}"


def encode_cursor(created: float, name: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode((created, name))).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        return _cursor_decoder.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise ToolError("invalid cursor: pass back the nextCursor of a previous read_graph exactly") from None


class Graph:
    """The shared graph (see the module docstring). `open_kv` opens (creating if needed) the bucket."""

    def __init__(
        self, open_kv: Callable[[], Awaitable[KeyValue]], bucket: str, *, max_retries: int = 200
    ) -> None:
        self._open_kv = open_kv
        self.bucket = bucket
        self._max_retries = max_retries
        self._kv: KeyValue | None = None
        self._open_lock = asyncio.Lock()
        self._entities: dict[str, StoredEntity] = {}
        self._relations: dict[str, StoredRelation] = {}
        self._seq = 0
        self._sync_lock = asyncio.Lock()
        self._syncs_begun = 0
        self._syncs_done = 0
        self._limit = asyncio.Semaphore(_CONCURRENCY)

    async def kv(self) -> KeyValue:
        if self._kv is None:
            async with self._open_lock:
                if self._kv is None:
                    try:
                        self._kv = await self._open_kv()
                    except BusError as exc:
                        raise StoreUnavailable(self.bucket, str(exc)) from None
        return self._kv

    async def _guard(self, op: Awaitable[T]) -> T:
        """Await a KV request; bus failures become StoreUnavailable (a RevisionConflict stays itself)."""
        try:
            return await op
        except RevisionConflict:
            raise
        except BusError as exc:
            raise StoreUnavailable(self.bucket, str(exc)) from None

    # -- reads ----------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Bring the local copy up to date with every write acknowledged before this call began."""
        kv = await self.kv()
        arrived = self._syncs_begun
        async with self._sync_lock:
            if self._syncs_done > arrived:
                return  # a catch-up that began after we arrived has finished: it covers us
            self._syncs_begun += 1
            mine = self._syncs_begun
            while True:
                entries, more = await self._guard(kv.changes(self._seq))
                for e in entries:
                    self._apply(e.key, e.value, e.deleted)
                    self._seq = max(self._seq, e.revision)
                if not more:
                    break
            self._syncs_done = mine

    def _apply(self, key: str, value: bytes, deleted: bool) -> None:
        try:
            if key.startswith("e."):
                if deleted:
                    self._entities.pop(key, None)
                else:
                    self._entities[key] = _entity_codec[1].decode(value)
            elif key.startswith("r."):
                if deleted:
                    self._relations.pop(key, None)
                else:
                    self._relations[key] = _relation_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.error("memory: ignoring unreadable value under key %s in bucket %s", key, self.bucket)

    def entities(self) -> list[StoredEntity]:
        return sorted(self._entities.values(), key=lambda e: (e.created, e.name))

    def relations(self) -> list[StoredRelation]:
        return sorted(self._relations.values(), key=lambda r: (r.created, r.from_, r.to, r.relationType))

    async def read(self) -> GraphPage:
        await self.sync()
        return GraphPage(
            entities=[e.public() for e in self.entities()], relations=[r.public() for r in self.relations()]
        )

    async def read_page(self, cursor: str | None, limit: int) -> GraphPage:
        """Entities in graph order after `cursor`, at most `limit`, with the relations that start at them;
        the last page also carries relations whose `from` entity does not exist."""
        after = decode_cursor(cursor) if cursor else None
        await self.sync()
        ents = self.entities()
        if after is not None:
            ents = [e for e in ents if (e.created, e.name) > after]
        page, rest = ents[:limit], ents[limit:]
        names = {e.name for e in page}
        rels = [r for r in self.relations() if r.from_ in names]
        if not rest:
            existing = {e.name for e in self._entities.values()}
            rels += [r for r in self.relations() if r.from_ not in existing]
        out = GraphPage(entities=[e.public() for e in page], relations=[r.public() for r in rels])
        if rest:
            out.nextCursor = encode_cursor(page[-1].created, page[-1].name)
        return out

    async def search(self, query: str) -> GraphPage:
        from .search import rank

        await self.sync()
        found = rank(self.entities(), query)
        names = {e.name for e in found}
        rels = [r for r in self.relations() if r.from_ in names or r.to in names]
        return GraphPage(entities=[e.public() for e in found], relations=[r.public() for r in rels])

    async def open(self, names: list[str]) -> GraphPage:
        await self.sync()
        wanted = set(names)
        found = [e for e in self.entities() if e.name in wanted]
        got = {e.name for e in found}
        rels = [r for r in self.relations() if r.from_ in got or r.to in got]
        return GraphPage(entities=[e.public() for e in found], relations=[r.public() for r in rels])

    # -- writes ---------------------------------------------------------------------------------

    async def create_entities(self, entities: list[Entity]) -> list[Entity]:
        """Create the entities whose names are new; returns those (existing names are ignored)."""
        kv = await self.kv()
        now = time.time()
        todo: list[tuple[Entity, float]] = []
        seen: set[str] = set()
        for i, e in enumerate(entities):
            if e.name not in seen:
                seen.add(e.name)
                todo.append((e, now + i * 1e-6))

        async def create(e: Entity, created: float) -> bool:
            value = _entity_codec[0].encode(
                StoredEntity(
                    name=e.name, entityType=e.entityType, observations=e.observations, created=created
                )
            )
            async with self._limit:
                try:
                    await kv.create(entity_key(e.name), value)
                except RevisionConflict:
                    return False
                except BusError as exc:
                    raise StoreUnavailable(self.bucket, str(exc)) from None
            return True

        done = await asyncio.gather(*(create(e, t) for e, t in todo))
        return [e for (e, _t), ok in zip(todo, done, strict=True) if ok]

    async def create_relations(self, relations: list[Relation]) -> list[Relation]:
        """Create the relations that do not exist yet; returns those (duplicates are skipped)."""
        kv = await self.kv()
        now = time.time()
        todo: list[tuple[Relation, float]] = []
        seen: set[str] = set()
        for i, r in enumerate(relations):
            key = relation_key(r)
            if key not in seen:
                seen.add(key)
                todo.append((r, now + i * 1e-6))

        async def create(r: Relation, created: float) -> bool:
            value = msgspec.json.encode(
                StoredRelation(from_=r.from_, to=r.to, relationType=r.relationType, created=created)
            )
            async with self._limit:
                try:
                    await kv.create(relation_key(r), value)
                except RevisionConflict:
                    return False
                except BusError as exc:
                    raise StoreUnavailable(self.bucket, str(exc)) from None
            return True

        done = await asyncio.gather(*(create(r, t) for r, t in todo))
        return [r for (r, _t), ok in zip(todo, done, strict=True) if ok]

    async def add_observations(self, items: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
        """Add each item's contents the entity lacks; returns what was added per item, in order.
        Fails (changing nothing) when any entity does not exist."""
        kv = await self.kv()
        for name in dict.fromkeys(n for n, _ in items):
            if await self._guard(kv.get(entity_key(name))) is None:
                raise EntityNotFound(name)
        out: list[tuple[str, list[str]]] = []
        for name, contents in items:

            def add(
                ent: StoredEntity, contents: list[str] = contents
            ) -> tuple[StoredEntity | None, list[str]]:
                have = set(ent.observations)
                new = [c for c in dict.fromkeys(contents) if c not in have]
                if not new:
                    return None, []
                return msgspec.structs.replace(ent, observations=[*ent.observations, *new]), new

            added = await self._update_entity(name, add, missing_ok=False)
            out.append((name, added if added is not None else []))
        return out

    async def delete_observations(self, items: list[tuple[str, list[str]]]) -> None:
        """Remove the listed observations; a missing entity or observation is ignored."""
        for name, observations in items:
            drop = set(observations)

            def remove(ent: StoredEntity, drop: set[str] = drop) -> tuple[StoredEntity | None, None]:
                kept = [o for o in ent.observations if o not in drop]
                if len(kept) == len(ent.observations):
                    return None, None
                return msgspec.structs.replace(ent, observations=kept), None

            await self._update_entity(name, remove, missing_ok=True)

    async def delete_entities(self, names: list[str]) -> None:
        """Delete the entities and every relation from or to any of the names; missing ones are ignored."""
        wanted = list(dict.fromkeys(names))
        await asyncio.gather(*(self._delete_key(entity_key(n)) for n in wanted))
        gone = set(wanted)
        await self.sync()  # after the deletes: every relation written before them is in the copy
        doomed = [k for k, r in list(self._relations.items()) if r.from_ in gone or r.to in gone]
        await asyncio.gather(*(self._delete_key(k) for k in doomed))

    async def delete_relations(self, relations: list[Relation]) -> None:
        keys = list(dict.fromkeys(relation_key(r) for r in relations))
        await asyncio.gather(*(self._delete_key(k) for k in keys))

    async def _update_entity(
        self, name: str, mutate: Callable[[StoredEntity], tuple[StoredEntity | None, T]], *, missing_ok: bool
    ) -> T | None:
        """Read-modify-write one entity with compare-and-set, retrying on conflicts."""
        kv = await self.kv()
        key = entity_key(name)
        for attempt in range(self._max_retries):
            entry = await self._guard(kv.get(key))
            if entry is None:
                if missing_ok:
                    return None
                raise EntityNotFound(name)
            try:
                ent = _entity_codec[1].decode(entry.value)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise ToolError(
                    f"the stored entity {name!r} is unreadable (key {key} in bucket {self.bucket})"
                ) from None
            new, result = mutate(ent)
            if new is None:
                return result
            try:
                await self._guard(kv.update(key, _entity_codec[0].encode(new), entry.revision))
                return result
            except RevisionConflict:
                await _backoff(attempt)
        raise ToolError(
            f"{name!r} is being changed by too many writers at once ({self._max_retries} attempts); try again"
        )

    async def _delete_key(self, key: str) -> bool:
        """Delete one key with compare-and-set; False when it did not exist."""
        kv = await self.kv()
        for attempt in range(self._max_retries):
            async with self._limit:
                entry = await self._guard(kv.get(key))
                if entry is None:
                    return False
                try:
                    await self._guard(kv.delete(key, entry.revision))
                    return True
                except RevisionConflict:
                    pass
            await _backoff(attempt)
        raise ToolError(f"key {key} is being changed by too many writers at once; try again")


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, min(0.05, 0.0005 * (2 ** min(attempt, 7)))))
