"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile).

Hashing costs tens of milliseconds of CPU and 64 MiB of memory by design, so it runs in a pool
of its own (:class:`Hashing`): at most ``workers`` hashes at once, at most ``queue`` waiting,
and anything beyond is refused at once (503 + Retry-After). A flood of sign-ins can then neither
exhaust memory nor take the threads and cores other requests need.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from chatgate.errors import ServiceUnavailableError

_HASHER = PasswordHasher()
T = TypeVar("T")


@cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist: a wrong name costs a wrong password's time."""
    return _HASHER.hash("chatgate-dummy-password")


MIN_LENGTH = 8


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(hashed: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(hashed or _dummy_hash(), password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


class Hashing:
    """The bounded pool password hashes run in (one per process, built with the accounts)."""

    def __init__(self, workers: int = 1, queue: int = 32) -> None:
        self.workers = workers
        self.queue = queue
        self.pending = 0  # running + waiting
        self._executor: ThreadPoolExecutor | None = None

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        return await self._run(verify_password, hashed, password)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self.pending >= self.workers + self.queue:
            raise ServiceUnavailableError(
                "Too many sign-ins at once; try again in a moment.",
                code="login_busy",
                retry_after=1,
            )
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        loop = asyncio.get_running_loop()
        future = self._executor.submit(fn, *args)
        self.pending += 1

        def done(_: object) -> None:  # in the worker thread; counted back on the loop
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to count
                loop.call_soon_threadsafe(self._finished)

        future.add_done_callback(done)
        # A caller that gives up does not free the slot: the hash runs on until it is done.
        return await asyncio.wrap_future(future)

    def _finished(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
