"""Stored Responses API responses: saved group-committed, read and deleted by id and owner,
swept once expired.

A save returns once its transaction has committed, so a client never holds an id that another
replica cannot find yet; the writes of concurrent requests share one transaction and one
``executemany`` (``storage.writer``), which keeps the database off each request's CPU bill.
Expired rows are invisible at once (every read checks ``expires_at``) and deleted by a sweep
that runs every ``sweep_interval`` seconds, in batches, on each replica (deleting is
idempotent, so replicas need no coordination).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, insert, select

from chatgate.storage.base import utcnow
from chatgate.storage.db import Database
from chatgate.storage.models_responses import StoredResponse
from chatgate.storage.writer import GroupWriter

log = logging.getLogger(__name__)

_TABLE = cast(Table, StoredResponse.__table__)
_INSERT = insert(_TABLE)  # one statement object: the group writer merges writes by identity
SWEEP_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Found:
    """A stored response: its JSON, and the JSON of the whole input it answered."""

    response: str
    input: str


class ResponseRepository:
    def __init__(self, db: Database, retention: float, sweep_interval: float = 3600.0) -> None:
        self.db = db
        self.retention = timedelta(seconds=retention)
        self.sweep_interval = sweep_interval
        self.writer = GroupWriter(db)
        self._sweeper: asyncio.Task[None] | None = None

    async def save(
        self,
        rid: str,
        owner: str,
        model: str,
        previous_response_id: str | None,
        input_json: str,
        response_json: str,
        now: datetime | None = None,
    ) -> None:
        """Store a response; returns once committed."""
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
        await self.writer.execute((_INSERT, row))

    async def get(self, rid: str, owner: str, now: datetime | None = None) -> Found | None:
        """The response ``rid`` of ``owner``, unless it expired (someone else's is None too)."""
        query = select(_TABLE.c.response, _TABLE.c.input).where(
            _TABLE.c.id == rid, _TABLE.c.owner == owner, _TABLE.c.expires_at > (now or utcnow())
        )
        async with self.db.session() as s:
            row = (await s.execute(query)).first()
        return None if row is None else Found(row[0], row[1])

    async def delete(self, rid: str, owner: str) -> bool:
        """Delete the response ``rid`` of ``owner``; False if there is none."""
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
        await self.writer.close()
