"""The shared tier: entries in Redis under a key prefix, so replicas share hits."""

from __future__ import annotations

import logging
import re
import struct
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatgate.gateway.cache.store import Health, StoreStats

log = logging.getLogger(__name__)

# A value is stored as one version byte, the absolute expiry (float64, big-endian) and the
# caller's bytes, so a GET answers with the expiry in one round trip; Redis itself drops the
# key at the same instant (SET ... PXAT).
_HEADER = struct.Struct(">Bd")
_VERSION = 1
_GLOB = re.compile(rb"([*?\[\]\\])")


class RedisStore:
    """Entries live at ``prefix + key`` (the raw 32-byte digest) with Redis's own expiry.

    Stats come from this process's hit/miss counters and a SCAN over the prefix (``entries``,
    and ``bytes`` as the sum of the stored values' lengths), which stops after
    ``stats_scan_limit`` keys and then says ``approximate``: no counter is kept in Redis,
    because Redis expires keys without telling anyone and such a counter would drift.

    Redis being down never reaches the caller: an operation that fails logs once, is a miss /
    no-op, and Redis is not tried again for ``retry_after`` seconds, so a dead server costs the
    request path nothing. ``clear`` deletes only keys under the prefix.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "chatgate:cache:",
        *,
        timeout: float = 0.5,
        retry_after: float = 1.0,
        stats_scan_limit: int = 100_000,
    ) -> None:
        self.prefix = prefix.encode()
        self.retry_after = retry_after
        self.stats_scan_limit = stats_scan_limit
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._pattern = _GLOB.sub(rb"\\\1", self.prefix) + b"*"
        self._health = Health(log, "Redis")
        self._down_until = 0.0
        self._hits = 0
        self._misses = 0

    async def get(self, key: bytes) -> tuple[bytes, float] | None:
        raw: bytes | None = None
        if self._up():
            try:
                got = await self._client.get(self.prefix + key)
                raw = got if isinstance(got, bytes) else None
                self._ok()
            except (RedisError, OSError) as exc:
                self._failed(exc, "reading")
        if raw is not None and len(raw) >= _HEADER.size:
            version, expires_at = _HEADER.unpack_from(raw)
            if version == _VERSION and expires_at > time.time():
                self._hits += 1
                return raw[_HEADER.size :], expires_at
        self._misses += 1
        return None

    async def set(self, key: bytes, value: bytes, expires_at: float) -> None:
        if not self._up():
            return
        try:
            if expires_at <= time.time():
                await self._client.delete(self.prefix + key)
            else:
                raw = _HEADER.pack(_VERSION, expires_at) + value
                await self._client.set(self.prefix + key, raw, pxat=int(expires_at * 1000))
            self._ok()
        except (RedisError, OSError) as exc:
            self._failed(exc, "writing")

    async def delete(self, key: bytes) -> None:
        if not self._up():
            return
        try:
            await self._client.delete(self.prefix + key)
            self._ok()
        except (RedisError, OSError) as exc:
            self._failed(exc, "deleting")

    async def clear(self) -> int:
        removed = 0
        if not self._up():
            return removed
        try:
            batch: list[bytes] = []
            async for name in self._client.scan_iter(match=self._pattern, count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    removed += await self._client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await self._client.unlink(*batch)
            self._ok()
        except (RedisError, OSError) as exc:
            self._failed(exc, "clearing")
        return removed

    async def stats(self) -> StoreStats:
        entries = size = 0
        approximate = False
        if self._up():
            try:
                names: list[bytes] = []
                async for name in self._client.scan_iter(match=self._pattern, count=1000):
                    names.append(name)
                    if len(names) >= self.stats_scan_limit:
                        approximate = True
                        break
                for i in range(0, len(names), 1000):
                    pipe = self._client.pipeline(transaction=False)
                    for name in names[i : i + 1000]:
                        pipe.strlen(name)
                    lengths = await pipe.execute()
                    entries += sum(1 for n in lengths if n)
                    size += sum(lengths)
                self._ok()
            except (RedisError, OSError) as exc:
                self._failed(exc, "counting")
                approximate = True
        return StoreStats(entries, size, self._hits, self._misses, approximate)

    async def close(self) -> None:
        await self._client.aclose()

    def _up(self) -> bool:
        return not self._health.failing or time.monotonic() >= self._down_until

    def _ok(self) -> None:
        self._health.ok()

    def _failed(self, exc: BaseException, doing: str) -> None:
        self._down_until = time.monotonic() + self.retry_after
        self._health.failed(exc, doing)
