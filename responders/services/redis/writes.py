"""The write tools, registered only with --write (read-only mode lists none of them, so none can be
called). Every key is checked against the allowlist and every value against the size cap first."""

from typing import Annotated, Any

from msgspec import Meta

from ...service import Service
from .errors import RedisToolError
from .reads import Key, Name
from .results import Count, Done, Value, datum
from .store import Store

Text = Annotated[str, Meta(description="The value (UTF-8 text)")]
Expiry = (
    Annotated[int, Meta(ge=1, le=10 * 365 * 86400, description="Expire the key after this many seconds")]
    | None
)


def register_writes(svc: Service, store: Store) -> None:
    s = store.settings

    def c() -> Any:  # the client exists only while the lifespan runs; redis-py's command types are loose
        return store.client

    async def expire_after(k: bytes, seconds: int | None) -> None:
        if seconds is not None:
            await store.call(c().expire(k, seconds))

    @svc.tool(title="Set", destructive=True, idempotent=True)
    async def set(key: Key, value: Text, ex: Expiry = None) -> Done:
        """Set the string value of a key, optionally expiring after `ex` seconds."""
        await store.call(c().set(store.key(key), store.value_cap(value), ex=ex))
        return Done(ok=True, message=f"set {key}" + (f" (expires in {ex} s)" if ex else ""))

    @svc.tool(title="Delete", destructive=True, idempotent=True)
    async def delete(
        key: Annotated[str | list[str], Meta(description="A key, or a list of keys")],
    ) -> Count:
        """Delete one or more keys."""
        keys = [key] if isinstance(key, str) else key
        if not keys or len(keys) > s.max_items:
            return Count(count=0, what=f"keys deleted (give 1 to {s.max_items} keys)")
        encoded = [store.key(k) for k in keys]
        return Count(count=await store.call(c().delete(*encoded)), what="keys deleted")

    @svc.tool(title="Expire", destructive=True, idempotent=True)
    async def expire(name: Name, expire_seconds: Annotated[int, Meta(ge=1, le=10 * 365 * 86400)]) -> Done:
        """Set a key's time to live in seconds."""
        done = await store.call(c().expire(store.key(name), expire_seconds))
        return Done(
            ok=bool(done),
            message=f"{name} expires in {expire_seconds} s" if done else f"{name} does not exist",
        )

    @svc.tool(title="Hash Set", destructive=True, idempotent=True)
    async def hset(
        name: Name,
        key: Annotated[str, Meta(max_length=4096, description="The field")],
        value: Text,
        expire_seconds: Expiry = None,
    ) -> Done:
        """Set one field of a hash."""
        k = store.key(name)
        await store.call(c().hset(k, key.encode(), store.value_cap(value)))
        await expire_after(k, expire_seconds)
        return Done(ok=True, message=f"set {name}.{key}")

    @svc.tool(title="Hash Delete", destructive=True, idempotent=True)
    async def hdel(name: Name, key: Annotated[str, Meta(max_length=4096, description="The field")]) -> Count:
        """Delete one field of a hash."""
        return Count(
            key=name, count=await store.call(c().hdel(store.key(name), key.encode())), what="fields deleted"
        )

    async def push(name: str, value: str, expire: int | None, left: bool) -> Count:
        k = store.key(name)
        data = store.value_cap(value)
        n = await store.call(c().lpush(k, data) if left else c().rpush(k, data))
        await expire_after(k, expire)
        return Count(key=name, count=n, what="elements")

    @svc.tool(title="List Push Left", destructive=False)
    async def lpush(name: Name, value: Text, expire: Expiry = None) -> Count:
        """Push a value onto the head of a list; returns the new length."""
        return await push(name, value, expire, True)

    @svc.tool(title="List Push Right", destructive=False)
    async def rpush(name: Name, value: Text, expire: Expiry = None) -> Count:
        """Push a value onto the tail of a list; returns the new length."""
        return await push(name, value, expire, False)

    async def pop(name: str, left: bool) -> Value:
        k = store.key(name)
        raw = await store.call(c().lpop(k) if left else c().rpop(k))
        return Value(
            key=name, value=None if raw is None else datum(raw), size=None if raw is None else len(raw)
        )

    @svc.tool(title="List Pop Left", destructive=True)
    async def lpop(name: Name) -> Value:
        """Remove and return the first element of a list."""
        return await pop(name, True)

    @svc.tool(title="List Pop Right", destructive=True)
    async def rpop(name: Name) -> Value:
        """Remove and return the last element of a list."""
        return await pop(name, False)

    @svc.tool(title="Set Add", destructive=False, idempotent=True)
    async def sadd(name: Name, value: Text, expire_seconds: Expiry = None) -> Count:
        """Add a member to a set."""
        k = store.key(name)
        n = await store.call(c().sadd(k, store.value_cap(value)))
        await expire_after(k, expire_seconds)
        return Count(key=name, count=n, what="members added")

    @svc.tool(title="Set Remove", destructive=True, idempotent=True)
    async def srem(name: Name, value: Text) -> Count:
        """Remove a member from a set."""
        return Count(
            key=name,
            count=await store.call(c().srem(store.key(name), value.encode())),
            what="members removed",
        )

    @svc.tool(title="Sorted Set Add", destructive=False, idempotent=True)
    async def zadd(key: Key, score: float, member: Text, expiration: Expiry = None) -> Count:
        """Add a member with a score to a sorted set (or update its score)."""
        k = store.key(key)
        n = await store.call(c().zadd(k, {store.value_cap(member): score}))
        await expire_after(k, expiration)
        return Count(key=key, count=n, what="members added")

    @svc.tool(title="Sorted Set Remove", destructive=True, idempotent=True)
    async def zrem(key: Key, member: Text) -> Count:
        """Remove a member from a sorted set."""
        return Count(
            key=key, count=await store.call(c().zrem(store.key(key), member.encode())), what="members removed"
        )

    @svc.tool(title="Stream Add", destructive=False)
    async def xadd(
        key: Key,
        fields: Annotated[
            dict[str, str], Meta(min_length=1, max_length=1000, description="Field-value pairs of the entry")
        ],
        expiration: Expiry = None,
    ) -> Done:
        """Append an entry to a stream; returns its id."""
        k = store.key(key)
        entry = {f.encode(): v.encode() for f, v in fields.items()}
        size = sum(len(f) + len(v) for f, v in entry.items())
        if size > s.max_value_bytes:
            raise RedisToolError(
                f"the entry is {size} bytes; the {store.service} service accepts at most {s.max_value_bytes}"
            )
        eid = await store.call(c().xadd(k, entry))
        await expire_after(k, expiration)
        return Done(ok=True, message=f"added {eid.decode()} to {key}")
