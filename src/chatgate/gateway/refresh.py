"""Model lists that stay current: the providers' lists read again every ``models_refresh`` s.

Providers rename and retire models while a gateway runs for months; a model list read only at
start-up goes stale. The refresher rebuilds the routing table from the providers' lists
(configured models, aliases and settings as at start-up) and swaps it in whole. A provider
whose list cannot be read keeps the models it listed before, so a passing outage of its
``/models`` endpoint changes nothing; one that served its fallback models at start-up gets
its real list as soon as it can be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from chatgate.gateway.router import Router

log = logging.getLogger(__name__)

Build = Callable[[Router], Awaitable[Router]]
"""Builds a new routing table, given the one it replaces."""


class ModelRefresher:
    def __init__(self, router: Router, build: Build, interval: float) -> None:
        self.router = router
        self.build = build
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="chatgate-models-refresh")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self) -> None:
        """Read the lists now and route by them (what changed is logged)."""
        new = await self.build(self.router)
        before = {name for name, _ in self.router.public_models()}
        after = {name for name, _ in new.public_models()}
        if added := sorted(after - before):
            log.info("models now served: %s", ", ".join(added))
        if removed := sorted(before - after):
            log.warning("models no longer served: %s", ", ".join(removed))
        self.router.replace(new)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception:  # a bug here must not stop the refreshes, nor the gateway
                log.exception("refreshing the model lists failed")
