"""The response-cache stage: lookup, single-flight, store — around the upstream call.

It sits before the reasoning filter: the cache holds the upstream's own answer and every
reasoning mode is applied to it on the way out. Per-request controls (PRODUCT §3):
``Cache-Control: no-cache`` skips the lookup (and joining a flight) but still stores;
``no-store`` does not store; ``X-Chatgate-Cache-TTL`` sets this entry's lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from chatgate.gateway.cache.entry import Entry, is_finished
from chatgate.gateway.coalesce import CompletionSource, Flight, Flights, StreamSource
from chatgate.protocol.openai import ChatRequest, ChunkBatch

log = logging.getLogger(__name__)


class EntryStore(Protocol):
    """What the stage needs from the tiers (``TieredCache``)."""

    async def get(self, key: bytes) -> tuple[bytes, float] | None: ...
    async def set(self, key: bytes, value: bytes, expires_at: float) -> None: ...
    async def delete(self, key: bytes) -> None: ...


class ResponseCache:
    def __init__(self, store: EntryStore | None, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
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

    async def complete(
        self, key: bytes, req: ChatRequest, source: CompletionSource
    ) -> dict[str, Any]:
        flight = await self._join(key, req)
        if isinstance(flight, Entry):
            return flight.as_completion()
        if flight is None:
            flight = self.flights.begin(key, self._on_done(key, req))
            flight.start_completion(source)
        return await flight.result()

    async def stream(
        self, key: bytes, req: ChatRequest, source: StreamSource
    ) -> AsyncGenerator[ChunkBatch, None]:
        flight = await self._join(key, req)
        if isinstance(flight, Entry):
            yield flight.as_chunks()  # the whole answer at once: one write to the client
            return
        if flight is None:
            flight = self.flights.begin(key, self._on_done(key, req))
            flight.start_stream(source)
        async for batch in flight.follow():
            yield batch

    async def _join(self, key: bytes, req: ChatRequest) -> Entry | Flight | None:
        if not req.cache_lookup:
            req.cache_status = "bypass"
            return None
        entry = await self.lookup(key)
        if entry is not None:
            req.cache_status = "hit"
            return entry
        req.cache_status = "miss"
        return self.flights.get(key)

    def _on_done(self, key: bytes, req: ChatRequest) -> Any:
        def done(flight: Flight) -> None:
            if not req.cache_store or self.store is None:
                return
            entry = flight.entry
            if entry is None or (entry.chunks is not None and not is_finished(entry.chunks)):
                return  # failed, cancelled or cut short: never stored
            expires_at = time.time() + (req.cache_ttl if req.cache_ttl is not None else self.ttl)
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
