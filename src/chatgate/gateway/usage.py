"""Usage accounting: tokens and cost per client key, user, model and day, written in batches off
the hot path.

``record`` only adds to an in-memory tally (O(1), no I/O); a background task writes the tally
every ``interval`` seconds as one upsert transaction, and ``close`` writes what is left, so a
graceful shutdown loses nothing. A failed write keeps the rows for the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from chatgate.errors import DatabaseUnavailableError
from chatgate.gateway.pricing import Cost
from chatgate.storage import UsageRepository, UsageRow

log = logging.getLogger(__name__)

_Key = tuple[str | None, str | None, str, date, str]  # key id, user id, model, day, currency
Spent = tuple[int, int]  # tokens, nano-units of the budgets' currency


def usage_tokens(usage: Any) -> tuple[int, int]:
    """(prompt, completion) tokens from an OpenAI ``usage`` object, 0 where absent."""
    if not isinstance(usage, dict):
        return 0, 0
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else 0,
        completion if isinstance(completion, int) else 0,
    )


class UsageRecorder:
    """Tallies usage and cost per (key, user, model, day) and writes it in batches.

    ``on_written(by_key, by_user)`` is called after each successful write with what was just
    added to each key's and each user's counters — (tokens, budget nano-units) — (requests
    without a key or a user are in neither), so budget checks can stop counting them as
    unwritten.
    """

    def __init__(
        self,
        repo: UsageRepository,
        interval: float = 2.0,
        on_written: Callable[[dict[str, Spent], dict[str, Spent]], None] | None = None,
    ) -> None:
        self.repo = repo
        self.interval = interval
        self.on_written = on_written
        # requests, prompt, completion, cost, saved, budget nanos
        self._tally: dict[_Key, list[int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._waiting = False  # the last write met a database outage

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(
        self,
        key_id: str | None,
        model: str,
        prompt: int,
        completion: int,
        user_id: str | None = None,
        cost: Cost | None = None,
        saved: Cost | None = None,
    ) -> None:
        """Count one request of `key_id` (None: no key) by `user_id` (None: no user): what the
        upstream charged (``cost``) or, for an answer from chatgate's cache, what it saved."""
        money = cost or saved
        currency = money.currency if money is not None else ""
        key = (key_id, user_id, model, datetime.now(UTC).date(), currency)
        counts = self._tally.get(key)
        if counts is None:
            counts = self._tally[key] = [0, 0, 0, 0, 0, 0]
        counts[0] += 1
        counts[1] += prompt
        counts[2] += completion
        if cost is not None:
            counts[3] += cost.nanos
            counts[5] += cost.budget_nanos
        if saved is not None:
            counts[4] += saved.nanos

    async def flush(self) -> None:
        async with self._lock:
            tally, self._tally = self._tally, {}
            if not tally:
                return
            rows = [
                UsageRow(
                    key_id=k,
                    user_id=u,
                    model=m,
                    day=d,
                    requests=n[0],
                    prompt_tokens=n[1],
                    completion_tokens=n[2],
                    cost_nanos=n[3],
                    saved_nanos=n[4],
                    currency=cur,
                    budget_nanos=n[5],
                )
                for (k, u, m, d, cur), n in tally.items()
            ]
            try:
                await self.repo.add_batch(rows)
            except Exception as exc:
                if isinstance(exc, DatabaseUnavailableError):  # logged by the storage, once
                    if not self._waiting:
                        log.warning("usage: waiting for the database to write %d rows", len(rows))
                    self._waiting = True
                else:
                    log.exception(
                        "usage: writing %d rows failed; keeping them for the next try", len(rows)
                    )
                for key, n in tally.items():
                    counts = self._tally.setdefault(key, [0, 0, 0, 0, 0, 0])
                    for i, value in enumerate(n):
                        counts[i] += value
                return
            self._waiting = False
            if self.on_written is not None:
                by_key: dict[str, Spent] = {}
                by_user: dict[str, Spent] = {}
                for row in rows:
                    tokens = row.prompt_tokens + row.completion_tokens
                    for owner, into in ((row.key_id, by_key), (row.user_id, by_user)):
                        if owner:  # not None, nor the ANONYMOUS / NO_USER sentinel
                            was = into.get(owner, (0, 0))
                            into[owner] = (was[0] + tokens, was[1] + row.budget_nanos)
                self.on_written(by_key, by_user)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
