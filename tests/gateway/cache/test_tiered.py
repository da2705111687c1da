"""TieredCache: read-through with promotion, write-through, delete/clear/stats on every tier."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatgate.gateway.cache.disk import DiskStore
from chatgate.gateway.cache.memory import MemoryStore
from chatgate.gateway.cache.redis import RedisStore
from chatgate.gateway.cache.store import Store
from chatgate.gateway.cache.tiered import TieredCache
from tests.gateway.cache.conftest import REDIS_URL

FAR = time.time() + 3600


def key(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


@pytest.fixture
async def tiers(
    disk: DiskStore, redis_prefix: str
) -> AsyncIterator[tuple[TieredCache, MemoryStore, DiskStore, RedisStore]]:
    memory = MemoryStore(1024 * 1024)
    redis = RedisStore(REDIS_URL, prefix=redis_prefix)
    cache = TieredCache([memory, disk, redis])
    yield cache, memory, disk, redis
    await cache.close()


async def test_a_value_only_on_disk_is_promoted_to_memory(
    tiers: tuple[TieredCache, MemoryStore, DiskStore, RedisStore],
) -> None:
    cache, memory, disk, _ = tiers
    await disk.set(key(1), b"from disk", FAR)
    await disk.flush()
    assert await memory.get(key(1)) is None
    assert await cache.get(key(1)) == (b"from disk", FAR)
    assert await memory.get(key(1)) == (b"from disk", FAR)


async def test_a_value_only_in_redis_is_promoted_to_both_tiers_above(
    tiers: tuple[TieredCache, MemoryStore, DiskStore, RedisStore],
) -> None:
    cache, memory, disk, redis = tiers
    await redis.set(key(1), b"shared", FAR)
    assert await cache.get(key(1)) == (b"shared", FAR)
    await cache.drain()
    assert await memory.get(key(1)) == (b"shared", FAR)
    assert await disk.get(key(1)) == (b"shared", FAR)
    assert await cache.get(key(2)) is None


async def test_set_writes_through_and_delete_removes_everywhere(
    tiers: tuple[TieredCache, MemoryStore, DiskStore, RedisStore],
) -> None:
    cache, memory, disk, redis = tiers
    await cache.set(key(1), b"everywhere", FAR)
    assert await memory.get(key(1)) == (b"everywhere", FAR)  # the first tier: awaited
    await cache.drain()
    await disk.flush()
    for store in (memory, disk, redis):
        assert await store.get(key(1)) == (b"everywhere", FAR)
    await cache.delete(key(1))
    for store in (memory, disk, redis):
        assert await store.get(key(1)) is None
    assert await cache.get(key(1)) is None


async def test_clear_and_stats_per_tier(
    tiers: tuple[TieredCache, MemoryStore, DiskStore, RedisStore],
) -> None:
    cache, memory, disk, _ = tiers
    for i in range(5):
        await cache.set(key(i), b"v", FAR)
    await cache.drain()
    await memory.clear()
    assert await cache.get(key(0)) is not None  # memory miss, disk hit
    await cache.drain()
    await disk.flush()  # its stats count committed entries
    stats = await cache.stats()
    assert list(stats) == ["memory", "disk", "redis"]
    assert stats["memory"].as_dict()["hit_ratio"] == 0.0
    assert (stats["disk"].hits, stats["disk"].entries, stats["redis"].entries) == (1, 5, 5)
    assert await cache.clear() == {"memory": 1, "disk": 5, "redis": 5}
    assert all(s.entries == 0 for s in (await cache.stats()).values())


async def test_a_dead_redis_tier_does_not_break_the_others(
    disk: DiskStore, dead_redis_url: str
) -> None:
    cache = TieredCache([MemoryStore(1024 * 1024), disk, RedisStore(dead_redis_url)])
    try:
        await cache.set(key(1), b"v", FAR)
        assert await cache.get(key(1)) == (b"v", FAR)
        assert await cache.get(key(2)) is None
        assert (await cache.stats())["redis"].entries == 0
    finally:
        await cache.close()


def test_every_tier_implements_the_store_protocol(tmp_path: Path, dead_redis_url: str) -> None:
    stores: list[Store] = [
        MemoryStore(1024),
        DiskStore(tmp_path, 8 * 1024 * 1024),
        RedisStore(dead_redis_url),
    ]
    assert all(isinstance(s, Store) for s in stores)
    assert [s.name for s in stores] == ["memory", "disk", "redis"]
