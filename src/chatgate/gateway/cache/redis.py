"""The shared tier: entries in Redis under a key prefix, so replicas share hits."""

from __future__ import annotations

import re
import struct
import time

from redis.exceptions import RedisError

from chatgate.gateway.cache.store import StoreStats
from chatgate.redislink import RedisLink

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

    Redis being down never reaches the caller: every call is bounded by ``timeout``; an
    operation that fails logs once and is a miss / no-op, and Redis is not tried again by
    requests until a background probe (every ``retry_after`` seconds) reaches it, so a dead or
    hung server costs the request path nothing (see :mod:`chatgate.redislink`). ``clear``
    deletes only keys under the prefix.
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
        self._link = RedisLink(
            url,
            "cache entries",
            "misses (the memory and disk tiers still serve)",
            timeout=timeout,
            retry_after=retry_after,
        )
        self._client = self._link.client
        self._pattern = _GLOB.sub(rb"\\\1", self.prefix) + b"*"
        self._hits = 0
        self._misses = 0

    async def get(self, key: bytes) -> tuple[bytes, float] | None:
        raw: bytes | None = None
        if self._up():
            try:
                got = await self._client.get(self.prefix + key)
                raw = got if isinstance(got, bytes) else None
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
        except (RedisError, OSError) as exc:
            self._failed(exc, "writing")

    async def delete(self, key: bytes) -> None:
        if not self._up():
            return
        try:
            await self._client.delete(self.prefix + key)
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
            except (RedisError, OSError) as exc:
                self._failed(exc, "counting")
                approximate = True
        return StoreStats(entries, size, self._hits, self._misses, approximate)

    @property
    def degraded(self) -> bool:
        """Redis is away: reads miss, writes are skipped (for /ready)."""
        return self._link.down

    async def close(self) -> None:
        await self._link.close()

    def _up(self) -> bool:
        return self._link.up

    def _failed(self, exc: BaseException, doing: str) -> None:
        self._link.failed(exc, doing)
