"""A generation's event log: numbered events, appended by the job, followed by any number of
clients, each from where it left off.

Every event is serialised once when appended (JSON with its ``seq``, and the SSE frame whose
``id:`` is that ``seq``); followers get lists of the events they have not seen yet, so a burst of
chunks costs one write per follower, and ``Last-Event-ID`` resumes exactly after the last event a
client received. ``seq`` starts at 1.

Waiting costs one future per follower and event, nothing more: no ``asyncio.Event`` made per
append and no timeout armed per wait (in uvloop a timer costs more than the rest of an event's
way to its follower). Keep-alives come from one timer per log, armed while followers wait.
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
        self._waiters: list[asyncio.Future[None]] = []  # one per waiting follower
        self._tick: asyncio.TimerHandle | None = None  # wakes the followers to check keep-alive

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
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a follower cancelled meanwhile has cancelled its own
                waiter.set_result(None)

    def _on_tick(self) -> None:
        self._tick = None
        self._notify()

    async def follow(
        self, after: int = 0, keepalive: float = 15.0
    ) -> AsyncIterator[list[LogEvent]]:
        """Lists of events with ``seq > after`` as they come, until the log is finished; an
        empty list after ``keepalive`` seconds without any, give or take half of that (for a
        keep-alive write)."""
        loop = asyncio.get_running_loop()
        pos = max(after, 0)
        quiet_since = loop.time()
        while True:
            if pos < len(self.events):
                batch = self.events[pos:]
                pos = len(self.events)
                yield batch
                quiet_since = loop.time()
                continue
            if self.finished:
                return
            if loop.time() - quiet_since >= keepalive:
                yield []
                quiet_since = loop.time()
                continue
            due = loop.time() + keepalive / 2
            if self._tick is None or self._tick.when() > due:
                if self._tick is not None:
                    self._tick.cancel()
                self._tick = loop.call_at(due, self._on_tick)
            waiter = loop.create_future()
            self._waiters.append(waiter)
            await waiter
