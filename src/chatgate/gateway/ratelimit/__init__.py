"""Token-bucket rate limits (requests and tokens per minute, global and per key), local or Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatgate.gateway.ratelimit.backend import Backend, Charge, LocalBackend, Outcome
from chatgate.gateway.ratelimit.limiter import (
    Limit,
    RateLimited,
    RateLimiter,
    Reservation,
    format_duration,
)

if TYPE_CHECKING:
    from chatgate.gateway.ratelimit.redis import RedisBackend

__all__ = [
    "Backend",
    "Charge",
    "Limit",
    "LocalBackend",
    "Outcome",
    "RateLimited",
    "RateLimiter",
    "RedisBackend",
    "Reservation",
    "format_duration",
]


def __getattr__(name: str) -> Any:
    # redis.asyncio takes ~0.1 s to import; only deployments with Redis configured pay it.
    if name == "RedisBackend":
        from chatgate.gateway.ratelimit.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
