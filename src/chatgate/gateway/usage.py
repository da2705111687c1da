"""Usage accounting: tokens per client key, user, model and day, written in batches off the hot
path.

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
from chatgate.storage import UsageRepository, UsageRow

log = logging.getLogger(__name__)

_Key = tuple[str | None, str | None, str, date]  # key id, user id, model, day


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
    """Tallies usage per (key, user, model, day) and writes it in batches.

    ``on_written(by_key, by_user)`` is called after each successful write with the tokens just
    added to each key's and each user's ``tokens_used`` (requests without a key or a user are
    in neither), so budget checks can stop counting them as unwritten.
    """

    def __init__(
        self,
        repo: UsageRepository,
        interval: float = 2.0,
        on_written: Callable[[dict[str, int], dict[str, int]], None] | None = None,
    ) -> None:
        self.repo = repo
        self.interval = interval
        self.on_written = on_written
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
    ) -> None:
        """Count one request of `key_id` (None: no key) by `user_id` (None: no user)."""
        key = (key_id, user_id, model, datetime.now(UTC).date())
        counts = self._tally.get(key)
        if counts is None:
            self._tally[key] = [1, prompt, completion]
        else:
            counts[0] += 1
            counts[1] += prompt
            counts[2] += completion

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
                    requests=n,
                    prompt_tokens=p,
                    completion_tokens=c,
                )
                for (k, u, m, d), (n, p, c) in tally.items()
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
                for key, (n, p, c) in tally.items():
                    counts = self._tally.setdefault(key, [0, 0, 0])
                    counts[0] += n
                    counts[1] += p
                    counts[2] += c
                return
            self._waiting = False
            if self.on_written is not None:
                by_key: dict[str, int] = {}
                by_user: dict[str, int] = {}
                for row in rows:
                    tokens = row.prompt_tokens + row.completion_tokens
                    if row.key_id:  # not None, nor the ANONYMOUS sentinel
                        by_key[row.key_id] = by_key.get(row.key_id, 0) + tokens
                    if row.user_id:
                        by_user[row.user_id] = by_user.get(row.user_id, 0) + tokens
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
