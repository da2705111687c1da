"""The tiers in order (memory → disk → Redis): read through with promotion, write through."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from chatgate.gateway.cache.store import Store, StoreStats

log = logging.getLogger(__name__)


class TieredCache:
    """``get`` asks each tier in turn and copies a hit into the tiers above it (same expiry);
    ``set`` writes every tier. Only the first tier is awaited: writes to the lower ones run as
    tasks, tracked so :meth:`drain` / :meth:`close` wait for them.
    """

    def __init__(self, stores: Sequence[Store]) -> None:
        if not stores:
            raise ValueError("TieredCache needs at least one store")
        self.stores = list(stores)
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: bytes) -> tuple[bytes, float] | None:
        for i, store in enumerate(self.stores):
            found = await store.get(key)
            if found is not None:
                if i:
                    await self._write(self.stores[:i], key, *found)
                return found
        return None

    async def set(self, key: bytes, value: bytes, expires_at: float) -> None:
        await self._write(self.stores, key, value, expires_at)

    async def delete(self, key: bytes) -> None:
        await asyncio.gather(*(store.delete(key) for store in self.stores))

    async def clear(self) -> dict[str, int]:
        """Entries removed, per tier."""
        await self.drain()
        removed = await asyncio.gather(*(store.clear() for store in self.stores))
        return {store.name: n for store, n in zip(self.stores, removed, strict=True)}

    async def stats(self) -> dict[str, StoreStats]:
        """Per tier; ``StoreStats.as_dict()`` adds the hit ratio."""
        stats = await asyncio.gather(*(store.stats() for store in self.stores))
        return {store.name: s for store, s in zip(self.stores, stats, strict=True)}

    async def drain(self) -> None:
        """Wait for the background writes to the lower tiers."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def close(self) -> None:
        await self.drain()
        for store in self.stores:
            await store.close()

    async def _write(self, stores: list[Store], key: bytes, value: bytes, exp: float) -> None:
        for store in stores[1:]:
            self._spawn(store.set(key, value, exp))
        await stores[0].set(key, value, exp)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:  # stores do not raise by contract; this is a bug, not an outage
            log.error("cache: a background write failed", exc_info=exc)
