"""Stored Responses API responses: saved behind the request (batched), read and deleted by id
and owner, swept once expired.

``save`` costs the request nothing but a queue append: a writer task inserts whatever queued
while it waited (``flush_interval``, 0.1 s) in one transaction and one ``executemany``, so the
database costs at most ten transactions a second however busy the door. (A transaction costs
~0.8 ms of CPU on SQLite, a row ~0.03 ms: one transaction per answer would double the door's
CPU at one request at a time.) Until its batch commits a response is served from memory by
this replica; another replica may miss it for that moment, so a miss is looked up once more
after ``miss_retry`` seconds (three flush intervals) before it is reported: only misses pay.

Expired rows are invisible at once (every read checks ``expires_at``) and deleted by a sweep
every ``sweep_interval`` seconds, in batches, on each replica (deleting is idempotent, so
replicas need no coordination). What is still queued is written on shutdown; a crash loses at
most the last batch.

A database outage loses no response: a batch the database refuses stays at the head of the
queue (still served from memory here) and is tried again with backoff until it goes through,
logged once when writes begin to fail and once when they resume. The queue is bounded
(``max_kept`` rows; past it the oldest are dropped with an error line), and a shutdown during
an outage waits ``close_grace`` seconds before giving up on what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, insert, select

from chatgate.errors import DatabaseUnavailableError
from chatgate.storage.base import utcnow
from chatgate.storage.db import Database
from chatgate.storage.models_responses import StoredResponse

log = logging.getLogger(__name__)

_TABLE = cast(Table, StoredResponse.__table__)
_INSERT = insert(_TABLE)
SWEEP_BATCH = 1000
MAX_BATCH = 500  # rows a transaction: bounds how long one commit holds the write lock
RETRY_MIN, RETRY_MAX = 0.1, 2.0  # seconds between tries of a batch the database refused

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Found:
    """A stored response: its JSON, and the JSON of the whole input it answered."""

    response: str
    input: str


class ResponseRepository:
    def __init__(
        self,
        db: Database,
        retention: float,
        sweep_interval: float = 3600.0,
        flush_interval: float = 0.1,
        miss_retry: float | None = None,
        max_kept: int = 20_000,
        close_grace: float = 5.0,
    ) -> None:
        self.db = db
        self.max_kept = max_kept
        self.close_grace = close_grace
        self._waiting = False  # writes are failing for a database outage (logged once)
        self.retention = timedelta(seconds=retention)
        self.sweep_interval = sweep_interval
        self.flush_interval = flush_interval
        self.miss_retry = 3 * flush_interval if miss_retry is None else miss_retry
        self._queue: list[Row] = []
        self._pending: dict[str, Row] = {}  # saved, not committed yet: served from here
        self._wake: asyncio.Event | None = None
        self._flushed: asyncio.Event | None = None  # set (and replaced) after every batch
        self._writer: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def save(
        self,
        rid: str,
        owner: str,
        model: str,
        previous_response_id: str | None,
        input_json: str,
        response_json: str,
        now: datetime | None = None,
    ) -> None:
        """Store a response (readable here at once, written to the database shortly)."""
        now = now or utcnow()
        row = {
            "id": rid,
            "owner": owner,
            "model": model,
            "created_at": now,
            "expires_at": now + self.retention,
            "previous_response_id": previous_response_id,
            "input": input_json,
            "response": response_json,
        }
        self._pending[rid] = row
        self._queue.append(row)
        if len(self._queue) > self.max_kept:  # a long outage: the oldest go, not the memory
            dropped = self._queue[: len(self._queue) - self.max_kept]
            del self._queue[: len(dropped)]
            self._release(dropped)
            log.error(
                "dropped %d stored responses: the database has been away for %d of them",
                len(dropped),
                self.max_kept,
            )
        if self._writer is None or self._writer.done():
            self._wake = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), name="chatgate-responses-writer"
            )
        assert self._wake is not None
        self._wake.set()

    async def _drain(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._closed and self.flush_interval:
                await asyncio.sleep(self.flush_interval)  # let a batch gather
            delay = RETRY_MIN
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                try:
                    async with self.db.engine.begin() as conn:
                        await conn.execute(_INSERT, batch)
                except DatabaseUnavailableError:
                    if not self._waiting:
                        self._waiting = True
                        log.warning(
                            "stored responses: keeping %d until the database returns",
                            len(self._queue),
                        )
                    await asyncio.sleep(delay)  # the batch stays first in the queue
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                except Exception:
                    log.exception("could not store %d responses", len(batch))
                if self._waiting:
                    self._waiting = False
                    log.warning("stored responses: the database is back; writing them")
                delay = RETRY_MIN
                # The batch is still first in the queue, unless a long outage dropped its head.
                mine = {id(row) for row in batch}
                done = 0
                while done < len(self._queue) and id(self._queue[done]) in mine:
                    done += 1
                del self._queue[:done]
                self._release(batch)
            if self._closed:
                return

    def _release(self, rows: list[Row]) -> None:
        """Rows written (or given up on): no longer served from memory; wake their waiters."""
        for row in rows:
            if self._pending.get(row["id"]) is row:
                del self._pending[row["id"]]
        flushed, self._flushed = self._flushed, None
        if flushed is not None:
            flushed.set()

    async def _committed(self, rid: str) -> None:
        """Wait until the batch holding ``rid`` has been written (or has failed)."""
        while rid in self._pending:
            if self._flushed is None:
                self._flushed = asyncio.Event()
            await self._flushed.wait()

    async def flush(self) -> None:
        """Wait until every response saved so far has been written."""
        for rid in list(self._pending):
            await self._committed(rid)

    async def get(self, rid: str, owner: str, now: datetime | None = None) -> Found | None:
        """The response ``rid`` of ``owner``, unless it expired (someone else's is None too)."""
        now = now or utcnow()
        row = self._pending.get(rid)
        if row is not None:
            if row["owner"] != owner or row["expires_at"] <= now:
                return None
            return Found(row["response"], row["input"])
        found = await self._select(rid, owner, now)
        if found is None and self.miss_retry:
            await asyncio.sleep(self.miss_retry)  # another replica's batch may be committing
            found = await self._select(rid, owner, now)
        return found

    async def _select(self, rid: str, owner: str, now: datetime) -> Found | None:
        query = select(_TABLE.c.response, _TABLE.c.input).where(
            _TABLE.c.id == rid, _TABLE.c.owner == owner, _TABLE.c.expires_at > now
        )
        async with self.db.session() as s:
            row = (await s.execute(query)).first()
        return None if row is None else Found(row[0], row[1])

    async def delete(self, rid: str, owner: str) -> bool:
        """Delete the response ``rid`` of ``owner``; False if there is none."""
        row = self._pending.get(rid)
        if row is not None:
            if row["owner"] != owner:
                return False
            await self._committed(rid)  # deleted after its insert, never before
        stmt = delete(_TABLE).where(_TABLE.c.id == rid, _TABLE.c.owner == owner)
        async with self.db.session() as s:
            result = await s.execute(stmt)
        return cast(CursorResult[Any], result).rowcount > 0

    async def sweep(self, now: datetime | None = None, batch: int = SWEEP_BATCH) -> int:
        """Delete expired responses, ``batch`` rows a transaction (short locks on a big table);
        the number deleted."""
        now = now or utcnow()
        expired = select(_TABLE.c.id).where(_TABLE.c.expires_at <= now).limit(batch)
        stmt = delete(_TABLE).where(_TABLE.c.id.in_(expired.scalar_subquery()))
        total = 0
        while True:
            async with self.db.session() as s:
                result = await s.execute(stmt)
            deleted = cast(CursorResult[Any], result).rowcount
            total += deleted
            if deleted < batch:
                return total

    def start(self) -> None:
        """Sweep every ``sweep_interval`` seconds from now on (the first sweep right away)."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="chatgate-responses-sweep"
            )

    async def _sweep_forever(self) -> None:
        while True:
            try:
                deleted = await self.sweep()
                if deleted:
                    log.info("deleted %d expired stored responses", deleted)
            except Exception as exc:  # the database may be away for a while: try again later
                log.warning("sweeping expired stored responses failed: %s", exc)
            await asyncio.sleep(self.sweep_interval)

    async def close(self) -> None:
        """Stop sweeping and write what is queued."""
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._closed = True
        writer = self._writer
        if writer is not None and not writer.done():
            assert self._wake is not None
            self._wake.set()
            try:  # the database may be away: wait a while, not forever
                async with asyncio.timeout(self.close_grace):
                    await asyncio.shield(writer)
            except TimeoutError:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
                log.error(
                    "stored responses: %d could not be written before the stop",
                    len(self._queue),
                )
