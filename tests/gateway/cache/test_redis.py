"""RedisStore against the real Redis: round trip, expiry, clear by prefix, and Redis down."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from chatgate.gateway.cache.redis import RedisStore
from tests.gateway.cache.conftest import REDIS_URL

FAR = time.time() + 3600


def key(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


@pytest.fixture
async def store(redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(REDIS_URL, prefix=redis_prefix)
    yield store
    await store.close()


async def test_roundtrip_keeps_value_and_expiry(
    store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    value = bytes(range(256)) * 40
    await store.set(key(1), value, FAR)
    assert await store.get(key(1)) == (value, FAR)
    assert await store.get(key(2)) is None
    # Redis expires the key itself, at the same instant.
    ttl_ms = await redis_client.pttl(redis_prefix.encode() + key(1))
    assert abs(ttl_ms / 1000 - (FAR - time.time())) < 2
    await store.delete(key(1))
    assert await store.get(key(1)) is None
    stats = await store.stats()
    assert (stats.hits, stats.misses) == (1, 2)


async def test_expiry(store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str) -> None:
    await store.set(key(1), b"short", time.time() + 0.3)
    await store.set(key(2), b"past", time.time() - 1)
    assert await store.get(key(1)) is not None
    assert await store.get(key(2)) is None
    await asyncio.sleep(0.45)
    assert await store.get(key(1)) is None
    assert await redis_client.exists(redis_prefix.encode() + key(1)) == 0


async def test_clear_and_stats_touch_only_the_prefix(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    # Glob characters in the prefix must not widen the match.
    store = RedisStore(REDIS_URL, prefix=redis_prefix + "t[1]*:")
    neighbours = [
        redis_prefix.encode() + b"t1x:" + key(1),  # what an unescaped pattern would match
        redis_prefix.encode() + b"other:" + key(1),
    ]
    try:
        for name in neighbours:
            await redis_client.set(name, b"not ours")
        for i in range(25):
            await store.set(key(i), b"v" * 100, FAR)
        stats = await store.stats()
        assert (stats.entries, stats.approximate) == (25, False)
        assert stats.bytes >= 25 * 100
        assert await store.clear() == 25
        assert await store.get(key(3)) is None
        assert await redis_client.exists(*neighbours) == 2
        assert (await store.stats()).entries == 0
    finally:
        await store.close()


async def test_stats_scan_is_bounded(redis_prefix: str) -> None:
    store = RedisStore(REDIS_URL, prefix=redis_prefix, stats_scan_limit=10)
    try:
        for i in range(30):
            await store.set(key(i), b"v", FAR)
        stats = await store.stats()
        assert stats.approximate
        assert 10 <= stats.entries < 30
    finally:
        await store.close()


async def test_redis_down_is_a_miss_and_never_raises(
    dead_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = RedisStore(dead_redis_url, retry_after=0.05)
    try:
        for i in range(3):
            await store.set(key(i), b"v", FAR)
            assert await store.get(key(i)) is None
            await store.delete(key(i))
            await asyncio.sleep(0.06)  # past retry_after: Redis is really tried again
        assert await store.clear() == 0
        stats = await store.stats()
        assert (stats.entries, stats.hits, stats.misses) == (0, 0, 3)
    finally:
        await store.close()
    assert len([r for r in caplog.records if "Redis failed" in r.getMessage()]) == 1


async def test_comes_back_after_an_outage(redis_prefix: str) -> None:
    store = RedisStore(REDIS_URL, prefix=redis_prefix, retry_after=0.05)
    try:
        store._failed(ConnectionError("simulated"), "testing")  # as if Redis had just failed
        await store.set(key(1), b"skipped", FAR)  # degraded: not even tried
        assert await store.get(key(1)) is None and store.degraded
        for _ in range(200):  # the probe (every retry_after) finds it answering
            if not store.degraded:
                break
            await asyncio.sleep(0.01)
        assert not store.degraded
        await store.set(key(1), b"v", FAR)
        assert await store.get(key(1)) == (b"v", FAR)
    finally:
        await store.close()
