"""Generation logs shared through Redis, so any replica can serve a follow or a stop.

The replica running a job mirrors its event log into a Redis stream (``chatgate:gen:<id>``,
entry ids ``0-<seq>``, so ``Last-Event-ID`` maps straight onto ``XREAD``), expiring
``chat.job_retention`` seconds after the job ends. Appends never wait for Redis: they queue, and
one writer task sends whatever queued during the previous round trip as one pipeline. Stops
travel on a pub/sub channel to whichever replica runs the job. Redis trouble never fails a
generation: the mirror is skipped (logged once) and followers fall back to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatgate.chat.joblog import LogEvent

log = logging.getLogger(__name__)

PREFIX = "chatgate:gen:"
STOP_CHANNEL = "chatgate:gen-stop"
_DONE = b'"type":"done"'


class SharedLogs:
    def __init__(self, url: str, retention: float) -> None:
        self.client: aioredis.Redis = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        self.retention = max(int(retention), 1)
        self._queue: list[tuple[str, LogEvent]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False

    def start(self, on_stop: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._writer()), loop.create_task(self._stops(on_stop))]

    def append(self, generation_id: str, event: LogEvent) -> None:
        self._queue.append((generation_id, event))
        self._wake.set()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
                self._failing = False
            except RedisError as exc:
                if not self._failing:
                    log.warning("Redis: cannot share generation logs: %s", exc)
                self._failing = True

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        pipe = self.client.pipeline(transaction=False)
        for gid, event in batch:
            key = PREFIX + gid
            pipe.xadd(key, {"d": event.data}, id=f"0-{event.seq}")
            if _DONE in event.data:
                pipe.expire(key, self.retention)
            elif event.seq == 1:  # a job whose replica dies must not leave its log forever
                pipe.expire(key, 24 * 3600)
        await pipe.execute()

    async def _stops(self, on_stop: Callable[[str], None]) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(STOP_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            on_stop(message["data"].decode())
            except RedisError as exc:
                log.warning("Redis: stop channel lost (%s); retrying", exc)
                await asyncio.sleep(1)

    async def exists(self, generation_id: str) -> bool:
        try:
            return bool(await self.client.exists(PREFIX + generation_id))
        except RedisError:
            return False

    async def request_stop(self, generation_id: str) -> None:
        with contextlib.suppress(RedisError):
            await self.client.publish(STOP_CHANNEL, generation_id)

    async def follow(
        self, generation_id: str, after: int, keepalive: float = 15.0
    ) -> AsyncIterator[list[LogEvent]]:
        """The events after ``after`` as another replica appends them, until ``done``."""
        key, last = PREFIX + generation_id, f"0-{max(after, 0)}"
        while True:
            # RESP2 reply: [[key, [(entry id, {field: value}), ...]]]
            found: Any = await self.client.xread(
                {key: last}, count=1000, block=int(keepalive * 1000)
            )
            if not found:
                if not await self.client.exists(key):
                    return
                yield []
                continue
            batch = []
            done = False
            for entry_id, fields in found[0][1]:
                last = entry_id.decode()
                event = LogEvent(int(last.split("-")[1]), fields[b"d"])
                batch.append(event)
                done = done or _DONE in event.data
            yield batch
            if done:
                return

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(RedisError, TimeoutError):
            async with asyncio.timeout(2):
                await self._flush()  # the last events of the jobs that just ended
        await self.client.aclose()
