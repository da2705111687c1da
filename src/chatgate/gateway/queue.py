"""Per-upstream concurrency limit: excess requests wait in a bounded FIFO queue, with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

from chatgate.errors import RateLimitError, ServiceUnavailableError

# Before any slot has been released there is no measured pace; guess one second per slot.
_DEFAULT_INTERVAL = 1.0
_EWMA = 0.2


class UpstreamQueue:
    """At most ``max_concurrency`` calls run at once; up to ``max_queue`` more wait, first come
    first served, for at most ``queue_timeout`` seconds.

    ``async with queue.slot():`` holds a slot for the body of the block, however it ends (return,
    exception, cancellation). A stream keeps its slot by iterating inside the block, e.g. in an
    async generator whose ``finally`` closes it; :meth:`acquire` / :meth:`release` are the same
    thing for callers that cannot nest a block.

    Refusals: a full queue raises :class:`RateLimitError` (429) at once; a wait longer than
    ``queue_timeout`` raises :class:`ServiceUnavailableError` (503). Both carry ``retry_after``,
    estimated from the measured pace at which slots free up (waiting position × mean interval
    between releases).

    ``max_concurrency=None`` is the unlimited mode: entering and leaving a slot only counts
    ``in_flight``. A freed slot passes straight to the oldest waiter (``in_flight`` never drops
    in between), so a newcomer can never overtake the queue.
    """

    __slots__ = (
        "_interval",
        "_last_release",
        "_waiters",
        "in_flight",
        "max_concurrency",
        "max_queue",
        "name",
        "queue_timeout",
        "rejected",
        "timed_out",
    )

    def __init__(
        self,
        name: str,
        max_concurrency: int | None,
        max_queue: int = 100,
        queue_timeout: float = 30.0,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"{name}: max_concurrency must be at least 1 (or None for no limit)")
        if max_queue < 0:
            raise ValueError(f"{name}: max_queue must not be negative")
        if queue_timeout <= 0:
            raise ValueError(f"{name}: queue_timeout must be positive")
        self.name = name
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.in_flight = 0
        self.rejected = 0  # refused because the queue was full
        self.timed_out = 0  # gave up waiting
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._interval = _DEFAULT_INTERVAL
        self._last_release: float | None = None

    @property
    def depth(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._waiters)

    def slot(self) -> UpstreamQueue:
        """``async with queue.slot():`` around the upstream call (the queue is its own context
        manager: it keeps no per-slot state)."""
        return self

    async def acquire(self) -> None:
        """Take a slot, waiting in line if none is free. Pair with exactly one :meth:`release`."""
        limit = self.max_concurrency
        if limit is None or (self.in_flight < limit and not self._waiters):
            self.in_flight += 1
        else:
            await self._wait()

    __aenter__ = acquire  # the same coroutine: no extra await on the hot path

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.max_concurrency is None:
            self.in_flight -= 1
        else:
            self.release()

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire`: to the oldest waiter if there is one."""
        if self.max_concurrency is not None:
            now = time.monotonic()
            if self._last_release is not None:
                sample = min(now - self._last_release, self.queue_timeout)
                self._interval += _EWMA * (sample - self._interval)
            self._last_release = now
            waiters = self._waiters
            while waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(True)  # the slot changes hands: in_flight stays the same
                    return
        self.in_flight -= 1

    async def _wait(self) -> None:
        waiting = len(self._waiters)
        if waiting >= self.max_queue:
            self.rejected += 1
            raise RateLimitError(
                f"Upstream '{self.name}' is at capacity ({self.in_flight} requests running, "
                f"{waiting} waiting); retry shortly.",
                retry_after=self._estimate(waiting),
            )
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(self.queue_timeout, self._expire, fut)
        try:
            granted = await fut
        except BaseException:
            # Cancelled while waiting. If the slot was handed over in the same loop iteration,
            # it is ours: pass it on; otherwise just leave the line.
            if not fut.cancelled() and fut.done():
                if fut.result():
                    self.release()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise
        finally:
            timer.cancel()
        if not granted:
            self.timed_out += 1
            raise ServiceUnavailableError(
                f"Upstream '{self.name}' is busy: no free slot within {self.queue_timeout:g}s "
                f"({self.in_flight} requests running, {len(self._waiters)} waiting).",
                retry_after=self._estimate(len(self._waiters)),
            )

    def _expire(self, fut: asyncio.Future[bool]) -> None:
        if not fut.done():
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            fut.set_result(False)

    def _estimate(self, position: int) -> float:
        """Seconds until a request at ``position`` in line would likely get a slot."""
        guess = (position + 1) * self._interval
        return min(max(guess, 1.0), max(self.queue_timeout, 1.0))

    def snapshot(self) -> dict[str, Any]:
        """State for ``/admin/upstreams`` and metrics."""
        return {
            "name": self.name,
            "max_concurrency": self.max_concurrency,
            "in_flight": self.in_flight,
            "depth": self.depth,
            "max_queue": self.max_queue,
            "queue_timeout": self.queue_timeout,
            "rejected": self.rejected,
            "timed_out": self.timed_out,
        }
