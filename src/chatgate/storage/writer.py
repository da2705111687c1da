"""Group commit: writes queued by many requests run together, in one transaction, by one task.

Two hundred answers started at once each want a few writes. Run as two hundred transactions on
a pool of connections, they queue on SQLite's single write lock (whose busy handler sleeps up
to 100 ms a try) or pay a commit each on PostgreSQL; and every statement costs its round trips
(on SQLite several hops to the driver's thread, each waiting for the GIL while the event loop is
busy). Queued here instead, whatever arrives while a transaction runs goes into the next one.

A write is a list of steps, each a statement built once (with ``bindparam`` placeholders) and its
parameter sets. Consecutive writes made of the same statements are merged step by step: step
*k* of all of them runs as one ``executemany``, so a group of two hundred "insert the messages,
then move the conversation's leaf" costs two statements, not four hundred. Each write's own
steps keep their order, and writes of one statement keep their arrival order; callers only
group writes that do not depend on each other's earlier steps (new rows, keyed updates).

A write that fails rolls the whole group back; each write of the group is then retried in a
transaction of its own, so a bad write fails only its own caller. A counted write (its caller
needs the number of rows it matched) is never merged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.storage.db import Database

log = logging.getLogger(__name__)

Params = dict[str, Any]
Step = tuple[Executable, Params | Sequence[Params]]

MAX_GROUP = 512  # writes per transaction: bounds how long one commit keeps the next ones waiting


@dataclass(slots=True)
class _Write:
    steps: list[tuple[Executable, Sequence[Params]]]
    counted: bool
    future: asyncio.Future[int]

    def merges_with(self, other: _Write) -> bool:
        return (
            not self.counted
            and not other.counted
            and len(self.steps) == len(other.steps)
            and all(a[0] is b[0] for a, b in zip(self.steps, other.steps, strict=True))
        )


class GroupWriter:
    def __init__(self, db: Database, max_group: int = MAX_GROUP) -> None:
        self.db = db
        self.max_group = max_group
        self._queue: list[_Write] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def execute(self, *steps: Step) -> None:
        """Run the steps, in order, in the next group's transaction; return once committed."""
        await self._submit(steps, counted=False)

    async def execute_counted(self, stmt: Executable, params: Params | None = None) -> int:
        """Run one statement (unmerged) in the next group; the number of rows it matched."""
        return await self._submit([(stmt, params or {})], counted=True)

    async def _submit(self, steps: Sequence[Step], counted: bool) -> int:
        loop = asyncio.get_running_loop()
        write = _Write(
            [(s, [p] if isinstance(p, dict) else p) for s, p in steps if p != []],
            counted,
            loop.create_future(),
        )
        if self._closed:  # shutting down: nobody drains a queue any more
            await self._commit([write])
            return write.future.result()
        self._queue.append(write)
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._drain(), name="chatgate-group-writer")
        assert self._wake is not None
        self._wake.set()
        # Shielded: a caller that goes away does not take its write out of a group.
        return await asyncio.shield(write.future)

    async def _drain(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
                await self._commit(group)
            if self._closed:
                return

    async def _commit(self, group: list[_Write]) -> None:
        try:
            counts = await self._transaction(group)
        except asyncio.CancelledError:  # the loop is going away: nobody waits in vain
            for write in group:
                write.future.cancel()
            raise
        except Exception as exc:
            if len(group) == 1:
                if not group[0].future.done():
                    group[0].future.set_exception(exc)
                return
            log.debug("a group of %d writes failed (%s); retrying each alone", len(group), exc)
            for write in group:
                await self._commit([write])
            return
        for write, count in zip(group, counts, strict=True):
            if not write.future.done():
                write.future.set_result(count)

    async def _transaction(self, group: list[_Write]) -> list[int]:
        counts: list[int] = []
        async with self.db.engine.begin() as conn:
            start = 0
            while start < len(group):
                end = start + 1
                while end < len(group) and group[start].merges_with(group[end]):
                    end += 1
                counts += [await _run(conn, group[start:end])] * (end - start)
                start = end
        return counts

    async def close(self) -> None:
        """Write what is queued, then stop; later writes run alone, each in its own transaction."""
        self._closed = True
        if self._task is not None and not self._task.done():
            assert self._wake is not None
            self._wake.set()
            await self._task
        self._task = None


async def _run(conn: AsyncConnection, writes: list[_Write]) -> int:
    """Writes of the same statements, step by step; the rows matched by the last step."""
    count = 0
    for k, (stmt, _) in enumerate(writes[0].steps):
        params = [p for w in writes for p in w.steps[k][1]]
        result = await conn.execute(stmt, params[0] if len(params) == 1 else params)
        count = int(getattr(result, "rowcount", 0) or 0)
    return count
