"""Usage accounting: tokens per client key, model and day, written in batches off the hot path.

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

from chatgate.storage import UsageRepository, UsageRow

log = logging.getLogger(__name__)

_Key = tuple[str | None, str, date]


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
    def __init__(
        self,
        repo: UsageRepository,
        interval: float = 2.0,
        on_written: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.repo = repo
        self.interval = interval
        self.on_written = on_written
        self._tally: dict[_Key, list[int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

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
        day = datetime.now(UTC).date()
        counts = self._tally.get((key_id, model, day))
        if counts is None:
            self._tally[(key_id, model, day)] = [1, prompt, completion]
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
                UsageRow(key_id=k, model=m, day=d, requests=n, prompt_tokens=p, completion_tokens=c)
                for (k, m, d), (n, p, c) in tally.items()
            ]
            try:
                await self.repo.add_batch(rows)
            except Exception:
                log.exception(
                    "usage: writing %d rows failed; keeping them for the next try", len(rows)
                )
                for (k, m, d), (n, p, c) in tally.items():
                    counts = self._tally.setdefault((k, m, d), [0, 0, 0])
                    counts[0] += n
                    counts[1] += p
                    counts[2] += c
                return
            if self.on_written is not None:
                written: dict[str, int] = {}
                for row in rows:
                    if row.key_id is not None:
                        tokens = row.prompt_tokens + row.completion_tokens
                        written[row.key_id] = written.get(row.key_id, 0) + tokens
                self.on_written(written)

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
