"""Writing generations' answers to the database, through outages, never per token.

One task for all jobs writes the running answers' new text every ``chat.save_interval`` seconds
as one statement. Every ``HEARTBEAT`` seconds it touches every running answer's row even when
nothing changed, so that a row left ``streaming`` by a process that is gone (untouched for
``ORPHAN_AFTER`` seconds) is told apart from a live one: every ``SWEEP_EVERY`` seconds any
replica closes those as ``error`` with their partial text, so a conversation is never blocked.

A database outage loses no answer: a final save that fails is kept (one pending write per
answer; no new answer starts without the database, so they are bounded by the jobs that were
running) and retried with backoff until the database is back; meanwhile the job stays in
memory, so its followers still get the whole answer. Partial saves that fail are made again
next round. An outage is logged once when saves begin to fail and once when they go through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from chatgate.chat.job import Job
from chatgate.chat.store import ConversationStore
from chatgate.errors import DatabaseUnavailableError

log = logging.getLogger("chatgate.chat.generations")


class Saver:
    HEARTBEAT = 15.0  # seconds between touches of every running answer's row
    ORPHAN_AFTER = 60.0  # a streaming row untouched this long has no live job anywhere
    SWEEP_EVERY = 30.0  # seconds between sweeps for such rows
    RETRY_MAX = 2.0  # longest wait between tries of a final save the database refused

    def __init__(
        self, store: ConversationStore, jobs: Mapping[str, Job], save_interval: float
    ) -> None:
        self.store = store
        self.jobs = jobs  # the running jobs (Generations' own dict)
        self.save_interval = save_interval
        self._loop_task: asyncio.Task[None] | None = None
        # Final saves the database refused, by message id, retried by one task until written.
        self._unsaved: dict[str, tuple[Job, dict[str, Any]]] = {}
        self._retrier: asyncio.Task[None] | None = None
        self._waiting = False  # saves are failing for a database outage (logged once)
        self._last_beat = 0.0

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    def keeps(self, job: Job) -> bool:
        """Whether ``job``'s answer waits to be written (its job is the only copy)."""
        return job.message_id in self._unsaved

    # -- final saves -----------------------------------------------------------------------------
    async def final(self, job: Job, values: dict[str, Any]) -> None:
        """Write a finished answer; if the database is away, keep it and retry until written."""
        try:
            await self.store.update_message(job.message_id, values)
        except DatabaseUnavailableError:
            self._unsaved[job.message_id] = (job, values)
            self._failing(f"cannot save {len(self._unsaved)} answer(s)")
            if self._retrier is None or self._retrier.done():
                self._retrier = asyncio.get_running_loop().create_task(self._retry())
        except Exception:
            log.exception("generation %s: cannot save the answer", job.id)

    async def _retry(self) -> None:
        delay = 0.1
        while self._unsaved:
            await asyncio.sleep(delay)
            delay = 0.1 if await self.save_kept() else min(delay * 2, self.RETRY_MAX)

    async def save_kept(self) -> bool:
        """Try the kept final saves again, together; whether all are written now."""
        pending = list(self._unsaved.items())
        results = await asyncio.gather(
            *(self.store.update_message(mid, values) for mid, (_, values) in pending),
            return_exceptions=True,
        )
        for (mid, (job, values)), result in zip(pending, results, strict=True):
            now = self._unsaved.get(mid)
            if now is None or now[1] is not values:
                continue  # replaced meanwhile
            if result is None:
                del self._unsaved[mid]
            elif not isinstance(result, DatabaseUnavailableError):
                del self._unsaved[mid]
                log.error("generation %s: cannot save the answer: %r", job.id, result)
        if not self._unsaved:
            self._recovered("the answers kept during the database outage are saved")
        return not self._unsaved

    # -- partial saves, heartbeats, sweeps -------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        swept = loop.time()
        while True:
            await asyncio.sleep(self.save_interval)
            await self.save_partials()
            if loop.time() - swept >= self.SWEEP_EVERY:
                swept = loop.time()
                await self.sweep()

    async def save_partials(self, beat: bool = False) -> bool:
        """Write the running answers' new text (every running answer's, on a heartbeat or
        with ``beat``); whether the write went through."""
        now = asyncio.get_running_loop().time()
        beat = beat or now - self._last_beat >= self.HEARTBEAT
        jobs = [j for j in list(self.jobs.values()) if (j.dirty or beat) and not j.ended.is_set()]
        if not jobs:
            return True
        for job in jobs:
            job.dirty = False
        parts = [(j.message_id, "".join(j.content), "".join(j.reasoning) or None) for j in jobs]
        try:
            await self.store.save_partials(parts)
        except Exception as exc:
            for job in jobs:  # written again next round
                job.dirty = True
            if isinstance(exc, DatabaseUnavailableError):
                self._failing(f"cannot save {len(parts)} partial answer(s)")
            else:
                log.exception("cannot save %d partial answers", len(parts))
            return False
        if beat:
            self._last_beat = now
        if not self._unsaved:
            self._recovered("partial answers are saved again")
        return True

    async def sweep(self) -> int:
        """Close answers left ``streaming`` by a process that is gone (this one's are touched
        first, so none of them looks gone); how many."""
        if not await self.save_partials(beat=True):
            return 0
        try:
            swept = await self.store.interrupted(older_than_seconds=self.ORPHAN_AFTER)
        except DatabaseUnavailableError:
            return 0
        if swept:
            log.warning("closed %d answers left unfinished by a stopped process as errors", swept)
        return swept

    def _failing(self, what: str) -> None:
        if not self._waiting:
            self._waiting = True
            log.warning("chat: %s now; retrying until the database is back", what)

    def _recovered(self, what: str) -> None:
        if self._waiting:
            self._waiting = False
            log.warning("chat: %s", what)

    async def close(self, grace: float) -> None:
        """Stop saving partials; give the kept final saves ``grace`` seconds to go through."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._retrier is not None and not self._retrier.done():
            with contextlib.suppress(TimeoutError):  # the database may come back meanwhile
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._retrier)
            self._retrier.cancel()
            await asyncio.gather(self._retrier, return_exceptions=True)
        if self._unsaved:
            log.error(
                "chat: %d answers could not be saved before the stop; their rows stay "
                "'streaming' until a replica's sweep closes them as errors",
                len(self._unsaved),
            )
