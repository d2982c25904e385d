"""The read tools (registered in every mode). Collection reads stop at max_items elements and
max_bytes of JSON and say truncated; `scan_keys` is SCAN, one bounded step per call, never KEYS."""

from typing import Annotated, Any

from msgspec import Meta

from ...service import Service
from .results import (
    Count,
    Hash,
    Info,
    Items,
    Keys,
    KeyType,
    Stream,
    StreamEntry,
    Ttl,
    Value,
    datum,
    label,
    size_of,
)
from .store import Store, pairs

Key = Annotated[str, Meta(min_length=1, max_length=4096, description="The key")]
Name = Annotated[
    str, Meta(min_length=1, max_length=4096, description="The key of the hash, list, set or stream")
]
INFO_SECTIONS = (
    "default",
    "all",
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
)


class Budget:
    """Counts elements and JSON bytes of a result as it is built."""

    def __init__(self, items: int, size: int) -> None:
        self.items, self.size, self.used, self.count = items, size, 2, 0

    def take(self, *values: Any) -> bool:
        """Account for one element; False when it would pass either cap."""
        cost = sum(size_of(v) + 1 for v in values)
        if self.count >= self.items or self.used + cost > self.size:
            return False
        self.used += cost
        self.count += 1
        return True


def _window(start: int, stop: int, length: int, cap: int) -> tuple[int, int, bool]:
    """Redis index semantics (negative from the end) as a non-negative [s, e] no wider than cap."""
    s = start if start >= 0 else max(length + start, 0)
    e = stop if stop >= 0 else length + stop
    e = min(e, length - 1)
    if e - s + 1 > cap:
        return s, s + cap - 1, True
    return s, e, False


def register_reads(svc: Service, store: Store) -> None:
    s = store.settings

    def c() -> Any:  # the client exists only while the lifespan runs; redis-py's command types are loose
        return store.client

    def budget() -> Budget:
        return Budget(s.max_items, s.max_bytes)

    @svc.tool(title="Get", read_only=True)
    async def get(key: Key) -> Value:
        """Get the string value of a key (cut at the value size cap; binary values come back as {"base64": ...})."""
        k = store.key(key)
        async with c().pipeline(transaction=False) as p:
            p.exists(k).strlen(k).getrange(k, 0, s.max_value_bytes - 1)
            exists, size, raw = await store.call(p.execute())
        if not exists:
            return Value(key=key, value=None)
        return Value(key=key, value=datum(raw), size=size, truncated=size > len(raw))

    @svc.tool(title="Scan Keys", read_only=True)
    async def scan_keys(
        pattern: Annotated[
            str, Meta(max_length=1024, description="Redis glob pattern (default: every key)")
        ] = "*",
        count: Annotated[
            int, Meta(ge=1, le=10000, description="Keys Redis examines in this step (a hint)")
        ] = 100,
        cursor: Annotated[
            int, Meta(ge=0, description="0 to start; then the cursor the previous step returned")
        ] = 0,
    ) -> Keys:
        """Scan keys matching a pattern, one SCAN step per call (never KEYS: the server is never blocked); repeat with the returned cursor until it is 0."""
        nxt, raw = await store.call(c().scan(cursor=cursor, match=pattern, count=min(count, s.max_items)))
        keys = [label(k) for k in raw]
        return Keys(keys=[k for k in keys if store.allow.allows(k)], cursor=int(nxt))

    @svc.tool(title="Type", read_only=True)
    async def type(key: Key) -> KeyType:
        """The type of the value stored at a key (string, list, set, zset, hash, stream, or none)."""
        t = await store.call(c().type(store.key(key)))
        return KeyType(key=key, type=label(t))

    @svc.tool(title="TTL", read_only=True)
    async def ttl(key: Key) -> Ttl:
        """Seconds until a key expires (none when it has no expiry)."""
        left = await store.call(c().ttl(store.key(key)))
        return Ttl(key=key, ttl=left if left >= 0 else None, exists=left != -2)

    @svc.tool(title="Hash Get", read_only=True)
    async def hget(name: Name, key: Annotated[str, Meta(max_length=4096, description="The field")]) -> Value:
        """Get one field of a hash."""
        raw = await store.call(c().hget(store.key(name), key.encode()))
        if raw is None:
            return Value(key=f"{name}.{key}", value=None)
        cut = raw[: s.max_value_bytes]
        return Value(key=f"{name}.{key}", value=datum(cut), size=len(raw), truncated=len(cut) < len(raw))

    @svc.tool(title="Hash Get All", read_only=True)
    async def hgetall(name: Name) -> Hash:
        """Get every field of a hash (at most max_items fields; HSCAN for large hashes)."""
        k = store.key(name)
        total = await store.call(c().hlen(k))
        raw: list[tuple[bytes, bytes]] = []
        if total <= s.max_items:
            raw = pairs(await store.call(c().hgetall(k)))
        else:
            cur = 0
            while len(raw) < s.max_items:
                cur, chunk = await store.call(c().hscan(k, cursor=cur, count=min(s.max_items, 1000)))
                raw.extend(pairs(chunk))
                if cur == 0:
                    break
        b = budget()
        fields = {}
        for f, v in raw:
            fk, fv = label(f), datum(v[: s.max_value_bytes])
            if not b.take(fk, fv):
                break
            fields[fk] = fv
        return Hash(key=name, fields=fields, total=total, truncated=len(fields) < total)

    @svc.tool(title="List Range", read_only=True)
    async def lrange(
        name: Name,
        start: int = 0,
        stop: Annotated[int, Meta(description="Last index, inclusive (-1: the end)")] = -1,
    ) -> Items:
        """Elements of a list from start to stop (inclusive, negative from the end), at most max_items."""
        k = store.key(name)
        length = await store.call(c().llen(k))
        lo, hi, cut = _window(start, stop, length, s.max_items)
        raw = await store.call(c().lrange(k, lo, hi)) if hi >= lo else []
        return _items(name, raw, budget(), length, cut, s.max_value_bytes)

    @svc.tool(title="List Length", read_only=True)
    async def llen(name: Name) -> Count:
        """The length of a list."""
        return Count(key=name, count=await store.call(c().llen(store.key(name))), what="elements")

    @svc.tool(title="Set Members", read_only=True)
    async def smembers(name: Name) -> Items:
        """Members of a set (at most max_items; SSCAN for large sets)."""
        k = store.key(name)
        total = await store.call(c().scard(k))
        if total <= s.max_items:
            raw = list(await store.call(c().smembers(k)))
        else:
            raw, cur = [], 0
            while len(raw) < s.max_items:
                cur, chunk = await store.call(c().sscan(k, cursor=cur, count=min(s.max_items, 1000)))
                raw.extend(chunk)
                if cur == 0:
                    break
        return _items(
            name, sorted(raw)[: s.max_items], budget(), total, total > s.max_items, s.max_value_bytes
        )

    @svc.tool(title="Sorted Set Range", read_only=True)
    async def zrange(
        key: Key,
        start: int = 0,
        stop: Annotated[int, Meta(description="Last rank, inclusive (-1: the end)")] = -1,
        with_scores: bool = False,
    ) -> Items:
        """Members of a sorted set by rank from start to stop (inclusive), optionally with scores; at most max_items."""
        k = store.key(key)
        length = await store.call(c().zcard(k))
        lo, hi, cut = _window(start, stop, length, s.max_items)
        if hi < lo:
            return Items(key=key, items=[], scores=[] if with_scores else None, total=length)
        raw = await store.call(c().zrange(k, lo, hi, withscores=with_scores))
        if not with_scores:
            return _items(key, raw, budget(), length, cut, s.max_value_bytes)
        b, items, scores = budget(), [], []
        for member, score in raw:
            d = datum(member[: s.max_value_bytes])
            if not b.take(d, score):
                cut = True
                break
            items.append(d)
            scores.append(float(score))
        return Items(key=key, items=items, scores=scores, total=length, truncated=cut)

    @svc.tool(title="Stream Range", read_only=True)
    async def xrange(
        key: Key,
        start: Annotated[str, Meta(max_length=64, description="First id ('-': the oldest)")] = "-",
        end: Annotated[str, Meta(max_length=64, description="Last id ('+': the newest)")] = "+",
        count: Annotated[int, Meta(ge=1, description="Entries at most")] = 100,
    ) -> Stream:
        """Entries of a stream between two ids, oldest first."""
        n = min(count, s.max_items)
        raw = await store.call(c().xrange(store.key(key), min=start, max=end, count=n + 1))
        b, entries = budget(), []
        for eid, fields in raw[:n]:
            entry = StreamEntry(
                id=label(eid), fields={label(f): datum(v[: s.max_value_bytes]) for f, v in pairs(fields)}
            )
            if not b.take(entry):
                break
            entries.append(entry)
        return Stream(key=key, entries=entries, truncated=len(entries) < len(raw))

    @svc.tool(title="Stream Length", read_only=True)
    async def xlen(key: Key) -> Count:
        """The number of entries in a stream."""
        return Count(key=key, count=await store.call(c().xlen(store.key(key))), what="entries")

    @svc.tool(title="Info", read_only=True)
    async def info(
        section: Annotated[
            str, Meta(pattern="^(" + "|".join(INFO_SECTIONS) + ")$", description="INFO section")
        ] = "default",
    ) -> Info:
        """Server information and statistics (INFO)."""
        data = await store.call(c().info(section))
        return Info(section=section, info={str(k): v for k, v in data.items()})

    @svc.tool(title="Database Size", read_only=True)
    async def dbsize() -> Count:
        """The number of keys in the database."""
        return Count(count=await store.call(c().dbsize()), what="keys")


def _items(key: str, raw: list[bytes], b: Budget, total: int, cut: bool, cap: int) -> Items:
    items = []
    for v in raw:
        d = datum(v[:cap])
        if not b.take(d):
            cut = True
            break
        items.append(d)
    return Items(key=key, items=items, total=total, truncated=cut)
