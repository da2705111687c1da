"""MemoryStore: LRU order, the byte bound, expiry."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

from chatgate.gateway.cache.memory import ENTRY_OVERHEAD, MemoryStore


def key(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


FAR = time.time() + 3600
COST = 32 + 100 + ENTRY_OVERHEAD  # one entry with a 100-byte value


async def test_least_recently_used_goes_first() -> None:
    store = MemoryStore(3 * COST)
    for i in range(3):
        await store.set(key(i), b"v" * 100, FAR)
    assert await store.get(key(0)) is not None  # 0 is now the most recently used
    await store.set(key(3), b"v" * 100, FAR)
    assert await store.get(key(1)) is None
    assert [await store.get(key(i)) is not None for i in (0, 2, 3)] == [True, True, True]


async def test_byte_bound_holds_under_many_inserts() -> None:
    max_bytes = 64 * 1024
    store = MemoryStore(max_bytes)
    rng = random.Random(7)
    live: dict[bytes, bytes] = {}
    for _ in range(5000):
        k, v = key(rng.randrange(800)), rng.randbytes(rng.randrange(0, 6000))
        await store.set(k, v, FAR)
        live[k] = v
        stats = await store.stats()
        assert stats.bytes <= max_bytes
        assert await store.get(k) == (v, FAR)  # the newest entry always fits
    # The accounting matches what is really held.
    held = [(k, v) for k, v in live.items() if await store.get(k) == (v, FAR)]
    stats = await store.stats()
    assert stats.entries == len(held)
    assert stats.bytes == sum(len(k) + len(v) + ENTRY_OVERHEAD for k, v in held)


async def test_value_larger_than_the_bound_is_not_stored_and_replaces() -> None:
    store = MemoryStore(10 * 1024)
    await store.set(key(1), b"small", FAR)
    await store.set(key(1), b"x" * 10 * 1024, FAR)
    assert await store.get(key(1)) is None
    assert (await store.stats()).bytes == 0


async def test_replacing_a_value_updates_the_size() -> None:
    store = MemoryStore(1024 * 1024)
    await store.set(key(1), b"a" * 1000, FAR)
    await store.set(key(1), b"b" * 10, FAR)
    stats = await store.stats()
    assert (stats.entries, stats.bytes) == (1, 32 + 10 + ENTRY_OVERHEAD)
    assert await store.get(key(1)) == (b"b" * 10, FAR)


async def test_expired_entry_is_a_miss_and_is_dropped() -> None:
    store = MemoryStore(1024 * 1024)
    await store.set(key(1), b"short", time.time() + 0.05)
    await store.set(key(2), b"long", FAR)
    await store.set(key(3), b"already gone", time.time() - 1)
    assert await store.get(key(1)) is not None
    await asyncio.sleep(0.08)
    assert await store.get(key(1)) is None
    assert await store.get(key(3)) is None
    assert await store.get(key(2)) == (b"long", FAR)
    assert (await store.stats()).entries == 1


async def test_delete_clear_and_stats() -> None:
    store = MemoryStore(1024 * 1024)
    for i in range(5):
        await store.set(key(i), b"v", FAR)
    await store.delete(key(0))
    await store.delete(key(99))  # absent: no error
    assert await store.get(key(0)) is None
    assert await store.get(key(1)) is not None
    stats = await store.stats()
    assert (stats.entries, stats.hits, stats.misses, stats.hit_ratio) == (4, 1, 1, 0.5)
    assert await store.clear() == 4
    assert (await store.stats()).bytes == 0
