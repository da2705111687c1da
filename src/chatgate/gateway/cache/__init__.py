"""The response cache's storage tiers behind one ``Store`` seam (``RedisStore`` loads on use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatgate.gateway.cache.disk import DiskStore
from chatgate.gateway.cache.memory import MemoryStore
from chatgate.gateway.cache.store import Store, StoreStats
from chatgate.gateway.cache.tiered import TieredCache

if TYPE_CHECKING:
    from chatgate.gateway.cache.redis import RedisStore

__all__ = ["DiskStore", "MemoryStore", "RedisStore", "Store", "StoreStats", "TieredCache"]


def __getattr__(name: str) -> Any:
    # redis.asyncio takes ~0.1 s to import; only deployments with Redis configured pay it.
    if name == "RedisStore":
        from chatgate.gateway.cache.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
