"""The cache storage seam: the ``Store`` protocol every tier implements, and its statistics."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class StoreStats:
    """One tier's numbers; ``hits``/``misses`` count lookups since the store was built.

    ``bytes`` is what the tier's bound applies to (see each store); ``approximate`` is set when
    ``entries``/``bytes`` are a lower bound (Redis stops counting at its scan limit).
    """

    entries: int
    bytes: int
    hits: int
    misses: int
    approximate: bool = False

    @property
    def hit_ratio(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hit_ratio": round(self.hit_ratio, 4)}


@runtime_checkable
class Store(Protocol):
    """A key-value tier: keys are 32-byte digests, values opaque bytes, expiry absolute unix time.

    Stores never raise into the request path: a broken tier behaves as a miss / no-op and logs.
    An entry whose ``expires_at`` has passed is a miss; ``set`` with a past ``expires_at`` removes.
    """

    name: str

    async def get(self, key: bytes) -> tuple[bytes, float] | None: ...

    async def set(self, key: bytes, value: bytes, expires_at: float) -> None: ...

    async def delete(self, key: bytes) -> None: ...

    async def clear(self) -> int: ...

    async def stats(self) -> StoreStats: ...

    async def close(self) -> None: ...


class Health:
    """Logs a tier going bad once and coming back once, instead of on every operation."""

    __slots__ = ("_log", "_what", "failing")

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self.failing = False

    def failed(self, exc: BaseException, doing: str) -> None:
        if not self.failing:
            self.failing = True
            self._log.warning(
                "cache: %s failed while %s (%s: %s); treating it as a miss until it recovers",
                self._what,
                doing,
                type(exc).__name__,
                exc,
            )

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            self._log.warning("cache: %s is working again", self._what)
