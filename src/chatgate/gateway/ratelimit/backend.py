"""The rate-limit storage seam: the ``Backend`` protocol and the in-process ``LocalBackend``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol, runtime_checkable


class Charge(NamedTuple):
    """What one request draws from one bucket.

    ``capacity`` is the per-minute limit (the bucket refills at ``capacity / 60`` per second);
    ``cost`` is what the request takes (for ``adjust``: the amount to take, negative to give back).
    """

    bucket: str
    capacity: float
    cost: float


class Outcome(NamedTuple):
    """The answer to ``take``: all charges taken (``ok``) or none.

    ``levels[i]`` is bucket ``i``'s level after the take when ``ok``, else its level now (which is
    what the wait is computed from). ``scale`` multiplies every capacity the backend enforced:
    1 normally, ``1 / replicas`` when a Redis backend has fallen back to local buckets.
    """

    ok: bool
    levels: list[float]
    scale: float = 1.0


def required(cost: float, capacity: float) -> float:
    """The level a bucket needs before ``cost`` may be taken.

    A cost above the capacity (a prompt larger than the whole TPM) is admitted when the bucket is
    full, which drives it negative, so later requests wait until the average is back under the
    limit: never a deadlock, and the long-run rate still holds.
    """
    return cost if cost < capacity else capacity


@runtime_checkable
class Backend(Protocol):
    """Where bucket levels live. ``take`` is atomic across all its charges: all or none.

    Buckets are named by the caller, start full, refill continuously and are capped at their
    capacity (they may go below zero). Backends never raise into the request path.
    """

    @property
    def degraded(self) -> bool: ...

    async def take(self, charges: Sequence[Charge]) -> Outcome: ...

    async def adjust(self, charges: Sequence[Charge]) -> None: ...

    async def close(self) -> None: ...


class LocalBackend:
    """Buckets in a dict in this process: exact for one process, O(1) per bucket.

    Every method body runs without an ``await``, so the event loop makes it atomic. Memory stays
    bounded: once every ``sweep_interval`` seconds the buckets that have refilled to full are
    dropped (a missing bucket reads as full, so this changes nothing).
    ``scale`` multiplies every capacity (a Redis backend's fallback uses ``1 / replicas``).
    """

    __slots__ = ("_buckets", "_clock", "_next_sweep", "scale", "sweep_interval")

    def __init__(
        self,
        scale: float = 1.0,
        *,
        sweep_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scale = scale
        self.sweep_interval = sweep_interval
        self._clock = clock
        # bucket -> [level, updated_at, capacity]; lists, because this is the hot path.
        self._buckets: dict[str, list[float]] = {}
        self._next_sweep = clock() + sweep_interval

    @property
    def degraded(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._buckets)

    async def take(self, charges: Sequence[Charge]) -> Outcome:
        return self.take_now(charges)

    async def adjust(self, charges: Sequence[Charge]) -> None:
        self.adjust_now(charges)

    async def close(self) -> None:
        self._buckets.clear()

    def take_now(self, charges: Sequence[Charge]) -> Outcome:
        now = self._clock()
        if now >= self._next_sweep:
            self.sweep(now)
        scale = self.scale
        buckets = self._buckets
        levels = []
        ok = True
        for name, capacity, cost in charges:
            capacity *= scale
            state = buckets.get(name)
            if state is None:
                level = capacity
            else:
                level = state[0] + (now - state[1]) * capacity / 60.0
                if level > capacity:
                    level = capacity
            levels.append(level)
            if level < (cost if cost < capacity else capacity):  # required(cost, capacity)
                ok = False
        if ok:
            for i, (name, capacity, cost) in enumerate(charges):
                if cost:
                    levels[i] -= cost
                    buckets[name] = [levels[i], now, capacity * scale]
        return Outcome(ok, levels, scale)

    def adjust_now(self, charges: Sequence[Charge]) -> None:
        now = self._clock()
        for c in charges:
            capacity = c.capacity * self.scale
            level = min(capacity, self._level(c.bucket, capacity, now) - c.cost)
            self._buckets[c.bucket] = [level, now, capacity]

    def put(self, bucket: str, capacity: float, level: float) -> None:
        """Set ``bucket``'s level now (``capacity`` as configured, ``level`` at this scale)."""
        now = self._clock()
        if now >= self._next_sweep:
            self.sweep(now)
        self._buckets[bucket] = [level, now, capacity * self.scale]

    def levels(self) -> list[tuple[str, float, float]]:
        """(bucket, capacity as configured, level now at this scale) of every bucket that is
        not full."""
        now = self._clock()
        out = []
        for name, (level, at, capacity) in self._buckets.items():
            level += (now - at) * capacity / 60.0
            if level < capacity:
                out.append((name, capacity / self.scale, level))
        return out

    def sweep(self, now: float | None = None) -> None:
        """Drop the buckets that have refilled to full."""
        now = self._clock() if now is None else now
        full = [
            name
            for name, (level, at, capacity) in self._buckets.items()
            if level + (now - at) * capacity / 60.0 >= capacity
        ]
        for name in full:
            del self._buckets[name]
        self._next_sweep = now + self.sweep_interval

    def _level(self, bucket: str, capacity: float, now: float) -> float:
        state = self._buckets.get(bucket)
        if state is None:
            return capacity
        level = state[0] + (now - state[1]) * capacity / 60.0
        return capacity if level > capacity else level
