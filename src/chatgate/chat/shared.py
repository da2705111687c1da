"""Generation logs shared through Redis, so any replica can serve a follow or a stop.

The replica running a job mirrors its event log into a Redis stream (``chatgate:gen:<id>``,
entry ids ``0-<seq>``, so ``Last-Event-ID`` maps straight onto ``XREAD``), expiring
``chat.job_retention`` seconds after the job ends. Appends never wait for Redis: they queue, and
one writer task sends whatever queued during the previous round trip as one pipeline. Stops
travel on a pub/sub channel to whichever replica runs the job.

Redis trouble never fails a generation (see :mod:`chatgate.redislink`: every call is bounded by
a short timeout, the first failure switches to the local fallback, logged once, and a probe
switches back). Meanwhile nothing is mirrored and other replicas serve followers from the
database. A log that missed events during an outage is never mirrored again and its Redis copy
is deleted once Redis is back, so no follower reads a log with a hole; a follower that meets one
anyway (``LogGap``) or loses Redis mid-follow falls back to the database too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from chatgate.chat.joblog import LogEvent
from chatgate.redislink import FAILURES, RedisLink

PREFIX = "chatgate:gen:"
STOP_CHANNEL = "chatgate:gen-stop"
_DONE = b'"type":"done"'
BLOCK = 1.0  # seconds an XREAD waits for new entries (the link's blocking timeout is above it)


class LogGap(Exception):
    """The shared copy of a log misses events (lost during a Redis outage)."""


class SharedLogs:
    def __init__(self, link: RedisLink, retention: float) -> None:
        self.link = link
        self.retention = max(int(retention), 1)
        self._queue: list[tuple[str, LogEvent]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._holed: set[str] = set()  # logs that lost events: not mirrored any more
        self._to_delete: set[str] = set()  # their Redis copies, deleted once Redis is back
        link.on_back.append(self._wake.set)

    def start(self, on_stop: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._writer()), loop.create_task(self._stops(on_stop))]

    def append(self, generation_id: str, event: LogEvent) -> None:
        if self.link.down or generation_id in self._holed:
            self._hole(generation_id, event)
            return
        self._queue.append((generation_id, event))
        self._wake.set()

    def _hole(self, generation_id: str, event: LogEvent) -> None:
        self._to_delete.add(generation_id)
        if _DONE in event.data:
            self._holed.discard(generation_id)  # no more events will come
        else:
            self._holed.add(generation_id)
        self._wake.set()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.link.down:
                continue  # appends are not queued meanwhile; the next one after it wakes us
            batch, self._queue = self._queue, []
            doomed = set(self._to_delete)
            try:
                await self._flush(batch, doomed)
            except FAILURES as exc:
                self.link.failed(exc, "sharing generation logs")
                for gid, event in batch:
                    self._hole(gid, event)
            else:
                self._to_delete -= doomed

    async def _flush(self, batch: list[tuple[str, LogEvent]], doomed: set[str]) -> None:
        if not batch and not doomed:
            return
        pipe = self.link.client.pipeline(transaction=False)
        for gid in doomed:
            pipe.delete(PREFIX + gid)
        for gid, event in batch:
            if gid in doomed:
                continue
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
                async with self.link.blocking.pubsub() as pubsub:
                    await pubsub.subscribe(STOP_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            on_stop(message["data"].decode())
            except FAILURES as exc:
                self.link.failed(exc, "listening for stops")  # logged once per outage
                await asyncio.sleep(self.link.retry_after)

    async def exists(self, generation_id: str) -> bool:
        """Whether another replica shares this generation's log (False while Redis is away)."""
        if self.link.down:
            return False
        try:
            return bool(await self.link.client.exists(PREFIX + generation_id))
        except FAILURES as exc:
            self.link.failed(exc, "looking up a generation")
            return False

    async def request_stop(self, generation_id: str) -> bool:
        """Ask the replica running it to stop; whether the request went out."""
        if self.link.down:
            return False
        try:
            await self.link.client.publish(STOP_CHANNEL, generation_id)
        except FAILURES as exc:
            self.link.failed(exc, "sending a stop")
            return False
        return True

    async def follow(
        self, generation_id: str, after: int, keepalive: float = 15.0
    ) -> AsyncIterator[list[LogEvent]]:
        """The events after ``after`` as another replica appends them, until ``done``. Raises
        ``LogGap`` or a Redis failure when the shared copy cannot serve it whole."""
        key, seq = PREFIX + generation_id, max(after, 0)
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            # RESP2 reply: [[key, [(entry id, {field: value}), ...]]]
            try:
                found: Any = await self.link.blocking.xread(
                    {key: f"0-{seq}"}, count=1000, block=int(BLOCK * 1000)
                )
                gone = not found and not await self.link.client.exists(key)
            except FAILURES as exc:
                self.link.failed(exc, "following a generation")
                raise
            if gone:  # deleted (or expired) before its end: it cannot serve this follow
                raise LogGap(generation_id)
            if not found:
                if loop.time() - quiet_since >= keepalive:
                    quiet_since = loop.time()
                    yield []
                continue
            batch = []
            done = False
            for entry_id, fields in found[0][1]:
                number = int(entry_id.decode().split("-")[1])
                if number != seq + 1:
                    raise LogGap(generation_id)
                seq = number
                event = LogEvent(number, fields[b"d"])
                batch.append(event)
                done = done or _DONE in event.data
            quiet_since = loop.time()
            yield batch
            if done:
                return

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.link.up:
            with contextlib.suppress(*FAILURES):
                async with asyncio.timeout(2):
                    # the last events of the jobs that just ended
                    await self._flush(self._queue, set(self._to_delete))
