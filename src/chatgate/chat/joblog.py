"""A generation's event log: numbered events, appended by the job, followed by any number of
clients, each from where it left off.

Every event is serialised once when appended (JSON with its ``seq``, and the SSE frame whose
``id:`` is that ``seq``); followers get lists of the events they have not seen yet, so a burst of
chunks costs one write per follower, and ``Last-Event-ID`` resumes exactly after the last event a
client received. ``seq`` starts at 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson


class LogEvent:
    __slots__ = ("data", "seq", "sse")

    def __init__(self, seq: int, data: bytes, sse: bytes | None = None) -> None:
        self.seq = seq
        self.data = data
        self.sse = sse if sse is not None else b"id: %d\ndata: %s\n\n" % (seq, data)


class JobLog:
    def __init__(
        self, generation_id: str, mirror: Callable[[str, LogEvent], None] | None = None
    ) -> None:
        self.generation_id = generation_id
        self.mirror = mirror  # called with each new event (the Redis copy)
        self.events: list[LogEvent] = []
        self.finished = False
        self._wake = asyncio.Event()

    def append(self, payload: dict[str, Any]) -> LogEvent:
        seq = len(self.events) + 1
        event = LogEvent(
            seq, orjson.dumps({"seq": seq, "generation_id": self.generation_id, **payload})
        )
        self.events.append(event)
        if self.mirror is not None:
            self.mirror(self.generation_id, event)
        self._notify()
        return event

    def finish(self) -> None:
        self.finished = True
        self._notify()

    def _notify(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def follow(
        self, after: int = 0, keepalive: float = 15.0
    ) -> AsyncIterator[list[LogEvent]]:
        """Lists of events with ``seq > after`` as they come, until the log is finished; an
        empty list after ``keepalive`` seconds without any (for a keep-alive write)."""
        pos = max(after, 0)
        while True:
            if pos < len(self.events):
                batch = self.events[pos:]
                pos = len(self.events)
                yield batch
                continue
            if self.finished:
                return
            wake = self._wake
            try:
                async with asyncio.timeout(keepalive):
                    await wake.wait()
            except TimeoutError:
                yield []
