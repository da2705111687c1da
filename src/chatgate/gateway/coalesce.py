"""Single-flight: identical requests in flight at once share one upstream call.

The call runs in its own task, so it belongs to no single client: every waiter gets the whole
answer (a streaming waiter that joins late first gets the batches so far in one batch, then the
rest as they come); a waiter that leaves does not disturb the others, and the upstream call is
cancelled only when the last waiter has gone. An error reaches every waiter. A streamed flight
serves a non-streaming waiter (assembled at the end) and the other way round.

One runner for both kinds: a flight's source is a stream of batches, and a whole answer is the
one batch ``[completion]`` (see ``caller``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from chatgate.errors import GatewayError
from chatgate.gateway.cache.entry import Entry
from chatgate.protocol.openai import ChunkBatch

OnDone = Callable[["Flight"], None]


class Flight:
    __slots__ = ("_changed", "_on_done", "batches", "done", "error", "stream", "task", "waiters")

    def __init__(self, stream: bool, on_done: OnDone) -> None:
        self.stream = stream  # what the source yields: chunks, or one [completion]
        self.batches: list[ChunkBatch] = []
        self.done = False
        self.error: BaseException | None = None
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._on_done = on_done

    # -- producer side ---------------------------------------------------------------------------
    def start(self, source: AsyncIterator[ChunkBatch]) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(source))

    async def _run(self, source: AsyncIterator[ChunkBatch]) -> None:
        try:
            async for batch in source:
                self.batches.append(batch)
                self._notify()
        except BaseException as exc:  # cancelled too: every waiter must hear why it ended
            self.error = exc
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
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
        if not self.done or self.error is not None or not self.batches:
            return None
        if not self.stream:
            return Entry(completion=self.batches[0][0])
        return Entry(chunks=[chunk for batch in self.batches for chunk in batch])

    # -- waiter side -----------------------------------------------------------------------------
    async def follow(self, stream: bool) -> AsyncGenerator[ChunkBatch, None]:
        """The answer in the waiter's kind: batches of chunks (``stream``) or ``[completion]``;
        raises the flight's error if it failed."""
        self.waiters += 1
        try:
            if stream and self.stream:
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
                return
            while not self.done:
                await self._changed.wait()
            self._raise_error()
            entry = self.entry
            if entry is None:
                raise GatewayError("the upstream answer was empty")
            if not stream:  # the completion as it came for a whole flight, else assembled
                yield [entry.completion if entry.completion is not None else entry.as_completion()]
            else:
                yield entry.as_chunks()
        finally:
            self._leave()

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

    def begin(self, key: bytes, stream: bool, on_done: OnDone) -> Flight:
        def done(flight: Flight) -> None:
            if self._flights.get(key) is flight:
                del self._flights[key]
            on_done(flight)

        flight = Flight(stream, done)
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
