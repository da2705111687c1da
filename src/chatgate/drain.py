"""The graceful stop's deadline, as the doors see it: every open stream ends cleanly at it.

On SIGTERM uvicorn stops accepting, lets running requests finish for ``server.drain_seconds``,
then cancels whatever is left: a stream would stop mid-body (no error event, no closing chunk)
and each would log a traceback. ``Drain`` keeps the deadline itself, a little earlier: the
server's signal handler calls ``begin``; at the deadline the ``on_deadline`` hooks run first
(the chat ends its running answers, saved as errors with their text, so their followers get
each one's ``done``), then every stream still open in a ``watch`` block is cut: its task is
cancelled, the block swallows that cancellation and says ``cut``, and the door sends its own
error event and ends the body. (WebSockets are closed by uvicorn with 1012, "service restart",
as the stop begins.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType

from chatgate.errors import ServiceUnavailableError

log = logging.getLogger("chatgate")

MARGIN = 0.5  # seconds before uvicorn's deadline that streams are cut (at most a quarter of it)


def shutting_down() -> ServiceUnavailableError:
    """The error a stream cut at the drain deadline ends with."""
    return ServiceUnavailableError(
        "chatgate is shutting down: the answer was cut at the drain deadline; try again.",
        code="shutting_down",
        retry_after=1,
    )


class Watch:
    """``async with drain.watch() as cut:``; afterwards ``cut.cut`` says the deadline ended it."""

    __slots__ = ("_drain", "_task", "cut")

    def __init__(self, drain: Drain) -> None:
        self._drain = drain
        self._task: asyncio.Task[object] | None = None
        self.cut = False

    async def __aenter__(self) -> Watch:
        self._task = asyncio.current_task()
        self._drain._watches.add(self)
        if self._drain.expired:  # opened after the deadline: end at the first await
            self._cut()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> bool:
        self._drain._watches.discard(self)
        if self.cut and exc_type is asyncio.CancelledError and self._task is not None:
            # Ours alone (nobody else cancelled too, e.g. a client that left): swallow it.
            return self._task.uncancel() == 0
        return False

    def _cut(self) -> None:
        if not self.cut and self._task is not None:
            self.cut = True
            self._task.cancel("drain deadline")


class Drain:
    def __init__(self) -> None:
        self.started = False
        self.expired = False
        self._watches: set[Watch] = set()
        self._hooks: list[Callable[[], Awaitable[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def on_deadline(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` at the deadline, before the streams are cut."""
        self._hooks.append(hook)

    def watch(self) -> Watch:
        return Watch(self)

    def begin(self, seconds: float) -> None:
        """The stop has begun: cut what is still open a little before ``seconds`` from now."""
        if self.started:
            return
        self.started = True
        margin = min(MARGIN, seconds / 4)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, seconds - margin), self._expire, margin)

    def _expire(self, margin: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._deadline(margin))

    async def _deadline(self, margin: float) -> None:
        self.expired = True
        if self._hooks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(margin / 2):
                    results = await asyncio.gather(
                        *(hook() for hook in self._hooks), return_exceptions=True
                    )
                    for result in results:
                        if isinstance(result, Exception):
                            log.error("drain: a deadline hook failed", exc_info=result)
        watches = list(self._watches)
        if watches:
            log.warning("drain deadline: ending %d open stream(s) with an error", len(watches))
        for watch in watches:
            watch._cut()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def on_stop_signal(callback: Callable[[], None]) -> None:
    """Call ``callback`` on the loop when SIGTERM or SIGINT arrives, then whatever handler was
    there (uvicorn's, which starts the graceful stop). Only in the main thread; the server puts
    its own handlers back when it stops, which removes these too."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(
            signum: int,
            frame: FrameType | None,
            previous: object = previous,
        ) -> None:
            loop.call_soon_threadsafe(callback)
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)
