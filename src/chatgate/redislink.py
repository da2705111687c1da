"""A Redis client with a degraded mode: bounded calls, one log line per outage, a probe to return.

Redis is a helper here, never a requirement: the cache's shared tier, the chat's events and its
shared generation logs all have a local fallback. A ``RedisLink`` bounds every call by a short
``timeout`` (connect and read: a Redis that is down, unreachable or hung — SIGSTOP — costs a
caller that long once, not the client library's default 5 s each time). The first failure marks
the link down and logs one line; callers then skip Redis and use their fallback at no cost,
while a background probe pings it every ``retry_after`` seconds. When it answers, one more
line is logged and callers use Redis again. A user with state to carry across the outage
registers ``on_down`` (called once as the link goes down) and ``rejoin`` (awaited after a
successful ping, before the link is up again; if it fails the probe goes on): the rate
limiter's fallback buckets are built and handed back that way (``gateway/ratelimit/redis.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger("chatgate.redis")

FAILURES = (RedisError, OSError)  # what a call may raise when Redis is away (timeouts included)


class RedisLink:
    """``client`` for quick commands; ``blocking`` (when asked for) for blocking reads (pub/sub,
    ``XREAD BLOCK``), whose read timeout ``blocking_timeout`` must exceed their block time."""

    def __init__(
        self,
        url: str,
        what: str,
        fallback: str,
        *,
        timeout: float = 0.25,
        retry_after: float = 1.0,
        blocking_timeout: float | None = None,
    ) -> None:
        self.what = what  # e.g. "chat events"
        self.fallback = fallback  # what happens meanwhile, e.g. "delivered on this replica only"
        self.retry_after = retry_after
        # One reconnect for a connection Redis dropped, none after a timeout (it would double
        # what a hung Redis costs).
        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=retry
        )
        self.blocking: aioredis.Redis = (
            aioredis.Redis.from_url(
                url,
                socket_timeout=blocking_timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
            if blocking_timeout is not None
            else self.client
        )
        self.down = False
        self._since = 0.0
        self._probe: asyncio.Task[None] | None = None
        self.on_back: list[Callable[[], None]] = []  # called when Redis answers again
        self.on_down: list[Callable[[], None]] = []  # called once as an outage begins
        self.rejoin: list[Callable[[], Awaitable[None]]] = []  # awaited before going up again

    @property
    def up(self) -> bool:
        return not self.down

    def failed(self, exc: BaseException, doing: str) -> None:
        """A call failed: go degraded (logged once) until the probe reaches Redis again."""
        if self.down:
            return
        self.down = True
        self._since = time.monotonic()
        log.warning(
            "Redis failed while %s (%s: %s); %s are %s until it is back",
            doing,
            type(exc).__name__,
            exc,
            self.what,
            self.fallback,
        )
        for callback in self.on_down:
            callback()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.retry_after)
            try:
                await self.client.ping()
                for step in self.rejoin:
                    await step()
            except FAILURES:
                continue
            self.down = False
            log.warning(
                "Redis is back after %.1f s; %s are shared again",
                time.monotonic() - self._since,
                self.what,
            )
            for callback in self.on_back:
                callback()
            return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.client.aclose()
        if self.blocking is not self.client:
            await self.blocking.aclose()
