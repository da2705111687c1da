"""Single-flight: identical requests in flight at once share one upstream call.

The call runs in its own task, so it belongs to no single client: every waiter gets the whole
answer (a streaming waiter that joins late first gets the chunks so far in one batch, then the
rest as they come); a waiter that leaves does not disturb the others, and the upstream call is
cancelled only when the last waiter has gone. An error reaches every waiter. A streamed flight
serves a non-streaming waiter (assembled at the end) and the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from chatgate.errors import GatewayError
from chatgate.gateway.cache.entry import Entry
from chatgate.protocol.openai import ChunkBatch

StreamSource = Callable[[], AsyncIterator[ChunkBatch]]
CompletionSource = Callable[[], Awaitable[dict[str, Any]]]
OnDone = Callable[["Flight"], None]


class Flight:
    __slots__ = (
        "_changed",
        "_on_done",
        "batches",
        "completion",
        "done",
        "error",
        "task",
        "waiters",
    )

    def __init__(self, on_done: OnDone) -> None:
        self.batches: list[ChunkBatch] = []
        self.completion: dict[str, Any] | None = None
        self.done = False
        self.error: BaseException | None = None
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._on_done = on_done

    # -- producer side ---------------------------------------------------------------------------
    def start_stream(self, source: StreamSource) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run_stream(source))

    def start_completion(self, source: CompletionSource) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run_completion(source))

    async def _run_stream(self, source: StreamSource) -> None:
        try:
            async for batch in source():
                self.batches.append(batch)
                self._notify()
        except (GatewayError, asyncio.CancelledError) as exc:
            self.error = exc
        except Exception as exc:
            self.error = exc
        finally:
            self._finish()

    async def _run_completion(self, source: CompletionSource) -> None:
        try:
            self.completion = await source()
        except (GatewayError, asyncio.CancelledError) as exc:
            self.error = exc
        except Exception as exc:
            self.error = exc
        finally:
            self._finish()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _finish(self) -> None:
        self.done = True
        self._notify()
        self._on_done(self)

    @property
    def entry(self) -> Entry | None:
        """The finished answer, if the flight ended well."""
        if not self.done or self.error is not None:
            return None
        if self.completion is not None:
            return Entry(completion=self.completion)
        chunks = [chunk for batch in self.batches for chunk in batch]
        return Entry(chunks=chunks) if chunks else None

    # -- waiter side -----------------------------------------------------------------------------
    async def follow(self) -> AsyncGenerator[ChunkBatch, None]:
        """The answer as batches; raises the flight's error if it failed."""
        self.waiters += 1
        try:
            seen = 0
            while True:
                if seen < len(self.batches):
                    pending = self.batches[seen:]
                    seen = len(self.batches)
                    yield pending[0] if len(pending) == 1 else [c for b in pending for c in b]
                    continue
                if self.done:
                    break
                await self._changed.wait()
            self._raise_error()
            if self.completion is not None:  # a whole answer, cut into chunks for this waiter
                yield Entry(completion=self.completion).as_chunks()
        finally:
            self._leave()

    async def result(self) -> dict[str, Any]:
        """The answer as a whole completion; raises the flight's error if it failed."""
        self.waiters += 1
        try:
            await self._wait_done()
            self._raise_error()
            entry = self.entry
            if entry is None:
                raise GatewayError("the upstream answer was empty")
            return entry.as_completion() if self.completion is None else self.completion
        finally:
            self._leave()

    async def _wait_done(self) -> None:
        while not self.done:
            await self._changed.wait()

    def _raise_error(self) -> None:
        if self.error is None:
            return
        if isinstance(self.error, asyncio.CancelledError):
            raise GatewayError("the upstream call was cancelled")
        raise self.error

    def _leave(self) -> None:
        self.waiters -= 1
        if self.waiters == 0 and not self.done and self.task is not None:
            self.task.cancel()  # nobody is listening any more


class Flights:
    """The flights in progress, by cache key."""

    def __init__(self) -> None:
        self._flights: dict[bytes, Flight] = {}

    def get(self, key: bytes) -> Flight | None:
        flight = self._flights.get(key)
        return flight if flight is not None and not flight.done else None

    def begin(self, key: bytes, on_done: OnDone) -> Flight:
        def done(flight: Flight) -> None:
            if self._flights.get(key) is flight:
                del self._flights[key]
            on_done(flight)

        flight = Flight(done)
        self._flights[key] = flight
        return flight

    def __len__(self) -> int:
        return len(self._flights)

    async def cancel_all(self) -> None:
        tasks = [f.task for f in self._flights.values() if f.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
