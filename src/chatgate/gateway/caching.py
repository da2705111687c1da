"""The response-cache stage: lookup, single-flight, store — around the upstream call.

It sits before the reasoning filter: the cache holds the upstream's own answer and every
reasoning mode is applied to it on the way out. Per-request controls (PRODUCT §3):
``Cache-Control: no-cache`` skips the lookup (and joining a flight) but still stores;
``no-store`` does not store; ``X-Chatgate-Cache-TTL`` sets this entry's lifetime (at most
``cache.max_ttl``). The key the stage gets is already scoped (``cache.scope``): single-flight
and the cache are shared only by callers of the same partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Literal, Protocol

from chatgate.gateway.cache.entry import Entry, is_finished
from chatgate.gateway.coalesce import Flight, Flights
from chatgate.protocol.openai import MAX_CACHE_TTL, ChatRequest, ChunkBatch

log = logging.getLogger(__name__)

CacheStatus = Literal["hit", "miss", "bypass"]
StreamSource = Callable[[], AsyncIterator[ChunkBatch]]


async def _one(batch: ChunkBatch) -> AsyncGenerator[ChunkBatch, None]:
    yield batch


class EntryStore(Protocol):
    """What the stage needs from the tiers (``TieredCache``)."""

    async def get(self, key: bytes) -> tuple[bytes, float] | None: ...
    async def set(self, key: bytes, value: bytes, expires_at: float) -> None: ...
    async def delete(self, key: bytes) -> None: ...


class ResponseCache:
    def __init__(
        self, store: EntryStore | None, ttl: float, max_ttl: float = MAX_CACHE_TTL
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_ttl = max(ttl, max_ttl)
        self.flights = Flights()
        self._writes: set[asyncio.Task[None]] = set()

    async def lookup(self, key: bytes) -> Entry | None:
        if self.store is None:
            return None
        found = await self.store.get(key)
        if found is None:
            return None
        entry = Entry.decode(found[0])
        if entry is None:
            log.warning("cache: dropping an entry that does not decode")
            await self.store.delete(key)
        return entry

    async def open(
        self, key: bytes, req: ChatRequest, source: StreamSource
    ) -> tuple[CacheStatus, AsyncIterator[ChunkBatch]]:
        """The answer for ``req`` in its kind (batches of chunks, or ``[completion]``): from the
        cache, from a flight in progress, or from a new flight calling ``source``."""
        if not req.cache_lookup:
            status: CacheStatus = "bypass"
            flight = None
        else:
            entry = await self.lookup(key)
            if entry is not None:
                batch = entry.as_chunks() if req.stream else [entry.as_completion()]
                return "hit", _one(batch)
            status = "miss"
            flight = self.flights.get(key)
        if flight is None:
            flight = self.flights.begin(key, req.stream, self._on_done(key, req))
            flight.start(source())
        return status, flight.follow(req.stream)

    def _on_done(self, key: bytes, req: ChatRequest) -> Any:
        def done(flight: Flight) -> None:
            if not req.cache_store or self.store is None:
                return
            entry = flight.entry
            if entry is None or (entry.chunks is not None and not is_finished(entry.chunks)):
                return  # failed, cancelled or cut short: never stored
            ttl = req.cache_ttl if req.cache_ttl is not None else self.ttl
            # Doors check the header; this bound holds for any door that forgot (a huge TTL
            # overflowed Redis's PXAT and turned the shared tier off for everyone).
            expires_at = time.time() + min(ttl, self.max_ttl)
            task = asyncio.get_running_loop().create_task(self._write(key, entry, expires_at))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

        return done

    async def _write(self, key: bytes, entry: Entry, expires_at: float) -> None:
        assert self.store is not None
        try:
            await self.store.set(key, entry.encode(), expires_at)
        except Exception:  # a cache that cannot write must not break answers
            log.exception("cache: write failed")

    async def close(self) -> None:
        await self.flights.cancel_all()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
