"""L1: an in-process LRU bounded in bytes."""

from __future__ import annotations

import time
from collections import OrderedDict

from chatgate.gateway.cache.store import StoreStats

# What CPython spends per entry besides the key's and value's own bytes, measured on 3.11 with
# tracemalloc: two bytes-object headers (2 x 33), the (value, expires_at) tuple (56) and its
# float (24), and the OrderedDict slot and link node (~105, amortised). Rounded up.
ENTRY_OVERHEAD = 256


class MemoryStore:
    """Least-recently-used entries go first; the accounted size never exceeds ``max_bytes``.

    An entry costs ``len(key) + len(value) + ENTRY_OVERHEAD``; one that alone is larger than
    ``max_bytes`` is not stored. Everything runs on the event loop, each operation O(1) (``clear``
    aside); expired entries are dropped when looked up or when the LRU order reaches them.
    """

    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0

    async def get(self, key: bytes) -> tuple[bytes, float] | None:
        found = self._entries.get(key)
        if found is None:
            self._misses += 1
            return None
        if found[1] <= time.time():
            self._remove(key)
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return found

    async def set(self, key: bytes, value: bytes, expires_at: float) -> None:
        self._remove(key)
        size = len(key) + len(value) + ENTRY_OVERHEAD
        if size > self.max_bytes or expires_at <= time.time():
            return
        while self._bytes + size > self.max_bytes:
            old_key, (old_value, _) = self._entries.popitem(last=False)
            self._bytes -= len(old_key) + len(old_value) + ENTRY_OVERHEAD
        self._entries[key] = (value, expires_at)
        self._bytes += size

    async def delete(self, key: bytes) -> None:
        self._remove(key)

    async def clear(self) -> int:
        removed = len(self._entries)
        self._entries.clear()
        self._bytes = 0
        return removed

    async def stats(self) -> StoreStats:
        return StoreStats(len(self._entries), self._bytes, self._hits, self._misses)

    async def close(self) -> None:
        await self.clear()

    def _remove(self, key: bytes) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= len(key) + len(found[0]) + ENTRY_OVERHEAD
