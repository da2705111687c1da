"""Fixtures for the cache tiers: a started DiskStore in tmp_path and the real Redis."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatgate.gateway.cache.disk import DiskStore

REDIS_URL = os.environ.get("CHATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MiB = 1024 * 1024


@pytest.fixture
async def disk(tmp_path: Path) -> AsyncIterator[DiskStore]:
    store = DiskStore(tmp_path / "l2", 8 * MiB, cleanup_interval=3600)
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    """The real Redis; skipped when it is not running, except on CI (CI=true), where it fails."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = f"Redis is not reachable at {REDIS_URL} ({exc}); set CHATGATE_TEST_REDIS_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; whatever is left under it is removed afterwards."""
    prefix = f"chatgate:test:{uuid.uuid4().hex}:"
    yield prefix
    names = [n async for n in redis_client.scan_iter(match=prefix + "*")]
    if names:
        await redis_client.delete(*names)


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL on a local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"
